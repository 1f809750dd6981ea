"""Reads cargo's `--message-format=json` on stdin and prints each compiler
diagnostic once (as rustc renders it) and any line that is not JSON. Ends
with the number of warnings and errors; exits 1 when there is any.

scripts/test.sh runs its build with clippy's driver and clippy's default lint
levels, then fails its lint step through this count: the build goes on after
a warning (the tests still run), and a warning still fails the step, as
`cargo clippy -- -D warnings` would.
"""

import json
import re
import sys

# rustc's own closing lines ("2 warnings emitted", "aborting due to ..."),
# not findings.
SUMMARY = re.compile(r"^(\d+ warnings? emitted|aborting due to .*)$")

seen = set()
count = 0
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        sys.stdout.write(line)
        continue
    if not isinstance(msg, dict) or msg.get("reason") != "compiler-message":
        continue
    diag = msg.get("message") or {}
    text = diag.get("rendered") or f"{diag.get('level')}: {diag.get('message')}\n"
    # The same finding comes from a crate and its test build: show it once.
    if text in seen:
        continue
    seen.add(text)
    sys.stdout.write(text)
    if diag.get("level") in ("warning", "error") and not SUMMARY.match(diag.get("message") or ""):
        count += 1

print(f"{count} compiler warning(s) or error(s)")
sys.exit(1 if count else 0)
