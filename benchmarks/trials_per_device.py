"""Several trials per device against one at a time (issue 17, item 6): the sweep of
``benchmarks/workers.py`` (six LSTM trials, H=64, B=32, copy at T=100: three learning
rates x two seeds) run in one process with ``--trials-per-device 1`` and then K, back to
back, each in a fresh output directory. Prints both wall times and their ratio (grouped
over one at a time: below 1 is a speed-up), and checks that the two results tables hold
the same trials, statuses and steps with final metrics that agree to float32 rounding.

    python benchmarks/trials_per_device.py                # K=6, 600 steps (minutes on 2 cores)
    python benchmarks/trials_per_device.py --steps 20     # a check that it runs
    python benchmarks/trials_per_device.py --per-device 3 --steps 200
    python benchmarks/trials_per_device.py --experiment experiments/long_dependency.py \
        --preset quick --per-device 8 --steps 0     # another sweep, its own steps (a GPU)

Each run is, timed from outside with its start-up, as a user sees it:

    python -m lstmx train benchmarks/workers.py --preset quick --workers 1 \\
        --trials-per-device K --out DIR
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from benchmarks.workers import timed_pair  # noqa: E402
from lstmx.lab.local_pool import cpu_cores  # noqa: E402

EXPERIMENT = os.path.join(ROOT, "benchmarks", "workers.py")


def run_sweep(per_device: int, out: str, steps: int, experiment: str = EXPERIMENT,
              preset: str = "quick") -> float:
  """Runs the sweep with `per_device` trials per device in a fresh `out` (`steps` per
  trial; 0: the preset's); its wall time."""
  shutil.rmtree(out, ignore_errors=True)
  cmd = [sys.executable, "-m", "lstmx", "train", experiment, "--preset", preset,
         "--workers", "1", "--trials-per-device", str(per_device), "--out", out]
  if steps:
    cmd += ["--set", f"train.steps={steps}"]
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
  start = time.perf_counter()
  subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
  return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--steps", type=int, default=600,
                  help="steps per trial (default 600; 0: the preset's)")
  ap.add_argument("--per-device", type=int, default=6, help="K of the grouped run (6)")
  ap.add_argument("--experiment", default=EXPERIMENT,
                  help="the experiment file (default: benchmarks/workers.py's six trials)")
  ap.add_argument("--preset", default="quick", help="its preset (quick)")
  ap.add_argument("--out", help="where the two output directories go (default: a temporary "
                  "directory, removed after)")
  ap.add_argument("--keep", action="store_true", help="keep the output directories")
  args = ap.parse_args(argv)
  k = args.per_device
  load = os.getloadavg()[0]
  experiment = os.path.abspath(args.experiment)
  times, problems, worst = timed_pair(
      {n: lambda d, n=n: run_sweep(n, d, args.steps, experiment, args.preset) for n in (1, k)},
      args.out, args.keep, "per_device")
  what = ("six LSTM trials (H=64, B=32, copy T=100)" if args.experiment == EXPERIMENT
          else f"{args.experiment} --preset {args.preset}")
  steps = args.steps or "the preset's"
  print(f"{what}, {steps} steps, one process, "
        f"{len(cpu_cores())} cores, 1-min load {load:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after")
  print(f"--trials-per-device 1: {times[1]:.1f} s")
  print(f"--trials-per-device {k}: {times[k]:.1f} s")
  print(f"ratio grouped / one at a time: {times[k] / times[1]:.3f} "
        f"(speed-up {times[1] / times[k]:.2f}x)")
  if problems:
    print("results differ:\n  " + "\n  ".join(problems))
    return 1
  print(f"results: the same trials, statuses and steps; final metrics differ by at most a "
        f"relative {worst:.1e} (vmap batches the matmuls differently)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
