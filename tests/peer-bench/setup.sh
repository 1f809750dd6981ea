#!/usr/bin/env bash
# Prepares a writable copy of this harness: keys and tokens, Node peers, the bare hyper server.
# Usage: tests/peer-bench/setup.sh DIR   (then: cd DIR && ./run-all.sh 15)
set -euo pipefail
src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${1:?usage: setup.sh DIR}"
mkdir -p "$dir"
cp -r "$src"/. "$dir"/
chmod -R u+w "$dir"
cd "$dir"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q cryptography pyjwt
[ -s keys/tokens-rs256.txt ] || .venv/bin/python keys/gen.py
(cd node && npm ci --no-audit --no-fund)
(cd ceiling && cargo build --release && \
  cargo build --release -p jwtops --no-default-features --features rust_crypto --target-dir target/rustcrypto)
echo "ready: cd $dir && ./run-all.sh 15   (add your server to peers.conf first)"
