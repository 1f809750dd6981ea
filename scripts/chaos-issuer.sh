#!/usr/bin/env bash
# Load-and-fault runs of the issuer (issue 6, "Hardening"), on the embedded
# store and on a DynamoDB-compatible server.
#
# Usage: scripts/chaos-issuer.sh [sqlite|dynamodb|all] [issuer-chaos flags]   (default: all)
#
# Builds the release issuer and the harness (tests/src/bin/issuer-chaos.rs),
# copies them to a scratch directory, and runs:
#   sqlite:   `issuer serve` on a temporary data directory under concurrent
#             registrations, logins and refreshes; the database file is locked
#             (BEGIN EXCLUSIVE from another connection) for longer than the
#             busy timeout, twice; then the issuer is SIGKILLed in the middle
#             of write bursts and restarted on the same directory, 3 times.
#   dynamodb: the same traffic with ISSUER_STORE=dynamodb through a proxy run
#             by the harness in front of moto (installed pinned, started here
#             on a free loopback port, stopped on exit); the proxy refuses
#             connections, accepts and hangs, and drops connections, in turn.
# After each: the invariants are checked directly in the SQLite file or by
# scanning both tables. Prints the `CHAOS key=value` reports; exits 1 when a
# must-hold property fails in any mode.
#
# The machine is shared: waits while a performance benchmark runs
# (run-all.sh / bench-sidecar), checking once a minute, up to WAIT_MINUTES [60].
# Env: SKIP_BUILD [0], MOTO_VERSION [5.2.1].
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=lib/shared-machine.sh
source scripts/lib/shared-machine.sh
MODE="${1:-all}"
[ $# -gt 0 ] && shift
case "$MODE" in sqlite|dynamodb|all) ;; *) echo "usage: $0 [sqlite|dynamodb|all] [flags]" >&2; exit 2 ;; esac
WAIT_MINUTES="${WAIT_MINUTES:-60}"
SKIP_BUILD="${SKIP_BUILD:-0}"
MOTO_VERSION="${MOTO_VERSION:-5.2.1}"
say() { printf '==> %s\n' "$*" >&2; }
die() { echo "chaos-issuer: $*" >&2; exit 2; }

command -v cargo >/dev/null || die "cargo not found"
if [ "$SKIP_BUILD" != 1 ]; then
  say "cargo build --release -p issuer"
  cargo build --release -p issuer --bin issuer
  say "cargo build --release -p e2e-tests --bin issuer-chaos"
  cargo build --release -p e2e-tests --bin issuer-chaos
fi
[ -x target/release/issuer ] && [ -x target/release/issuer-chaos ] || die "release binaries missing"

WORK="$(mktemp -d -t chaos-issuer.XXXXXX)"
cp target/release/issuer target/release/issuer-chaos "$WORK/"
PID=""; MOTO_PID=""
cleanup() {
  # The harness runs in its own process group (setsid): it and the issuer it started.
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill -- "-$PID" 2>/dev/null || true; fi
  if [ -n "$MOTO_PID" ]; then kill "$MOTO_PID" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

wait_for_benchmarks "$WAIT_MINUTES" || die "gave up waiting for the benchmark"
note_fuzzer

if [ "$MODE" != sqlite ]; then
  say "installing moto[server]==$MOTO_VERSION (pinned)"
  python3 -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  MOTO_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  say "starting moto_server on 127.0.0.1:$MOTO_PORT"
  python3 -m moto.server -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
  MOTO_PID=$!
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$MOTO_PORT/moto-api/" 2>/dev/null && break
    kill -0 "$MOTO_PID" 2>/dev/null || { cat "$WORK/moto.log" >&2; die "moto_server exited"; }
    sleep 0.2
  done
  curl -fsS -o /dev/null "http://127.0.0.1:$MOTO_PORT/moto-api/" || { cat "$WORK/moto.log" >&2; die "moto_server did not start"; }
fi

run() { # store [flags...]
  local store="$1"; shift
  say "issuer-chaos --store $store $*"
  set +e
  setsid "$WORK/issuer-chaos" --store "$store" --bin "$WORK/issuer" "$@" >"$WORK/report-$store.txt" 2> >(cat >&2) &
  PID=$!
  wait "$PID"
  local rc=$?
  set -e
  PID=""
  echo
  echo "# issuer chaos, $store, $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $(git rev-parse --short HEAD)"
  cat "$WORK/report-$store.txt"
  return "$rc"
}

status=0
if [ "$MODE" = sqlite ] || [ "$MODE" = all ]; then run sqlite "$@" || status=1; fi
if [ "$MODE" = dynamodb ] || [ "$MODE" = all ]; then
  run dynamodb --moto "http://127.0.0.1:$MOTO_PORT" "$@" || status=1
fi
exit "$status"
