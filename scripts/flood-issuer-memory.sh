#!/usr/bin/env bash
# Resident memory of `issuer serve` under login floods (issue 10, item 6).
#
# Builds the release `issuer` binary, serves it on a free loopback port with
# a temporary data directory and the default settings (hash concurrency =
# CPUs, 1 s queue wait), registers one user, then sends BURSTS bursts of
# CONCURRENCY concurrent logins with the right password (the case that
# hashes most). Resident memory (VmRSS from /proc/PID/status) is sampled
# every 20 ms: before (idle, after one login), the peak during each burst,
# and after each burst once the server is idle again. Prints a Markdown
# report with the date, commit and machine; the goal is < 128 MiB during and
# near the idle level after. Loopback only; every request has a timeout and
# the script stops by itself.
#
# Usage: scripts/flood-issuer-memory.sh [CONCURRENCY] [BURSTS]   (default 500 2)
set -euo pipefail
cd "$(dirname "$0")/.."
CONCURRENCY="${1:-500}"
BURSTS="${2:-2}"

cargo build --release --locked -p issuer --bin issuer >&2
BIN=target/release/issuer

DATA=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The flood measures hashing memory: the login attempt limits, which would
# refuse all but a few of these logins from one address before hashing, are
# lifted here.
# The one account is made at once (no verification mail).
ISSUER_LOGIN_MAX_PER_ACCOUNT_ADDRESS=1000 ISSUER_LOGIN_MAX_PER_ADDRESS=1000000 ISSUER_LOGIN_MAX_PER_ACCOUNT=1000000 \
ISSUER_REQUIRE_VERIFIED_EMAIL=false \
"$BIN" serve --listen "127.0.0.1:$PORT" --issuer-url "http://127.0.0.1:$PORT" --audience api \
  --data-dir "$DATA" >"$DATA/server.log" 2>&1 &
SERVER=$!
cleanup() {
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  rm -rf "$DATA"
}
trap cleanup EXIT

COMMIT=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- issuer || echo "+dirty")
PORT="$PORT" PID="$SERVER" N="$CONCURRENCY" BURSTS="$BURSTS" COMMIT="$COMMIT" python3 - <<'PY'
import http.client, json, os, platform, subprocess, threading, time
from collections import Counter

port, pid = int(os.environ["PORT"]), int(os.environ["PID"])
n, bursts = int(os.environ["N"]), int(os.environ["BURSTS"])
EMAIL, PASSWORD = "flood@example.com", "flood test passphrase 7"
MIB = 1024.0

def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS: did the server exit?")

def post(path, body, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        return r.status
    except OSError as e:
        return type(e).__name__
    finally:
        c.close()

deadline = time.monotonic() + 30
while True:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", "/.well-known/jwks.json")
        c.getresponse().read()
        break
    except OSError:
        if time.monotonic() > deadline:
            raise SystemExit("the issuer did not start within 30 s")
        time.sleep(0.1)

assert post("/register", {"email": EMAIL, "password": PASSWORD}) == 202, "register failed"
assert post("/login", {"email": EMAIL, "password": PASSWORD}) == 200, "login failed"

def settle(limit=10.0):
    """Waits until RSS stops changing (3 equal samples 200 ms apart) or the limit."""
    end, last, same = time.monotonic() + limit, None, 0
    while time.monotonic() < end:
        v = rss_kib()
        same = same + 1 if v == last else 0
        if same >= 3:
            return v
        last = v
        time.sleep(0.2)
    return rss_kib()

idle = settle()
rows = []
for b in range(1, bursts + 1):
    peak, stop = [rss_kib()], threading.Event()
    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kib())
            time.sleep(0.02)
    sampler = threading.Thread(target=sample)
    sampler.start()
    barrier, results = threading.Barrier(n), Counter()
    lock = threading.Lock()
    def one():
        barrier.wait(timeout=60)
        s = post("/login", {"email": EMAIL, "password": PASSWORD})
        with lock:
            results[s] += 1
    t0 = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    elapsed = time.monotonic() - t0
    stop.set()
    sampler.join()
    after = settle()
    rows.append((b, dict(sorted(results.items(), key=str)), peak[0], after, elapsed))

cpu = "unknown"
try:
    with open("/proc/cpuinfo") as f:
        cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
except (OSError, StopIteration):
    pass
print(f"# issuer memory under login floods\n")
print(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
print(f"- commit: {os.environ['COMMIT']}")
print(f"- machine: {platform.machine()}, {os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, shared with other builds")
print(f"- server: release `issuer serve`, SQLite store, default settings (hash concurrency = CPUs, 1 s queue wait)")
print(f"- load: {bursts} bursts of {n} concurrent logins with the right password, one connection each, loopback")
print(f"- goal: resident memory < 128 MiB during a burst, near the idle level after\n")
print(f"idle (after one register and one login): **{idle / MIB:.1f} MiB**\n")
print("| burst | answers (status: count) | peak RSS during | RSS after | burst time |")
print("|---|---|---|---|---|")
ok = True
for b, res, pk, af, el in rows:
    ans = ", ".join(f"{k}: {v}" for k, v in res.items())
    print(f"| {b} | {ans} | {pk / MIB:.1f} MiB | {af / MIB:.1f} MiB | {el:.1f} s |")
    ok &= pk < 128 * 1024
print()
print(f"result: peak {'below' if ok else 'ABOVE'} 128 MiB; after the last burst "
      f"{(rows[-1][3] - idle) / MIB:+.1f} MiB from idle")
if not ok:
    raise SystemExit(1)
PY
