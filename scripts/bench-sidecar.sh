#!/usr/bin/env bash
# Load benchmark of the sidecar beside the peer harness (tests/peer-bench):
# the original Express stack, aws-jwt-verify, jose, and a bare hyper server that
# verifies nothing (the HTTP ceiling), all in the same run, so the figures
# compare as ratios. Prints the issue's goals (issue 2, "Performance") as
# ratios with pass/fail.
#
# Usage: scripts/bench-sidecar.sh [DURATION]        (from anywhere; default 15 s)
#
# Steps:
#   1. cargo build --release -p sidecar, and copy the binary into the bench
#      directory (a rebuild by someone else cannot change it mid-run);
#   2. prepare the harness once into $BENCH_DIR (tests/peer-bench/setup.sh: wrk
#      from Debian if missing, a Python venv, `npm ci` of the Node peers from
#      their lockfile, the ceiling server) unless it is already there;
#   3. write sidecar-peer.sh there (maps the harness's PORT, JWKS_URL, ISS,
#      AUD to SIDECAR_LISTEN, AUTH_JWKS_URL, AUTH_ISSUER, AUTH_AUDIENCE, one
#      worker for the one pinned core) and our lines in peers.conf:
#        sidecar          the shipped defaults (4 MiB verified-token cache)
#        sidecar-nocache  AUTH_TOKEN_CACHE_BYTES=0: every request pays the
#                         signature check (the honest "distinct tokens" figure:
#                         10,000 tokens of ~480 bytes of cache weight nearly
#                         fit the default cache, so `sidecar` in cycle mode is
#                         partly cache hits)
#   4. run-all.sh: every peer x {RS256, ES256} x {cycle (10,000 distinct
#      tokens), hot (100 repeated)}, REPEAT times interleaved, each window
#      waiting for a quiet machine and retried when others used the CPU;
#   5. measure the default sidecar's cache hit rate in cycle mode (/metrics);
#   6. p99 at the same load: the bare server and the sidecar paced by wrk to
#      the same request rate (run-all.sh's closed loop runs each at its own
#      maximum, so its p99s are taken at different loads);
#   7. print the summary (also written to out/run-*/summary.md).
#
# Env (defaults in brackets):
#   REPEAT [2]          repetitions (interleaved)
#   BENCH_DIR [target/peer-bench]  harness copy (relative to the repo root)
#   PEERS ["sidecar sidecar-nocache seed-express aws-jwt-verify jose ceiling"]
#   BASELINE_BIN []     a second sidecar binary to bench in the same run as
#                       sidecar-base / sidecar-base-nocache (before/after)
#   SKIP_BUILD [0]      1: use the binary already in $BENCH_DIR/bin
#   HITRATE [1]         0: skip step 5
#   PACED [1]           0: skip step 6; PACE_CONNS [16], PACE_MS [1] its load
#   SUMMARY_ONLY []     a run directory (out/run-*): only print its summary
#   ALGS, MODES, ATTEMPTS, QUIET_MAX, ... are passed through to run-all.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DURATION="${1:-15}"
export REPEAT="${REPEAT:-2}"
BENCH_DIR="${BENCH_DIR:-target/peer-bench}"
PEERS="${PEERS:-sidecar sidecar-nocache seed-express aws-jwt-verify jose ceiling}"
BASELINE_BIN="${BASELINE_BIN:-}"
SKIP_BUILD="${SKIP_BUILD:-0}"
HITRATE="${HITRATE:-1}"
PACED="${PACED:-1}"
PACE_CONNS="${PACE_CONNS:-16}"
PACE_MS="${PACE_MS:-1}"
SHARED="$ROOT/tests/peer-bench"

say() { printf '\n==> %s\n' "$*" >&2; }
die() { echo "bench-sidecar: $*" >&2; exit 2; }

# ---- the summary: ratios from one run's bench.txt / rawops.txt -------------------------
summary() {
  python3 - "$1" <<'PY'
import sys
from pathlib import Path

run = Path(sys.argv[1])

def kv(line):
    return dict(t.split("=", 1) for t in line.split()[1:] if "=" in t)

bench, raw, attempts = {}, {}, []
for line in (run / "bench.txt").read_text().splitlines():
    if line.startswith("BENCH "):
        r = kv(line)
        attempts.append(r)
        if r.get("final") == "1":
            bench.setdefault((r["peer"], r["alg"], r["mode"]), []).append(r)
for line in (run / "rawops.txt").read_text().splitlines() if (run / "rawops.txt").exists() else []:
    if line.startswith("RAW "):
        r = kv(line)
        if r.get("final") == "1" and r.get("ops"):
            raw.setdefault((r["alg"], r["variant"]), []).append(float(r["ops"]))

def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")

def rps(peer, alg, mode):
    return mean([float(r["rps"]) for r in bench.get((peer, alg, mode), [])])

def reps(peer, alg, mode, key, scale=1.0):
    return " / ".join(f"{float(r[key]) * scale:,.{0 if scale == 1 else 2}f}" for r in bench.get((peer, alg, mode), []))

def p99(peer, alg, mode):
    return mean([float(r["p99_us"]) for r in bench.get((peer, alg, mode), [])])

def verdict(ok):
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")

def ratio(a, b):
    return a / b if a == a and b == b and b else float("nan")

out = []
env = (run / "env.txt").read_text().strip() if (run / "env.txt").exists() else ""
out.append(f"# Sidecar benchmark summary: `{run.name}`\n")
out.append("```\n" + env + "\n```\n")
out.append("Means over the repetitions (each repetition's figure in the tables after).\n")

sidecars = [p for p in ["sidecar-nocache", "sidecar", "sidecar-base-nocache", "sidecar-base"]
            if any(k[0] == p for k in bench)]
goals = []
for alg in ["rs256", "es256"]:
    A = alg.upper()
    ceil_c, ceil_h = rps("ceiling", alg, "cycle"), rps("ceiling", alg, "hot")
    verify = mean(raw.get((alg, "aws_lc_rs"), []))
    prim = mean(raw.get((alg, "primitive"), []))
    bound = 1 / (1 / ceil_c + 1 / verify) if ceil_c == ceil_c and verify == verify else float("nan")
    out.append(f"## {A}\n")
    out.append(f"- ceiling (bare hyper) rps: cycle {ceil_c:,.0f} ({reps('ceiling', alg, 'cycle', 'rps')}), "
               f"hot {ceil_h:,.0f} ({reps('ceiling', alg, 'hot', 'rps')}); "
               f"p99 cycle {p99('ceiling', alg, 'cycle') / 1000:.2f} ms, hot {p99('ceiling', alg, 'hot') / 1000:.2f} ms")
    out.append(f"- in-process verify (jwtops, jsonwebtoken aws-lc): {verify:,.0f}/s "
               f"({' / '.join(f'{x:,.0f}' for x in raw.get((alg, 'aws_lc_rs'), []))}); "
               f"bare aws-lc-rs check: {prim:,.0f}/s")
    out.append(f"- bound 1/(1/ceiling + 1/verify) = {bound:,.0f} req/s")
    for p in ["seed-express", "aws-jwt-verify", "jose"]:
        if (p, alg, "cycle") in bench:
            out.append(f"- {p}: cycle {rps(p, alg, 'cycle'):,.0f} req/s ({reps(p, alg, 'cycle', 'rps')}), "
                       f"p99 {p99(p, alg, 'cycle') / 1000:.2f} ms, peak RSS "
                       f"{reps(p, alg, 'cycle', 'rss_peak_kb', 1 / 1024)} MiB")
    out.append("")
    out.append("| server | cycle req/s | × Express | × aws-jwt-verify | / bound | hot req/s | hot / ceiling | "
               "p99 cycle ms (× ceiling) | p99 hot ms (× ceiling) | peak RSS MiB (max) |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for p in sidecars:
        c, h = rps(p, alg, "cycle"), rps(p, alg, "hot")
        xe, xa = ratio(c, rps("seed-express", alg, "cycle")), ratio(c, rps("aws-jwt-verify", alg, "cycle"))
        xb, xh = ratio(c, bound), ratio(h, ceil_h)
        pc, ph = p99(p, alg, "cycle"), p99(p, alg, "hot")
        rc, rh = ratio(pc, p99("ceiling", alg, "cycle")), ratio(ph, p99("ceiling", alg, "hot"))
        rss = [float(r["rss_peak_kb"]) / 1024 for m in ("cycle", "hot") for r in bench.get((p, alg, m), [])]
        out.append(f"| {p} | {c:,.0f} ({reps(p, alg, 'cycle', 'rps')}) | {xe:.1f}× | {xa:.2f}× | {xb:.0%} | "
                   f"{h:,.0f} ({reps(p, alg, 'hot', 'rps')}) | {xh:.0%} | {pc / 1000:.2f} ({rc:.2f}×) | "
                   f"{ph / 1000:.2f} ({rh:.2f}×) | {max(rss) if rss else float('nan'):.1f} |")
        if alg == "rs256":
            goals.append((p, "distinct RS256 >= 15x Express", f"{xe:.1f}×", xe >= 15 if xe == xe else None))
            goals.append((p, "distinct RS256 >= 3.5x aws-jwt-verify", f"{xa:.2f}×", xa >= 3.5 if xa == xa else None))
            goals.append((p, "distinct RS256 >= 90% of bound", f"{xb:.0%}", xb >= 0.9 if xb == xb else None))
            if not p.endswith("nocache"):  # repeated tokens are the cache's job
                goals.append((p, "repeated RS256 >= 80% of bare hyper", f"{xh:.0%}", xh >= 0.8 if xh == xh else None))
            goals.append((p, "p99 hot <= 2x bare hyper (closed loop)", f"{rh:.2f}×", rh <= 2 if rh == rh else None))
            goals.append((p, "p99 cycle <= 2x bare hyper (closed loop)", f"{rc:.2f}×", rc <= 2 if rc == rc else None))
    out.append("")

out.append("## Goals (issue 2), RS256\n")
out.append("`sidecar-nocache` pays a signature check on every request (the distinct-token figure); "
           "`sidecar` runs the shipped defaults, whose 4 MiB token cache holds much of the 10,000 cycled tokens.\n")
out.append("| server | goal | measured | result |")
out.append("|---|---|---|---|")
for p, g, m, ok in goals:
    out.append(f"| {p} | {g} | {m} | {verdict(ok)} |")
bcr = 1 / (1 / rps("ceiling", "rs256", "cycle") + 1 / mean(raw.get(("rs256", "aws_lc_rs"), [float("nan")])))
out.append(f"\nFor scale: 15x Express = {15 * rps('seed-express', 'rs256', 'cycle'):,.0f} req/s and 3.5x aws-jwt-verify = "
           f"{3.5 * rps('aws-jwt-verify', 'rs256', 'cycle'):,.0f} req/s, against a bound of {bcr:,.0f} req/s "
           f"for a server that checks one RS256 signature per request.")

hr = run / "hitrate.txt"
if hr.exists():
    for line in hr.read_text().splitlines():
        if line.startswith("HITRATE "):
            r = kv(line)
            h, m = int(r["hits"]), int(r["misses"])
            if h + m:
                out.append(f"\nDefault `sidecar`, RS256 cycle mode (warm-up + window): {h:,} cache hits, {m:,} misses "
                           f"({h / (h + m):.0%} hits).")

pc = run / "paced.txt"
if pc.exists():
    rows = [kv(l) for l in pc.read_text().splitlines() if l.startswith("PACED ")]
    if rows:
        out.append("\n## p99 at the same load (RS256, wrk paced: "
                   f"{rows[0]['conns']} connections, {rows[0]['pace_ms']} ms pause after each response)\n")
        out.append("| server | mode | req/s | p50 ms | p99 ms | p99 × bare | server CPU % | others on server core % |")
        out.append("|---|---|---|---|---|---|---|---|")
        base = {}
        for r in rows:
            if r["peer"] == "ceiling":
                base.setdefault(r["rep"], float(r["p99_us"]))
        for r in rows:
            b = base.get(r["rep"])
            x = float(r["p99_us"]) / b if b else float("nan")
            out.append(f"| {r['peer']} (rep {r['rep']}) | {r['mode']} | {float(r['rps']):,.0f} | "
                       f"{int(r['p50_us']) / 1000:.2f} | {int(r['p99_us']) / 1000:.2f} | {x:.2f}× | "
                       f"{r['srv_cpu_pct']} | {r['srvcpu_other_pct']} |")
            if r["peer"] != "ceiling":
                goals.append((f"{r['peer']} {r['mode']} rep {r['rep']}", "p99 <= 2x bare hyper at the same paced load",
                              f"{x:.2f}×", x <= 2 if x == x else None))
        out.append("\n| server | goal | measured | result |")
        out.append("|---|---|---|---|")
        for p, g, m, ok in goals:
            if "paced" in g:
                out.append(f"| {p} | {g} | {m} | {verdict(ok)} |")

# contamination: every attempt is kept; final=1 is the one reported
retried = [r for r in attempts if r.get("final") != "1"]
finals = [r for r in attempts if r.get("final") == "1"]
def dirty(r):
    return (int(r.get("other_cpu_pct", 0)) > 25 or int(r.get("srvcpu_other_pct", 0)) > 10
            or int(r.get("steal_pct", 0)) > 10 or r.get("quiet") == "no")
out.append("\n## Contamination\n")
out.append(f"- windows measured: {len(attempts)}, reported: {len(finals)}, discarded as contaminated (and retried): {len(retried)}")
bad = [r for r in finals if dirty(r)]
out.append(f"- reported windows still contaminated: {len(bad)}" + (": " + ", ".join(
    f"{r['peer']} {r['alg']} {r['mode']} rep {r['rep']} (other {r['other_cpu_pct']}%, on server core "
    f"{r.get('srvcpu_other_pct', '?')}%, steal {r.get('steal_pct', '?')}%, quiet {r.get('quiet')})" for r in bad) if bad else ""))
if finals:
    out.append(f"- other CPU in reported windows: max {max(int(r['other_cpu_pct']) for r in finals)}% of a core, "
               f"on the server's core max {max(int(r.get('srvcpu_other_pct', 0)) for r in finals)}%, "
               f"steal max {max(int(r.get('steal_pct', 0)) for r in finals)}%")
for r in retried:
    out.append(f"  - discarded: {r['peer']} {r['alg']} {r['mode']} rep {r['rep']} attempt {r['attempt']} "
               f"(other {r['other_cpu_pct']}%, steal {r.get('steal_pct', '?')}%)")
print("\n".join(out))
PY
}

# ---- prerequisites -----------------------------------------------------------
if [ -n "${SUMMARY_ONLY:-}" ]; then # re-print the summary of an earlier run directory
  summary "$SUMMARY_ONLY"
  exit 0
fi
[ -x "$SHARED/setup.sh" ] || die "the peer harness is missing: expected $SHARED/setup.sh"
for tool in cargo python3 node npm taskset curl ss awk setsid; do
  command -v "$tool" >/dev/null || die "'$tool' not found on PATH (needed by the harness)"
done
[ -x /usr/bin/time ] || die "/usr/bin/time not found (apt-get install -y time)"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (server on CPU 1, wrk on CPU 0); this machine has $(nproc)"
if [ -n "$BASELINE_BIN" ]; then
  [ -x "$BASELINE_BIN" ] || die "BASELINE_BIN=$BASELINE_BIN is not an executable"
  BASELINE_BIN="$(readlink -f "$BASELINE_BIN")"
fi

# ---- 1. the release binary -----------------------------------------------------
mkdir -p "$BENCH_DIR/bin"
if [ "$SKIP_BUILD" != 1 ]; then
  say "cargo build --release -p sidecar"
  cargo build --release -p sidecar
  cp target/release/sidecar "$BENCH_DIR/bin/sidecar.new" && mv "$BENCH_DIR/bin/sidecar.new" "$BENCH_DIR/bin/sidecar"
fi
[ -x "$BENCH_DIR/bin/sidecar" ] || die "no $BENCH_DIR/bin/sidecar (run without SKIP_BUILD=1)"
if [ -n "$BASELINE_BIN" ]; then cp "$BASELINE_BIN" "$BENCH_DIR/bin/sidecar-base"; fi

# ---- 2. the harness, once --------------------------------------------------------
ready() {
  command -v wrk >/dev/null && [ -x "$BENCH_DIR/.venv/bin/python" ] && [ -s "$BENCH_DIR/keys/tokens-rs256.txt" ] &&
    [ -d "$BENCH_DIR/node/node_modules" ] && [ -x "$BENCH_DIR/ceiling/target/release/ceiling-server" ] &&
    [ -x "$BENCH_DIR/ceiling/target/release/jwtops" ] && [ -x "$BENCH_DIR/run-all.sh" ]
}
if ready; then
  say "harness already prepared in $BENCH_DIR"
else
  say "preparing the harness in $BENCH_DIR (tests/peer-bench/setup.sh)"
  "$SHARED/setup.sh" "$BENCH_DIR"
  ready || die "setup.sh finished but the harness in $BENCH_DIR is incomplete"
fi

# ---- 3. our peers ------------------------------------------------------------------
cat >"$BENCH_DIR/sidecar-peer.sh" <<'EOF'
#!/usr/bin/env bash
# Written by scripts/bench-sidecar.sh. Runs the sidecar under the harness's
# contract: PORT, JWKS_URL, ISS, AUD from run-all.sh; extra KEY=VALUE
# arguments are exported too (e.g. AUTH_TOKEN_CACHE_BYTES=0).
# Usage: ./sidecar-peer.sh BINARY [KEY=VALUE...]
set -euo pipefail
bin="${1:?usage: sidecar-peer.sh BINARY [KEY=VALUE...]}"; shift
export SIDECAR_LISTEN="127.0.0.1:${PORT:?}"
export AUTH_ISSUER="${ISS:?}" AUTH_AUDIENCE="${AUD:?}" AUTH_JWKS_URL="${JWKS_URL:?}"
export SIDECAR_WORKERS=1 # the server under test gets one pinned core
export RUST_LOG="${RUST_LOG:-info}"
for kv in "$@"; do export "${kv?}"; done
exec "$bin"   # exec: run-all.sh measures and kills this PID
EOF
chmod +x "$BENCH_DIR/sidecar-peer.sh"

# The harness copy's peers.conf, with our lines (replaced on every run).
conf="$BENCH_DIR/peers.conf"
grep -v -E '^sidecar(-[a-z-]+)? ' "$conf" >"$conf.tmp" || true
{
  cat "$conf.tmp"
  echo "sidecar          8200 yes ./sidecar-peer.sh bin/sidecar"
  echo "sidecar-nocache  8201 yes ./sidecar-peer.sh bin/sidecar AUTH_TOKEN_CACHE_BYTES=0"
  if [ -n "$BASELINE_BIN" ]; then
    echo "sidecar-base         8202 yes ./sidecar-peer.sh bin/sidecar-base"
    echo "sidecar-base-nocache 8203 yes ./sidecar-peer.sh bin/sidecar-base AUTH_TOKEN_CACHE_BYTES=0"
  fi
} >"$conf"
rm -f "$conf.tmp"
if [ -n "$BASELINE_BIN" ] && [[ " $PEERS " != *" sidecar-base "* ]]; then
  PEERS="sidecar-base sidecar-base-nocache $PEERS"
fi

# ---- processes: only ever kill the PIDs started here ------------------------------------
SRV_PID=""; JWKS_PID=""; RUNALL_PID=""
cleanup() {
  if [ -n "$RUNALL_PID" ] && kill -0 "$RUNALL_PID" 2>/dev/null; then
    # run-all.sh carries on after a TERM (its handler returns), and a KILL
    # would orphan its peer, JWKS server and wrk: stop its whole process
    # group, which setsid made for it alone.
    kill -TERM -- "-$RUNALL_PID" 2>/dev/null || true
    sleep 1
    kill -KILL -- "-$RUNALL_PID" 2>/dev/null || true
  fi
  [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null || true
  [ -n "$JWKS_PID" ] && kill "$JWKS_PID" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM # a handler that returns would let the script go on

# ---- 4. the run ------------------------------------------------------------------------
cd "$BENCH_DIR"
say "run-all.sh $DURATION with REPEAT=$REPEAT, peers: $PEERS"
before="$(ls -d out/run-* 2>/dev/null | sort | tail -1 || true)"
t0=$(date +%s)
ONLY="$PEERS" setsid ./run-all.sh "$DURATION" &
RUNALL_PID=$! # also its process group id
wait "$RUNALL_PID"
RUNALL_PID=""
RUN="$(ls -d out/run-* | sort | tail -1)"
[ "$RUN" != "$before" ] || die "run-all.sh wrote no new out/run-* directory"
say "run-all.sh took $(( $(date +%s) - t0 )) s: $BENCH_DIR/$RUN"

# ---- 5. cache hit rate of the default sidecar on 10,000 cycled tokens ------------------
metric() { curl -s --max-time 5 "http://127.0.0.1:8200/metrics" | awk -v m="$1" '$1==m{print $2}'; }
if [ "$HITRATE" = 1 ] && [[ " $PEERS " == *" sidecar "* ]]; then
  say "cache hit rate of the default sidecar in cycle mode"
  if ! ss -Hltn "sport = :9000" | grep -q .; then
    taskset -c 0 python3 jwks_server.py 9000 keys/jwks.json </dev/null >"$RUN/logs/jwks-hitrate.log" 2>&1 &
    JWKS_PID=$!
    sleep 1
  fi
  PORT=8200 JWKS_URL="http://127.0.0.1:9000/jwks.json" ISS="https://issuer.test" AUD=api \
    taskset -c 1 ./sidecar-peer.sh bin/sidecar </dev/null >"$RUN/logs/sidecar-hitrate.log" 2>&1 &
  SRV_PID=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null --max-time 1 http://127.0.0.1:8200/healthz && break; sleep 0.1; done
  # bench.sh warms up first; count hits and misses over warm-up + window.
  h0=$(metric auth_token_cache_hits_total); m0=$(metric auth_token_cache_misses_total)
  SERVER_PID="$SRV_PID" ./bench.sh http://127.0.0.1:8200/verify keys/tokens-rs256.txt "$DURATION" cycle \
    | tee "$RUN/hitrate.txt" | head -1 || true
  h1=$(metric auth_token_cache_hits_total); m1=$(metric auth_token_cache_misses_total)
  echo "HITRATE hits=$((h1 - h0)) misses=$((m1 - m0))" >>"$RUN/hitrate.txt"
  kill "$SRV_PID"; wait "$SRV_PID" 2>/dev/null || true; SRV_PID=""
  [ -n "$JWKS_PID" ] && { kill "$JWKS_PID"; wait "$JWKS_PID" 2>/dev/null || true; JWKS_PID=""; }
fi

# ---- 6. p99 at the same load: every server paced to the same request rate --------------
# run-all.sh drives each server as fast as it goes (closed loop), so the bare
# server's p99 there is taken at a higher load. Here wrk paces every connection
# (PACE_MS between a response and the next request), so each server gets the
# same offered rate, below all their capacities.
if [ "$PACED" = 1 ]; then
  say "p99 at the same load: $PACE_CONNS connections, ${PACE_MS} ms pause each, ${DURATION} s windows"
  cat >paced.lua <<'LUA'
-- tokens.lua with a pause: each connection waits PACE_MS after a response.
-- Args: TOKENFILE LIMIT PACE_MS
dofile("tokens.lua")
local base_init = init
local pace = 1
function init(args)
  pace = tonumber(args[3] or "1") or 1
  base_init(args)
end
function delay() return pace end
LUA
  if ! ss -Hltn "sport = :9000" | grep -q .; then
    taskset -c 0 python3 jwks_server.py 9000 keys/jwks.json </dev/null >"$RUN/logs/jwks-paced.log" 2>&1 &
    JWKS_PID=$!
    sleep 1
  fi
  . ./lib.sh
  : >"$RUN/paced.txt"
  for rep in $(seq 1 "$REPEAT"); do
    for spec in "ceiling 8199 cycle ceiling/target/release/ceiling-server 8199 1" \
                "sidecar 8200 cycle ./sidecar-peer.sh bin/sidecar" \
                "sidecar-nocache 8201 cycle ./sidecar-peer.sh bin/sidecar AUTH_TOKEN_CACHE_BYTES=0" \
                "sidecar 8200 hot ./sidecar-peer.sh bin/sidecar"; do
      read -r name port mode cmd <<<"$spec"
      # shellcheck disable=SC2086
      PORT="$port" JWKS_URL="http://127.0.0.1:9000/jwks.json" ISS="https://issuer.test" AUD=api \
        taskset -c 1 $cmd </dev/null >"$RUN/logs/$name-paced.log" 2>&1 &
      SRV_PID=$!
      for _ in $(seq 1 100); do curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/" && break; sleep 0.1; done
      limit=0; [ "$mode" = hot ] && limit=100
      wrk_paced() {
        taskset -c 0 wrk -t1 -c"$PACE_CONNS" -d"$1"s --timeout 5s -s paced.lua "http://127.0.0.1:$port/verify" \
          -- "$PWD/keys/tokens-rs256.txt" "$limit" "$PACE_MS"
      }
      wait_quiet "$SRV_PID"
      wrk_paced 3 >/dev/null
      read -r _ _ n0 <<<"$(sys_ticks)"; c0=$(proc_ticks "$SRV_PID")
      res="$(wrk_paced "$DURATION" | grep '^RESULT ' || true)"
      read -r _ _ n1 <<<"$(sys_ticks)"; c1=$(proc_ticks "$SRV_PID")
      line="PACED rep=$rep peer=$name mode=$mode conns=$PACE_CONNS pace_ms=$PACE_MS ${res#RESULT } srv_cpu_pct=$(( (c1 - c0) * 100 / $(getconf CLK_TCK) / DURATION )) srvcpu_other_pct=$(( ((n1 - n0) - (c1 - c0)) > 0 ? ((n1 - n0) - (c1 - c0)) * 100 / $(getconf CLK_TCK) / DURATION : 0 )) quiet=$QUIET"
      echo "$line" | tee -a "$RUN/paced.txt" >&2
      kill "$SRV_PID"; wait "$SRV_PID" 2>/dev/null || true; SRV_PID=""
    done
  done
  [ -n "$JWKS_PID" ] && { kill "$JWKS_PID"; wait "$JWKS_PID" 2>/dev/null || true; JWKS_PID=""; }
fi

# ---- 7. summary ------------------------------------------------------------------------
summary "$RUN" | tee "$RUN/summary.md"
echo
echo "full table: $BENCH_DIR/$RUN/results.md   summary: $BENCH_DIR/$RUN/summary.md"
