#!/usr/bin/env bash
# Load-and-fault run of the sidecar (issue 6, "Hardening").
#
# Usage: scripts/chaos-sidecar.sh [sidecar-chaos flags]     (default: --secs 60)
#
# Builds the release sidecar and the harness (tests/src/bin/sidecar-chaos.rs),
# copies both to a scratch directory (a rebuild by someone else cannot change
# them mid-run), and runs the harness on CPU 0; it starts the sidecar pinned
# to CPU 1 against a JWKS endpoint it controls and drives 60 s of mixed
# traffic while that endpoint serves, fails (500), hangs, comes back and
# rotates keys. Prints the harness's `CHAOS key=value` report; exits 1 when a
# must-hold property fails (any 5xx, a valid token refused while stale keys
# were allowed, JWKS fetches past the cooldown bound, the sidecar dying).
#
# The machine is shared: the run waits while a performance benchmark runs
# (run-all.sh / bench-sidecar), checking once a minute, up to WAIT_MINUTES [60].
# Env: CLIENT_CPU [0], SKIP_BUILD [0] (1: use target/release as it is).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=lib/shared-machine.sh
source scripts/lib/shared-machine.sh
WAIT_MINUTES="${WAIT_MINUTES:-60}"
CLIENT_CPU="${CLIENT_CPU:-0}"
SKIP_BUILD="${SKIP_BUILD:-0}"
say() { printf '==> %s\n' "$*" >&2; }
die() { echo "chaos-sidecar: $*" >&2; exit 2; }

command -v cargo >/dev/null || die "cargo not found"
if [ "$SKIP_BUILD" != 1 ]; then
  say "cargo build --release -p sidecar"
  cargo build --release -p sidecar
  say "cargo build --release -p e2e-tests --bin sidecar-chaos"
  cargo build --release -p e2e-tests --bin sidecar-chaos
fi
[ -x target/release/sidecar ] && [ -x target/release/sidecar-chaos ] || die "release binaries missing"

WORK="$(mktemp -d -t chaos-sidecar.XXXXXX)"
cp target/release/sidecar target/release/sidecar-chaos "$WORK/"
PID=""
cleanup() {
  # The harness runs in its own process group (setsid): it and the sidecar
  # it started, nothing else.
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill -- "-$PID" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

wait_for_benchmarks "$WAIT_MINUTES" || die "gave up waiting for the benchmark"
note_fuzzer

args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--secs 60)
PIN=()
command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ] && PIN=(taskset -c "$CLIENT_CPU")
say "sidecar-chaos ${args[*]} (harness ${PIN[*]:-unpinned}, sidecar on CPU 1)"
set +e
setsid "${PIN[@]}" "$WORK/sidecar-chaos" --bin "$WORK/sidecar" "${args[@]}" >"$WORK/report.txt" 2> >(cat >&2) &
PID=$!
wait "$PID"
rc=$?
set -e
PID=""
echo
echo "# sidecar chaos $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $(git rev-parse --short HEAD)"
cat "$WORK/report.txt"
exit "$rc"
