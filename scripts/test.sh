#!/usr/bin/env bash
# Runs every test of the workspace, then reports: formatting, lints, every
# unit, integration, end-to-end and doc test, the fuzz targets' regression
# seeds, and the deploy template check. A failing step does not stop the
# others; the summary at the end lists each step with its result, seconds and
# CPU seconds, and the exit status is non-zero when any step failed. CI runs
# exactly this (.ci/run).
#
# Usage: scripts/test.sh [extra cargo test args]
#
# One build serves the lints and the tests: `cargo clippy` is `cargo check`
# with clippy's driver as the workspace's compiler; the "clippy + build" step
# runs that driver in a real build instead (every target `cargo clippy
# --all-targets` lints, and the binaries the end-to-end tests start), so the
# dependencies are compiled once, not once checked and once built. The fuzz
# targets' checks are a workspace member (tests/fuzz-checks), built in the
# same graph. docs/test-timings.md has the figures.
#
# What it installs and starts:
# - Python tools (moto, cfn-lint, aws-sam-translator; versions pinned in
#   scripts/requirements-test.txt, their dependencies in
#   scripts/constraints-test.txt) in a virtual environment under
#   target/test-venv, never in the system Python (PEP 668). Reused while the
#   pins and the interpreter are the same. Installed, and the deploy template
#   checked, in the background while the workspace builds.
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
  cargo clippy --version >/dev/null 2>&1 && [ -x "$CLIPPY_DRIVER" ] ||
    missing+=("clippy (rustup component add clippy; no $CLIPPY_DRIVER)")
  command -v cc >/dev/null || missing+=("a C compiler as cc (Debian/Ubuntu: apt-get install build-essential)")
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
  # --no-compile: byte-compiling every module of the tools (sympy, botocore,
  # ...) cost more than half of the install's CPU; Python compiles the few
  # modules a run imports on first use (and keeps them: the venv is writable).
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --no-compile \
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

# ---------------------------------------------------------------- clippy + build
# `cargo clippy` runs `cargo check` with RUSTC_WORKSPACE_WRAPPER set to
# clippy's driver and the lint flags in CLIPPY_ARGS. The same driver in a
# build lints the same workspace targets and leaves real artifacts; the
# dependencies go through plain rustc either way, so they are built once for
# the lints, the binaries and the tests. Every cargo command below runs with
# these two variables: cargo keeps a build's compiler in its fingerprints, so
# the test step reuses this build instead of compiling the workspace again.
CLIPPY_DRIVER=$(rustc --print sysroot 2>/dev/null)/bin/clippy-driver
export RUSTC_WORKSPACE_WRAPPER=$CLIPPY_DRIVER
# clippy's default levels and the workspace's [lints]; warnings do not stop
# the build (the tests still run) but fail the step, as `-D warnings` would.
export CLIPPY_ARGS=""

clippy_build() {
  local rc=0
  # 1. What `cargo clippy --workspace --all-targets` checks, built: libraries,
  #    binaries, tests, benches and examples (the last two in test mode).
  # 2. The binaries the end-to-end tests start (`tests/src/lib.rs` bin_path;
  #    devstack's is not a dependency of any test target) and the examples
  #    as `cargo test` builds them. With test targets selected, cargo resolves
  #    the features as `cargo test` does: only these few units are new.
  # Both run even when the first fails: what builds is tested.
  {
    cargo test --locked --workspace --all-targets --no-run --message-format=json
    local first=$?
    cargo build --locked --workspace --bins --tests --examples --message-format=json
    local second=$?
    [ "$first" -eq 0 ] && [ "$second" -eq 0 ]
  } | python3 scripts/lib/cargo-diagnostics.py
  local status=("${PIPESTATUS[@]}")
  [ "${status[0]}" -eq 0 ] || { echo "the build failed (see above)"; rc=1; }
  [ "${status[1]}" -eq 0 ] || rc=1
  return "$rc"
}

# ---------------------------------------------------------------- cargo test
# Keeps the names of failing tests for the summary (cargo prints them far up).
# The fuzz seeds are the next step.
cargo_test() {
  local out=$STAMPS/cargo-test.log rc
  cargo test --locked --workspace --exclude auth-fuzz-checks --no-fail-fast "$@" 2>&1 | tee "$out"
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
# Every committed seed of tests/fuzz/corpus/<target>/ through its target's
# checks (tests/fuzz-checks/tests/seeds.rs; the libFuzzer wrappers in
# tests/fuzz are built by scripts/fuzz.sh). `--workspace --test seeds`
# resolves features as the build above did, so nothing is compiled here.
fuzz_seeds() {
  cargo test --locked --workspace --test seeds -- --nocapture 2>&1 | tee "$STAMPS/fuzz-seeds.log"
  local rc=${PIPESTATUS[0]}
  grep -E '^[a-z_]+: [0-9]+ seeds pass$' "$STAMPS/fuzz-seeds.log" | awk '{ n += $2 } END { printf "%d seeds replayed\n", n }'
  return "$rc"
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
# Python tools and the template check need no build: they run beside it.
python_and_infra() {
  step "python tools" python_tools
  step "infra check" infra_check
}

step "machine" check_machine
background_run "$STAMPS/background.log" python_and_infra
step "cargo fmt" cargo fmt --all -- --check
step "clippy + build" clippy_build
background_join
step "moto" start_moto
step "cargo test" cargo_test "$@"
step "fuzz seeds" fuzz_seeds
stop_moto

summary
