# Sourced by the scripts that load the machine for minutes (chaos, fuzzing).
# The build machine is shared: they must not run beside a performance
# benchmark, whose figures they would spoil.

# wait_for_benchmarks MINUTES: returns once no benchmark runs (run-all.sh,
# bench-sidecar*, wrk), checking once a minute; returns 1 when one is still
# running after MINUTES checks (0: wait as long as it takes).
wait_for_benchmarks() {
  local minutes=$1 i
  for ((i = 1; ; i++)); do
    pgrep -f 'run-all.sh|bench-sidecar|wrk ' >/dev/null || return 0
    if [ "$minutes" -gt 0 ] && [ "$i" -ge "$minutes" ]; then
      echo "a benchmark is still running after $minutes minutes" >&2
      return 1
    fi
    printf '==> a performance benchmark is running; waiting a minute (%s)\n' "$i" >&2
    sleep 60
  done
}

# note_fuzzer: says so when a fuzzer holds a core (figures will be lower).
note_fuzzer() {
  local fuzz
  fuzz="$(pgrep -fa 'cargo-fuzz|fuzz run|libfuzzer' | grep -v pgrep | head -1 || true)"
  if [ -n "$fuzz" ]; then
    printf '==> note: a fuzzer is running (one core): %s\n' "$(cut -c1-80 <<<"$fuzz")" >&2
  fi
}
