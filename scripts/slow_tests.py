"""Regenerates tests/slow.txt from a full run's durations: every test whose call, setup
and teardown took at least `--seconds` (default 6) together.

    python -m pytest -n 2 --durations=0 --durations-min=1 > /tmp/durations.log
    python scripts/slow_tests.py /tmp/durations.log
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIST = os.path.join(ROOT, "tests", "slow.txt")
LINE = re.compile(r"^([\d.]+)s (?:call|setup|teardown)\s+(\S+)")


def durations(log: str) -> dict[str, float]:
  """Seconds per node id (call + setup + teardown) in a pytest ``--durations`` log."""
  total: dict[str, float] = collections.Counter()
  with open(log) as f:
    for line in f:
      m = LINE.match(line)
      if m:
        total[m.group(2)] += float(m.group(1))
  return dict(total)


def header() -> str:
  """The comment block at the top of tests/slow.txt (kept as it is)."""
  with open(LIST) as f:
    return "".join(line for line in f if line.startswith("#"))


def main(argv: list[str] | None = None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("log", help="a pytest log with --durations=0. Example: /tmp/durations.log")
  ap.add_argument("--seconds", type=float, default=6.0,
                  help="the least time of a slow test (default 6). Example: --seconds 8")
  args = ap.parse_args(argv)
  found = durations(args.log)
  if not found:
    print(f"slow_tests: log: no durations found in {args.log!r} (run pytest with "
          "--durations=0)", file=sys.stderr)
    return 2
  slow = sorted(k for k, v in found.items() if v >= args.seconds)
  with open(LIST, "w") as f:
    f.write(header() + "\n".join(slow) + "\n")
  print(f"{len(slow)} slow tests ({sum(found[k] for k in slow):.0f} s of "
        f"{sum(found.values()):.0f} s listed in the log) -> {LIST}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
