#!/usr/bin/env bash
# Revocation benchmark (issue 14): prints
#   1. the hot-path cost of verifying a token that is NOT revoked, before and
#      after revocation, in instructions per verification under callgrind,
#      both builds in the same run (the cached-token path and the signature
#      path; the "after" build with 0, 40,000 and 1,000,000 revoked entries);
#   2. the resident memory of the sidecar process holding 1,000,000 revoked
#      entries (fetched from a fake feed), against the same sidecar holding
#      none;
#   3. the propagation latency from a logout-all acknowledged by the issuer
#      to the old access token's first 401 at the sidecar (release dev stack,
#      default settings: 1 s poll interval), SAMPLES samples, p50/p99/max.
#
# Usage: scripts/bench-revocation.sh            (from anywhere)
# Env:   BASE      commit before revocation (default: the parent of the
#                  commit that added token-core/src/revocation_set.rs)
#        SAMPLES   propagation samples (default 100)
#        SKIP      space-separated parts to skip: hotpath memory propagation
#        DEVSTACK_BIN  the dev stack binary for part 3 (default: target/release/devstack,
#                  built here); e.g. a debug build, or one from another worktree
# Needs: valgrind, python3, curl. Builds release binaries into target/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SAMPLES="${SAMPLES:-100}"
SKIP="${SKIP:-}"
OUT="${OUT:-$ROOT/target/bench-revocation}"
mkdir -p "$OUT"
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  if [ -d "$OUT/before-src" ]; then git worktree remove --force "$OUT/before-src" 2>/dev/null || true; fi
}
trap cleanup EXIT
say() { printf '\n==> %s\n' "$*" >&2; }
die() { echo "bench-revocation: $*" >&2; exit 2; }
skip() { [[ " $SKIP " == *" $1 "* ]]; }

if [ -z "${BASE:-}" ]; then
  added=$(git log --diff-filter=A --format=%H -- token-core/src/revocation_set.rs | tail -1)
  [ -n "$added" ] || die "cannot find the commit that added revocation_set.rs; set BASE"
  BASE=$(git rev-parse "$added^")
fi

echo "# Revocation benchmark"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "- commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- token-core sidecar devstack || echo ' (with uncommitted changes)'), before = $(git rev-parse --short "$BASE")"
echo "- machine: $(uname -srm), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- 1. hot path
ir() { # ir BIN ARGS... -> total instructions of one run
  local f="$OUT/cg.$$.out"
  valgrind --tool=callgrind --callgrind-out-file="$f" "$@" >/dev/null 2>&1 || die "callgrind failed: $*"
  awk '/^(summary|totals):/ {print $2; exit}' "$f"
  rm -f "$f"
}
per_call() { # per_call BIN MODE N1 N2 ENTRIES -> instructions per verification
  local a b
  a=$(ir "$1" "$2" "$3" "$5")
  b=$(ir "$1" "$2" "$4" "$5")
  echo $(( (b - a) / ($4 - $3) ))
}
if ! skip hotpath; then
  command -v valgrind >/dev/null || die "valgrind is required for instruction counts (apt-get install valgrind)"
  say "building the probe after (HEAD) and before ($BASE)"
  cargo build --release --offline --locked -p token-core --example revocation_probe >&2
  cp target/release/examples/revocation_probe "$OUT/probe-after"
  rm -rf "$OUT/before-src"
  git worktree add --detach "$OUT/before-src" "$BASE" >&2
  sed '/REVOCATION-BEGIN/,/REVOCATION-END/d' token-core/examples/revocation_probe.rs \
    > "$OUT/before-src/token-core/examples/revocation_probe.rs"
  (cd "$OUT/before-src" && CARGO_TARGET_DIR="$ROOT/target" cargo build --release --offline --locked \
    -p token-core --example revocation_probe >&2)
  cp target/release/examples/revocation_probe "$OUT/probe-before"
  git worktree remove --force "$OUT/before-src"

  say "callgrind: instructions per verification"
  echo
  echo "## Hot path: instructions per verification of a token that is not revoked"
  echo
  echo "callgrind, difference of two runs (N1, N2 verifications) / (N2 - N1); RS256 token with a sid."
  echo
  echo "| path | before | after, 0 entries | after, 40,000 entries | after, 1,000,000 entries | change at 40,000 |"
  echo "|---|---|---|---|---|---|"
  for mode in cached signature; do
    if [ "$mode" = cached ]; then n1=2000; n2=12000; else n1=100; n2=600; fi
    before=$(per_call "$OUT/probe-before" "$mode" $n1 $n2 0)
    a0=$(per_call "$OUT/probe-after" "$mode" $n1 $n2 0)
    a40=$(per_call "$OUT/probe-after" "$mode" $n1 $n2 40000)
    a1m=$(per_call "$OUT/probe-after" "$mode" $n1 $n2 1000000)
    pct=$(python3 -c "print(f'{($a40 - $before) / $before * 100:+.2f}%')")
    echo "| $mode | $before | $a0 | $a40 | $a1m | $pct |"
  done
fi

# ------------------------------------------------------------------ 2. memory
if ! skip memory; then
  say "building the release sidecar"
  cargo build --release --offline --locked -p sidecar >&2
fi
if ! skip propagation && [ -z "${DEVSTACK_BIN:-}" ]; then
  say "building the release dev stack"
  cargo build --release --offline --locked -p devstack >&2
fi
DEVSTACK_BIN="${DEVSTACK_BIN:-target/release/devstack}"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A fake feed: N live session events, pages of 1000, as the issuer lists them.
fake_feed() { # fake_feed PORT N
  python3 - "$1" "$2" >/dev/null 2>&1 <<'PY' &
import base64, hashlib, http.server, json, sys, time, urllib.parse
port, n = int(sys.argv[1]), int(sys.argv[2])
def rid(i):
    return base64.urlsafe_b64encode(hashlib.sha256(b"sid\0fam-%d" % i).digest()[:16]).rstrip(b"=").decode()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        start = int(q.get("after", ["0"])[0])
        end = min(start + 1000, n)
        until = int(time.time()) + 3600
        page = {"events": [{"kind": "session", "id": rid(i), "until": until} for i in range(start, end)],
                "next": str(end), "more": end < n, "as_of_ms": int(time.time() * 1000) - 1000}
        body = json.dumps(page).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
  PIDS+=($!)
}

rss_with() { # rss_with ENTRIES -> "VmRSS VmHWM" of a sidecar holding them (KiB)
  local fport sport pid
  fport=$(free_port); sport=$(free_port)
  fake_feed "$fport" "$1"
  env -i PATH="$PATH" AUTH_ISSUER=https://issuer.test AUTH_AUDIENCE=api \
    AUTH_JWKS_URL="http://127.0.0.1:$fport/jwks.json" REVOCATION_FEED_URL="http://127.0.0.1:$fport/revocations" \
    SIDECAR_LISTEN="127.0.0.1:$sport" SIDECAR_WORKERS=2 RUST_LOG=error target/release/sidecar >/dev/null 2>&1 &
  pid=$!; PIDS+=($pid)
  local deadline=$((SECONDS + 300))
  # Loaded: all the entries, and a complete listing (not stale).
  until curl -fsS "http://127.0.0.1:$sport/metrics" 2>/dev/null \
      | grep -cE "^(auth_revocation_entries $1|auth_revocation_stale 0)\$" | grep -q '^2$'; do
    [ $SECONDS -lt $deadline ] || die "the sidecar did not load $1 entries within 300 s"
    sleep 0.5
  done
  echo "$(awk '/^VmRSS/ {print $2}' /proc/$pid/status) $(awk '/^VmHWM/ {print $2}' /proc/$pid/status)"
  kill "$pid" "${PIDS[-2]}" 2>/dev/null || true
}

if ! skip memory; then
  say "memory: sidecar with 0 and 1,000,000 revoked entries"
  read -r rss0 hwm0 <<<"$(rss_with 0)"
  read -r rss1 hwm1 <<<"$(rss_with 1000000)"
  echo
  echo "## Memory: the sidecar process holding revoked entries"
  echo
  echo "Release sidecar (2 workers), entries fetched from a fake feed (1,000 pages of 1,000), /proc/PID/status once loaded."
  echo
  echo "| entries | VmRSS | VmHWM (peak) |"
  echo "|---|---|---|"
  echo "| 0 | $((rss0 / 1024)) MiB ($rss0 KiB) | $((hwm0 / 1024)) MiB |"
  echo "| 1,000,000 | $((rss1 / 1024)) MiB ($rss1 KiB) | $((hwm1 / 1024)) MiB |"
  echo
  echo "Per million entries: $(( (rss1 - rss0) / 1024 )) MiB resident. Goal: the whole process under 64 MiB: $([ "$rss1" -lt $((64 * 1024)) ] && [ "$hwm1" -lt $((64 * 1024)) ] && echo met || echo NOT met)."
fi

# ------------------------------------------------------------- 3. propagation
if ! skip propagation; then
  say "propagation: logout-all ack -> first 401 at the sidecar ($SAMPLES samples)"
  dir=$(mktemp -d)
  echo "- dev stack: $DEVSTACK_BIN" >&2
  # All samples log in from 127.0.0.1: lift the per-address login limit
  # (50 per 15 minutes), which would refuse the later samples' logins, and
  # the sign-up limit (20 per hour); accounts are made at once (revocation,
  # not sign-up, is measured).
  ISSUER_LOGIN_MAX_PER_ADDRESS=1000000 ISSUER_RECOVERY_MAX_PER_CLIENT=1000000 ISSUER_REQUIRE_VERIFIED_EMAIL=false \
  "$DEVSTACK_BIN" --data-dir "$dir" --gateway-port 0 --issuer-port 0 --sidecar-port 0 --backend-port 0 \
    > "$OUT/devstack.out" 2> "$OUT/devstack.err" &
  PIDS+=($!)
  deadline=$((SECONDS + 60))
  until grep -q "sidecar (forward auth)" "$OUT/devstack.out" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || die "devstack did not start: $(tail -5 "$OUT/devstack.err")"
    sleep 0.2
  done
  issuer=$(awk '/^  issuer / {print $2; exit}' "$OUT/devstack.out")
  sidecar=$(awk '/sidecar \(forward auth\)/ {print $4; exit}' "$OUT/devstack.out" | sed 's#/verify##')
  echo
  echo "## Propagation: logout-all acknowledged -> the old access token's first 401 at the sidecar"
  echo
  echo "Dev stack binary: \`$DEVSTACK_BIN\`."
  echo
  python3 - "$issuer" "$sidecar" "$SAMPLES" <<'PY'
import json, statistics, sys, time, urllib.request, urllib.error
issuer, sidecar, samples = sys.argv[1], sys.argv[2], int(sys.argv[3])
def call(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}, **({"content-type": "application/json"} if data else {})))
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
status, _ = call("GET", issuer + "/revocations")
if status != 200:
    print(f"NOT MEASURED: the issuer answers {status} on GET /revocations (the feed endpoint is not in this build).")
    sys.exit(0)
deadline = time.monotonic() + 60
while call("GET", sidecar + "/readyz")[0] != 200:
    if time.monotonic() > deadline:
        print("NOT MEASURED: the sidecar never became ready (first complete listing of the feed)."); sys.exit(0)
    time.sleep(0.1)
lat = []
for i in range(samples):
    email = f"bench{i}-{int(time.time())}@example.com"
    assert call("POST", issuer + "/register", {"email": email, "password": "correct horse battery"})[0] == 202
    s, body = call("POST", issuer + "/login", {"email": email, "password": "correct horse battery"})
    assert s == 200, s
    token = json.loads(body)["access_token"]
    auth = {"authorization": "Bearer " + token}
    assert call("GET", sidecar + "/verify", headers=auth)[0] == 200
    assert call("POST", issuer + "/logout-all", headers=auth)[0] == 200
    acked = time.monotonic()
    while True:
        s, _ = call("GET", sidecar + "/verify", headers=auth)
        if s == 401:
            lat.append(time.monotonic() - acked); break
        if time.monotonic() - acked > 60:
            print(f"sample {i}: still {s} after 60 s"); sys.exit(1)
        time.sleep(0.01)
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(round(p * (len(lat) - 1))))]
print(f"{len(lat)} samples, the sidecar polled every 10 ms after the ack; default settings (poll 1 s, issuer settle 1 s).")
print()
print("| p50 | p90 | p99 | max | mean |")
print("|---|---|---|---|---|")
print(f"| {q(0.5):.2f} s | {q(0.9):.2f} s | {q(0.99):.2f} s | {lat[-1]:.2f} s | {statistics.mean(lat):.2f} s |")
print()
print(f"Goal p99 <= 5 s: {'met' if q(0.99) <= 5 else 'NOT met'}.")
PY
  rm -rf "$dir"
fi
