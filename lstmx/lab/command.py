"""A sweep's command line: the options of ``python experiments/NAME.py`` and ``lstmx
train FILE --preset`` (`add_sweep_options`, `sweep_options`), `run_and_print` and `main`
(an experiment file's command line) around `lstmx.lab.runner.run`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import types

import pandas as pd

from lstmx.lab import usage
from lstmx.lab.experiment import PRESETS, Experiment, as_experiment
from lstmx.lab.runner import check_seeds, check_trials_per_device, check_workers, run
from lstmx.train.resources import OutOfResource

__all__ = ["add_sweep_options", "main", "run_and_print", "sweep_options"]


def add_sweep_options(ap: argparse.ArgumentParser) -> None:
  """The options of a sweep's command line (an experiment file's and ``lstmx train
  FILE --preset``): how many workers, seeds, trials per device, Ray."""
  ap.add_argument("--workers", metavar="N|auto",
                  help="trials run at once, each in its own process with its share of the "
                  "cores (or one GPU); default auto: one per core (per GPU), at most one per "
                  "pending trial; 1: one after another in this process")
  ap.add_argument("--seeds", metavar="N",
                  help="seeds per configuration (train.seed = base + 0..N-1); default: the "
                  "preset's")
  ap.add_argument("--trials-per-device", metavar="K",
                  help="train up to K trials that differ only in seed, learning rate or "
                  "initializer together, as one program vmapped over the trials (for a GPU "
                  "or TPU that one small trial leaves idle; on a CPU it is slower); each "
                  "keeps its own run directory; default 1: one trial at a time")
  ap.add_argument("--ray", nargs="?", const=True, default=None, metavar="ADDRESS",
                  help="run the trials as Ray tasks: on the cluster at ADDRESS, or without "
                  "one on a local Ray instance (needs the [ray] extra)")
  ap.add_argument("--no-compile-cache", dest="compile_cache", action="store_false",
                  help="compile every trial's programs afresh (default: the seeds of a "
                  "configuration share them through OUT/.cache/jax; never with --ray)")
  ap.add_argument("--cpus-per-trial", type=float, metavar="N", help="with --ray: CPUs per trial")
  ap.add_argument("--gpus-per-trial", type=float, metavar="N", help="with --ray: GPUs per trial")


def sweep_options(args: argparse.Namespace) -> dict:
  """`run_and_print`'s keyword arguments from `add_sweep_options`' options.

  Raises:
    ValueError: a bad value or combination, naming the option.
  """
  if args.ray is not None and args.workers is not None:
    raise ValueError(f"--workers and --ray: expected one of them; got --workers "
                     f"{args.workers} and --ray")
  per_device = (1 if args.trials_per_device is None
                else check_trials_per_device(args.trials_per_device, "--trials-per-device"))
  if args.ray is not None and per_device > 1:
    raise ValueError(f"--trials-per-device: expected 1 with --ray (a Ray task trains one "
                     f"trial); got {per_device}")
  for name in ("cpus_per_trial", "gpus_per_trial"):
    if getattr(args, name) is not None and args.ray is None:
      raise ValueError(f"--{name.replace('_', '-')}: expected only with --ray")
  return {"workers": check_workers("auto" if args.workers is None else args.workers,
                                   "--workers"),
          "seeds": None if args.seeds is None else check_seeds(args.seeds, "--seeds"),
          "ray": args.ray, "compile_cache": args.compile_cache,
          "trials_per_device": per_device,
          "cpus_per_trial": args.cpus_per_trial,
          "gpus_per_trial": args.gpus_per_trial}


def run_and_print(experiment: Experiment | types.ModuleType, preset: str,
                  out: str | None = None, sets: list[str] = (), *,
                  force: bool = False, prog: str | None = None, workers: int | str = "auto",
                  seeds: int | None = None, **pool_options) -> pd.DataFrame:
  """`run` for a command line: output in `out` (default ``runs/NAME/PRESET``), trials on
  `workers` (default auto), a bad setting or an output directory it cannot write as one
  line (a SystemExit starting with `prog`, by default the experiment's name), and where
  the results and report are."""
  exp = as_experiment(experiment)
  out = out or os.path.join("runs", exp.name, preset)
  try:
    workers = check_workers(workers, "--workers")
    seeds = None if seeds is None else check_seeds(seeds, "--seeds")
    results = run(exp, preset, out, list(sets), force=force, workers=workers, seeds=seeds,
                  **pool_options)
  except OutOfResource as e:  # a full disk, no permission, no memory: the sweep stops
    usage.fail_run(prog or exp.name, e)
  except ValueError as e:
    raise SystemExit(f"{prog or exp.name}: {e}") from None
  except OSError as e:  # e.g. a read-only output directory
    raise SystemExit(f"{prog or exp.name}: --out: cannot write {e.filename!r}: "
                     f"{e.strerror}") from None
  counts = results["status"].value_counts().to_dict()
  print(f"{len(results)} trials: {json.dumps(counts)}")
  print(f"results: {os.path.abspath(os.path.join(out, 'results.csv'))}")
  print(f"report:  {os.path.abspath(os.path.join(out, 'report.md'))}")
  sys.stdout.flush()
  return results


def main(module: Experiment | types.ModuleType, argv: list[str] | None = None) -> None:
  """The command line of an experiment file: ``python experiments/NAME.py --preset ...``
  (the same as ``lstmx train experiments/NAME.py --preset ...``)."""
  exp = as_experiment(module)
  ap = argparse.ArgumentParser(description=exp.description)
  ap.add_argument("--preset", default="quick", choices=PRESETS)
  ap.add_argument("--out", help="output directory (default runs/NAME/PRESET)")
  ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                  help="override the base config of every trial")
  ap.add_argument("--force", action="store_true",
                  help="retrain trials whose results came from different settings")
  add_sweep_options(ap)
  args = ap.parse_args(argv)
  try:
    options = sweep_options(args)
  except ValueError as e:
    raise SystemExit(f"{exp.name}: {e}") from None
  run_and_print(exp, args.preset, args.out, args.sets, force=args.force, **options)
