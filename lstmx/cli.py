"""The ``lstmx`` command line: thin, it parses arguments and calls library functions.

    lstmx train EXPERIMENT_FILE[:VARIANT] --workdir DIR [--set key=value ...] [--force]
    lstmx bench [--grid B,T,H ...] [--bf16] [--memory] [--json F] [--markdown F]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys

from lstmx.config import Config, override


def load_experiment(spec: str):
  """The module of ``path/to/file.py`` (the part before an optional ``:VARIANT``)."""
  path = spec.split(":", 1)[0]
  if not os.path.exists(path):
    raise SystemExit(f"lstmx: experiment file {path!r} does not exist")
  name = "lstmx_experiment_" + os.path.splitext(os.path.basename(path))[0]
  module_spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(module_spec)
  sys.modules[name] = module
  module_spec.loader.exec_module(module)
  return module


def resolve_config(spec: str, sets: list[str]) -> Config:
  """Config of ``FILE[:VARIANT]`` (variant ``base`` by default) with overrides applied."""
  module = load_experiment(spec)
  variant = spec.split(":", 1)[1] if ":" in spec else "base"
  variants = getattr(module, "VARIANTS", {})
  if variant not in variants:
    raise SystemExit(f"lstmx: variant {variant!r} not in {spec.split(':')[0]}; "
                     f"expected one of {sorted(variants)}")
  try:
    return override(variants[variant](), sets)
  except ValueError as e:
    raise SystemExit(f"lstmx: {e}") from None


def main(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  if argv[:1] == ["bench"]:  # its own parser: `lstmx bench --help`
    from lstmx import bench
    return bench.main(argv[1:])
  ap = argparse.ArgumentParser(prog="lstmx", description="lstmx command line")
  sub = ap.add_subparsers(dest="command", required=True)
  tr = sub.add_parser("train", help="train one config; rerun to resume")
  tr.add_argument("experiment", help="EXPERIMENT_FILE[:VARIANT]")
  tr.add_argument("--workdir", required=True)
  tr.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
  tr.add_argument("--force", action="store_true",
                  help="resume even if the workdir's config differs")
  tr.add_argument("--coordinator", help="multi-host: coordinator HOST:PORT")
  tr.add_argument("--num-processes", type=int)
  tr.add_argument("--process-id", type=int)
  sub.add_parser("bench", help="time one LSTM layer against its peers (lstmx.bench)")
  rp = sub.add_parser("report", help="(re)write the report of an experiment's output directory")
  rp.add_argument("out_dir")
  args = ap.parse_args(argv)
  if args.command == "report":
    import pandas as pd

    from lstmx import report
    from lstmx.train.rundir import read_json
    meta = read_json(os.path.join(args.out_dir, "experiment.json"))
    module = load_experiment(meta["experiment"])
    results = pd.read_csv(os.path.join(args.out_dir, "results.csv"))
    print(f"report: {os.path.abspath(report.write(module, args.out_dir, results))}")
  if args.command == "train":
    from lstmx import distributed
    distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    from lstmx.train import train_and_evaluate
    config = resolve_config(args.experiment, args.sets)
    try:
      summary = train_and_evaluate(config, args.workdir, force=args.force)
    except ValueError as e:
      raise SystemExit(f"lstmx: {e}") from None
    print(json.dumps({k: summary[k] for k in ("status", "stop_reason", "steps", "final")},
                     indent=1))
    print(f"run directory: {os.path.abspath(args.workdir)}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
