# Sourced by scripts/test.sh: run named steps, keep going after a failure,
# and report them all at the end.
#
#   step NAME COMMAND [ARGS...]   runs the command (a function or a program),
#                                 records pass/fail and seconds
#   note TEXT                     a line for the summary (e.g. failing tests)
#   summary                       prints the table, the notes and
#                                 `N passed, N failed` (the last line);
#                                 returns 1 when any step failed
#   background_run LOG COMMAND... runs COMMAND (a function calling step)
#                                 in a background subshell, output to LOG
#   background_join               waits for it, prints LOG and records its
#                                 steps (marked "background" in the table)
#
# Each step also records its CPU seconds (user + system of the processes it
# waited for): on a shared machine wall time says how busy the machine was,
# CPU time what the step costs.

STEP_NAMES=()
STEP_RESULTS=()
STEP_SECONDS=()
STEP_CPU=()
STEP_WHERE=()
STEP_NOTES=()
STEPS_START=$(date +%s.%N)

# CHILDREN_MS: user + system milliseconds of this shell's waited-for
# children so far. All in this shell (a command substitution would fork and
# see none of them): `times` to a file, its second line "0m1.234s 0m0.567s".
STEP_TIMES_FILE=$(mktemp -t test-steps-times.XXXXXX)
CHILDREN_MS=0
children_cpu() {
  # One file per shell: the background job's subshell measures too, and a
  # shared file truncated by one while the other reads it left `u` unset
  # (a run failed on "u: unbound variable").
  local u="" s="" t ms=0 f="$STEP_TIMES_FILE.$BASHPID"
  times >"$f"
  { read -r _ && read -r u s; } <"$f" || true
  rm -f "$f"
  for t in "$u" "$s"; do
    [[ $t =~ ^([0-9]+)m([0-9]+)[.,]([0-9]{3})s$ ]] || continue
    ms=$((ms + 10#${BASH_REMATCH[1]} * 60000 + 10#${BASH_REMATCH[2]} * 1000 + 10#${BASH_REMATCH[3]}))
  done
  CHILDREN_MS=$ms
}

note() {
  STEP_NOTES+=("$*")
}

step() {
  local name=$1
  shift
  printf '\n==> %s: %s\n' "$name" "$*"
  local start end rc cpu0
  start=$(date +%s.%N)
  children_cpu
  cpu0=$CHILDREN_MS
  "$@"
  rc=$?
  end=$(date +%s.%N)
  children_cpu
  STEP_NAMES+=("$name")
  STEP_SECONDS+=("$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')")
  STEP_CPU+=("$(awk -v a="$cpu0" -v b="$CHILDREN_MS" 'BEGIN { printf "%.1f", (b - a) / 1000 }')")
  STEP_WHERE+=("${STEP_BACKGROUND:-}")
  if [ "$rc" -eq 0 ]; then
    STEP_RESULTS+=(pass)
  else
    STEP_RESULTS+=(FAIL)
    printf '==> %s FAILED (exit %s)\n' "$name" "$rc"
  fi
  return 0
}

# background_run LOG COMMAND...: see the top.
BACKGROUND_PID=""
BACKGROUND_LOG=""
background_run() {
  BACKGROUND_LOG=$1
  shift
  printf '\n==> in the background (its output follows when it ends): %s\n' "$*"
  rm -f "$BACKGROUND_LOG.steps" "$BACKGROUND_LOG.joined"
  (
    STEP_BACKGROUND=background
    first=${#STEP_NAMES[@]}
    "$@"
    for ((i = first; i < ${#STEP_NAMES[@]}; i++)); do
      printf '%s\t%s\t%s\t%s\n' "${STEP_NAMES[$i]}" "${STEP_RESULTS[$i]}" "${STEP_SECONDS[$i]}" "${STEP_CPU[$i]}"
    done >"$BACKGROUND_LOG.steps.tmp"
    mv "$BACKGROUND_LOG.steps.tmp" "$BACKGROUND_LOG.steps"
    # Stay until background_join: bash reaps an exited job at once, and its
    # CPU time would count for whichever step is running then.
    while [ ! -e "$BACKGROUND_LOG.joined" ] && kill -0 "$$" 2>/dev/null; do sleep 0.2; done
  ) >"$BACKGROUND_LOG" 2>&1 &
  BACKGROUND_PID=$!
}

background_join() {
  [ -n "$BACKGROUND_PID" ] || return 0
  while [ ! -e "$BACKGROUND_LOG.steps" ] && kill -0 "$BACKGROUND_PID" 2>/dev/null; do sleep 0.2; done
  touch "$BACKGROUND_LOG.joined"
  wait "$BACKGROUND_PID"
  BACKGROUND_PID=""
  printf '\n==> the background steps:\n'
  cat "$BACKGROUND_LOG"
  local name result secs cpu
  if [ ! -s "$BACKGROUND_LOG.steps" ]; then
    STEP_NAMES+=("background")
    STEP_RESULTS+=(FAIL)
    STEP_SECONDS+=(0.0)
    STEP_CPU+=(0.0)
    STEP_WHERE+=(background)
    note "the background steps recorded nothing (see their output above)"
    return 0
  fi
  while IFS=$'\t' read -r name result secs cpu; do
    STEP_NAMES+=("$name")
    STEP_RESULTS+=("$result")
    STEP_SECONDS+=("$secs")
    STEP_CPU+=("$cpu")
    STEP_WHERE+=(background)
  done <"$BACKGROUND_LOG.steps"
}

summary() {
  local i passed=0 failed=0 total cpu=0
  printf '\n==> summary\n'
  printf '  %-16s %-6s %8s %8s\n' step result seconds cpu-s
  for i in "${!STEP_NAMES[@]}"; do
    printf '  %-16s %-6s %8s %8s%s\n' "${STEP_NAMES[$i]}" "${STEP_RESULTS[$i]}" "${STEP_SECONDS[$i]}" \
      "${STEP_CPU[$i]}" "${STEP_WHERE[$i]:+ ${STEP_WHERE[$i]}}"
    if [ "${STEP_RESULTS[$i]}" = pass ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    cpu=$(awk -v a="$cpu" -v b="${STEP_CPU[$i]}" 'BEGIN { printf "%.1f", a + b }')
  done
  # Wall time from the start (background steps overlap the others).
  total=$(awk -v a="$STEPS_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  printf '  %-16s %-6s %8s %8s\n' total "" "$total" "$cpu"
  for i in "${!STEP_NOTES[@]}"; do
    printf '  %s\n' "${STEP_NOTES[$i]}"
  done
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
