"""The README's main command with ``--workers 1`` against its default workers (issue 25):
``experiments/long_dependency.py --preset quick`` run twice, back to back, each in a fresh
output directory (its own compilation cache), timed from outside, start-up and report
included. Prints both wall times, the 1-minute load before and after each, their ratio
(the target on a quiet 2-core machine: <= 0.65) and whether the two results tables hold
the same trials with bit-for-bit the same final metrics (every trial on one core either
way: `--cores-per-trial 1`, the default).

    python benchmarks/main_command.py                 # the measurement (about an hour on 2 cores)
    python benchmarks/main_command.py --set train.steps=20 --out /tmp/mc --keep   # a check
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from workers import timed_pair, verdict  # noqa: E402

EXPERIMENT = os.path.join(ROOT, "experiments", "long_dependency.py")


def load() -> float:
  """The 1-minute load average."""
  return os.getloadavg()[0]


def run_main(workers: str | None, out: str, sets: list[str], loads: dict) -> float:
  """The main command into `out` (with ``--workers`` unless None); its wall time."""
  cmd = [sys.executable, EXPERIMENT, "--preset", "quick", "--out", out]
  cmd += ["--workers", workers] if workers else []
  for s in sets:
    cmd += ["--set", s]
  before = load()
  start = time.perf_counter()
  subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
  seconds = time.perf_counter() - start
  loads[workers or "default"] = (before, load())
  return seconds


def main(argv: list[str] | None = None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                  help="a config override for both runs. Example: --set train.steps=20")
  ap.add_argument("--out", help="where the two output directories go (default: a temporary "
                  "directory, removed after)")
  ap.add_argument("--keep", action="store_true", help="keep the output directories")
  args = ap.parse_args(argv)
  loads: dict = {}
  times, problems, worst = timed_pair(
      {1: lambda d: run_main("1", d, args.set, loads),
       0: lambda d: run_main(None, d, args.set, loads)}, args.out, args.keep, "main")
  for key, label in ((1, "1"), (0, "default")):
    before, after = loads[label]
    print(f"--workers {label}: {times[key]:.1f} s (1-min load {before:.1f} before, "
          f"{after:.1f} after)")
  print(f"ratio default / 1: {times[0] / times[1]:.3f} (target <= 0.65 on a quiet 2-core "
        "machine)")
  return verdict(problems, worst)


if __name__ == "__main__":
  sys.exit(main())
