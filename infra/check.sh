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
#
# The template and its broken copies are checked together, each step for all
# of them in one process (starting cfn-lint or the translator cost more than
# checking a template): one helper process translates each and checks its
# invariants, then one cfn-lint lints the sources beside one linting the
# translations. Findings are mapped back to each copy by file name, so each
# copy is judged on what checking it alone prints. A broken copy that the
# translation or the invariants already catch for its expected reason is not
# linted (see below: the verdicts are the same).
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

# The copies to check, in order: NAMES[i] is checked from FILES[i]. The
# template is "template"; each broken copy is added below.
NAMES=(template)
FILES=("$TEMPLATE")
OUT=$WORK/out
mkdir -p "$WORK/copies" "$OUT"
: >"$WORK/lint-sources.txt"
: >"$WORK/lint-translated.txt"

file_of() {
  local i
  for i in "${!NAMES[@]}"; do [ "${NAMES[$i]}" != "$1" ] || echo "${FILES[$i]}"; done
}

# translate_all: steps 2 and 3 (translation, invariants) for every copy, in
# one helper process.
translate_all() {
  local specs=() i
  for i in "${!NAMES[@]}"; do specs+=("${NAMES[$i]}=${FILES[$i]}"); done
  "$PYTHON" "$HELPER" batch "$OUT" "${specs[@]}" || die "the translation helper failed (exit $?)"
}

# lint NAME...: step 1 on these copies' sources and cfn-lint of their
# translations, each list in one cfn-lint process (the two run side by side).
lint() {
  local sources=() translated=() name rc_src=0 rc_out=0
  for name in "$@"; do
    sources+=("$(file_of "$name")")
    [ ! -f "$OUT/$name.json" ] || translated+=("$OUT/$name.json")
  done
  # Errors and warnings fail; informational findings are not shown.
  cfn_lint --format parseable --non-zero-exit-code warning -- "${sources[@]}" >"$WORK/lint-sources.txt" 2>&1 &
  local pid=$!
  if [ "${#translated[@]}" -gt 0 ]; then
    cfn_lint --format parseable --non-zero-exit-code warning -- "${translated[@]}" >"$WORK/lint-translated.txt" 2>&1 ||
      rc_out=$?
  fi
  wait "$pid" || rc_src=$?
  # cfn-lint's exit status is a bit mask: 2 errors, 4 warnings, 8
  # informational. Anything else is cfn-lint itself failing.
  for rc in "$rc_src" "$rc_out"; do
    if [ $((rc & ~14)) -ne 0 ]; then
      cat "$WORK/lint-sources.txt" "$WORK/lint-translated.txt"
      die "cfn-lint did not run (exit $rc; output above)"
    fi
  done
  # Every line cfn-lint printed must be a finding about one of the files.
  local stray
  stray=$(cat "$WORK/lint-sources.txt" "$WORK/lint-translated.txt" |
    awk -v files="$(printf '%s\n' "${sources[@]}" "${translated[@]}")" '
      BEGIN { n = split(files, f, "\n") }
      { ok = 0; for (i = 1; i <= n; i++) if (f[i] != "" && index($0, f[i] ":") == 1) ok = 1; if (!ok) print }')
  [ -z "$stray" ] || die "cfn-lint printed lines about no file it was given: $stray"
}

# findings FILE: cfn-lint's lines about FILE (none when it was not linted).
findings() {
  cat "$WORK/lint-sources.txt" "$WORK/lint-translated.txt" | awk -v p="$1:" 'index($0, p) == 1'
}

# report NAME: what checking that copy alone prints, in the same order (of
# the steps run so far); returns 1 when any of them failed.
report() {
  local name=$1 file out=$OUT/$1.json rc=0 translated invariants log lint
  file=$(file_of "$name")
  read -r translated invariants <"$OUT/$name.status"
  # What the helper printed translating, then checking the invariants.
  log=$(cat "$OUT/$name.log")
  lint=$(
    findings "$file"
    [ ! -f "$out" ] || findings "$out"
  )
  if [ "$translated" = translated=0 ] && [ -n "$log" ]; then echo "$log"; fi
  if [ -n "$lint" ]; then
    echo "$lint"
    echo "cfn-lint failed (step 1 on $(basename "$file"); step 2 on the translated $(basename "$out"))"
    rc=1
  fi
  if [ "$translated" = translated=0 ]; then
    echo "step 2 (SAM translation) failed"
    rc=1
  else
    [ -z "$log" ] || echo "$log"
    if [ "$invariants" = invariants=0 ]; then
      echo "step 3 (invariants) failed"
      rc=1
    fi
  fi
  return $rc
}

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
store-call-not-granted	                Action: dynamodb:DeleteItem\n	                Action: dynamodb:GetItem\n	INVARIANT: IssuerRole: the store calls .* does not grant dynamodb:DeleteItem
ses-any-sender	                Condition:\n                  StringEquals:\n                    ses:FromAddress: !Ref MailFromAddress\n	\n	INVARIANT: IssuerRole: ses:SendEmail must be conditioned on ses:FromAddress
ses-any-identity	:identity/${Identity}'	:identity/*'	INVARIANT: IssuerRole: ses:SendEmail (must be on the mail identity|resource .*identity/\*)
mail-sender-not-the-parameter	          ISSUER_MAIL_FROM: !Ref MailFromAddress	          ISSUER_MAIL_FROM: no-reply@example.com	INVARIANT: IssuerFunction: ISSUER_MAIL_FROM must be the MailFromAddress parameter
link-base-always-set	          ISSUER_LINK_BASE: !If [HasLinkBase, !Ref LinkBase, !Ref AWS::NoValue]	          ISSUER_LINK_BASE: !Ref LinkBase	INVARIANT: IssuerFunction: ISSUER_LINK_BASE must be set from LinkBase only when it is set
EOF

# Every case's broken copy, made in one process; a case whose text is not in
# the template any more is reported and not checked.
failed=0
count=0
cases=()
while IFS=$'\t' read -r name problem; do
  count=$((count + 1))
  if [ -n "$problem" ]; then
    echo "  $name: cannot build the broken copy (update the case in infra/check.sh): $problem"
    failed=1
    continue
  fi
  cases+=("$name")
  NAMES+=("$name")
  FILES+=("$WORK/copies/$name.yaml")
done < <(
  "$PYTHON" - "$TEMPLATE" "$MUTANTS" "$WORK/copies" <<'EOF'
import sys
src, cases, out = sys.argv[1:4]
text = open(src, encoding="utf-8").read()
for line in open(cases, encoding="utf-8").read().splitlines():
    name, old, new, _ = line.split("\t")
    old, new = old.replace("\\n", "\n"), new.replace("\\n", "\n")
    if old not in text:
        print(f"{name}\tthe text to break is not in the template any more: {old!r}")
        continue
    open(f"{out}/{name}.yaml", "w", encoding="utf-8").write(text.replace(old, new, 1))
    print(f"{name}\t")
EOF
)

expected() { awk -F'\t' -v n="$1" '$1 == n { print $4 }' "$MUTANTS"; }

# Translation and invariants first, for all. A copy is judged by whether the
# check fails on it for the expected reason; more steps can only add
# failures and lines, so a copy whose translation or invariants already fail
# for that reason is decided, and cfn-lint runs on the template and the
# copies still undecided (the same verdicts as linting all of them).
translate_all
undecided=(template)
for name in "${cases[@]}"; do
  if output=$(report "$name" 2>&1) || ! grep -Eq -- "$(expected "$name")" <<<"$output"; then
    undecided+=("$name")
  fi
done
note "checking $TEMPLATE and its ${#cases[@]} broken copies (cfn-lint on the $((${#undecided[@]} - 1)) that translation and invariants do not already catch)"
lint "${undecided[@]}"

report template || die "$TEMPLATE does not pass (see above)"
note "template passes: cfn-lint (SAM transform), cfn-lint of the translated template, invariants"

note "teeth: each broken copy must fail"
for name in "${cases[@]}"; do
  expect=$(expected "$name")
  if output=$(report "$name" 2>&1); then
    echo "  $name: the broken copy PASSED the check"
    failed=1
  elif ! grep -Eq -- "$expect" <<<"$output"; then
    echo "  $name: failed, but not for the expected reason (/$expect/):"
    sed 's/^/      /' <<<"$output"
    failed=1
  else
    echo "  $name: fails as expected: $(grep -Eo -m1 -- "$expect" <<<"$output" | cut -c1-110)"
  fi
done

[ "$failed" = 0 ] || die "the check lacks teeth (see above)"
note "all $count broken copies were caught"
note "infra check passed"
