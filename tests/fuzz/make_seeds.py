#!/usr/bin/env python3
"""Writes the committed seed corpora of the fuzz targets (tests/fuzz/corpus/).

Tokens are signed with the test keys of token-core/benches/fixtures, the keys
the fuzz targets install (tests/fuzz-checks/src/lib.rs), so seed tokens verify and
mutations start from inputs that reach the claims checks. Their exp is in
2096 and their iat in 2020: valid both at the fixed time the verify_at
targets use and at the real time the authorizer uses.

Files are overwritten, others (inputs kept from fuzz findings) are left.
Run once after changing the keys or the targets' input formats:
    python3 tests/fuzz/make_seeds.py        (needs the `cryptography` package)
"""

import base64
import json
import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
KEYS = os.path.join(ROOT, "token-core", "benches", "fixtures")
CORPUS = os.path.join(HERE, "corpus")

ISS = "https://issuer.fuzz"
PARTNER = "https://partner.fuzz"
NOW = 1_700_000_000


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load(name):
    with open(os.path.join(KEYS, name), "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


RS, ES, ED = load("test-key-rs256.pem"), load("test-key-es256.pem"), load("test-key-eddsa.pem")


def sign(alg, data: bytes) -> bytes:
    if alg == "RS256":
        return RS.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if alg == "ES256":
        r, s = decode_dss_signature(ES.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return ED.sign(data)


def jwk(alg, kid):
    if alg == "RS256":
        n = RS.public_key().public_numbers()
        return {"kty": "RSA", "use": "sig", "alg": alg, "kid": kid,
                "n": b64(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big")), "e": b64(n.e.to_bytes(3, "big"))}
    if alg == "ES256":
        n = ES.public_key().public_numbers()
        return {"kty": "EC", "use": "sig", "alg": alg, "kid": kid, "crv": "P-256",
                "x": b64(n.x.to_bytes(32, "big")), "y": b64(n.y.to_bytes(32, "big"))}
    raw = ED.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "use": "sig", "alg": alg, "kid": kid, "crv": "Ed25519", "x": b64(raw)}


def claims(**over):
    c = {"iss": ISS, "sub": "user-1", "aud": "api", "exp": 4_000_000_000, "iat": 1_600_000_000,
         "jti": "jti-1", "scope": "read write admin", "client_id": "web-app"}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def token(alg="RS256", kid=None, header=None, payload=None, raw_header=None):
    kid = kid or {"RS256": "rs1", "ES256": "es1", "EdDSA": "ed1"}[alg]
    h = raw_header if raw_header is not None else json.dumps(header or {"typ": "at+jwt", "alg": alg, "kid": kid})
    p = json.dumps(payload if payload is not None else claims())
    signing_input = f"{b64(h.encode())}.{b64(p.encode())}"
    return f"{signing_input}.{b64(sign(alg, signing_input.encode()))}"


def write(target, name, content):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(content if isinstance(content, bytes) else content.encode())


def main():
    rs, es, ed = token("RS256"), token("ES256"), token("EdDSA")
    partner = token("EdDSA", kid="ped1", payload=claims(iss=PARTNER, aud="partner-api"))

    # token_verify: valid tokens of every algorithm and the edges of the rules.
    t = "token_verify"
    for name, tok in [
        ("rs256", rs), ("es256", es), ("eddsa", ed), ("partner", partner),
        ("aud-array", token("ES256", payload=claims(aud=["other", "web"]))),
        ("nbf-in-leeway", token("EdDSA", payload=claims(nbf=NOW + 30))),
        ("exp-in-leeway", token("EdDSA", payload=claims(exp=NOW - 30))),
        ("iat-fraction", token("EdDSA", payload=claims(iat=NOW + 0.5, exp=4e9 + 0.25))),
        ("no-optional-claims", token("RS256", payload=claims(scope=None, client_id=None))),
        ("typ-application", token("ES256", header={"typ": "application/at+jwt", "alg": "ES256", "kid": "es1"})),
        ("escaped-kid", token("EdDSA", raw_header='{"typ":"at+jwt","alg":"EdDSA","kid":"ed\\u0031"}')),
        ("expired", token("EdDSA", payload=claims(exp=NOW - 61))),
        ("wrong-aud", token("EdDSA", payload=claims(aud="other"))),
        ("partner-claims-our-issuer", token("EdDSA", kid="ped1")),
        ("alg-none", f"{b64(json.dumps({'typ': 'at+jwt', 'alg': 'none', 'kid': 'rs1'}).encode())}.{b64(json.dumps(claims()).encode())}."),
        ("crit", token("EdDSA", header={"typ": "at+jwt", "alg": "EdDSA", "kid": "ed1", "crit": ["b64"]})),
        ("jwe-five-parts", "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d"),
    ]:
        write(t, name, tok)
    dup = '{"iss":"%s","sub":"a","sub":"admin","aud":"api","exp":4000000000,"iat":1600000000,"jti":"j"}' % ISS
    h = b64(json.dumps({"typ": "at+jwt", "alg": "EdDSA", "kid": "ed1"}).encode())
    si = f"{h}.{b64(dup.encode())}"
    write(t, "duplicate-sub", f"{si}.{b64(sign('EdDSA', si.encode()))}")

    # token_verify_structured: arbitrary-built inputs; all zeros is the profile
    # header, default claims, RS256.
    write("token_verify_structured", "zeros", bytes(64))
    write("token_verify_structured", "ones", bytes([1]) * 64)

    # jwks_parse: real documents and the key kinds that must be skipped.
    t = "jwks_parse"
    ours = [jwk("RS256", "rs1"), jwk("ES256", "es1"), jwk("EdDSA", "ed1")]
    write(t, "ours", json.dumps({"keys": ours}))
    write(t, "rs-only", json.dumps({"keys": [ours[0]]}))
    write(t, "es-as-rs1", json.dumps({"keys": [dict(ours[1], kid="rs1")]}))
    enc = dict(ours[0], use="enc")
    oct_key = {"kty": "oct", "kid": "s", "k": "c2VjcmV0"}
    weak = {"kty": "RSA", "kid": "weak", "n": b64(b"\xc5" * 128), "e": "AQAB"}
    ops = dict(ours[1], key_ops=["encrypt"])
    no_alg = {k: v for k, v in ours[2].items() if k != "alg"}
    ed_alias = dict(ours[2], alg="Ed25519", kid="ed2")
    write(t, "mixed", json.dumps({"keys": [enc, oct_key, weak, ops, no_alg, ed_alias, {"kty": "EC", "crv": "P-384", "kid": "p384"}]}))
    write(t, "duplicates", json.dumps({"keys": [ours[0], ours[0], dict(ours[0], kid="")]}))
    write(t, "not-a-set", '{"keys":{}}')
    write(t, "bad-values", '{"keys":[{"kty":"RSA","kid":"bad","n":5,"e":"AQAB"},{"kty":"EC","crv":"P-256","kid":"e","x":"AQ","y":"AQ"}]}')
    write(t, "restore", "!" + json.dumps({"keys": ours}))

    # authorizer_event: the real API Gateway events with valid tokens.
    t = "authorizer_event"
    fixtures = os.path.join(ROOT, "authorizer", "tests", "fixtures")
    for f in sorted(os.listdir(fixtures)):
        with open(os.path.join(fixtures, f)) as fh:
            text = fh.read()
        stem = f.rsplit(".", 1)[0]
        write(t, f"{stem}-rs256", text.replace("{{TOKEN}}", rs))
        write(t, f"{stem}-eddsa-no-admin", text.replace("{{TOKEN}}", token("EdDSA", payload=claims(scope="read"))))
    write(t, "not-an-object", "[1,2,3]")
    write(t, "two-headers", json.dumps({"type": "REQUEST", "methodArn": "arn:aws:execute-api:us-east-1:1:a/prod/GET/pets",
                                          "headers": {"Authorization": "Bearer " + ed, "authorization": "Bearer x"}}))
    write(t, "wrong-types", '{"type":5,"headers":[1],"multiValueHeaders":{"authorization":7},"identitySource":{"a":1}}')

    # issuer_request: requests as text, and the API Gateway proxy events.
    t = "issuer_request"
    body = '{"email":"Ada@Example.com","password":"correct horse battery"}'
    cookie = "__Secure-refresh_token=" + "A" * 43
    reqs = {
        "register": f"POST /prod/register\ncontent-type: application/json\n\n{body}",
        "login-bad-email": 'POST /login\ncontent-type: application/json; charset=utf-8\n\n{"email":"nope","password":"correct horse battery"}',
        "login-short-password": 'POST /login\ncontent-type: application/json\norigin: https://app.example.com\n\n{"email":"a@b.co","password":"short"}',
        "login-extra-field": 'POST /login\ncontent-type: application/json\n\n{"email":"a@b.co","password":"correct horse","admin":true}',
        "login-evil-origin": f"POST /login\ncontent-type: application/json\norigin: https://evil.example\n\n{body}",
        "login-form": "POST /login\ncontent-type: application/x-www-form-urlencoded\n\nemail=a&password=b",
        "refresh": f"POST /prod/refresh\nx-requested-with: fetch\ncookie: theme=dark; {cookie}\n\n",
        "refresh-origin": f"POST /refresh\norigin: https://APP.example.com\ncookie: {cookie}\ncookie: a=\"b\"\n\n",
        "refresh-no-csrf": f"POST /refresh\ncookie: {cookie}\n\n",
        "logout": f"POST /prod/logout\nx-requested-with: XMLHttpRequest\ncookie: {cookie}\n\n",
        "logout-all": f"POST /logout-all\nauthorization: Bearer {ed}\n\n",
        "jwks": "GET /prod/.well-known/jwks.json\n\n",
        "oidc-head": "HEAD /.well-known/openid-configuration\n\n",
        "options": "OPTIONS /prod/refresh\norigin: https://app.example.com\n\n",
        "wrong-method": "GET /login\n\n",
        "not-found": "POST /prod/admin\n\n",
        "verify-email": 'POST /prod/verify-email\ncontent-type: application/json\n\n{"token":"' + "A" * 43 + '"}',
        "verify-email-array": 'POST /verify-email\ncontent-type: application/json\n\n["' + "A" * 43 + '"]',
        "forgot": 'POST /password/forgot\ncontent-type: application/json\n\n{"email":"Ada@Example.com"}',
        "reset": 'POST /prod/password/reset\ncontent-type: application/json\n\n{"token":"AAAAAAAAAAAAAAAAAAAAAA.'
        + "A" * 43 + '","password":"purple elephant umbrella"}',
        "reset-control": 'POST /password/reset\ncontent-type: application/json\n\n{"token":"a\\u0000b","password":"x"}',
        "change": f"POST /password/change\nauthorization: Bearer {ed}\ncontent-type: application/json\n\n"
        + '{"current_password":"correct horse battery","new_password":"purple elephant umbrella"}',
    }
    for name, text in reqs.items():
        write(t, name, text)
    ifix = os.path.join(ROOT, "issuer", "tests", "fixtures")
    for f in sorted(os.listdir(ifix)):
        with open(os.path.join(ifix, f)) as fh:
            write(t, "lambda-" + f.rsplit(".", 1)[0], fh.read())

    # bearer_and_routes: auth value, route map, token scope, required, ARN, flags.
    t = "bearer_and_routes"
    spec = "GET /pets=read,POST /pets=write,DELETE /pets/{id}=write admin,ANY /admin/{proxy+}=admin"
    lines = {
        "read-get": [f"Bearer {rs}", spec, "read", "", "GET/pets", ""],
        "delete-without-admin": ["bearer abc.def.ghi", spec, "read write", "", "DELETE/pets/42", ""],
        "unmapped-allowed": ["BEARER   a.b.c==", spec, "read", "read", "PATCH/other/x", "u"],
        "required-missing": ["Basic dXNlcjpw", "GET /=x", "x", "admin", "GET/", ""],
        "malformed": ["Bearer a b", "FETCH /pets=a", "", "", "arn:aws:execute-api:us-west-2:1:api/*/GET/", ""],
        "glob-chars": ["Bearer ~+/==", "get /a/{b}/c=s,* /x=y", "s y", "", "GET/a/*/c", "u"],
        "no-map": ["", "", "read", "", "arn:aws-cn:execute-api:cn-north-1:1:a/$default/GET/x", ""],
    }
    for name, fields in lines.items():
        write(t, name, "\n".join(fields))


if __name__ == "__main__":
    main()
