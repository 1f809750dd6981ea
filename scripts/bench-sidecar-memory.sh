#!/usr/bin/env bash
# Memory soak of the sidecar (issue 2, "Performance": resident memory under
# 32 MiB after a million requests with random garbage tokens; never a 5xx).
#
# Usage: scripts/bench-sidecar-memory.sh [REQUESTS]      (default 1000000)
#
# Starts a local JWKS (the shared harness's jwks_server.py and keys) and the
# release sidecar pinned to CPU 1 with one worker and its default settings
# (4 MiB verified-token cache), then drives REQUESTS requests with wrk pinned
# to CPU 0, each carrying a freshly made bearer token:
#   70%  random garbage: b64url characters and dots, 1 to ~9,000 bytes long
#        (past the 8,192-byte token limit now and then), each one distinct;
#   10%  a well-formed header naming one of 4,096 random `kid`s (unknown
#        key: at most one JWKS refetch per cooldown);
#   10%  a real header and claims under a random signature (signature check);
#   10%  valid tokens (the harness's 10,000, cycled: enough to fill the
#        4 MiB verified-token cache to its bound).
# Prints VmRSS and VmHWM from /proc before and after, the status classes wrk
# saw (5xx must be 0), the sidecar's decision counters, and PASS/FAIL.
# Exits 1 when a goal is missed.
#
# Env (defaults in brackets):
#   BENCH_DIR [target/peer-bench]  the harness copy (prepared by setup.sh when
#                                  missing: wrk from Debian, keys, peers)
#   CONNS [8]            wrk connections
#   MAX_SECS [600]       wrk stops by then even if REQUESTS were not reached
#   SKIP_BUILD [0]       1: use $SIDECAR_BIN as it is
#   SIDECAR_BIN [target/release/sidecar]  the binary to soak
#   LIMIT_MIB [32]       the resident-memory goal
#   SERVER_CPU [1], CLIENT_CPU [0], SIDECAR_PORT [8210], JWKS_PORT [9100]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
REQUESTS="${1:-1000000}"
BENCH_DIR="${BENCH_DIR:-target/peer-bench}"
CONNS="${CONNS:-8}"
MAX_SECS="${MAX_SECS:-600}"
SKIP_BUILD="${SKIP_BUILD:-0}"
SIDECAR_BIN="${SIDECAR_BIN:-target/release/sidecar}"
LIMIT_MIB="${LIMIT_MIB:-32}"
SERVER_CPU="${SERVER_CPU:-1}"
CLIENT_CPU="${CLIENT_CPU:-0}"
SIDECAR_PORT="${SIDECAR_PORT:-8210}"
JWKS_PORT="${JWKS_PORT:-9100}"
SHARED="$ROOT/../shared/bench"

say() { printf '==> %s\n' "$*" >&2; }
die() { echo "bench-sidecar-memory: $*" >&2; exit 2; }

# ---- prerequisites -------------------------------------------------------------
for tool in cargo python3 taskset curl ss awk; do
  command -v "$tool" >/dev/null || die "'$tool' not found on PATH"
done
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (server on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU)"
if ! command -v wrk >/dev/null || [ ! -s "$BENCH_DIR/keys/tokens-rs256.txt" ]; then
  [ -x "$SHARED/setup.sh" ] || die "wrk or the harness keys are missing, and so is $SHARED/setup.sh"
  say "preparing the harness in $BENCH_DIR (../shared/bench/setup.sh)"
  "$SHARED/setup.sh" "$BENCH_DIR"
fi
command -v wrk >/dev/null || die "wrk not found (apt-get install -y wrk)"
for p in "$SIDECAR_PORT" "$JWKS_PORT"; do
  if ss -Hltn "sport = :$p" | grep -q .; then die "port $p is busy (set SIDECAR_PORT / JWKS_PORT)"; fi
done
if [ "$SKIP_BUILD" != 1 ]; then
  say "cargo build --release -p sidecar"
  cargo build --release -p sidecar
fi
[ -x "$SIDECAR_BIN" ] || die "no $SIDECAR_BIN"
KEYS="$(cd "$BENCH_DIR/keys" && pwd)"
WORK="$(mktemp -d -t sidecar-mem.XXXXXX)"
cp "$SIDECAR_BIN" "$WORK/sidecar" # a rebuild by someone else cannot change it mid-run

# ---- processes: only ever kill the PIDs started here ------------------------------
SRV_PID=""; JWKS_PID=""; WRK_PID=""
cleanup() {
  [ -n "$WRK_PID" ] && kill "$WRK_PID" 2>/dev/null || true
  [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null || true
  [ -n "$JWKS_PID" ] && kill "$JWKS_PID" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM # a handler that returns would let the script go on

taskset -c "$CLIENT_CPU" python3 "$SHARED/jwks_server.py" "$JWKS_PORT" "$KEYS/jwks.json" </dev/null >"$WORK/jwks.log" 2>&1 &
JWKS_PID=$!
for _ in $(seq 1 100); do curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$JWKS_PORT/jwks.json" && break; sleep 0.1; done
SIDECAR_LISTEN="127.0.0.1:$SIDECAR_PORT" AUTH_ISSUER="https://issuer.test" AUTH_AUDIENCE=api \
  AUTH_JWKS_URL="http://127.0.0.1:$JWKS_PORT/jwks.json" SIDECAR_WORKERS=1 RUST_LOG="${RUST_LOG:-info}" \
  taskset -c "$SERVER_CPU" "$WORK/sidecar" </dev/null >"$WORK/sidecar.log" 2>&1 &
SRV_PID=$!
BASE="http://127.0.0.1:$SIDECAR_PORT"
for _ in $(seq 1 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$BASE/readyz")" = 200 ] && break
  kill -0 "$SRV_PID" 2>/dev/null || { cat "$WORK/sidecar.log" >&2; die "the sidecar exited"; }
  sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$BASE/readyz")" = 200 ] || die "the sidecar is not ready (see $WORK/sidecar.log)"
taskset -a -p -c "$SERVER_CPU" "$SRV_PID" >/dev/null

mem() { awk '/^VmRSS|^VmHWM/{printf "%s %.1f MiB  ", $1, $2/1024}' "/proc/$SRV_PID/status"; }
kib() { awk -v k="$1:" '$1==k{print $2}' "/proc/$SRV_PID/status"; }
# one valid request first, so "before" is a sidecar that has served
curl -s -o /dev/null -H "Authorization: Bearer $(head -1 "$KEYS/tokens-rs256.txt")" "$BASE/verify"
RSS0=$(kib VmRSS); HWM0=$(kib VmHWM)
say "before: $(mem)"

# ---- the load -------------------------------------------------------------------------
cp "$KEYS/tokens-rs256.txt" "$WORK/valid.txt"
cat >"$WORK/garbage.lua" <<'LUA'
-- Random bearer tokens, one fresh per request; counts status classes; stops
-- the thread after N responses (wrk itself then waits for SIGINT, which the
-- shell script sends once the sidecar has answered them). Args: VALID_TOKEN_FILE N
local threads = {}
function setup(thread) table.insert(threads, thread) end

local valid, nvalid, N = {}, 0, 0
local buf, hdr_rs1, claims, hdr_random = nil, nil, nil, {}
-- globals, so done() can read them with thread:get()
seen, c2, c4, c5, cother = 0, 0, 0, 0, 0
local i = 0
local A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

local function b64chars(n)
  local t = {}
  for k = 1, n do local r = math.random(1, 64); t[k] = A:sub(r, r) end
  return table.concat(t)
end

-- a random 256-byte "signature": 342 characters, the last one with its 4
-- unused bits zero (the sidecar rejects non-canonical base64 as malformed)
local function sig()
  local r = math.random(1, 4)
  return b64chars(341) .. ("AQgw"):sub(r, r)
end

local function b64url(s) -- plain base64url without padding, for small JSON parts
  local b = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
  return ((s:gsub('.', function(x)
    local r, byte = '', x:byte()
    for k = 8, 1, -1 do r = r .. (byte % 2 ^ k - byte % 2 ^ (k - 1) > 0 and '1' or '0') end
    return r
  end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
    if #x < 6 then return '' end
    local c = 0
    for k = 1, 6 do c = c + (x:sub(k, k) == '1' and 2 ^ (6 - k) or 0) end
    return b:sub(c + 1, c + 1)
  end))
end

function init(args)
  math.randomseed(os.time() + (id or 0))
  for line in io.lines(args[1]) do
    if #line > 0 then nvalid = nvalid + 1; valid[nvalid] = line end
  end
  N = tonumber(args[2])
  -- 64 KiB of b64url characters with a dot now and then: garbage is a slice
  local t = {}
  for k = 1, 65536 do
    local r = math.random(1, 70)
    if r > 64 then t[k] = "." else t[k] = A:sub(r, r) end
  end
  buf = table.concat(t)
  hdr_rs1 = b64url('{"alg":"RS256","typ":"at+jwt","kid":"rs1"}')
  for k = 1, 4096 do -- headers naming unknown kids, made once (encoding is slow in Lua)
    hdr_random[k] = b64url('{"alg":"RS256","typ":"at+jwt","kid":"' .. b64chars(math.random(1, 40)) .. '"}')
  end
  claims = b64url('{"iss":"https://issuer.test","aud":"api","sub":"soak","scope":"read","iat":1700000000,"exp":4102444800,"jti":"x"}')
end

function request()
  i = i + 1
  local kind = i % 10
  local tok
  if kind == 0 then
    tok = valid[math.floor(i / 10) % nvalid + 1]
  elseif kind == 1 then
    tok = hdr_rs1 .. "." .. claims .. "." .. sig()
  elseif kind == 2 then
    tok = hdr_random[math.random(1, 4096)] .. "." .. claims .. "." .. sig()
  else
    -- mostly short, sometimes long, rarely past the 8 KiB token limit
    local r = math.random()
    local len
    if r < 0.6 then len = math.random(1, 200)
    elseif r < 0.95 then len = math.random(200, 2000)
    else len = math.random(2000, 9000) end
    local off = math.random(1, 65536 - len)
    tok = tostring(i) .. buf:sub(off, off + len - 1)
  end
  return wrk.format("GET", "/verify", { ["Authorization"] = "Bearer " .. tok })
end

function response(status, headers, body)
  seen = seen + 1
  if status >= 500 then c5 = c5 + 1
  elseif status >= 400 then c4 = c4 + 1
  elseif status >= 200 and status < 300 then c2 = c2 + 1
  else cother = cother + 1 end
  if seen >= N then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local t = { seen = 0, c2 = 0, c4 = 0, c5 = 0, cother = 0 }
  for _, th in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + (th:get(k) or 0) end
  end
  local e = summary.errors
  io.write(string.format("SOAK responses=%d s2xx=%d s4xx=%d s5xx=%d sother=%d sockerr=%d secs=%.1f rps=%.0f p99_us=%d\n",
    t.seen, t.c2, t.c4, t.c5, t.cother, e.connect + e.read + e.write + e.timeout,
    summary.duration / 1e6, summary.requests / (summary.duration / 1e6), latency:percentile(99)))
end
LUA

say "driving $REQUESTS requests (garbage 70%, unknown kid 10%, bad signature 10%, valid 10%), $CONNS connections"
# Requests the sidecar has decided (every /verify answer is one decision).
decided() { curl -s --max-time 5 "$BASE/metrics" | awk '/^auth_decisions_total/{n+=$NF} END{print n+0}'; }
D0=$(decided)
T0=$(date +%s.%N)
taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${MAX_SECS}s" --timeout 5s -s "$WORK/garbage.lua" "$BASE/verify" \
  -- "$WORK/valid.txt" "$REQUESTS" >"$WORK/wrk.txt" 2>&1 &
WRK_PID=$!
# wrk's thread stops itself after REQUESTS responses, but wrk sleeps out its
# -d: interrupt it (SIGINT makes it report and exit) once they are answered.
while kill -0 "$WRK_PID" 2>/dev/null; do
  sleep 0.5
  if [ $(( $(decided) - D0 )) -ge "$REQUESTS" ]; then sleep 0.5; kill -INT "$WRK_PID" 2>/dev/null || true; break; fi
done
wait "$WRK_PID" || { cat "$WORK/wrk.txt" >&2; die "wrk failed"; }
WRK_PID=""
T1=$(date +%s.%N)
RSS1=$(kib VmRSS); HWM1=$(kib VmHWM)
say "after:  $(mem)"
sleep 5
RSS2=$(kib VmRSS)
say "5 s later: $(mem)"
SOAK="$(grep '^SOAK ' "$WORK/wrk.txt" || true)"
[ -n "$SOAK" ] || { cat "$WORK/wrk.txt" >&2; die "wrk printed no SOAK line"; }
get() { echo "$SOAK" | tr ' ' '\n' | awk -F= -v k="$1" '$1==k{print $2}'; }
METRICS="$(curl -s --max-time 5 "$BASE/metrics" | grep -E '^auth_(decisions_total|token_cache|jwks_fetches)' | awk '$NF != 0')"
kill -0 "$SRV_PID" 2>/dev/null || die "the sidecar died during the soak"

resp=$(get responses); s5=$(get s5xx); serr=$(get sockerr)
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }
rss_ok=$([ "$RSS1" -lt $((LIMIT_MIB * 1024)) ] && echo PASS || echo FAIL)
hwm_ok=$([ "$HWM1" -lt $((LIMIT_MIB * 1024)) ] && echo PASS || echo FAIL)
n_ok=$([ "$resp" -ge "$REQUESTS" ] && echo PASS || echo FAIL)
s5_ok=$([ "$s5" = 0 ] && echo PASS || echo FAIL)
cat <<EOF

# Sidecar memory soak ($(date -u +%Y-%m-%dT%H:%M:%SZ))
machine: $(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | sed 's/^ *//'), $(nproc) CPUs, kernel $(uname -r)
sidecar: release, pinned to CPU $SERVER_CPU, SIDECAR_WORKERS=1, default cache (4 MiB); wrk -t1 -c$CONNS on CPU $CLIENT_CPU
wall time: $(awk -v a="$T0" -v b="$T1" 'BEGIN{printf "%.1f", b-a}') s; $SOAK

| measure | before | after $resp requests | 5 s later |
|---|---|---|---|
| VmRSS MiB | $(mib "$RSS0") | $(mib "$RSS1") | $(mib "$RSS2") |
| VmHWM MiB | $(mib "$HWM0") | $(mib "$HWM1") | |

responses: 2xx $(get s2xx), 4xx $(get s4xx), 5xx $s5, other $(get sother); socket errors $serr

sidecar counters (non-zero):
$METRICS

| goal | measured | result |
|---|---|---|
| at least $REQUESTS requests answered | $resp | $n_ok |
| VmRSS after < $LIMIT_MIB MiB | $(mib "$RSS1") MiB | $rss_ok |
| VmHWM (peak) < $LIMIT_MIB MiB | $(mib "$HWM1") MiB | $hwm_ok |
| no 5xx | $s5 | $s5_ok |
EOF
rm -rf "$WORK"
[ "$rss_ok$hwm_ok$n_ok$s5_ok" = PASSPASSPASSPASS ]
