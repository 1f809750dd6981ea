#!/usr/bin/env bash
# Measured work per issuer request type (issue 15): builds auth-load in
# release, starts moto unless DYNAMODB_ENDPOINT is set, runs `auth-work`
# (the real issuer in-process: DynamoDB requests and units through the
# capacity meter, process CPU time on DynamoDB and on SQLite, log bytes) and
# writes docs/bench/work.toml (read by the bill, tests/load/src/work.rs) and
# docs/bench/work.md, with the date, commit and machine.
#
# Usage: scripts/measure-work.sh [--quick]   (from anywhere)
#   --quick: 3 repetitions per request type instead of 20 (under 3 minutes
#            once the release build is there; a cold release build of the
#            workspace's dependencies takes several minutes on 2 cores).
# Env:   DYNAMODB_ENDPOINT  an existing DynamoDB-compatible server (moto)
#        VENV               the Python venv with moto (default: target/test-venv
#                           of this checkout, else /work/main/target/test-venv)
#        REPS               repetitions (overrides --quick)
#        WORK_TOML, WORK_MD other output paths (scripts/figures.sh --quick)
#        CARGO_TARGET_DIR   as for cargo
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
REPS_DEFAULT=20
case "${1:-}" in
  --quick) REPS_DEFAULT=3 ;;
  "") ;;
  *) echo "usage: scripts/measure-work.sh [--quick]" >&2; exit 2 ;;
esac
REPS="${REPS:-$REPS_DEFAULT}"
say() { printf '==> %s\n' "$*" >&2; }
die() { echo "measure-work: $*" >&2; exit 2; }

MOTO_PID=""
MOTO_LOG=""
cleanup() {
  if [ -n "$MOTO_PID" ]; then kill "$MOTO_PID" 2>/dev/null || true; wait "$MOTO_PID" 2>/dev/null || true; fi
  if [ -n "$MOTO_LOG" ]; then rm -f "$MOTO_LOG"; fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

# moto never sees real credentials.
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null

if [ -z "${DYNAMODB_ENDPOINT:-}" ]; then
  VENV="${VENV:-}"
  if [ -z "$VENV" ]; then
    for v in "$ROOT/target/test-venv" /work/main/target/test-venv; do
      [ -x "$v/bin/python" ] && { VENV="$v"; break; }
    done
  fi
  [ -n "$VENV" ] && [ -x "$VENV/bin/python" ] || die "no moto venv: set DYNAMODB_ENDPOINT or VENV (scripts/test.sh creates target/test-venv)"
  port=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  MOTO_LOG=$(mktemp -t moto.XXXXXX.log)
  "$VENV/bin/python" -m moto.server -H 127.0.0.1 -p "$port" >"$MOTO_LOG" 2>&1 &
  MOTO_PID=$!
  deadline=$((SECONDS + 30))
  until curl -fsS -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null; do
    kill -0 "$MOTO_PID" 2>/dev/null || die "moto exited: $(tail -5 "$MOTO_LOG")"
    [ $SECONDS -lt $deadline ] || die "moto did not answer within 30 s"
    sleep 0.2
  done
  export DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
  say "moto on $DYNAMODB_ENDPOINT (pid $MOTO_PID)"
fi

say "building auth-load (release)"
cargo build -q --release -p auth-load --bin auth-work

date_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)
commit="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- issuer token-core tests/load || echo ' (with uncommitted changes)')"
machine="$(uname -srm), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"

say "measuring ($REPS repetitions per request type)"
"$TARGET/release/auth-work" --reps "$REPS" \
  --toml "${WORK_TOML:-docs/bench/work.toml}" --md "${WORK_MD:-docs/bench/work.md}" \
  --date "$date_utc" --commit "$commit" --machine "$machine" >/dev/null
say "wrote ${WORK_TOML:-docs/bench/work.toml} and ${WORK_MD:-docs/bench/work.md}"
