#!/usr/bin/env python3
"""Turns the BENCH lines of scripts/bench-node-seed.sh into docs/bench/node-seed.md
and docs/bench/node-seed.toml: the measured figures (median over rounds, and
the seed/ours ratio of each round), then the Lambda duration bill per million
requests for each stack at its typical memory size.

Billing model (stated in the page): Lambda bills duration per 1 ms, rounded
up, at memory x time; requests at a flat price per million. CPU is allotted
in proportion to memory (1,769 MB = one vCPU). The figures here are measured
on one whole CPU, so the billed duration is given twice: as measured (a
lower bound: what a function with a full vCPU or more would take) and scaled by
1769 / memory for functions below 1,769 MB (an upper bound for CPU-bound
work: a sub-millisecond invocation may finish inside its CPU quota period
without being throttled).
"""
import argparse
import math
import statistics
import tomllib
from collections import defaultdict

VCPU_MB = 1769


def parse(path):
    """{(label, what): [ {key: value} per round ]}"""
    out = defaultdict(list)
    for line in open(path):
        if not line.startswith("BENCH "):
            continue
        kv = dict(p.split("=", 1) for p in line.split()[1:] if "=" in p)
        out[(kv["label"], kv["what"])].append(kv)
    return out


def med(rows, key):
    vals = [float(r[key]) for r in rows]
    return statistics.median(vals) if vals else float("nan")


def last_memory(rows):
    """The last memory checkpoint of each round: median of hwm_kib, in MiB."""
    return statistics.median(float(r["hwm_kib"]) for r in rows) / 1024


def main():
    ap = argparse.ArgumentParser()
    for a in ("raw", "times", "prices", "mode", "date", "commit", "machine", "node", "rustc", "versions", "md", "toml"):
        ap.add_argument("--" + a, required=True)
    a = ap.parse_args()
    d = parse(a.raw)
    prices = tomllib.load(open(a.prices, "rb"))
    lam = prices["lambda"]
    gbs = {"arm64": lam["gb_second_arm64_tiers"][0][1], "x86_64": lam["gb_second_x86_tiers"][0][1]}
    req_price = lam["requests_per_million"]
    rounds = max(int(r["round"]) for rows in d.values() for r in rows)

    def rt(label, key="mean_us"):
        return med(d[(label, "round_trip")], key) / 1000  # ms

    def per_round(label, what, key, scale=1.0):
        return {int(r["round"]): float(r[key]) * scale for r in d[(label, what)]}

    # Measured figures, in ms.
    fig = {
        "ours-authz-init": med(d[("ours-authz-init", "init")], "median_ms"),
        "seed-authz-init": med(d[("seed-authz-init", "init")], "median_ms"),
        "seed-login-init": med(d[("seed-login-init", "init")], "median_ms"),
    }
    ratios = {
        "authorizer init (median of runs)": (per_round("seed-authz-init", "init", "median_ms"), per_round("ours-authz-init", "init", "median_ms")),
        "authorizer, one token: p50": (per_round("seed-authz-hot", "round_trip", "p50_us"), per_round("ours-authz-hot", "round_trip", "p50_us")),
        "authorizer, one token: p99": (per_round("seed-authz-hot", "round_trip", "p99_us"), per_round("ours-authz-hot", "round_trip", "p99_us")),
        "authorizer, distinct tokens: p50": (per_round("seed-authz-distinct", "round_trip", "p50_us"), per_round("ours-authz-distinct", "round_trip", "p50_us")),
        "authorizer, distinct tokens: p99": (per_round("seed-authz-distinct", "round_trip", "p99_us"), per_round("ours-authz-distinct", "round_trip", "p99_us")),
        "login: mean": (per_round("seed-login", "round_trip", "mean_us", 1 / 1000), per_round("ours-login", "login_app", "mean_ms")),
        "login: p99": (per_round("seed-login", "round_trip", "p99_us", 1 / 1000), per_round("ours-login", "login_app", "p99_ms")),
    }

    def ratio_cells(pair):
        seed, ours = pair
        rs = [seed[k] / ours[k] for k in sorted(seed) if k in ours and ours[k] > 0]
        return rs

    # Every invocation's time, all rounds, in ns (`--times-out` of each run).
    def samples(label):
        out = []
        for r in range(1, rounds + 1):
            path = f"{a.times}/{label}-{r}.txt"
            out += [int(x) for x in open(path).read().split()]
        if not out:
            raise SystemExit(f"no samples for {label}")
        return out

    def pct(xs, p):
        xs = sorted(xs)
        return xs[max(1, math.ceil(len(xs) * p)) - 1]

    # The bill: one row per request kind, stack, memory and architecture.
    plan = [
        ("authorizer_distinct", "ours (Rust)", 128, "arm64", "ours-authz-distinct"),
        ("authorizer_distinct", "seed (Node.js)", 256, "x86_64", "seed-authz-distinct"),
        ("authorizer_distinct", "seed (Node.js)", 256, "arm64", "seed-authz-distinct"),
        ("authorizer_cached", "ours (Rust)", 128, "arm64", "ours-authz-hot"),
        ("authorizer_cached", "seed (Node.js)", 256, "x86_64", "seed-authz-hot"),
        ("authorizer_cached", "seed (Node.js)", 256, "arm64", "seed-authz-hot"),
        ("login", "ours (Rust)", 1024, "arm64", "ours-login"),
        ("login", "seed (Node.js)", 256, "x86_64", "seed-login"),
        ("login", "seed (Node.js)", 256, "arm64", "seed-login"),
    ]
    sample = {label: samples(label) for *_, label in plan}

    def bill(mem, arch, xs, factor):
        """Mean billed ms (each invocation rounded up to 1 ms), GB-s and $ per million."""
        ms = statistics.fmean(math.ceil(ns * factor / 1e6) for ns in xs)
        gb_s = ms / 1000 * mem / 1024 * 1e6
        return ms, gb_s, gb_s * gbs[arch]

    billed = []
    for kind, stack, mem, arch, label in plan:
        xs = sample[label]
        factor = max(1.0, VCPU_MB / mem)
        mean, p50, p99 = statistics.fmean(xs) / 1e6, pct(xs, 0.5) / 1e6, pct(xs, 0.99) / 1e6
        over_1ms = sum(1 for ns in xs if ns > 1_000_000) / len(xs)
        billed.append((kind, stack, mem, arch, mean, p50, p99, factor, bill(mem, arch, xs, 1.0), bill(mem, arch, xs, factor), over_1ms, len(xs)))
    by = {(b[0], b[1], b[3]): b for b in billed}
    ol = d[("ours-login", "login_app")]
    oh = d[("ours-login", "login_hash")]

    hdr = [
        f"- date: {a.date}",
        f"- commit: {a.commit}",
        f"- machine: {a.machine}",
        f"- mode: {a.mode} ({rounds} round{'s' if rounds > 1 else ''}; in each, ours and the seed's back to back, scenario by scenario, ours first in odd rounds; one CPU)",
        f"- Node.js {a.node} ({a.versions}); rustc {a.rustc}; release profile (LTO, codegen-units 1)",
        f"- prices: docs/bench/prices.toml dated {prices['date']}, {prices['region']}, first volume tier",
    ]

    md = []
    w = md.append
    w("# Our Lambda functions beside the seed's Node.js stack (issue 15)")
    w("")
    w("Generated by `scripts/bench-node-seed.sh" + (" --quick" if a.mode == "quick" else "") + "`; do not edit by hand")
    w("(the prose lives in `tests/node-seed/report.py`). The machine-readable figures")
    w("for the day-at-70M bill are in [`node-seed.toml`](node-seed.toml).")
    w("")
    w("\n".join(hdr))
    w("")
    w("The machine is shared with other builds: compare the two stacks by the")
    w("ratios of one round (measured minutes apart), not across runs.")
    w("")
    w("## What is measured")
    w("")
    w("The seed system ran on Node.js: an API Gateway authorizer with `jsonwebtoken`")
    w("and `jwks-rsa`, and a login with `bcrypt` (cost 10) and `jsonwebtoken`. Its")
    w("code is not in this repository, so `tests/node-seed/` ports that stack as")
    w("Lambda functions written as such a team would write them (`authorizer.mjs`,")
    w("`issuer.mjs`), run as a custom-runtime `bootstrap` by a small Runtime API")
    w("client (`runtime.mjs`), exactly as our Rust functions run. `node --test` in")
    w("that directory checks them (allow, deny, 401; right and wrong password;")
    w("refresh rotation; both outcomes through the Runtime API) before anything is")
    w("measured. bcrypt is the native `bcrypt` package (its prebuilt N-API binary for")
    w("linux-x64 glibc), not `bcryptjs`.")
    w("")
    w("- **Authorizer round trip**: `lambda-bench` serves the Runtime API on")
    w("  loopback and a JWKS, mints RS256 tokens (2048-bit key) and times each")
    w("  invocation from queueing the event to receiving the function's response")
    w("  (what Lambda bills as duration, plus two loopback hops). *One token*: the")
    w("  same token every time (our verified-token cache answers; the seed has no")
    w("  such cache and verifies every time, as its code did). *Distinct tokens*: a")
    w("  new token each invocation, so no cache helps. Both answer `Allow` with an")
    w("  IAM policy on the stage.")
    w("- **Init**: process start to the first `invocation/next`, JWKS fetched from")
    w("  loopback during init (`lambda-bench --init-only`, median of the runs). For")
    w("  the seed this includes starting Node.js and loading its modules; it is")
    w("  what Lambda bills as INIT duration since 2025-08. The seed's starts through")
    w("  a `/bin/sh` bootstrap that execs `node`, as a custom runtime does; Lambda's")
    w("  managed `nodejs20.x` runtime starts its own way, not measured here.")
    w("- **Login, seed**: `POST /login` API Gateway proxy events through its")
    w("  bootstrap and the Runtime API: JSON parse, the user from an in-memory map")
    w("  (seeded at init with a cost-10 hash), `bcrypt.compare`, an RS256 access")
    w("  token signed, a refresh token stored by its SHA-256 in memory. No database.")
    w("- **Login, ours**: `login-bench`, in-process: `App::handle` for `POST /login`")
    w("  on the embedded SQLite store (the dev stack's issuer): argon2id m=19456 KiB")
    w("  t=2 p=1 on the blocking pool, the attempt counters, the session written,")
    w("  the RS256 token signed. No Runtime API hop (tens of microseconds, see the")
    w("  authorizer) and no DynamoDB round trip (on Lambda the issuer makes its")
    w("  store calls to DynamoDB over the network: not CPU, but billed duration).")
    w("  The password check alone is given too (`login_hash`).")
    w("- **Memory**: peak resident set (`VmHWM`) of the bootstrap process at the")
    w("  end of the run. Not measured for our login (in-process, the harness's own")
    w("  memory would be counted).")
    w("")
    w("## Figures (median over rounds)")
    w("")
    w("| | ours (Rust) | seed (Node.js) |")
    w("|---|---|---|")

    def rtrow(name, ours, seed):
        o, s = d[(ours, "round_trip")], d[(seed, "round_trip")]
        w(f"| {name}: mean / p50 / p99 µs | {med(o,'mean_us'):,.1f} / {med(o,'p50_us'):,.1f} / {med(o,'p99_us'):,.1f} "
          f"| {med(s,'mean_us'):,.1f} / {med(s,'p50_us'):,.1f} / {med(s,'p99_us'):,.1f} |")

    w(f"| authorizer init, ms | {fig['ours-authz-init']:.1f} | {fig['seed-authz-init']:.1f} |")
    rtrow(f"authorizer, one token ({int(d[('ours-authz-hot','round_trip')][0]['invocations']):,} invocations)", "ours-authz-hot", "seed-authz-hot")
    rtrow(f"authorizer, distinct tokens ({int(d[('ours-authz-distinct','round_trip')][0]['invocations']):,} invocations)", "ours-authz-distinct", "seed-authz-distinct")
    w(f"| authorizer peak RSS after the distinct run, MiB | {last_memory(d[('ours-authz-distinct','memory')]):.1f} | {last_memory(d[('seed-authz-distinct','memory')]):.1f} |")
    w(f"| login: mean / p50 / p99 ms ({int(ol[0]['n'])} logins) | {med(ol,'mean_ms'):.2f} / {med(ol,'p50_ms'):.2f} / {med(ol,'p99_ms'):.2f} "
      f"| {rt('seed-login'):.2f} / {rt('seed-login','p50_us'):.2f} / {rt('seed-login','p99_us'):.2f} |")
    w(f"| password check alone: mean ms | argon2id {med(oh,'mean_ms'):.2f} | bcrypt cost 10: inside the login above |")
    w(f"| login function init, ms | not measured (needs Secrets Manager) | {fig['seed-login-init']:.1f} |")
    w(f"| login function peak RSS, MiB | not measured | {last_memory(d[('seed-login','memory')]):.1f} |")
    w("")
    w("Seed / ours, each round (same run, minutes apart):")
    w("")
    w("| figure | " + " | ".join(f"round {i}" for i in range(1, rounds + 1)) + " |")
    w("|---|" + "---|" * rounds)
    for name, pair in ratios.items():
        rs = ratio_cells(pair)
        w(f"| {name} | " + " | ".join(f"{r:.1f}x" for r in rs) + " |")
    w("")
    w("CPU used by other processes during each kept measurement (cores; the")
    w("script waits for a quiet second before each and retries a noisy one):")
    w("")
    w("| measurement | " + " | ".join(f"round {i}" for i in range(1, rounds + 1)) + " |")
    w("|---|" + "---|" * rounds)
    for (label, what), rs in sorted(d.items()):
        if what == "machine":
            cells = sorted(rs, key=lambda r: int(r["round"]))
            w(f"| {label} | " + " | ".join(
                f"{r['others_cores']}" + (f" (attempt {r['kept']} of {r['attempts']})" if r["attempts"] != "1" else "")
                for r in cells) + " |")
    w("")
    w("## The bill consequence: Lambda duration per million requests")
    w("")
    w("Billed duration = each measured invocation rounded up to the next")
    w("millisecond (Lambda bills per 1 ms), averaged over all invocations of all")
    w("rounds; GB-seconds = billed seconds x memory in GB; cost per million")
    w("requests = GB-seconds x the first-tier price for the architecture. The")
    w(f"request charge, ${req_price:.2f} per million, is the same for both stacks and")
    w("not in these columns. Memory sizes: the seed at 256 MB (a")
    w("typical Node.js setting), on x86_64 and arm64; ours at the template's")
    w("defaults (`infra/template.yaml`: authorizer 128 MB, issuer 1024 MB, arm64).")
    w("")
    w("Lambda gives a function CPU in proportion to its memory (1,769 MB = one")
    w("vCPU). These times were measured on one whole CPU of this machine (driver")
    w("and function pinned to it together), so each row is")
    w("billed twice: **as measured** (a lower bound) and **CPU-share scaled**,")
    w("the time x 1769 / memory (an upper bound for CPU-bound work: an invocation")
    w("shorter than the quota period may not be throttled at all). arm64 rows use")
    w("the x86_64 time: Graviton was not measured here.")
    w("")
    w("| request | stack | memory | arch | measured mean ms | billed ms | GB-s / M | duration $ / M | CPU-share x | billed ms | GB-s / M | duration $ / M |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for kind, stack, mem, arch, mean, p50, p99, factor, full, share, over, n in billed:
        w(f"| {kind} | {stack} | {mem} MB | {arch} | {mean:.3f} | {full[0]:.2f} | {full[1]:,.0f} | {full[2]:.4f} "
          f"| {factor:.2f} | {share[0]:.2f} | {share[1]:,.0f} | {share[2]:.4f} |")
    w("")
    w("Duration cost per million requests, the seed on x86_64 and on arm64 against ours:")
    w("")
    w("| request | seed arch | as measured: seed / ours | CPU-share scaled: seed / ours |")
    w("|---|---|---|---|")
    for kind in ("authorizer_distinct", "authorizer_cached", "login"):
        o = by[(kind, "ours (Rust)", "arm64")]
        for arch in ("x86_64", "arm64"):
            sx = by[(kind, "seed (Node.js)", arch)]
            w(f"| {kind} | {arch} | ${sx[8][2]:.4f} / ${o[8][2]:.4f} ({sx[8][2] / o[8][2]:.1f}x) "
              f"| ${sx[9][2]:.4f} / ${o[9][2]:.4f} ({sx[9][2] / o[9][2]:.1f}x) |")
    w("")
    w("## Reading it")
    w("")
    od, sd = by[("authorizer_distinct", "ours (Rust)", "arm64")], by[("authorizer_distinct", "seed (Node.js)", "x86_64")]
    ol_, sl = by[("login", "ours (Rust)", "arm64")], by[("login", "seed (Node.js)", "x86_64")]
    w(f"- Authorizer, distinct tokens: on one whole CPU, {od[10]:.2%} of our invocations and")
    w(f"  {sd[10]:.2%} of the seed's took more than 1 ms (billed 2 ms or more). Most of")
    w("  both bill the 1 ms minimum as measured, so the as-measured bill differs")
    w("  mostly by memory (the seed's Node.js at 256 MB, ours at 128 MB). At Lambda's")
    w(f"  CPU share the seed's {sd[4]:.2f} ms mean becomes {sd[9][0]:.2f} billed ms at 256 MB")
    w(f"  and ours {od[9][0]:.2f} at 128 MB.")
    w(f"- Login: our whole login took {ol_[4]:.1f} ms on average over all rounds (argon2id")
    w(f"  alone {med(oh, 'mean_ms'):.1f} ms) against the seed's {sl[4]:.1f} ms (bcrypt cost 10 through its")
    w(f"  runtime), {sl[4] / ol_[4]:.1f}x, on one CPU. Ours runs at 1024 MB (0.58 of a vCPU), the")
    w("  seed at 256 MB (0.14). A login is CPU-bound for many CPU quota periods, so")
    w("  Lambda's throttling applies in full and its CPU-share row is the realistic")
    w("  one; its as-measured row is what the seed would bill with a whole vCPU.")
    w("- Not in these figures: API Gateway, DynamoDB, logs (see")
    w("  [day-at-70m.md](day-at-70m.md)); cold starts beyond the init times above;")
    w("  arm64 times; our login's DynamoDB round trips; refresh (the seed's rotates")
    w("  in memory and is tested, not timed).")
    open(a.md, "w").write("\n".join(md) + "\n")

    t = []
    t.append("# Generated by scripts/bench-node-seed.sh (tests/node-seed/report.py); do not edit.")
    t.append("# Per request type and stack: the measured time per invocation (on one whole")
    t.append("# CPU of the machine below), the memory and architecture it is billed at, and")
    t.append("# the billed milliseconds as measured and scaled to Lambda's CPU share")
    t.append("# (1769 / memory_mb when below 1769 MB). See docs/bench/node-seed.md.")
    t.append(f'date = "{a.date}"')
    t.append(f'commit = "{a.commit}"')
    t.append(f'machine = "{a.machine}"')
    t.append(f'mode = "{a.mode}"')
    t.append(f"rounds = {rounds}")
    t.append(f'node = "{a.node}"')
    t.append(f'node_packages = "{a.versions}"')
    t.append("")
    t.append("[init_ms]")
    t.append(f"ours_authorizer = {fig['ours-authz-init']:.2f}")
    t.append(f"seed_authorizer = {fig['seed-authz-init']:.2f}")
    t.append(f"seed_issuer = {fig['seed-login-init']:.2f}")
    for kind, stack, mem, arch, mean, p50, p99, factor, full, share, over, n in billed:
        t.append("")
        t.append("[[request]]")
        t.append(f'kind = "{kind}"')
        t.append(f'stack = "{"ours" if stack.startswith("ours") else "seed-node"}"')
        t.append(f"memory_mb = {mem}")
        t.append(f'arch = "{arch}"')
        t.append(f"ms_per_invocation = {mean:.4f}")
        t.append(f"p50_ms = {p50:.4f}")
        t.append(f"p99_ms = {p99:.4f}")
        t.append(f"invocations = {n}")
        t.append(f"billed_ms_measured = {full[0]:.3f}")
        t.append(f"billed_ms_cpu_share = {share[0]:.3f}")
        t.append(f"cpu_share_factor = {factor:.3f}")
        t.append(f"gb_seconds_per_million_measured = {full[1]:.1f}")
        t.append(f"gb_seconds_per_million_cpu_share = {share[1]:.1f}")
        t.append(f"duration_usd_per_million_measured = {full[2]:.6f}")
        t.append(f"duration_usd_per_million_cpu_share = {share[2]:.6f}")
    open(a.toml, "w").write("\n".join(t) + "\n")


if __name__ == "__main__":
    main()
