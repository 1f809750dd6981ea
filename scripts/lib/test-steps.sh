# Sourced by scripts/test.sh: run named steps, keep going after a failure,
# and report them all at the end.
#
#   step NAME COMMAND [ARGS...]   runs the command (a function or a program),
#                                 records pass/fail and seconds
#   note TEXT                     a line for the summary (e.g. failing tests)
#   summary                       prints the table, the notes and
#                                 `N passed, N failed` (the last line);
#                                 returns 1 when any step failed

STEP_NAMES=()
STEP_RESULTS=()
STEP_SECONDS=()
STEP_NOTES=()

note() {
  STEP_NOTES+=("$*")
}

step() {
  local name=$1
  shift
  printf '\n==> %s: %s\n' "$name" "$*"
  local start end rc
  start=$(date +%s.%N)
  "$@"
  rc=$?
  end=$(date +%s.%N)
  STEP_NAMES+=("$name")
  STEP_SECONDS+=("$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')")
  if [ "$rc" -eq 0 ]; then
    STEP_RESULTS+=(pass)
  else
    STEP_RESULTS+=(FAIL)
    printf '==> %s FAILED (exit %s)\n' "$name" "$rc"
  fi
  return 0
}

summary() {
  local i passed=0 failed=0 total=0
  printf '\n==> summary\n'
  printf '  %-16s %-6s %8s\n' step result seconds
  for i in "${!STEP_NAMES[@]}"; do
    printf '  %-16s %-6s %8s\n' "${STEP_NAMES[$i]}" "${STEP_RESULTS[$i]}" "${STEP_SECONDS[$i]}"
    if [ "${STEP_RESULTS[$i]}" = pass ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    total=$(awk -v a="$total" -v b="${STEP_SECONDS[$i]}" 'BEGIN { printf "%.1f", a + b }')
  done
  printf '  %-16s %-6s %8s\n' total "" "$total"
  for i in "${!STEP_NOTES[@]}"; do
    printf '  %s\n' "${STEP_NOTES[$i]}"
  done
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
