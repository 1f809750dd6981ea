#!/usr/bin/env bash
# The login paths side by side (issue 10): unknown email, wrong password,
# wrong password for an imported bcrypt account, and the right and a wrong
# password from a client the attempt counters refuse. Medians of SAMPLES
# interleaved rounds (every path once per round, shuffled) through the
# session core (`Sessions::login`), release build, on the SQLite store and,
# with moto, on the DynamoDB store. Ratios are what matter: the machine is
# shared and noisy, the paths run in the same rounds.
#
# Usage: scripts/bench-login-paths.sh [SAMPLES] [REPORT]   (default 100, docs/bench/login-paths.md)
# With DYNAMODB_ENDPOINT set (or `--moto` as the third argument, which starts
# the pinned moto from target/test-venv on a free loopback port), the
# DynamoDB store runs too.
set -euo pipefail
cd "$(dirname "$0")/.."
SAMPLES="${1:-100}"
REPORT="${2:-docs/bench/login-paths.md}"
MOTO_PID=
cleanup() { [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null || true; }
trap cleanup EXIT
if [ "${3:-}" = "--moto" ] && [ -z "${DYNAMODB_ENDPOINT:-}" ]; then
  [ -x target/test-venv/bin/python ] || { echo "no target/test-venv: run scripts/test.sh once (it installs the pinned moto)" >&2; exit 1; }
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  target/test-venv/bin/python -m moto.server -H 127.0.0.1 -p "$PORT" >/dev/null 2>&1 &
  MOTO_PID=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT" && break; sleep 0.1; done
  export DYNAMODB_ENDPOINT="http://127.0.0.1:$PORT" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
    AWS_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
fi

cargo bench --locked -p issuer --bench login_paths --no-run >&2
OUT=$(cargo bench --locked -p issuer --bench login_paths -- --samples "$SAMPLES")
COMMIT=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- issuer || echo "+dirty")
{
  echo "# Login paths: do they look alike?"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); commit: $COMMIT"
  echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB; shared, other jobs running"
  echo "- command: \`scripts/bench-login-paths.sh $SAMPLES${3:+ $REPORT $3}\` (release build, \`Sessions::login\`, argon2id m=19456 KiB t=2 p=1, bcrypt cost 10 configured for imported accounts)"
  echo
  echo "$OUT"
  echo
  echo "Reading: \`unknown\`, \`wrong\` and \`wrong_bcrypt\` each do one attempt take, one user lookup, one"
  echo "argon2id and one bcrypt step (counted in \`issuer/tests/login_attempts.rs\`), so their ratios"
  echo "should be 1 within noise. The refused paths do the attempt take only, no hashing: they are"
  echo "fast, and the right and the wrong password there must not differ (ratio 1)."
} | tee "$REPORT"
