"""Parallel trials against one after another (issues 15 and 25): the same sweep of six
600-step LSTM trials (H=64, B=32, the copy task at T=100) run with ``--workers 1``
and then ``--workers 2``, back to back, each in a fresh output directory, every trial
on one core (``--cores-per-trial 1``, the default). Prints both wall times and their
ratio (the target on a quiet 2-core machine: <= 0.70), and checks that the two results
tables hold the same trials with bit-for-bit the same final metrics.

    python benchmarks/workers.py                  # the measurement (minutes on 2 cores)
    python benchmarks/workers.py --steps 20       # a check that it runs
    python benchmarks/workers.py --workers 4 --out /tmp/workers_bench --keep

This file is also the experiment it runs (``NAME``, ``presets``): each run is

    python -m lstmx train benchmarks/workers.py --preset quick --workers N --out DIR

timed from outside, start-up included, as a user sees it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from lstmx.config import Config, ModelConfig, OptimizerConfig, TaskConfig, TrainConfig  # noqa: E402
from lstmx.lab import Preset  # noqa: E402
from lstmx.lab.local_pool import cpu_cores  # noqa: E402

NAME = "workers_bench"


def base() -> Config:
  """The long-dependency quick preset's trial: LSTM H=64, B=32, copy at T=90+2*5=100."""
  return Config(
      name=NAME,
      model=ModelConfig(hidden_size=64),
      task=TaskConfig(name="copy", params={"delay": 90, "num_symbols": 5, "num_categories": 8}),
      optimizer=OptimizerConfig(name="adam", lr=3e-3, clip_norm=1.0),
      train=TrainConfig(steps=600, batch_size=32, log_every=50, eval_every=250,
                        eval_batches=4, checkpoint_every=250, keep_checkpoints=1),
  )


def presets() -> dict[str, Preset]:
  """Six trials: three learning rates x two seeds (every preset the same)."""
  sweep = [{"optimizer.lr": lr} for lr in (1e-3, 3e-3, 1e-2)]
  preset = Preset(base(), sweep, seeds=2)
  return {"tiny": preset, "quick": preset, "full": preset}


def run_sweep(workers: int, out: str, steps: int) -> float:
  """Runs the sweep with `workers` in a fresh `out`; its wall time in seconds."""
  shutil.rmtree(out, ignore_errors=True)
  cmd = [sys.executable, "-m", "lstmx", "train", os.path.abspath(__file__), "--preset", "quick",
         "--workers", str(workers), "--out", out, "--set", f"train.steps={steps}"]
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
  start = time.perf_counter()
  subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
  return time.perf_counter() - start


def compare(one: str, many: str) -> tuple[list[str], float]:
  """How two output directories' results tables differ: the problems (trials, statuses or
  steps that differ) and the largest relative difference of a final metric (0.0: the same
  bits, which trials on the same number of cores give)."""
  import numpy as np
  import pandas as pd
  a = pd.read_csv(os.path.join(one, "results.csv")).set_index("trial").sort_index()
  b = pd.read_csv(os.path.join(many, "results.csv")).set_index("trial").sort_index()
  if list(a.index) != list(b.index):
    return [f"trials differ: {sorted(set(a.index) ^ set(b.index))}"], float("nan")
  problems = [f"{c}: {a[c].tolist()} != {b[c].tolist()}" for c in ("status", "steps")
              if not a[c].equals(b[c])]
  finals = [c for c in a.columns if c.startswith("final.")]
  missing = [c for c in finals if c not in b.columns]
  problems += [f"{c}: missing with more workers" for c in missing]
  x = a[[c for c in finals if c not in missing]].to_numpy(float)
  y = b[[c for c in finals if c not in missing]].to_numpy(float)
  worst = float(np.nanmax(np.abs(x - y) / np.maximum(np.abs(x), 1e-12), initial=0.0))
  return problems, worst


def timed_pair(runs: dict[int, Callable[[str], float]], out: str | None, keep: bool,
               name: str) -> tuple[dict[int, float], list[str], float]:
  """Runs each of `runs` ({n: run(out_dir) -> seconds}) in its own fresh directory
  ``NAME<n>`` under `out` (default: a temporary one), in order, then `compare`s the
  first two tables.
  Removes the directories unless `keep`. Returns (seconds per n, problems, worst)."""
  root = out or tempfile.mkdtemp(prefix=f"lstmx_{name}_")
  os.makedirs(root, exist_ok=True)
  dirs = {n: os.path.join(root, f"{name}{n}") for n in runs}
  try:
    times = {n: run(dirs[n]) for n, run in runs.items()}
    problems, worst = compare(*list(dirs.values())[:2])
  finally:
    if not keep:
      for d in dirs.values():
        shutil.rmtree(d, ignore_errors=True)
      if out is None:
        shutil.rmtree(root, ignore_errors=True)
  return times, problems, worst


def main(argv: list[str] | None = None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--steps", type=int, default=600, help="steps per trial (default 600)")
  ap.add_argument("--workers", type=int, default=2, help="the parallel run's workers (2)")
  ap.add_argument("--out", help="where the two output directories go (default: a temporary "
                  "directory, removed after)")
  ap.add_argument("--keep", action="store_true", help="keep the output directories")
  args = ap.parse_args(argv)
  times, problems, worst = timed_pair(
      {n: lambda d, n=n: run_sweep(n, d, args.steps) for n in (1, args.workers)},
      args.out, args.keep, "workers")
  print(f"six {args.steps}-step LSTM trials (H=64, B=32, copy T=100), {len(cpu_cores())} cores")
  print(f"--workers 1: {times[1]:.1f} s")
  print(f"--workers {args.workers}: {times[args.workers]:.1f} s")
  print(f"ratio: {times[args.workers] / times[1]:.3f} (target <= 0.70 on a quiet 2-core machine)")
  return verdict(problems, worst)


def verdict(problems: list[str], worst: float) -> int:
  """Prints whether the two tables agree (`compare`'s output); the exit status."""
  if worst != 0:
    problems = problems + [f"final metrics differ by up to a relative {worst:.1e}"]
  if problems:
    print("results differ:\n  " + "\n  ".join(problems))
    return 1
  print("results: the same trials, statuses and steps; final metrics bit for bit the same")
  return 0


if __name__ == "__main__":
  sys.exit(main())
