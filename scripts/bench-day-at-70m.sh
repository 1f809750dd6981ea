#!/usr/bin/env bash
# A day at 70 million users (issue 15): prints, as markdown,
#   1. the bill: `auth-bill` (the load model, docs/bench/prices.toml and the
#      counted-work INPUT table of tests/load/src/work.rs);
#   2. open-loop smoke runs of `auth-load` against the dev stack (embedded
#      store, limits lifted, email verification off): the model's mix at
#      50 requests/s, the model's peak hour scaled 1:100, password work only
#      (logins and stuffing) at 100/s with at most 64 in flight, and the
#      model's whole day scaled 1:1000 with each hour compressed to 5 s.
# The date, commit and machine come first. docs/bench/day-at-70m.md quotes
# this output.
#
# Usage: scripts/bench-day-at-70m.sh [--quick]   (from anywhere; --quick: 5 s runs, 1 s hours)
# Env:   SKIP          space-separated parts to skip: bill load
#        DEVSTACK_BIN  the dev stack binary (default: the debug build, built here)
#        CARGO_TARGET_DIR  as for cargo
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
SKIP="${SKIP:-}"
QUICK=0
case "${1:-}" in
  --quick) QUICK=1 ;;
  "") ;;
  *) echo "usage: scripts/bench-day-at-70m.sh [--quick]" >&2; exit 2 ;;
esac
STACK_PID=""
DIR="$(mktemp -d)"
cleanup() {
  if [ -n "$STACK_PID" ]; then kill "$STACK_PID" 2>/dev/null || true; wait "$STACK_PID" 2>/dev/null || true; fi
  rm -rf "$DIR"
}
trap cleanup EXIT
say() { printf '==> %s\n' "$*" >&2; }
die() { echo "bench-day-at-70m: $*" >&2; exit 2; }
skip() { [[ " $SKIP " == *" $1 "* ]]; }

say "building auth-load"
cargo build -q -p auth-load --bins
if [ -z "${DEVSTACK_BIN:-}" ] && ! skip load; then
  say "building the dev stack (debug)"
  cargo build -q -p devstack
  DEVSTACK_BIN="$TARGET/debug/devstack"
fi

echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "- commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- tests/load docs/bench/prices.toml || echo ' (with uncommitted changes)')"
echo "- machine: $(uname -srm), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo

if ! skip bill; then
  say "bill"
  echo "## The bill (\`cargo run -p auth-load --bin auth-bill\`)"
  echo
  "$TARGET/debug/auth-bill"
  echo
fi

if ! skip load; then
  [ -x "$DEVSTACK_BIN" ] || die "no dev stack binary at $DEVSTACK_BIN"
  say "starting the dev stack ($DEVSTACK_BIN)"
  # All load comes from 127.0.0.1: lift the per-address and per-account
  # limits; sign-ups become accounts at once (no verification mail).
  ISSUER_REQUIRE_VERIFIED_EMAIL=false ISSUER_RECOVERY_MAX_PER_CLIENT=1000000 \
  ISSUER_LOGIN_MAX_PER_ADDRESS=1000000 ISSUER_LOGIN_MAX_PER_ACCOUNT=1000000 \
  ISSUER_LOGIN_MAX_PER_ACCOUNT_ADDRESS=1000 RUST_LOG=warn \
  "$DEVSTACK_BIN" --data-dir "$DIR/data" --gateway-port 0 --issuer-port 0 --sidecar-port 0 --backend-port 0 \
    > "$DIR/devstack.out" 2> "$DIR/devstack.err" &
  STACK_PID=$!
  deadline=$((SECONDS + 60))
  until grep -q "sidecar (forward auth)" "$DIR/devstack.out" 2>/dev/null; do
    kill -0 "$STACK_PID" 2>/dev/null || die "the dev stack exited: $(tail -5 "$DIR/devstack.err")"
    [ $SECONDS -lt $deadline ] || die "the dev stack did not start within 60 s: $(tail -5 "$DIR/devstack.err")"
    sleep 0.2
  done
  gateway=$(awk '/front door/ {print $NF; exit}' "$DIR/devstack.out")
  issuer=$(awk '/^  issuer / {print $2; exit}' "$DIR/devstack.out")
  sidecar=$(awk '/sidecar \(forward auth\)/ {print $4; exit}' "$DIR/devstack.out" | sed 's#/verify$##')
  targets=(--issuer "$issuer" --gateway "$gateway" --sidecar "$sidecar")
  if [ "$QUICK" = 1 ]; then short=5; long=5; else short=10; long=20; fi

  echo "## Load runs against the dev stack (\`$(basename "$DEVSTACK_BIN")\` at $DEVSTACK_BIN)"
  echo
  run() { # run TITLE ARGS...
    local title="$1"; shift
    say "auth-load: $title"
    echo "**$title** (\`auth-load --issuer I --gateway G --sidecar S $*\`):"
    echo
    "$TARGET/debug/auth-load" "${targets[@]}" "$@" 2> "$DIR/progress" || die "auth-load failed: $(tr '\r' '\n' < "$DIR/progress" | tail -3)"
    echo
  }
  run "The model's mix at 50 requests/s" --rate 50 --duration-secs "$short" --users 20
  run "The model's peak hour (08:00) scaled 1:100" --model-scale 100 --duration-secs "$long" --users 50
  run "Password work only: logins and stuffing at 100/s, at most 64 in flight" \
    --rate 100 --mix login=1,stuffing=1 --duration-secs "$short" --users 20 --max-in-flight 64
  if [ "$QUICK" = 1 ]; then hour=1; else hour=5; fi
  run "The model's day scaled 1:1000, each hour played for $hour s at its own rate and mix" \
    --day 1000 --step-secs "$hour" --users 50
fi
