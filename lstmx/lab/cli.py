"""The ``lstmx`` command line (also ``python -m lstmx``): thin, it parses
arguments and calls library functions.

    lstmx train FILE[:VARIANT] --workdir DIR [--set key=value ...] [--force] [--wait]
    lstmx train FILE --preset tiny|quick|full [--out DIR] [--set key=value ...]
                [--workers N|auto] [--seeds N] [--trials-per-device K] [--ray [ADDRESS]]
    lstmx report OUT_DIR
    lstmx report OUT_DIR OUT_DIR ... [--out PAGE.md]
    lstmx info [--json]
    lstmx bench [...]          (runs benchmarks/bench.py of a clone)

``--workdir`` trains one config: VARIANT names one of the file's ``VARIANTS``
(``experiments/smoke.py``; default ``base``) or, in a file without them, a
preset whose ``base`` config is trained (default ``quick``). ``--preset`` runs
the file's sweep exactly as ``python FILE --preset ...`` does. ``report`` rewrites
one output directory's report; given several (or ``--out``) it writes the
cross-experiment page "Where LSTMs stop working" (`lstmx.lab.overview`; default
``where_lstms_stop.md`` in their common parent). ``info`` prints the devices, the
versions and the backend ``auto`` picks (`lstmx.lab.info`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import sys

from lstmx.config import Config, override
from lstmx.lab.experiment import PRESETS, Experiment, load

BENCH_SCRIPT = pathlib.Path("benchmarks") / "bench.py"
SWEEP_OPTIONS = ("workers", "seeds", "trials_per_device", "ray", "cpus_per_trial",
                 "gpus_per_trial")


def load_experiment(spec: str) -> Experiment:
  """The experiment of ``path/to/file.py`` (the part before an optional ``:VARIANT``)."""
  path = spec.split(":", 1)[0]
  try:
    return load(path)
  except (FileNotFoundError, ValueError) as e:
    raise SystemExit(f"lstmx: {e}") from None


def resolve_config(spec: str, sets: list[str]) -> Config:
  """The config ``FILE[:VARIANT]`` names (`Experiment.config`) with overrides applied."""
  experiment = load_experiment(spec)
  variant = spec.split(":", 1)[1] if ":" in spec else None
  try:
    return override(experiment.config(variant), sets)
  except ValueError as e:
    raise SystemExit(f"lstmx: {e}") from None


def find_bench(roots: list[pathlib.Path] | None = None) -> pathlib.Path | None:
  """``benchmarks/bench.py`` beside the lstmx package (a clone) or in the current
  directory; None where neither has it (an installed wheel)."""
  if roots is None:
    roots = [pathlib.Path(__file__).resolve().parents[2], pathlib.Path.cwd()]
  for root in roots:
    if (root / BENCH_SCRIPT).is_file():
      return root / BENCH_SCRIPT
  return None


def bench(argv: list[str]) -> int:
  """Runs ``benchmarks/bench.py``'s ``main(argv)``; 2 with a hint if there is none."""
  script = find_bench()
  if script is None:
    print("lstmx bench: the benchmarks are not installed with lstmx; from a clone of the "
          f"repository run `python {BENCH_SCRIPT} ...`", file=sys.stderr)
    return 2
  spec = importlib.util.spec_from_file_location("lstmx_benchmarks_bench", script)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.main(argv, prog="lstmx bench")  # it puts the clone's root on sys.path


def _train(args) -> None:
  if args.preset is not None:
    if args.workdir is not None or ":" in args.experiment:
      raise SystemExit("lstmx train: --preset runs the file's sweep (into --out); "
                       "--workdir and FILE:VARIANT train one config; expected one of them")
    from lstmx.lab import command
    try:
      options = command.sweep_options(args)
    except ValueError as e:
      raise SystemExit(f"lstmx: {e}") from None
    command.run_and_print(load_experiment(args.experiment), args.preset, args.out, args.sets,
                         force=args.force, prog="lstmx", **options)
    return
  given = [f"--{k.replace('_', '-')}" for k in SWEEP_OPTIONS if getattr(args, k) is not None]
  if given:
    raise SystemExit(f"lstmx train: {', '.join(given)}: expected only with --preset (a sweep); "
                     "--workdir trains one config")
  if args.workdir is None:
    raise SystemExit("lstmx train: expected --workdir DIR (train one config) or "
                     "--preset NAME [--out DIR] (run the file's sweep)")
  from lstmx import distributed
  distributed.initialize(args.coordinator, args.num_processes, args.process_id)
  from lstmx.lab import usage
  from lstmx.train import train_and_evaluate
  from lstmx.train.resources import OutOfResource
  config = resolve_config(args.experiment, args.sets)
  try:
    summary = train_and_evaluate(config, args.workdir, force=args.force, wait=args.wait)
  except OutOfResource as e:  # a full disk, no permission, no memory: one line
    usage.fail_run("lstmx", e)
  except ValueError as e:
    raise SystemExit(f"lstmx: {e}") from None
  except OSError as e:  # e.g. a read-only workdir
    raise SystemExit(f"lstmx: --workdir: cannot write {e.filename!r}: {e.strerror}") from None
  print(json.dumps({k: summary[k] for k in ("status", "stop_reason", "steps", "final")},
                   indent=1))
  print(f"run directory: {os.path.abspath(args.workdir)}")


def _report(args) -> None:
  import pandas as pd

  from lstmx.lab import overview, report
  if len(args.out_dirs) > 1 or args.out is not None:
    try:
      path = overview.write(args.out_dirs, args.out)
    except (OSError, ValueError) as e:
      raise SystemExit(f"lstmx report: {e}") from None
    print(f"page: {os.path.abspath(path)}")
    return
  out_dir = args.out_dirs[0]
  try:
    meta = overview.check_output_dir(out_dir)
    experiment = load_experiment(meta.get("experiment") or "")
    results = pd.read_csv(os.path.join(out_dir, "results.csv"))
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise SystemExit(f"lstmx report: {e}") from None
  print(f"report: {os.path.abspath(report.write(experiment, out_dir, results))}")


def _info(args) -> None:
  from lstmx.lab import info
  environment = info.environment()
  print(json.dumps(environment, indent=1) if args.json else info.format_text(environment))


def parser() -> argparse.ArgumentParser:
  ap = argparse.ArgumentParser(prog="lstmx", description="lstmx command line")
  sub = ap.add_subparsers(dest="command", required=True)
  tr = sub.add_parser("train", help="train one config (--workdir) or run a sweep (--preset); "
                      "rerun to resume")
  tr.add_argument("experiment", help="EXPERIMENT_FILE[:VARIANT]")
  tr.add_argument("--workdir", help="run directory of the one config")
  tr.add_argument("--preset", choices=PRESETS, help="run the file's sweep of this preset")
  tr.add_argument("--out", help="with --preset: output directory (default runs/NAME/PRESET)")
  tr.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
  tr.add_argument("--force", action="store_true",
                  help="with a changed config: retrain from scratch in the same place "
                  "(or extend, where only train.steps grew)")
  tr.add_argument("--wait", action="store_true",
                  help="with --workdir: where another run trains there, wait for it to "
                  "finish (default: refuse)")
  from lstmx.lab.command import add_sweep_options
  add_sweep_options(tr)
  tr.add_argument("--coordinator", help="multi-host: coordinator HOST:PORT")
  tr.add_argument("--num-processes", type=int)
  tr.add_argument("--process-id", type=int)
  sub.add_parser("bench", help="time one LSTM layer against its peers (benchmarks/bench.py)")
  rp = sub.add_parser("report", help="(re)write the report of an experiment's output "
                      "directory; of several: the page 'Where LSTMs stop working'")
  rp.add_argument("out_dirs", nargs="+", metavar="DIR",
                  help="output directory of an experiment (e.g. runs/long_dependency/quick)")
  from lstmx.lab.overview import DEFAULT_NAME
  rp.add_argument("--out", metavar="PAGE.md", help="write the cross-experiment page here "
                  f"(default: {DEFAULT_NAME} in the directories' common parent)")
  inf = sub.add_parser("info", help="devices, versions and the backend 'auto' picks")
  inf.add_argument("--json", action="store_true", help="as JSON")
  return ap


def main(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  if argv[:1] == ["bench"]:  # its own parser: `lstmx bench --help`
    return bench(argv[1:])
  args = parser().parse_args(argv)
  if args.command == "report":
    _report(args)
  if args.command == "info":
    _info(args)
  if args.command == "train":
    _train(args)
  return 0


if __name__ == "__main__":
  sys.exit(main())
