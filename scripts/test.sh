#!/usr/bin/env bash
# Runs every test of the workspace: formatting, lints, unit, integration and
# end-to-end tests, and the deploy template check. Installs (pinned) and
# starts what the tests need — moto's DynamoDB-compatible server on a loopback
# port — and stops it on exit. CI runs exactly this (.ci/run).
#
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION=5.2.1
CFN_LINT_VERSION=1.51.0
SAM_TRANSLATOR_VERSION=1.110.0

log() { printf '\n==> %s\n' "$*"; }

log "installing test tools (pinned): moto[server]==$MOTO_VERSION cfn-lint==$CFN_LINT_VERSION aws-sam-translator==$SAM_TRANSLATOR_VERSION"
python3 -m pip install --quiet --disable-pip-version-check \
  "moto[server]==$MOTO_VERSION" "cfn-lint==$CFN_LINT_VERSION" "aws-sam-translator==$SAM_TRANSLATOR_VERSION"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

MOTO_PORT=$(free_port)
MOTO_LOG=$(mktemp -t moto.XXXXXX.log)
log "starting moto_server on 127.0.0.1:$MOTO_PORT (log: $MOTO_LOG)"
python3 -m moto.server -H 127.0.0.1 -p "$MOTO_PORT" >"$MOTO_LOG" 2>&1 &
MOTO_PID=$!
cleanup() {
  kill "$MOTO_PID" 2>/dev/null || true
  wait "$MOTO_PID" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
for _ in $(seq 1 100); do
  if curl -fsS -o /dev/null "http://127.0.0.1:$MOTO_PORT/moto-api/" 2>/dev/null; then break; fi
  if ! kill -0 "$MOTO_PID" 2>/dev/null; then echo "moto_server exited:"; cat "$MOTO_LOG"; exit 1; fi
  sleep 0.2
done
curl -fsS -o /dev/null "http://127.0.0.1:$MOTO_PORT/moto-api/" || { echo "moto_server did not start"; cat "$MOTO_LOG"; exit 1; }

export DYNAMODB_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

log "building binaries used by end-to-end tests"
cargo build --workspace --bins

log "cargo test"
cargo test --workspace "$@"

if [ -x infra/check.sh ]; then
  log "deploy template check"
  infra/check.sh
fi

log "all tests passed"
