#!/usr/bin/env bash
# Validates the deploy template offline (no network, no AWS credentials), then
# proves the validation has teeth by breaking copies of the template and
# requiring each broken copy to fail for the expected reason.
#
# Usage: infra/check.sh [TEMPLATE]      (default: infra/template.yaml)
#
# Needs cfn-lint and aws-sam-translator in the same Python (scripts/test.sh
# installs them pinned: cfn-lint 1.51.0, aws-sam-translator 1.110.0).
# Set PYTHON to choose the interpreter (default python3).
#
# The check, on a template:
#   1. cfn-lint with the SAM transform applied (cfn-lint applies it itself when
#      aws-sam-translator is importable). Errors and warnings fail.
#   2. The template translated by aws-sam-translator with the REST API's
#      DefinitionBody kept (cfn-lint blanks it before translating, so nothing
#      inside the OpenAPI body is checked in 1), linted again as plain
#      CloudFormation: references, Fn::Sub and dependency cycles in the body.
#   3. Security and design invariants of the translated template
#      (infra/check_template.py): public routes, cache TTL and cache key, the
#      route map against the API's routes, IAM, layout.
set -euo pipefail

INFRA_DIR=$(cd "$(dirname "$0")" && pwd)
TEMPLATE=${1:-$INFRA_DIR/template.yaml}
PYTHON=${PYTHON:-python3}
HELPER=$INFRA_DIR/check_template.py

die() { printf 'check.sh: FAIL: %s\n' "$*" >&2; exit 1; }
note() { printf '==> %s\n' "$*"; }

[ -f "$TEMPLATE" ] || die "no template at $TEMPLATE"

# cfn-lint run by the same interpreter that must hold aws-sam-translator.
cfn_lint() {
  "$PYTHON" -c 'import sys; from cfnlint.runner import main; sys.argv[0] = "cfn-lint"; sys.exit(main())' "$@"
}

versions=$("$PYTHON" - 2>&1 <<'EOF'
import sys
try:
    import cfnlint.version, samtranslator
except ImportError as e:
    sys.exit(f"{e}. Install: {sys.executable} -m pip install 'cfn-lint==1.51.0' 'aws-sam-translator==1.110.0'"
             " (without aws-sam-translator cfn-lint skips every SAM property)")
print(f"cfn-lint {cfnlint.version.__version__}, aws-sam-translator {samtranslator.__version__}")
EOF
) || die "$versions"
note "tools: $versions ($PYTHON)"

WORK=$(mktemp -d -t infra-check.XXXXXX)
trap 'rm -rf "$WORK"' EXIT INT TERM

# check_template FILE: runs the three steps, prints what failed, returns 1 on
# any failure. All output goes to stdout so callers can capture it. One
# cfn-lint process lints both the template (step 1) and its translation
# (step 2); its output names the file of each finding.
check_template() {
  local file=$1 out rc=0 translated=1
  out=$(mktemp "$WORK/translated.XXXXXX.json")
  "$PYTHON" "$HELPER" translate "$file" "$out" 2>&1 || translated=0
  local files=("$file")
  [ "$translated" = 0 ] || files+=("$out")
  # Errors and warnings fail; informational findings are not shown.
  cfn_lint --format parseable --non-zero-exit-code warning -- "${files[@]}" || {
    echo "cfn-lint failed (step 1 on $(basename "$file"); step 2 on the translated $(basename "$out"))"
    rc=1
  }
  if [ "$translated" = 0 ]; then
    echo "step 2 (SAM translation) failed"
    rc=1
  elif ! "$PYTHON" "$HELPER" invariants "$file" "$out"; then
    echo "step 3 (invariants) failed"
    rc=1
  fi
  return $rc
}

note "checking $TEMPLATE"
check_template "$TEMPLATE" || die "$TEMPLATE does not pass (see above)"
note "template passes: cfn-lint (SAM transform), cfn-lint of the translated template, invariants"

# --- teeth ---------------------------------------------------------------------
# Each case: a name, the exact text to replace (it must occur in the template,
# so that editing the template cannot silently disarm a case), its
# replacement, and a regular expression the failure output must match (the
# rule id or message that proves the right thing caught it).
MUTANTS=$WORK/mutants.tsv
cat >"$MUTANTS" <<'EOF'
sam-property-value	      Runtime: provided.al2023	      Runtime: provided.al2099	E3030.*provided\.al2099
sam-unknown-property	      Handler: bootstrap	      Handler: bootstrap\n      MemorySise: 512	E0001.*MemorySise
broken-ref	          ISSUER_REFRESH_TABLE: !Ref RefreshTokensTable	          ISSUER_REFRESH_TABLE: !Ref RefreshTokenTable	E1020:'RefreshTokenTable'
broken-ref-in-api-body	functions/${ExampleBackendFunction.Arn}/invocations	functions/${ExampleBackendFunctoin.Arn}/invocations	E1019.*ExampleBackendFunctoin
cycle-through-api-body	functions/arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-issuer:live/invocations	functions/${IssuerFunction.Arn}/invocations	E3004.*Circular
cache-ttl-above-token-lifetime	    MaxValue: 300\n    Description: >-\n      Seconds API Gateway caches	    MaxValue: 3600\n    Description: >-\n      Seconds API Gateway caches	INVARIANT: parameter AuthorizerCacheTtl \(MaxValue\).*may reach 3600
unauthenticated-route	              security:\n                - RequestAuthorizer: []\n	\n	INVARIANT: .*GET /example/whoami .*no Lambda authorizer
rest-cache-key-without-resource	              Context: [httpMethod, resourcePath]	              Context: [httpMethod]	INVARIANT: .*RequestAuthorizer: a cached decision would be reused on other routes
http-api-cache-key-without-method	              Context: [routeKey, httpMethod]	              Context: [routeKey]	INVARIANT: .*LambdaAuthorizer: a cached decision would be reused on other routes
route-missing-from-map	    Default: ''\n    Description: >-\n      Route-to-scope map	    Default: 'POST /example/whoami=example:write'\n    Description: >-\n      Route-to-scope map	INVARIANT: .*GET /example/whoami is missing from the route map
mapped-route-not-in-api	    Default: ''\n    Description: >-\n      Route-to-scope map	    Default: 'GET /example/whoami=example:read,DELETE /pets/{id}=admin'\n    Description: >-\n      Route-to-scope map	INVARIANT: .*maps DELETE /pets/\{id\}, which is not a protected route
fingerprint-drift	          AUTH_HTTP_API_RESPONSE: simple	          AUTH_HTTP_API_RESPONSE: simple\n          AUTH_LEEWAY_SECS: !Ref AuthorizerCacheTtl	INVARIANT: AuthorizerConfigFingerprint: Environment differs
parameter-not-fingerprinted	      Timeout: 6	      Timeout: !Ref AuthorizerCacheTtl	INVARIANT: AuthorizerFunction: Timeout depends on .*AuthorizerCacheTtl.* not in AuthorizerConfigFingerprint
wildcard-iam	                Action: dynamodb:Query	                Action: dynamodb:*	INVARIANT: IssuerRole: action dynamodb:\*
EOF

note "teeth: each broken copy must fail"
failed=0
count=0
while IFS=$'\t' read -r name old new expect; do
  count=$((count + 1))
  broken=$WORK/$name.yaml
  if ! "$PYTHON" - "$TEMPLATE" "$broken" "$old" "$new" <<'EOF'; then
import sys
src, dst, old, new = sys.argv[1:5]
old, new = old.replace("\\n", "\n"), new.replace("\\n", "\n")
text = open(src, encoding="utf-8").read()
if old not in text:
    sys.exit(f"the text to break is not in the template any more: {old!r}")
open(dst, "w", encoding="utf-8").write(text.replace(old, new, 1))
EOF
    echo "  $name: cannot build the broken copy (update the case in infra/check.sh)"
    failed=1
    continue
  fi
  if output=$(check_template "$broken" 2>&1); then
    echo "  $name: the broken copy PASSED the check"
    failed=1
  elif ! grep -Eq -- "$expect" <<<"$output"; then
    echo "  $name: failed, but not for the expected reason (/$expect/):"
    sed 's/^/      /' <<<"$output"
    failed=1
  else
    echo "  $name: fails as expected: $(grep -Eo -m1 -- "$expect" <<<"$output" | cut -c1-110)"
  fi
done <"$MUTANTS"

[ "$failed" = 0 ] || die "the check lacks teeth (see above)"
note "all $count broken copies were caught"
note "infra check passed"
