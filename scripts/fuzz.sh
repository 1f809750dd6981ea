#!/usr/bin/env bash
# Runs the cargo-fuzz (libFuzzer) targets of tests/fuzz for a given time each
# and prints, per target: executions, executions per second, coverage
# (libFuzzer's cov and ft at the end) and crashes (artifact paths).
#
# Usage: scripts/fuzz.sh [TARGET|all] [SECONDS]     (default: all 600)
#        scripts/fuzz.sh list
#
# - Installs the pinned cargo-fuzz from crates.io if it is missing.
# - Only the stable toolchain is available here, and cargo-fuzz passes
#   nightly-only flags (-Z, -C passes=sancov-module ...): RUSTC_BOOTSTRAP=1
#   lets stable rustc accept them. No nightly is needed.
# - Sanitizer: none by default (FUZZ_SANITIZER=address to change). Our crates
#   forbid unsafe code, so AddressSanitizer mostly slows them down; the
#   targets are built with debug assertions (overflow checks) and
#   coverage-guided fuzzing works the same.
# - One job: one in-process fuzzer per target (libFuzzer's default; -jobs=N
#   would fork workers), targets one after another (the build
#   machine has 2 cores shared with others). Before each target, waits while
#   a benchmark runs (FUZZ_WAIT_FOR_BENCH=0 to skip the check).
# - Seeds are the committed tests/fuzz/corpus/<target>/; what a run finds is
#   added to tests/fuzz/work/corpus/<target>/ (not committed), logs go to
#   tests/fuzz/work/logs/, crashes to tests/fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/shared-machine.sh
source scripts/lib/shared-machine.sh

CARGO_FUZZ_VERSION=0.13.1
FUZZ_DIR=tests/fuzz
SANITIZER=${FUZZ_SANITIZER:-none}
TARGETS=(token_verify token_verify_structured jwks_parse authorizer_event issuer_request bearer_and_routes)

target=${1:-all}
seconds=${2:-600}
if [ "$target" = list ]; then
  printf '%s\n' "${TARGETS[@]}"
  exit 0
fi
if [ "$target" = all ]; then
  run=("${TARGETS[@]}")
elif printf '%s\n' "${TARGETS[@]}" | grep -qx -- "$target"; then
  run=("$target")
else
  echo "unknown target $target; one of: all ${TARGETS[*]}" >&2
  exit 2
fi
case "$seconds" in '' | *[!0-9]*) echo "SECONDS must be a whole number" >&2; exit 2 ;; esac

log() { printf '\n==> %s\n' "$*"; }

if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION (crates.io)"
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

export RUSTC_BOOTSTRAP=1
flags=(--fuzz-dir "$FUZZ_DIR" --sanitizer "$SANITIZER" --debug-assertions)

log "building the fuzz targets (sanitizer: $SANITIZER, debug assertions on)"
cargo fuzz build "${flags[@]}"

work=$FUZZ_DIR/work
mkdir -p "$work/logs"
summary=()
status=0
for t in "${run[@]}"; do
  corpus=$work/corpus/$t
  mkdir -p "$corpus" "$FUZZ_DIR/artifacts/$t"
  logfile=$work/logs/$t.log
  extra=()
  # Past the verifier's 8 KiB token bound, to reach it.
  [ "$t" = token_verify ] && extra+=(-max_len=9000)
  # Never fuzz while a benchmark runs: checked before each target.
  [ "${FUZZ_WAIT_FOR_BENCH:-1}" = 1 ] && wait_for_benchmarks 0
  log "fuzzing $t for ${seconds}s (log: $logfile)"
  before=$(find "$FUZZ_DIR/artifacts/$t" -type f | sort)
  set +e
  # The first corpus directory receives new inputs; the seeds are read only.
  cargo fuzz run "${flags[@]}" "$t" "$corpus" "$FUZZ_DIR/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    -dict="$FUZZ_DIR/dict/auth.dict" "${extra[@]}" >"$logfile" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logfile" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logfile" | tail -1)
  last=$(grep -E '^#[0-9]+' "$logfile" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$last")
  after=$(find "$FUZZ_DIR/artifacts/$t" -type f | sort)
  new=$(comm -13 <(printf '%s\n' "$before") <(printf '%s\n' "$after") | sed '/^$/d' || true)
  crashes=$(printf '%s' "$new" | grep -c . || true)
  if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
    echo "cargo fuzz run exited $rc without an artifact; see $logfile" >&2
    tail -20 "$logfile" >&2
    status=1
  fi
  [ "$crashes" -gt 0 ] && status=1
  summary+=("$(printf '%-24s %12s %9s %7s %8s %12s %8s' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$crashes")")
  if [ -n "$new" ]; then
    while read -r a; do summary+=("    crash: $a"); done <<<"$new"
  fi
done

log "results ($(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), ${seconds}s per target, sanitizer $SANITIZER)"
printf '%-24s %12s %9s %7s %8s %12s %8s\n' target executions exec/s cov ft corpus crashes
printf '%s\n' "${summary[@]}"
exit "$status"
