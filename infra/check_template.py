"""Offline checks of infra/template.yaml beyond what cfn-lint sees. Used by infra/check.sh.

    python3 infra/check_template.py translate TEMPLATE OUT.json
    python3 infra/check_template.py invariants TEMPLATE OUT.json
    python3 infra/check_template.py batch OUTDIR NAME=TEMPLATE...

`translate` applies the SAM transform (aws-sam-translator, as CloudFormation
does on deploy) and writes plain CloudFormation. cfn-lint applies the same
transform itself, but first blanks the DefinitionBody of every
AWS::Serverless::Api (cfnlint/template/transforms/_sam.py), so references,
Fn::Sub strings and dependency cycles inside the REST API's OpenAPI body go
unchecked there. check.sh lints this output a second time to cover them.

`invariants` checks the security and design contracts of the translated
template: which routes are public, the authorizer cache TTL against the token
lifetime, the authorizer cache key (token, method and resource: a decision is
only reused for the route it was made for), the route map (AuthRouteScopes
default and infra/samconfig.toml.example) against the API's protected routes, the IAM actions each function gets, the issuer's mail (SES from the one
sender through the one identity), the Rust function packaging and
environment, that every parameter-driven function property is fingerprinted
(so a new value reaches the `live` alias), and the DynamoDB layout of
docs/DESIGN.md. Each failure prints one
line starting with `INVARIANT:`; the exit code is 1 if any failed.

`batch` does both for many templates in one process (check.sh checks the
template and each of its broken copies: the imports cost more than the
work). For each NAME it writes OUTDIR/NAME.json (the translation, when it
succeeds), OUTDIR/NAME.log (what `translate` then `invariants` would have
printed) and OUTDIR/NAME.status: `translated` and `invariants` as 1 (passed)
or 0 (failed or not run). Its exit code is 0 when it ran.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

# --- the contracts ----------------------------------------------------------

# The issuer's routes are the only public ones (issue 4; docs/DESIGN.md).
PUBLIC_ROUTES = {
    ("/register", "post"),
    ("/register", "options"),
    ("/login", "post"),
    ("/login", "options"),
    ("/refresh", "post"),
    ("/refresh", "options"),
    ("/logout", "post"),
    ("/logout", "options"),
    ("/logout-all", "post"),
    ("/logout-all", "options"),
    ("/.well-known/jwks.json", "get"),
    ("/.well-known/openid-configuration", "get"),
    ("/revocations", "get"),
    ("/verify-email", "post"),
    ("/verify-email", "options"),
    ("/password/forgot", "post"),
    ("/password/forgot", "options"),
    ("/password/reset", "post"),
    ("/password/reset", "options"),
    ("/password/change", "post"),
    ("/password/change", "options"),
}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "x-amazon-apigateway-any-method"}

# The authorizer answers for exactly one method and resource (issue 11), so
# API Gateway's cache key must hold them: REST REQUEST authorizers key on
# these identity sources, HTTP API authorizers on these. Otherwise TTL 0.
REST_CACHE_KEY = {"method.request.header.Authorization", "context.httpMethod", "context.resourcePath"}
HTTP_API_CACHE_KEY = {"$request.header.Authorization", "$context.routeKey", "$context.httpMethod"}

ACCESS_TOKEN_TTL_SECS = 900  # ISSUER_ACCESS_TTL_SECS
MAX_AUTHORIZER_CACHE_TTL = ACCESS_TOKEN_TTL_SECS // 3

ISSUER_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "secretsmanager:GetSecretValue",
    "kms:Decrypt",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "ses:SendEmail",
}
AUTHORIZER_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}

# The IAM action each DynamoDB SDK call of the issuer's store needs (items of
# a TransactWriteItems are authorised one by one as these). The store's
# source is scanned for the calls, and the issuer role must grant every
# action found: a call added without its permission fails here, not with
# AccessDeniedException in production (moto does not check IAM).
DYNAMO_CALLS = {
    ".get_item()": "dynamodb:GetItem",
    ".put_item()": "dynamodb:PutItem",
    "Put::builder()": "dynamodb:PutItem",
    ".update_item()": "dynamodb:UpdateItem",
    "Update::builder()": "dynamodb:UpdateItem",
    ".delete_item()": "dynamodb:DeleteItem",
    "Delete::builder()": "dynamodb:DeleteItem",
    "ConditionCheck::builder()": "dynamodb:ConditionCheckItem",
    ".query()": "dynamodb:Query",
}
# Tooling only (tests and local set-up create their own tables).
DYNAMO_TOOLING_FILES = {"schema.rs"}
STORE_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "issuer", "src", "store", "dynamo")

# Function properties that may depend on parameters without being part of the
# version fingerprint: they live on the alias or name the function itself.
NOT_FINGERPRINTED = {"ProvisionedConcurrencyConfig", "VersionDescription", "FunctionName"}

FINGERPRINTS = {"IssuerFunction": "IssuerConfigFingerprint", "AuthorizerFunction": "AuthorizerConfigFingerprint"}

RUST_FUNCTIONS = {
    # logical id: (binary, required environment)
    "IssuerFunction": (
        "issuer-lambda",
        {
            "ISSUER_URL",
            "ISSUER_AUDIENCE",
            "ISSUER_STORE",
            "ISSUER_USERS_TABLE",
            "ISSUER_REFRESH_TABLE",
            "ISSUER_REVOCATIONS_TABLE",
            "ISSUER_SIGNING_KEY_SECRET_ARN",
            "ISSUER_ACCESS_TTL_SECS",
            "ISSUER_MAIL",
            "ISSUER_MAIL_FROM",
        },
    ),
    "AuthorizerFunction": ("authorizer", {"AUTH_ISSUER", "AUTH_AUDIENCE", "AUTH_JWKS_URL", "AUTH_ROUTE_SCOPES"}),
}

TABLES = {
    # logical id: (GSI name, GSI key, projection type, projected attributes, TTL attribute)
    "UsersTable": (
        "email-index",
        "email",
        "INCLUDE",
        {"userId", "passwordHash", "scope", "failedLogins", "lockedUntil", "tokensValidAfter"},
        None,
    ),
    "RefreshTokensTable": ("family-user-index", "familyUser", "KEYS_ONLY", set(), "expiresAt"),
}


# --- translate ----------------------------------------------------------------


def load_source(path: str) -> dict[str, Any]:
    from cfnlint.decode import decode

    template, matches = decode(path)
    if matches or template is None:
        for m in matches:
            print(m, file=sys.stderr)
        raise SystemExit(f"{path}: cannot be parsed")
    # cfn-lint's node types carry line marks; plain JSON types for the translator.
    return json.loads(json.dumps(template))


def translate(path: str) -> dict[str, Any]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from cfnlint.data import Serverless
    from cfnlint.helpers import load_resource
    from samtranslator.parser.parser import Parser
    from samtranslator.public.exceptions import InvalidDocumentException
    from samtranslator.translator.translator import Translator

    template = load_source(path)
    # The translator wants S3 locations; local build paths (CodeUri: ..) are
    # what `sam build` replaces. DefinitionBody is kept as written.
    for resource in template.get("Resources", {}).values():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            props["CodeUri"] = "s3://placeholder-bucket/placeholder.zip"
    translator = Translator(managed_policy_map=load_resource(Serverless, "ManagedPolicies.json"), sam_parser=Parser())
    try:
        return translator.translate(sam_template=template, parameter_values={}, passthrough_metadata=True)
    except InvalidDocumentException as e:
        for cause in e.causes:
            print(f"SAM transform: {cause.message}", file=sys.stderr)
        raise SystemExit(1) from None


# --- invariants ---------------------------------------------------------------


class Checker:
    def __init__(self, source: dict[str, Any], out: dict[str, Any]) -> None:
        self.source = source
        self.out = out
        self.res = out.get("Resources", {})
        self.failures: list[str] = []

    def fail(self, msg: str) -> None:
        self.failures.append(msg)

    def resource(self, logical_id: str, rtype: str) -> dict[str, Any]:
        r = self.res.get(logical_id)
        if not r or r.get("Type") != rtype:
            self.fail(f"{logical_id}: expected a {rtype}")
            return {}
        return r

    def routes(self) -> None:
        apis = {k: r for k, r in self.res.items() if r.get("Type") == "AWS::ApiGateway::RestApi"}
        if not apis:
            self.fail("no REST API in the template")
        for api_id, api in apis.items():
            body = api.get("Properties", {}).get("Body") or {}
            authorizers = {
                name
                for name, d in (body.get("securityDefinitions") or {}).items()
                if isinstance(d, dict) and "x-amazon-apigateway-authorizer" in d
            }
            seen_public = set()
            for path, item in (body.get("paths") or {}).items():
                for method, op in item.items():
                    if method not in HTTP_METHODS:
                        continue
                    security = op.get("security") or []
                    names = {n for entry in security for n in entry}
                    if (path, method) in PUBLIC_ROUTES:
                        seen_public.add((path, method))
                        if names:
                            self.fail(f"{api_id}: {method.upper()} {path} is an issuer route and must stay public")
                        uri = json.dumps(op.get("x-amazon-apigateway-integration", {}).get("uri"))
                        if "-issuer:live/invocations" not in uri:
                            self.fail(f"{api_id}: {method.upper()} {path} must go to the issuer's live alias")
                    elif not names & authorizers:
                        self.fail(
                            f"{api_id}: {method.upper()} {path} is not an issuer route and has no Lambda authorizer"
                            " (add `security: [{RequestAuthorizer: []}]`)"
                        )
            for path, method in sorted(PUBLIC_ROUTES - seen_public):
                self.fail(f"{api_id}: issuer route {method.upper()} {path} is missing")
            for name in authorizers:
                a = body["securityDefinitions"][name]["x-amazon-apigateway-authorizer"]
                where = f"{api_id} authorizer {name}"
                ttl = a.get("authorizerResultTtlInSeconds")
                self.cache_ttl(where, ttl)
                if a.get("type") == "token" and body["securityDefinitions"][name].get("name") != "Authorization":
                    self.fail(f"{where}: identity source must be the Authorization header")
                sources = {x.strip() for x in str(a.get("identitySource", "")).split(",")}
                if ttl not in (0, "0") and (a.get("type") != "request" or not REST_CACHE_KEY <= sources):
                    self.fail(
                        f"{where}: a cached decision would be reused on other routes; use a REQUEST authorizer"
                        f" keyed on {sorted(REST_CACHE_KEY)} (Identity Headers [Authorization], Context"
                        " [httpMethod, resourcePath]) or TTL 0"
                    )
            self.route_map(api_id, self.protected_routes(body))
        for api_id, api in self.res.items():
            if api.get("Type") != "AWS::ApiGatewayV2::Api":
                continue
            body = api.get("Properties", {}).get("Body", {})
            schemes = body.get("components", {}).get("securitySchemes", {})
            for name, s in schemes.items():
                a = s.get("x-amazon-apigateway-authorizer", {})
                ttl = a.get("authorizerResultTtlInSeconds")
                self.cache_ttl(f"{api_id} authorizer {name}", ttl)
                if ttl not in (0, "0") and not HTTP_API_CACHE_KEY <= set(a.get("identitySource") or []):
                    self.fail(
                        f"{api_id} authorizer {name}: a cached decision would be reused on other routes; key it on"
                        f" {sorted(HTTP_API_CACHE_KEY)} (Identity Headers [Authorization], Context [routeKey,"
                        " httpMethod]) or TTL 0"
                    )
            # Every HTTP API route has the default authorizer.
            self.route_map(api_id, {(m, p) for p, item in (body.get("paths") or {}).items() for m in self.methods(item)})

    @staticmethod
    def methods(item: dict[str, Any]) -> list[str]:
        return [("ANY" if m == "x-amazon-apigateway-any-method" else m.upper()) for m in item if m in HTTP_METHODS]

    def protected_routes(self, body: dict[str, Any]) -> set[tuple[str, str]]:
        """(METHOD, path) of every REST route with a `security` entry."""
        out = set()
        for path, item in (body.get("paths") or {}).items():
            for method, op in item.items():
                if method in HTTP_METHODS and op.get("security"):
                    out.add(("ANY" if method == "x-amazon-apigateway-any-method" else method.upper(), path))
        return out

    def route_maps(self) -> list[tuple[str, str]]:
        """(where, AUTH_ROUTE_SCOPES value) of every route map the template is deployed with."""
        out = []
        default = self.source.get("Parameters", {}).get("AuthRouteScopes", {}).get("Default")
        if default:
            out.append(("parameter AuthRouteScopes (Default)", str(default)))
        example = os.path.join(os.path.dirname(os.path.abspath(__file__)), "samconfig.toml.example")
        if os.path.exists(example):
            with open(example, encoding="utf-8") as f:
                for m in re.finditer(r'"AuthRouteScopes=([^"]*)"', f.read()):
                    out.append(("infra/samconfig.toml.example AuthRouteScopes", m.group(1)))
        return out

    def route_map(self, api_id: str, api_routes: set[tuple[str, str]]) -> None:
        """The route map names exactly the API's protected routes (issue 11):
        a protected route missing from it is denied (or, with
        AuthUnmappedRoutes=allow, let through unchecked), and an entry for a
        route the API lacks is a typo that leaves the real route unmapped."""
        allow_unmapped = self.source.get("Parameters", {}).get("AuthUnmappedRoutes", {}).get("Default") == "allow"

        def norm(path: str) -> str:
            return re.sub(r"\{[^}/]*\+\}", "{+}", re.sub(r"\{[^}/+]*\}", "{}", path))

        api = {(m, norm(p)) for m, p in api_routes}
        written = {(m, norm(p)): f"{m} {p}" for m, p in api_routes}
        for where, spec in self.route_maps():
            mapped = set()
            for entry in (e.strip() for e in spec.split(",")):
                if not entry:
                    continue
                route, _, scopes = entry.partition("=")
                parts = route.split()
                if len(parts) != 2 or not scopes.split():
                    self.fail(f"{where}: entry {entry!r} is not METHOD /path=scope")
                    continue
                method = "ANY" if parts[0].upper() in ("ANY", "*") else parts[0].upper()
                key = (method, norm(parts[1]))
                mapped.add(key)
                if key not in api and not (method != "ANY" and ("ANY", key[1]) in api):
                    if not (method == "ANY" and any(p == key[1] for _, p in api)):
                        self.fail(f"{api_id}: {where} maps {method} {parts[1]}, which is not a protected route of the API")
            if allow_unmapped:
                continue
            for m, p in sorted(api):
                if (m, p) not in mapped and ("ANY", p) not in mapped:
                    self.fail(
                        f"{api_id}: {written[(m, p)]} is missing from the route map ({where}); it would be denied"
                        " to every token (add it, or set AuthUnmappedRoutes to allow)"
                    )

    def cache_ttl_parameter(self) -> None:
        param = self.source.get("Parameters", {}).get("AuthorizerCacheTtl")
        if not param:
            self.fail("parameter AuthorizerCacheTtl is missing")
            return
        if "MaxValue" not in param:
            self.fail("parameter AuthorizerCacheTtl needs a MaxValue")
        else:
            self.cache_ttl("parameter AuthorizerCacheTtl (MaxValue)", param["MaxValue"])
        self.cache_ttl("parameter AuthorizerCacheTtl (Default)", param.get("Default"))

    def cache_ttl(self, where: str, ttl: Any) -> None:
        if ttl == {"Ref": "AuthorizerCacheTtl"}:
            return  # bounded by the parameter's MaxValue, checked above
        try:
            value = int(ttl)
        except (TypeError, ValueError):
            self.fail(f"{where}: cache TTL {ttl!r} is neither a number nor the AuthorizerCacheTtl parameter")
            return
        if value > MAX_AUTHORIZER_CACHE_TTL:
            self.fail(
                f"{where}: authorizer cache TTL may reach {value} s; it must stay at most"
                f" {MAX_AUTHORIZER_CACHE_TTL} s, well below the {ACCESS_TOKEN_TTL_SECS} s token lifetime"
            )

    def policies(self, role_id: str, allowed: set[str]) -> None:
        role = self.resource(role_id, "AWS::IAM::Role")
        for policy in role.get("Properties", {}).get("Policies", []):
            for st in self.statements(policy.get("PolicyDocument", {})):
                if st.get("Effect") != "Allow":
                    continue
                actions = st.get("Action", [])
                actions = [actions] if isinstance(actions, str) else actions
                for action in actions:
                    if action not in allowed:
                        self.fail(f"{role_id}: action {action} is not in its allowlist")
                resources = st.get("Resource", [])
                resources = [resources] if not isinstance(resources, list) else resources
                if any(r == "*" for r in resources):
                    self.fail(f"{role_id}: Resource '*' in policy {policy.get('PolicyName')}")
        managed = json.dumps(role.get("Properties", {}).get("ManagedPolicyArns", []))
        for arn in ("AdministratorAccess", "AmazonDynamoDBFullAccess", "SecretsManagerReadWrite", "PowerUser"):
            if arn in managed:
                self.fail(f"{role_id}: broad managed policy {arn}")

    def store_calls_are_granted(self) -> None:
        granted: set[str] = set()
        role = self.resource("IssuerRole", "AWS::IAM::Role")
        for policy in role.get("Properties", {}).get("Policies", []):
            for st in self.statements(policy.get("PolicyDocument", {})):
                if st.get("Effect") == "Allow":
                    actions = st.get("Action", [])
                    granted.update([actions] if isinstance(actions, str) else actions)
        if not os.path.isdir(STORE_SOURCE):
            self.fail(f"the DynamoDB store's source is not at {STORE_SOURCE}")
            return
        needed: dict[str, str] = {}
        for name in sorted(os.listdir(STORE_SOURCE)):
            if not name.endswith(".rs") or name in DYNAMO_TOOLING_FILES:
                continue
            with open(os.path.join(STORE_SOURCE, name), encoding="utf-8") as f:
                text = f.read()
            for call, action in DYNAMO_CALLS.items():
                if call in text:
                    needed.setdefault(action, f"{name}: {call}")
        if not needed:
            self.fail("no DynamoDB calls found in the store's source: the scan is broken")
        for action, where in sorted(needed.items()):
            if action not in granted:
                self.fail(f"IssuerRole: the store calls {where} but the role does not grant {action}")

    @staticmethod
    def statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for st in doc.get("Statement", []):
            if isinstance(st, dict) and list(st) == ["Fn::If"]:
                out += [b for b in st["Fn::If"][1:] if isinstance(b, dict) and "Effect" in b]
            elif isinstance(st, dict):
                out.append(st)
        return out

    def functions(self) -> None:
        src = self.source.get("Resources", {})
        for fid, (binary, env) in RUST_FUNCTIONS.items():
            f = src.get(fid, {})
            props = f.get("Properties", {})
            meta = f.get("Metadata", {})
            if meta.get("BuildMethod") != "rust-cargolambda" or meta.get("BuildProperties", {}).get("Binary") != binary:
                self.fail(f"{fid}: Metadata must be BuildMethod rust-cargolambda, BuildProperties.Binary {binary}")
            for key, want in (("Runtime", "provided.al2023"), ("Handler", "bootstrap"), ("CodeUri", "..")):
                if props.get(key) != want:
                    self.fail(f"{fid}: {key} must be {want!r}, is {props.get(key)!r}")
            lam = self.resource(fid, "AWS::Lambda::Function").get("Properties", {})
            if lam.get("Architectures") != ["arm64"]:
                self.fail(f"{fid}: Architectures must be [arm64]")
            missing = env - set(lam.get("Environment", {}).get("Variables", {}))
            if missing:
                self.fail(f"{fid}: environment lacks {sorted(missing)}")
            if not any(
                r.get("Type") == "AWS::Lambda::Alias" and r["Properties"].get("FunctionName") == {"Ref": fid}
                for r in self.res.values()
            ):
                self.fail(f"{fid}: no alias (AutoPublishAlias) for provisioned concurrency")
        ttl = self.res.get("IssuerFunction", {}).get("Properties", {}).get("Environment", {}).get("Variables", {})
        if str(ttl.get("ISSUER_ACCESS_TTL_SECS")) != str(ACCESS_TOKEN_TTL_SECS):
            self.fail(f"IssuerFunction: ISSUER_ACCESS_TTL_SECS must be {ACCESS_TOKEN_TTL_SECS} (the cache TTL rule assumes it)")

    def parameter_refs(self, value: Any) -> set[str]:
        """Template parameters a value depends on (Fn::If counts as its condition's)."""
        params = set(self.source.get("Parameters", {}))
        found: set[str] = set()

        def walk(v: Any) -> None:
            if isinstance(v, dict):
                if "Ref" in v and v["Ref"] in params:
                    found.add(v["Ref"])
                sub = v.get("Fn::Sub")
                text = sub[0] if isinstance(sub, list) and sub else sub
                if isinstance(text, str):
                    found.update(n for n in re.findall(r"\$\{([A-Za-z0-9]+)\}", text) if n in params)
                cond = v.get("Fn::If")
                if isinstance(cond, list) and cond:
                    walk(self.source.get("Conditions", {}).get(cond[0]))
                if "Condition" in v and isinstance(v["Condition"], str):
                    walk(self.source.get("Conditions", {}).get(v["Condition"]))
                for x in v.values():
                    walk(x)
            elif isinstance(v, list):
                for x in v:
                    walk(x)

        walk(value)
        return found

    def fingerprints(self) -> None:
        src = self.source.get("Resources", {})
        for fid, fpid in FINGERPRINTS.items():
            props = src.get(fid, {}).get("Properties", {})
            fp = src.get(fpid, {})
            if fp.get("Type") != "Custom::ConfigFingerprint":
                self.fail(f"{fpid}: expected a Custom::ConfigFingerprint for {fid}")
                continue
            fprops = {k: v for k, v in fp.get("Properties", {}).items() if k != "ServiceToken"}
            if f"${{{fpid}.Sha256}}" not in json.dumps(props.get("VersionDescription")):
                self.fail(f"{fid}: VersionDescription must carry ${{{fpid}.Sha256}}")
            for key, value in props.items():
                if key in NOT_FINGERPRINTED:
                    continue
                refs = self.parameter_refs(value)
                if refs and key not in fprops:
                    self.fail(
                        f"{fid}: {key} depends on {sorted(refs)} but is not in {fpid}; a new value would not"
                        " reach the live alias"
                    )
            for key, value in fprops.items():
                if props.get(key) != value:
                    self.fail(f"{fpid}: {key} differs from {fid}.{key}; they must be identical")

    def tables(self) -> None:
        for tid, (index, key, projection, attrs, ttl_attr) in TABLES.items():
            t = self.resource(tid, "AWS::DynamoDB::Table")
            p = t.get("Properties", {})
            if t.get("DeletionPolicy") != "Retain" or t.get("UpdateReplacePolicy") != "Retain":
                self.fail(f"{tid}: DeletionPolicy and UpdateReplacePolicy must be Retain")
            if p.get("KeySchema") != [{"AttributeName": "pk", "KeyType": "HASH"}]:
                self.fail(f"{tid}: key must be pk (HASH)")
            if p.get("BillingMode") != "PAY_PER_REQUEST":
                self.fail(f"{tid}: BillingMode must be PAY_PER_REQUEST")
            if p.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is not True:
                self.fail(f"{tid}: point-in-time recovery must be on")
            if p.get("SSESpecification", {}).get("SSEEnabled") is not True:
                self.fail(f"{tid}: SSE must be on")
            gsis = {g["IndexName"]: g for g in p.get("GlobalSecondaryIndexes", [])}
            g = gsis.get(index)
            if not g:
                self.fail(f"{tid}: GSI {index} missing")
            else:
                if g.get("KeySchema") != [{"AttributeName": key, "KeyType": "HASH"}]:
                    self.fail(f"{tid}: GSI {index} key must be {key} (HASH)")
                proj = g.get("Projection", {})
                if proj.get("ProjectionType") != projection or set(proj.get("NonKeyAttributes", [])) != attrs:
                    self.fail(f"{tid}: GSI {index} must project {projection} {sorted(attrs)}")
            ttl = p.get("TimeToLiveSpecification")
            if ttl_attr and ttl != {"AttributeName": ttl_attr, "Enabled": True}:
                self.fail(f"{tid}: TTL must be on {ttl_attr}")

    def credential_attack_defences(self) -> None:
        """Issue 10: the WAF rate rule on the credential routes is on by
        default and bound to the REST API stage; refused logins and lockouts
        are counted from the issuer's own log group and alarmed."""
        params = self.source.get("Parameters", {})
        if params.get("EnableCredentialWaf", {}).get("Default") != "true":
            self.fail("parameter EnableCredentialWaf must default to 'true' (WAF on the credential routes)")
        acl = self.resource("CredentialWebAcl", "AWS::WAFv2::WebACL")
        props = acl.get("Properties", {})
        if props.get("Scope") != "REGIONAL":
            self.fail("CredentialWebAcl: Scope must be REGIONAL (a REST API stage)")
        rules = props.get("Rules", [])
        rate = [r for r in rules if "RateBasedStatement" in r.get("Statement", {})]
        if not rate:
            self.fail("CredentialWebAcl: needs a rate-based rule")
        for r in rate:
            st = r["Statement"]["RateBasedStatement"]
            if st.get("AggregateKeyType") != "IP":
                self.fail(f"CredentialWebAcl rule {r.get('Name')}: must aggregate per client address (IP)")
            if "Block" not in r.get("Action", {}):
                self.fail(f"CredentialWebAcl rule {r.get('Name')}: must block (Count only watches)")
            matched = set(re.findall(r'"SearchString": "([^"]+)"', json.dumps(st.get("ScopeDownStatement"))))
            for route in ("/login", "/register", "/refresh"):
                if route not in matched:
                    self.fail(f"CredentialWebAcl rule {r.get('Name')}: scope must include {route}")
        assoc = self.resource("CredentialWebAclAssociation", "AWS::WAFv2::WebACLAssociation")
        aprops = assoc.get("Properties", {})
        if aprops.get("WebACLArn") != {"Fn::GetAtt": ["CredentialWebAcl", "Arn"]}:
            self.fail("CredentialWebAclAssociation: must associate CredentialWebAcl")
        if "/stages/" not in json.dumps(aprops.get("ResourceArn")):
            self.fail("CredentialWebAclAssociation: must target the REST API stage")
        if acl.get("Condition") != assoc.get("Condition"):
            self.fail("CredentialWebAcl and its association must share one condition")
        for fid, event in (("RefusedLoginsMetricFilter", "login_failed"), ("LockoutsMetricFilter", "login_refused")):
            f = self.resource(fid, "AWS::Logs::MetricFilter").get("Properties", {})
            if f.get("LogGroupName") != {"Ref": "IssuerLogGroup"}:
                self.fail(f"{fid}: must read the issuer's log group")
            if event not in str(f.get("FilterPattern")) or '"audit"' not in str(f.get("FilterPattern")):
                self.fail(f"{fid}: must match the audit event {event}")
        for aid, metric in (("RefusedLoginsAlarm", "RefusedLogins"), ("LockoutsAlarm", "Lockouts")):
            a = self.resource(aid, "AWS::CloudWatch::Alarm")
            if a.get("Properties", {}).get("MetricName") != metric:
                self.fail(f"{aid}: must alarm on {metric}")

    def revocation(self) -> None:
        """The authorizer follows the issuer's revocation feed (issue 14), and a
        stale poll under the refuse policy plus a JWKS refetch fit in its timeout."""
        f = self.source.get("Resources", {}).get("AuthorizerFunction", {}).get("Properties", {})
        env = f.get("Environment", {}).get("Variables", {})
        url = env.get("REVOCATION_FEED_URL")
        if url is None or url == "off":
            self.fail("AuthorizerFunction: REVOCATION_FEED_URL must be set (revocation checks on), not off")
        else:
            branches = url["Fn::If"][1:] if isinstance(url, dict) and "Fn::If" in url else [url]
            for b in branches:
                text = b.get("Fn::Sub") if isinstance(b, dict) else b
                if not isinstance(text, str) or not text.startswith("https://") or not text.endswith("/revocations"):
                    self.fail(f"AuthorizerFunction: REVOCATION_FEED_URL {b!r} is not the issuer's https .../revocations")
        policy = env.get("REVOCATION_STALE_POLICY")
        if policy not in ("serve", "refuse", {"Ref": "RevocationStalePolicy"}):
            self.fail(f"AuthorizerFunction: REVOCATION_STALE_POLICY {policy!r} is not serve, refuse or the parameter")
        try:
            feed_ms = int(env.get("REVOCATION_TIMEOUT_MS", 2000))
            jwks_ms = int(env.get("AUTH_JWKS_TIMEOUT_MS", 5000))
            timeout_s = int(f.get("Timeout", 3))
        except (TypeError, ValueError):
            self.fail("AuthorizerFunction: Timeout, REVOCATION_TIMEOUT_MS and AUTH_JWKS_TIMEOUT_MS must be numbers")
            return
        if timeout_s * 1000 < feed_ms + jwks_ms + 500:
            self.fail(
                f"AuthorizerFunction: Timeout {timeout_s} s does not cover a feed poll ({feed_ms} ms) plus a JWKS"
                f" refetch ({jwks_ms} ms) with half a second to spare"
            )

    def mail(self) -> None:
        """Issue 16: the issuer mails through SES from MailFromAddress, and its
        role may send only that: ses:SendEmail on the sender's identity (and
        the configuration set when one is used), conditioned on
        ses:FromAddress; the optional settings reach the environment only
        when set."""
        params = self.source.get("Parameters", {})
        sender = params.get("MailFromAddress")
        if sender is None:
            self.fail("parameter MailFromAddress is missing (the issuer's sender)")
        elif "Default" in sender or not sender.get("AllowedPattern"):
            self.fail("parameter MailFromAddress must be required (no Default) and have an AllowedPattern")
        for name in ("MailIdentity", "ProductName", "LinkBase"):
            if params.get(name, {}).get("Default") != "":
                self.fail(f"parameter {name} must exist and default to '' (unset)")
        for fid in ("IssuerFunction", "IssuerConfigFingerprint"):
            env = self.source.get("Resources", {}).get(fid, {}).get("Properties", {})
            env = env.get("Environment", {}).get("Variables", {})
            if env.get("ISSUER_MAIL") != "ses":
                self.fail(f"{fid}: ISSUER_MAIL must be ses, is {env.get('ISSUER_MAIL')!r}")
            if env.get("ISSUER_MAIL_FROM") != {"Ref": "MailFromAddress"}:
                self.fail(f"{fid}: ISSUER_MAIL_FROM must be the MailFromAddress parameter")
            for var, param in (
                ("ISSUER_PRODUCT_NAME", "ProductName"),
                ("ISSUER_LINK_BASE", "LinkBase"),
                ("ISSUER_SES_CONFIGURATION_SET", "MailConfigurationSet"),
            ):
                v = env.get(var)
                branches = v.get("Fn::If") if isinstance(v, dict) else None
                if not (
                    isinstance(branches, list)
                    and len(branches) == 3
                    and branches[1] == {"Ref": param}
                    and branches[2] == {"Ref": "AWS::NoValue"}
                ):
                    self.fail(f"{fid}: {var} must be set from {param} only when it is set (Fn::If, else AWS::NoValue)")
        role = self.res.get("IssuerRole", {}).get("Properties", {})
        def actions(st: dict[str, Any]) -> list[str]:
            a = st.get("Action", [])
            return [a] if isinstance(a, str) else a

        sends = [
            st
            for policy in role.get("Policies", [])
            for st in self.statements(policy.get("PolicyDocument", {}))
            if any(str(a).startswith("ses:") for a in actions(st))
        ]
        if not sends:
            self.fail("IssuerRole: no ses:SendEmail statement (the issuer cannot send mail)")
        for st in sends:
            if st.get("Action") not in ("ses:SendEmail", ["ses:SendEmail"]):
                self.fail(f"IssuerRole: SES actions must be exactly ses:SendEmail, are {st.get('Action')!r}")
            cond = st.get("Condition", {}).get("StringEquals", {})
            if cond.get("ses:FromAddress") != {"Ref": "MailFromAddress"} or set(st.get("Condition", {})) != {"StringEquals"}:
                self.fail("IssuerRole: ses:SendEmail must be conditioned on ses:FromAddress equal to MailFromAddress")
            resources = st.get("Resource", [])
            resources = resources if isinstance(resources, list) else [resources]
            texts = []
            identity_of = None
            for r in resources:
                if isinstance(r, dict) and "Fn::If" in r:
                    r = r["Fn::If"][1]
                sub = r.get("Fn::Sub") if isinstance(r, dict) else r
                texts.append(sub[0] if isinstance(sub, list) else sub)
                if isinstance(sub, list) and len(sub) == 2 and isinstance(sub[1], dict):
                    identity_of = identity_of or sub[1].get("Identity")
            identity = "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${Identity}"
            if identity not in texts:
                self.fail(f"IssuerRole: ses:SendEmail must be on the mail identity {identity}")
            sender_domain = {"Fn::Select": [1, {"Fn::Split": ["@", {"Ref": "MailFromAddress"}]}]}
            if identity_of != {"Fn::If": ["HasMailIdentity", {"Ref": "MailIdentity"}, sender_domain]}:
                self.fail(
                    "IssuerRole: the identity of ses:SendEmail must be MailIdentity, else the domain of"
                    f" MailFromAddress; is {json.dumps(identity_of)}"
                )
            for t in texts:
                if not isinstance(t, str) or "*" in t or not re.fullmatch(
                    r"arn:\$\{AWS::Partition\}:ses:\$\{AWS::Region\}:\$\{AWS::AccountId\}:"
                    r"(identity/\$\{Identity\}|configuration-set/\$\{MailConfigurationSet\})",
                    t,
                ):
                    self.fail(f"IssuerRole: ses:SendEmail resource {t!r} is not the mail identity or configuration set")

    def run(self) -> list[str]:
        self.cache_ttl_parameter()
        self.routes()
        self.policies("IssuerRole", ISSUER_ACTIONS)
        self.store_calls_are_granted()
        self.policies("AuthorizerRole", AUTHORIZER_ACTIONS)
        self.functions()
        self.fingerprints()
        self.tables()
        self.credential_attack_defences()
        self.revocation()
        self.mail()
        return self.failures


def batch(out_dir: str, specs: list[str]) -> int:
    """Translation and invariants of each NAME=TEMPLATE, as the two commands
    would run them one process each (see the module's documentation)."""
    import contextlib
    import io
    import traceback

    for spec in specs:
        name, sep, template = spec.partition("=")
        if not sep or not name or "/" in name:
            print(f"batch: not NAME=TEMPLATE: {spec!r}", file=sys.stderr)
            return 2
        log = io.StringIO()
        translated = invariants = False
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            # As `translate` (exit status 0 or not), then `invariants` on the
            # file it wrote.
            try:
                text = json.dumps(translate(template), indent=1)
                with open(os.path.join(out_dir, f"{name}.json"), "w", encoding="utf-8") as f:
                    f.write(text)
                translated = True
            except SystemExit as e:
                if isinstance(e.code, str):
                    print(e.code, file=sys.stderr)
            except Exception:  # what an uncaught exception would print
                traceback.print_exc()
            if translated:
                try:
                    failures = Checker(load_source(template), json.loads(text)).run()
                    for msg in failures:
                        print(f"INVARIANT: {msg}")
                    invariants = not failures
                except SystemExit as e:
                    if isinstance(e.code, str):
                        print(e.code, file=sys.stderr)
                except Exception:
                    traceback.print_exc()
        with open(os.path.join(out_dir, f"{name}.log"), "w", encoding="utf-8") as f:
            f.write(log.getvalue())
        with open(os.path.join(out_dir, f"{name}.status"), "w", encoding="utf-8") as f:
            f.write(f"translated={int(translated)} invariants={int(invariants)}\n")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[1] == "batch":
        return batch(argv[2], argv[3:])
    if len(argv) != 4 or argv[1] not in ("translate", "invariants"):
        print(__doc__, file=sys.stderr)
        return 2
    _, cmd, template, out_path = argv
    if cmd == "translate":
        out = translate(template)
        with open(out_path, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
        return 0
    with open(out_path, encoding="utf-8") as f:
        out = json.load(f)
    failures = Checker(load_source(template), out).run()
    for msg in failures:
        print(f"INVARIANT: {msg}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
