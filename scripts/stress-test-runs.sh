#!/usr/bin/env bash
# The proof of issue 12: runs the test command N times in a row while
# `stress-ng --cpu 2` keeps both cores busy, records each run's exit status
# and duration, and prints a report (date, commit, machine) in Markdown.
#
# Usage: scripts/stress-test-runs.sh [N] [REPORT]
#   N       runs (default 5)
#   REPORT  a file to append the report to (e.g. docs/test-timings.md);
#           default: print it only
#
# Installs stress-ng with apt-get when it is missing (saying so). Each run's
# whole output goes to target/stress-runs/run-K.log. Exits non-zero when any
# run failed.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-5}
report=${2:-}
case "$runs" in '' | *[!0-9]*) echo "N must be a whole number" >&2; exit 2 ;; esac

if ! command -v stress-ng >/dev/null; then
  echo "==> stress-ng is missing: installing it with apt-get" >&2
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq stress-ng >/dev/null
  else
    sudo apt-get update -qq && sudo apt-get install -y -qq stress-ng >/dev/null
  fi
fi

logs=target/stress-runs
mkdir -p "$logs"

echo "==> stress-ng --cpu 2 in the background" >&2
stress-ng --cpu 2 --quiet &
STRESS_PID=$!
stop_stress() {
  kill "$STRESS_PID" 2>/dev/null || true
  wait "$STRESS_PID" 2>/dev/null || true
}
trap stop_stress EXIT INT TERM

rows=()
failed=0
for k in $(seq 1 "$runs"); do
  log=$logs/run-$k.log
  echo "==> run $k of $runs (log: $log)" >&2
  start=$(date +%s)
  set +e
  scripts/test.sh >"$log" 2>&1
  rc=$?
  set -e
  secs=$(($(date +%s) - start))
  steps=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1 || true)
  # The summary table's failed steps (name in columns 3-18).
  failing=$(sed -n '/^==> summary$/,$p' "$log" | grep -E '^  .{16} FAIL ' | cut -c3-18 | sed 's/ *$//' | paste -sd, - || true)
  [ "$rc" = 0 ] || failed=$((failed + 1))
  rows+=("| $k | $rc | $secs | ${steps:-no summary} | ${failing:--} |")
  echo "    exit $rc, ${secs}s, steps: ${steps:-no summary}" >&2
  if [ "$rc" != 0 ]; then
    grep -E '^  [a-z].* FAIL ' "$log" | sed 's/^/    /' >&2 || true
  fi
done
stop_stress

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
text=$(
  cat <<EOF

## Stress runs: $(date -u '+%Y-%m-%d %H:%M UTC')

\`scripts/stress-test-runs.sh $runs\`: \`scripts/test.sh\` run $runs time(s) in a
row while \`stress-ng --cpu 2\` keeps both cores busy.

- commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!docs' 2>/dev/null || echo ' (with local changes)')
- machine: $(nproc) CPUs ($cpu), $mem memory, $(uname -sr)
- result: $((runs - failed)) of $runs runs green

| run | exit | seconds | steps | failed steps |
|---|---|---|---|---|
$(printf '%s\n' "${rows[@]}")
EOF
)
printf '%s\n' "$text"
if [ -n "$report" ]; then
  printf '%s\n' "$text" >>"$report"
  echo "==> appended to $report" >&2
fi
[ "$failed" = 0 ]
