#!/usr/bin/env bash
# Runs every test of the workspace, then reports: formatting, lints, the
# binaries the end-to-end tests start, every unit, integration, end-to-end
# and doc test, the fuzz targets' regression seeds, and the deploy template
# check. A failing step does not stop the others; the summary at the end
# lists each step with its result and seconds, and the exit status is
# non-zero when any step failed. CI runs exactly this (.ci/run).
#
# Usage: scripts/test.sh [extra cargo test args]
#
# What it installs and starts:
# - Python tools (moto, cfn-lint, aws-sam-translator; versions pinned in
#   scripts/requirements-test.txt, their dependencies in
#   scripts/constraints-test.txt) in a virtual environment under
#   target/test-venv, never in the system Python (PEP 668). Reused while the
#   pins and the interpreter are the same.
# - moto's DynamoDB- and Secrets-Manager-compatible server on a free loopback
#   port (DYNAMODB_ENDPOINT), stopped on exit.
#
# The deploy template check is skipped, saying so, when it passed before on
# exactly the same inputs (infra/ and the tool versions): its stamp is
# target/test-stamps/infra-check. TEST_NO_CACHE=1 runs it regardless.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# shellcheck source=lib/test-steps.sh
source scripts/lib/test-steps.sh

VENV=target/test-venv
REQUIREMENTS=scripts/requirements-test.txt
CONSTRAINTS=scripts/constraints-test.txt
STAMPS=target/test-stamps
mkdir -p "$STAMPS"

# ---------------------------------------------------------------- machine
# What the machine needs (README "What the machine needs"). A missing tool
# fails this step by name; the steps that need it fail too, nothing skips.
check_machine() {
  local missing=()
  command -v cargo >/dev/null || missing+=("cargo (Rust: https://rustup.rs)")
  cargo fmt --version >/dev/null 2>&1 || missing+=("rustfmt (rustup component add rustfmt)")
  cargo clippy --version >/dev/null 2>&1 || missing+=("clippy (rustup component add clippy)")
  command -v cc >/dev/null || missing+=("a C compiler as cc (Debian/Ubuntu: apt-get install build-essential)")
  command -v c++ >/dev/null || missing+=("a C++ compiler as c++ for the fuzz crate (build-essential)")
  command -v python3 >/dev/null || missing+=("python3")
  python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=("Python venv with pip (Debian/Ubuntu: apt-get install python3-venv)")
  command -v curl >/dev/null || missing+=("curl")
  command -v ps >/dev/null && command -v pgrep >/dev/null || missing+=("procps (ps, pgrep)")
  if [ "${#missing[@]}" -gt 0 ]; then
    printf 'missing: %s\n' "${missing[@]}"
    return 1
  fi
  echo "$(cargo --version); $(python3 --version); cc: $(cc --version | head -1)"
}

# ---------------------------------------------------------------- Python tools
venv_fingerprint() {
  { cat "$REQUIREMENTS" "$CONSTRAINTS"; python3 -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1
}

python_tools() {
  local want have=""
  want=$(venv_fingerprint)
  [ -f "$VENV/.fingerprint" ] && have=$(cat "$VENV/.fingerprint")
  if [ "$want" = "$have" ] && [ -x "$VENV/bin/python" ]; then
    echo "reusing $VENV (same pins, same interpreter)"
    return 0
  fi
  echo "creating $VENV and installing the pinned tools"
  rm -rf "$VENV"
  python3 -m venv "$VENV" || { echo "python3 -m venv failed: install python3-venv"; return 1; }
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    -r "$REQUIREMENTS" -c "$CONSTRAINTS" || return 1
  echo "$want" >"$VENV/.fingerprint"
  "$VENV/bin/python" -m pip freeze | grep -Ei '^(moto|cfn-lint|aws-sam-translator)=='
}

# ---------------------------------------------------------------- moto
MOTO_PID=""
MOTO_LOG=""
stop_moto() {
  if [ -n "$MOTO_PID" ]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
    MOTO_PID=""
  fi
}
trap stop_moto EXIT
trap 'stop_moto; exit 130' INT TERM

start_moto() {
  [ -x "$VENV/bin/python" ] || { echo "no $VENV: the Python tools step failed"; return 1; }
  local port
  port=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  MOTO_LOG=$(mktemp -t moto.XXXXXX.log)
  "$VENV/bin/python" -m moto.server -H 127.0.0.1 -p "$port" >"$MOTO_LOG" 2>&1 &
  MOTO_PID=$!
  local i
  for i in $(seq 1 150); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null; then
      echo "moto on 127.0.0.1:$port (pid $MOTO_PID, log $MOTO_LOG)"
      # One server for every AWS service the tests use (DynamoDB, Secrets
      # Manager): tests that need it read this variable.
      export DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
      return 0
    fi
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then
      echo "moto exited:"
      cat "$MOTO_LOG"
      MOTO_PID=""
      return 1
    fi
    sleep 0.2
  done
  echo "moto did not answer on 127.0.0.1:$port within 30 s:"
  cat "$MOTO_LOG"
  return 1
}

export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
# Tests never read the developer's AWS profile.
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null

# ---------------------------------------------------------------- cargo test
# Keeps the names of failing tests for the summary (cargo prints them far up).
cargo_test() {
  local out=$STAMPS/cargo-test.log rc
  cargo test --locked --workspace --no-fail-fast "$@" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then
    local failing
    failing=$(grep -E '^test .* \.\.\. FAILED$' "$out" | sed -E 's/^test (.*) \.\.\. FAILED$/\1/' | sort -u | paste -sd, - | sed 's/,/, /g')
    note "failing tests: ${failing:-(none reported: a build error? see above)}"
    note "failing test targets: $(grep -A20 -E '^error: [0-9]+ targets? failed:' "$out" | grep -E '^    `' | tr -d '`' | paste -sd, - | sed 's/^ *//')"
  fi
  return "$rc"
}

# ---------------------------------------------------------------- fuzz seeds
fuzz_seeds() {
  # Built without the fuzzer's instrumentation (stable toolchain, no
  # cargo-fuzz): libFuzzer given files runs each once through the target, so
  # every committed seed goes through the target's checks. Shares target/
  # with the workspace so the dependencies built there are reused.
  CARGO_TARGET_DIR=$ROOT/target cargo build --locked --quiet --manifest-path tests/fuzz/Cargo.toml --bins || return 1
  local dir name seeds failed=0 total=0
  for dir in tests/fuzz/corpus/*/; do
    name=$(basename "$dir")
    mapfile -t seeds < <(find "$dir" -type f | sort)
    if [ "${#seeds[@]}" -eq 0 ]; then
      echo "  $name: no seeds in $dir"
      failed=1
      continue
    fi
    [ -x "target/debug/$name" ] || { echo "  $name: no fuzz target binary for corpus $dir"; failed=1; continue; }
    local out
    if out=$("target/debug/$name" "${seeds[@]}" 2>&1); then
      local ran
      ran=$(grep -c '^Executed ' <<<"$out")
      if [ "$ran" -ne "${#seeds[@]}" ]; then
        echo "  $name: $ran of ${#seeds[@]} seeds executed"
        failed=1
      else
        echo "  $name: ${#seeds[@]} seeds pass"
      fi
    else
      echo "  $name: FAILED"
      tail -n 40 <<<"$out" | sed 's/^/      /'
      failed=1
    fi
    total=$((total + ${#seeds[@]}))
  done
  echo "$total seeds replayed"
  return "$failed"
}

# ---------------------------------------------------------------- infra check
infra_fingerprint() {
  {
    find infra -type f ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum
    "$VENV/bin/python" --version 2>&1
    "$VENV/bin/python" -m pip freeze 2>/dev/null
  } | sha256sum | cut -d' ' -f1
}

infra_check() {
  [ -x "$VENV/bin/python" ] || { echo "no $VENV: the Python tools step failed"; return 1; }
  [ -f infra/check.sh ] || { echo "infra/check.sh is missing"; return 1; }
  local stamp=$STAMPS/infra-check want
  want=$(infra_fingerprint)
  if [ "${TEST_NO_CACHE:-0}" != 1 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "cached: passed before on the same infra/ files and tool versions (stamp $stamp; TEST_NO_CACHE=1 reruns it)"
    return 0
  fi
  rm -f "$stamp"
  PYTHON=$ROOT/$VENV/bin/python bash infra/check.sh || return 1
  echo "$want" >"$stamp"
}

# ---------------------------------------------------------------- steps
step "machine" check_machine
step "python tools" python_tools
step "moto" start_moto
step "cargo fmt" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --locked --workspace --all-targets -- -D warnings
step "build bins" cargo build --locked --workspace --bins
step "cargo test" cargo_test "$@"
step "fuzz seeds" fuzz_seeds
step "infra check" infra_check
stop_moto

summary
