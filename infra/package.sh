#!/usr/bin/env bash
# Builds the Lambda deployment zips of the issuer and the authorizer (release,
# arm64 / Graviton, provided.al2023) with cargo-lambda and reports their sizes.
#
# Usage: infra/package.sh [options] [BINARY...]
#
#   BINARY          binaries to package (default: issuer-lambda authorizer)
#   --out DIR       also copy each zip to DIR/<binary>.zip
#   --no-install    fail instead of installing cargo-lambda when it is missing
#   --dry-run       check tools and workspace, print the build command, build nothing
#   -h, --help      this text
#
# Environment:
#   CARGO_LAMBDA_VERSION  pinned cargo-lambda from PyPI (default 1.9.2)
#   ZIGLANG_VERSION       pinned zig from PyPI, the cross linker (default 0.14.1,
#                         the stable zig cargo-zigbuild's CI tests)
#   PYTHON                interpreter whose pip installs them (default python3)
#   CARGO_TARGET_DIR      honoured by cargo; zips land in <target>/lambda/<binary>/
#
# The build is `cargo lambda build --release --arm64 --output-format zip`,
# cross-compiled with zig (no Docker). On first use it adds the
# aarch64-unknown-linux-gnu target with rustup. It shares target/ with the
# other builds (the aarch64 artifacts go to target/aarch64-unknown-linux-gnu).
# A cold release build of the workspace takes several minutes.
set -euo pipefail

CARGO_LAMBDA_VERSION=${CARGO_LAMBDA_VERSION:-1.9.2}
ZIGLANG_VERSION=${ZIGLANG_VERSION:-0.14.1}
PYTHON=${PYTHON:-python3}
DEFAULT_BINARIES=(issuer-lambda authorizer)
# Lambda limits for .zip packages: 50 MB zipped for direct upload, 250 MB unzipped.
MAX_ZIP_BYTES=$((50 * 1024 * 1024))
MAX_UNZIPPED_BYTES=$((250 * 1024 * 1024))

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() { printf 'package.sh: %s\n' "$*" >&2; exit 1; }
note() { printf '==> %s\n' "$*"; }

out_dir=
install=1
dry_run=0
binaries=()
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --out)
      [ $# -ge 2 ] && [ -n "$2" ] || die "--out needs a directory"
      out_dir=$2
      shift 2
      ;;
    --out=*) out_dir=${1#--out=}; [ -n "$out_dir" ] || die "--out needs a directory"; shift ;;
    --no-install) install=0; shift ;;
    --dry-run) dry_run=1; shift ;;
    --) shift; binaries+=("$@"); break ;;
    -*) printf 'package.sh: unknown option %s\n\n' "$1" >&2; usage >&2; exit 2 ;;
    *) binaries+=("$1"); shift ;;
  esac
done
[ ${#binaries[@]} -gt 0 ] || binaries=("${DEFAULT_BINARIES[@]}")

cd "$(dirname "$0")/.."
command -v cargo >/dev/null || die "cargo not found (install Rust: https://rustup.rs)"

# --- cargo-lambda (PyPI) --------------------------------------------------------
# pip puts console scripts in the interpreter's scripts directory, which is not
# always on PATH (pyenv shims need a rehash, --user installs go elsewhere).
scripts_dir=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null) ||
  die "$PYTHON not found (set PYTHON)"
user_scripts=$("$PYTHON" -c 'import os, sysconfig; print(sysconfig.get_path("scripts", os.name + "_user"))' 2>/dev/null || true)
export PATH="$scripts_dir${user_scripts:+:$user_scripts}:$PATH"

installed_version() { cargo lambda --version 2>/dev/null | awk '{print $2}'; }

current=$(installed_version || true)
if [ "$current" != "$CARGO_LAMBDA_VERSION" ]; then
  [ "$install" = 1 ] ||
    die "cargo-lambda ${current:-is not installed}${current:+ is installed, $CARGO_LAMBDA_VERSION is pinned}; run: $PYTHON -m pip install cargo-lambda==$CARGO_LAMBDA_VERSION ziglang==$ZIGLANG_VERSION"
  note "installing cargo-lambda==$CARGO_LAMBDA_VERSION ziglang==$ZIGLANG_VERSION from PyPI (found: ${current:-none})"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check \
    "cargo-lambda==$CARGO_LAMBDA_VERSION" "ziglang==$ZIGLANG_VERSION"
  hash -r
  current=$(installed_version || true)
  [ "$current" = "$CARGO_LAMBDA_VERSION" ] ||
    die "cargo lambda still reports '${current:-nothing}' after installing $CARGO_LAMBDA_VERSION (is another cargo-lambda earlier on PATH? $(command -v cargo-lambda || true))"
fi
zig_version=$("$PYTHON" -m ziglang version 2>/dev/null || true)
note "cargo-lambda $current ($(command -v cargo-lambda)), zig ${zig_version:-not found via $PYTHON -m ziglang}"

# --- the workspace must define the binaries --------------------------------------
metadata=$(cargo metadata --format-version 1 --no-deps) || die "cargo metadata failed"
# shellcheck disable=SC2016
find_bins='
import json, sys
meta = json.load(sys.stdin)
bins = {t["name"]: p["name"] for p in meta["packages"] for t in p["targets"] if "bin" in t["kind"]}
missing = [b for b in sys.argv[1:] if b not in bins]
if missing:
    have = ", ".join(f"{b} ({p})" for b, p in sorted(bins.items())) or "none"
    missing = ", ".join(missing)
    sys.exit(f"no binary named {missing} in the workspace; binaries: {have}")
print(meta["target_directory"])
'
target_dir=$("$PYTHON" -c "$find_bins" "${binaries[@]}" 2>&1 <<<"$metadata") || die "$target_dir"

cmd=(cargo lambda build --release --arm64 --output-format zip)
for b in "${binaries[@]}"; do cmd+=(--bin "$b"); done

if [ "$dry_run" = 1 ]; then
  note "dry run: would run: ${cmd[*]}"
  note "zips would be at: $(for b in "${binaries[@]}"; do printf '%s ' "$target_dir/lambda/$b/bootstrap.zip"; done)"
  exit 0
fi

note "${cmd[*]}"
start=$(date +%s)
"${cmd[@]}"
note "built in $(($(date +%s) - start)) s"

# --- sizes ---------------------------------------------------------------------
[ -z "$out_dir" ] || mkdir -p "$out_dir"
status=0
printf '\n%-16s %12s %14s  %s\n' binary zip unzipped path
for b in "${binaries[@]}"; do
  zip=$target_dir/lambda/$b/bootstrap.zip
  [ -f "$zip" ] || { echo "missing $zip"; status=1; continue; }
  read -r zipped unzipped < <("$PYTHON" - "$zip" <<'EOF'
import os, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
names = z.namelist()
if names != ["bootstrap"]:
    sys.exit(f"{sys.argv[1]}: expected only 'bootstrap', found {names}")
print(os.path.getsize(sys.argv[1]), sum(i.file_size for i in z.infolist()))
EOF
  ) || { status=1; continue; }
  awk -v b="$b" -v z="$zipped" -v u="$unzipped" -v p="$zip" \
    'BEGIN { printf "%-16s %8.2f MiB %10.2f MiB  %s\n", b, z / 1048576, u / 1048576, p }'
  [ "$zipped" -le "$MAX_ZIP_BYTES" ] || { echo "  $b: above Lambda's 50 MB direct-upload limit"; status=1; }
  [ "$unzipped" -le "$MAX_UNZIPPED_BYTES" ] || { echo "  $b: above Lambda's 250 MB unzipped limit"; status=1; }
  if [ -n "$out_dir" ]; then cp "$zip" "$out_dir/$b.zip"; fi
done
[ -z "$out_dir" ] || note "copied to $out_dir/"
exit $status
