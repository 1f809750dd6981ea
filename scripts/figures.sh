#!/usr/bin/env bash
# Regenerates every figure the README and docs/bench/ publish, one step per
# figure source, and writes an index with the date, commit and machine.
#
# Usage: scripts/figures.sh [--quick] [STEP...]      (from anywhere)
#
#   full (default): the published settings; each step writes its report
#                   under docs/bench/ and the index is docs/bench/figures.md.
#   --quick:        a smoke run of every step with small settings (under 3
#                   minutes once the release binaries are built); reports and
#                   the index go to target/figures/, never over the published
#                   ones.
#   STEP...:        only these steps (default: all, in this order):
#
#   verify          instructions per RS256 verification, ours vs bare
#                   jsonwebtoken::decode, and the cache hit (callgrind on
#                   token-core's verify_cost example: counts do not depend on
#                   the machine's load), plus criterion times
#   authorizer      the authorizer per invocation through the Lambda Runtime
#                   API (lambda-bench: init, round trip, resident memory over
#                   distinct tokens) beside the handler alone (criterion)
#   lambda-memory   scripts/bench-lambda-memory.sh
#   issuer          cargo bench -p issuer --bench issuer (login through
#                   App::handle, refresh, JWKS)
#   login-paths     scripts/bench-login-paths.sh
#   revocation      scripts/bench-revocation.sh
#   sidecar         scripts/bench-sidecar.sh (the peer harness in tests/peer-bench)
#   sidecar-memory  scripts/bench-sidecar-memory.sh
#   flood           scripts/flood-issuer-memory.sh
#   work            scripts/measure-work.sh (per request type: DynamoDB units
#                   metered, CPU time and log bytes; the bill's inputs)
#   node            scripts/bench-node-seed.sh (the seed's Node.js stack beside
#                   ours, through the Runtime API, in one run)
#   day             scripts/bench-day-at-70m.sh (load model, bill, load runs)
#   chaos           scripts/chaos-sidecar.sh and scripts/chaos-issuer.sh
#   fuzz            scripts/fuzz.sh
#
# Steps run one after another (never two at once: they share the cores they
# measure). A step that fails is reported in the index and the others still
# run; the exit status is non-zero when any failed. Each step's report
# starts with the command that produced it.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=0
STEPS=()
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    -h | --help) sed -n '2,40p' "$0"; exit 0 ;;
    *) STEPS+=("$a") ;;
  esac
done
ALL=(verify authorizer lambda-memory issuer login-paths revocation sidecar sidecar-memory flood work node day chaos fuzz)
[ ${#STEPS[@]} -gt 0 ] || STEPS=("${ALL[@]}")
for s in "${STEPS[@]}"; do
  [[ " ${ALL[*]} " == *" $s "* ]] || { echo "figures.sh: unknown step $s (steps: ${ALL[*]})" >&2; exit 2; }
done

if [ $QUICK = 1 ]; then OUT=$ROOT/target/figures; INDEX=$OUT/index.md; else OUT=$ROOT/docs/bench; INDEX=$OUT/figures.md; fi
mkdir -p "$OUT" "$ROOT/target/figures/work"
WORK=$ROOT/target/figures/work

say() { printf '\n==> %s\n' "$*" >&2; }
stamp() {
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!docs' || echo ' (with uncommitted changes)')"
  echo "- machine: $(uname -srm), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- mode: $([ $QUICK = 1 ] && echo 'quick (smoke run: small settings, not for publication)' || echo full)"
}

# ---------------------------------------------------------------- steps
# Each writes its report to the file it prints on stdout's last line.

step_verify() {
  local f=$OUT/verify.md n1 n2
  command -v valgrind >/dev/null || { echo "valgrind is required (apt-get install valgrind)" >&2; return 1; }
  cargo build --release --offline --locked -p token-core --example verify_cost >&2 || return 1
  local bin=$ROOT/target/release/examples/verify_cost
  ir() { # ir MODE N -> total instructions of one run
    local cg=$WORK/cg.out
    valgrind --tool=callgrind --callgrind-out-file="$cg" "$bin" RS256 "$1" "$2" >/dev/null 2>&1 || return 1
    awk '/^(summary|totals):/ {print $2; exit}' "$cg"
  }
  per() { # per MODE N1 N2 -> instructions per verification
    local a b
    a=$(ir "$1" "$2") && b=$(ir "$1" "$3") || return 1
    echo $(((b - a) / ($3 - $2)))
  }
  if [ $QUICK = 1 ]; then n1=20; n2=120; else n1=200; n2=2200; fi
  {
    echo "# Token verification: instructions and time"
    echo
    stamp
    echo
    echo "Command: \`scripts/figures.sh$([ $QUICK = 1 ] && echo ' --quick') verify\`. Instructions: callgrind, the"
    echo "difference of two runs ($n1 and $n2 verifications of one RS256 token) divided by"
    echo "the difference; \`token-core/examples/verify_cost.rs\` (modes: \`jwt\` bare"
    echo "\`jsonwebtoken::decode\` with key and Validation built once, \`core\` our signature path"
    echo "with the cache off, \`hit\` the verified-token cache)."
    echo
    echo "| path | instructions per verification |"
    echo "|---|---|"
    local jwt core hit
    jwt=$(per jwt $n1 $n2) && core=$(per core $n1 $n2) && hit=$(per hit $((n1 * 10)) $((n2 * 10))) || return 1
    echo "| bare jsonwebtoken::decode (the floor) | $jwt |"
    echo "| token-core, signature path | $core ($(python3 -c "print(f'{$core / $jwt:.3f}')") x the floor) |"
    echo "| token-core, cache hit | $hit |"
    echo
    echo "Time (criterion, \`cargo bench -p token-core --bench verify\`):"
    echo
    echo '```'
    local extra=()
    [ $QUICK = 1 ] && extra=(--quick)
    cargo bench --offline --locked -p token-core --bench verify -- "${extra[@]}" 'verify/RS256' 2>/dev/null |
      grep -E '^verify/|time:' | paste - - | sed 's/  */ /g'
    echo '```'
  } >"$f" || return 1
  echo "$f"
}

step_authorizer() {
  local f=$OUT/authorizer.md inv distinct runs
  cargo build --release --offline --locked -p authorizer -p e2e-tests --bin authorizer --bin lambda-bench >&2 || return 1
  if [ $QUICK = 1 ]; then inv=20000; distinct=2000; runs=3; else inv=200000; distinct=100000; runs=20; fi
  local lb=$ROOT/target/release/lambda-bench bin=$ROOT/target/release/authorizer
  {
    echo "# The authorizer per invocation, as Lambda runs it"
    echo
    stamp
    echo
    echo "Command: \`scripts/figures.sh$([ $QUICK = 1 ] && echo ' --quick') authorizer\`. \`lambda-bench\` drives the release"
    echo "bootstrap through a loopback Lambda Runtime API (a fresh trace id per invocation, as"
    echo "Lambda sends): what Lambda bills is this round trip, not the handler alone. Beside it, the"
    echo "handler alone (criterion, \`cargo bench -p authorizer --bench handler\`), in the same run."
    echo "Driver and function pinned to one CPU (\`taskset\`); round trips include two loopback hops."
    echo
    echo '```'
    # Driver and function on one CPU (as scripts/bench-node-seed.sh does):
    # across this VM's idle vCPUs every hop pays a wake-up, which multiplied
    # a 28 µs round trip several times over.
    local pin=()
    command -v taskset >/dev/null && pin=(taskset -c "$(($(nproc) - 1))")
    "${pin[@]}" "$lb" --bin "$bin" --init-only --runs "$runs" 2>/dev/null | grep '^BENCH' || return 1
    "${pin[@]}" "$lb" --bin "$bin" --invocations "$inv" --checkpoints "$inv" --distinct "$distinct" 2>/dev/null |
      grep '^BENCH' || return 1
    "${pin[@]}" "$lb" --bin "$bin" --invocations "$inv" --checkpoints "$inv" --distinct 1 2>/dev/null |
      grep '^BENCH' || return 1
    echo '```'
    echo
    echo '```'
    local extra=()
    [ $QUICK = 1 ] && extra=(--quick)
    cargo bench --offline --locked -p authorizer --bench handler -- "${extra[@]}" 2>/dev/null |
      grep -E '^authorizer_handler/|time:' | paste - - | sed 's/  */ /g'
    echo '```'
  } >"$f" || return 1
  echo "$f"
}

step_lambda_memory() {
  local f=$OUT/lambda-memory-run.md n=1000000
  [ $QUICK = 1 ] && n=20000
  { echo "# Lambda bootstraps: resident memory"; echo; stamp; echo; echo "Command: \`scripts/bench-lambda-memory.sh $n\`"; echo; echo '```'
    scripts/bench-lambda-memory.sh "$n" 2>/dev/null | grep -E '^BENCH|^\|' || return 1; echo '```'; } >"$f" || return 1
  echo "$f"
}

step_issuer() {
  local f=$OUT/issuer-bench.md extra=()
  [ $QUICK = 1 ] && extra=(--quick)
  { echo "# Issuer benchmarks"; echo; stamp; echo; echo "Command: \`cargo bench -p issuer --bench issuer\`"; echo; echo '```'
    cargo bench --offline --locked -p issuer --bench issuer -- "${extra[@]}" 2>/dev/null | grep -E '^[a-z_]+/[A-Za-z0-9_]+|time:|thrpt:' || return 1
    echo '```'; } >"$f" || return 1
  echo "$f"
}

step_login_paths() {
  local f=$OUT/login-paths.md n=100
  [ $QUICK = 1 ] && n=5
  scripts/bench-login-paths.sh "$n" "$f" >&2 || return 1
  echo "$f"
}

step_revocation() {
  local f=$OUT/revocation.md
  if [ $QUICK = 1 ]; then SAMPLES=5 scripts/bench-revocation.sh >"$f" || return 1; else scripts/bench-revocation.sh >"$f" || return 1; fi
  echo "$f"
}

step_sidecar() {
  local f=$OUT/sidecar-run.md d=15
  [ $QUICK = 1 ] && d=2
  { echo "# Sidecar beside its peers"; echo; stamp; echo; echo "Command: \`scripts/bench-sidecar.sh $d\`"; echo
    scripts/bench-sidecar.sh "$d" || return 1; } >"$f" || return 1
  echo "$f"
}

step_sidecar_memory() {
  local f=$OUT/sidecar-memory-run.md n=1000000
  [ $QUICK = 1 ] && n=20000
  { echo "# Sidecar memory"; echo; stamp; echo; echo "Command: \`scripts/bench-sidecar-memory.sh $n\`"; echo
    scripts/bench-sidecar-memory.sh "$n" || return 1; } >"$f" || return 1
  echo "$f"
}

step_flood() {
  local f=$OUT/issuer-flood-run.md
  if [ $QUICK = 1 ]; then set -- 50 1; else set -- 500 2; fi
  { echo "# Issuer flood"; echo; stamp; echo; echo "Command: \`scripts/flood-issuer-memory.sh $*\`"; echo
    scripts/flood-issuer-memory.sh "$@" || return 1; } >"$f" || return 1
  echo "$f"
}

step_work() {
  local f=$OUT/work.md extra=()
  [ $QUICK = 1 ] && extra=(--quick)
  WORK_TOML=$([ $QUICK = 1 ] && echo "$OUT/work.toml" || echo docs/bench/work.toml) WORK_MD=$f \
    scripts/measure-work.sh "${extra[@]}" >&2 || return 1
  echo "$f"
}

step_node() {
  local f=$OUT/node-seed.md extra=()
  [ $QUICK = 1 ] && extra=(--quick)
  NODE_SEED_MD=$f NODE_SEED_TOML=$([ $QUICK = 1 ] && echo "$OUT/node-seed.toml" || echo docs/bench/node-seed.toml) \
    scripts/bench-node-seed.sh "${extra[@]}" >&2 || return 1
  echo "$f"
}

step_day() {
  local f=$OUT/day-at-70m-run.md extra=()
  [ $QUICK = 1 ] && extra=(--quick)
  { echo "# A day at 70M users"; echo; stamp; echo; echo "Command: \`scripts/bench-day-at-70m.sh ${extra[*]}\`"; echo
    scripts/bench-day-at-70m.sh "${extra[@]}" || return 1; } >"$f" || return 1
  echo "$f"
}

step_chaos() {
  local f=$OUT/chaos-run.md
  if [ $QUICK = 1 ]; then set -- --secs 10; else set --; fi
  { echo "# Chaos"; echo; stamp; echo; echo "Commands: \`scripts/chaos-sidecar.sh $*\`, \`scripts/chaos-issuer.sh all\`"; echo
    echo '```'; scripts/chaos-sidecar.sh "$@" 2>&1 | grep -E '^CHAOS|^BENCH|PASS|FAIL' || return 1
    scripts/chaos-issuer.sh all 2>&1 | grep -E '^CHAOS|PASS|FAIL' || return 1; echo '```'; } >"$f" || return 1
  echo "$f"
}

step_fuzz() {
  local f=$OUT/fuzz-run.md s=600
  [ $QUICK = 1 ] && s=5
  { echo "# Fuzzing"; echo; stamp; echo; echo "Command: \`scripts/fuzz.sh all $s\`"; echo; echo '```'
    scripts/fuzz.sh all "$s" 2>&1 | tail -20 || return 1; echo '```'; } >"$f" || return 1
  echo "$f"
}

# ---------------------------------------------------------------- run
declare -A RESULT SECS
for s in "${STEPS[@]}"; do
  say "step $s"
  start=$SECONDS
  if report=$("step_${s//-/_}" | tail -1) && [ -n "$report" ] && [ -s "$report" ]; then
    RESULT[$s]="pass: ${report#"$ROOT"/}"
  else
    RESULT[$s]="FAIL"
  fi
  SECS[$s]=$((SECONDS - start))
  echo "  $s: ${RESULT[$s]} (${SECS[$s]} s)" >&2
done

failed=0
{
  echo "# Figures: what produced each"
  echo
  stamp
  echo
  echo "Command: \`scripts/figures.sh$([ $QUICK = 1 ] && echo ' --quick')\`. One step per figure source; each report starts"
  echo "with the command and settings that produced it."
  echo
  echo "| step | result | seconds |"
  echo "|---|---|---|"
  for s in "${STEPS[@]}"; do
    echo "| $s | ${RESULT[$s]} | ${SECS[$s]} |"
    [[ ${RESULT[$s]} == pass* ]] || failed=1
  done
} >"$INDEX"
say "index: ${INDEX#"$ROOT"/}"
cat "$INDEX" >&2
exit $failed
