"""The ``lstmx`` command line (also ``python -m lstmx``): thin, it parses
arguments and calls library functions.

    lstmx train FILE[:VARIANT] --workdir DIR [--set key=value ...] [--force] [--wait]
    lstmx train FILE --preset tiny|quick|full [--out DIR] [--set key=value ...]
                [--workers N|auto] [--seeds N] [--trials-per-device K] [--ray [ADDRESS]]
    lstmx report OUT_DIR
    lstmx report OUT_DIR OUT_DIR ... [--out PAGE.md]
    lstmx info [--json]
    lstmx bench [...]          (runs benchmarks/bench.py of a clone)
    lstmx --version

``--workdir`` trains one config: VARIANT names one of the file's ``VARIANTS``
(``experiments/smoke.py``; default ``base``) or, in a file without them, a
preset whose ``base`` config is trained (default ``quick``); it prints each
validation as it comes and ends with a table of the final metrics (the whole
summary is ``DIR/summary.json``). ``--preset`` runs the file's sweep exactly as
``python FILE --preset ...`` does. ``report`` rewrites one output directory's report;
given several (or ``--out``) it writes the cross-experiment page "Where LSTMs stop
working" (`lstmx.lab.overview`; default ``where_lstms_stop.md`` in their common
parent). ``info`` prints the devices, the versions and the backend ``auto`` picks
(`lstmx.lab.info`).

A usage error (a bad option, value or combination) is one line on stderr and exit
status 2, with a "did you mean" for a near miss; a run that fails exits 1
(`lstmx.lab.usage`).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import pathlib
import sys

from lstmx._version import __version__
from lstmx.config import Config, override
from lstmx.lab import usage
from lstmx.lab.experiment import PRESETS, Experiment, load

BENCH_SCRIPT = pathlib.Path("benchmarks") / "bench.py"
SWEEP_OPTIONS = ("workers", "seeds", "cores_per_trial", "trials_per_device", "ray",
                 "cpus_per_trial", "gpus_per_trial")
COMMANDS = ("train", "report", "info", "bench")


def version() -> str:
  """``lstmx X.Y.Z (jax A.B.C)``; jax's version read without importing jax."""
  try:
    jax_version = importlib.metadata.version("jax")
  except importlib.metadata.PackageNotFoundError:
    jax_version = "not installed"
  return f"lstmx {__version__} (jax {jax_version})"


def load_experiment(spec: str, prog: str = "lstmx") -> Experiment:
  """The experiment of ``path/to/file.py`` (the part before an optional ``:VARIANT``);
  a usage error (exit 2) where there is none."""
  path = spec.split(":", 1)[0]
  try:
    return load(path)
  except (FileNotFoundError, ValueError) as e:
    usage.fail(prog, str(e))


def resolve_config(spec: str, sets: list[str]) -> Config:
  """The config ``FILE[:VARIANT]`` names (`Experiment.config`) with overrides applied;
  a usage error (exit 2, with a "did you mean") for a bad variant or ``--set``."""
  experiment = load_experiment(spec)
  variant = spec.split(":", 1)[1] if ":" in spec else None
  try:
    config = experiment.config(variant)
  except ValueError as e:
    usage.fail("lstmx", f"{e}{usage.did_you_mean(variant, experiment.choices()[1])}")
  try:
    return override(config, sets)
  except ValueError as e:
    usage.fail("lstmx", str(e))


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
      usage.fail("lstmx train", "--preset runs the file's sweep (into --out); --workdir and "
                 "FILE:VARIANT train one config; expected one of them")
    from lstmx.lab import command
    try:
      options = command.sweep_options(args)
    except ValueError as e:
      usage.fail("lstmx", str(e))
    command.run_and_print(load_experiment(args.experiment), args.preset, args.out, args.sets,
                          options, prog="lstmx")
    return
  given = [f"--{k.replace('_', '-')}" for k in SWEEP_OPTIONS if getattr(args, k) is not None]
  if given:
    usage.fail("lstmx train", f"{', '.join(given)}: expected only with --preset (a sweep); "
               "--workdir trains one config")
  if args.workdir is None:
    usage.fail("lstmx train", "expected --workdir DIR (train one config) or --preset NAME "
               "[--out DIR] (run the file's sweep)")
  if args.out is not None:
    usage.fail("lstmx train", "--out: expected only with --preset (a sweep's output "
               "directory); --workdir DIR is where one config trains")
  from lstmx import distributed
  distributed.initialize(args.coordinator, args.num_processes, args.process_id)
  from lstmx.train import train_and_evaluate
  from lstmx.train.lock import Held
  from lstmx.train.progress import final_table
  from lstmx.train.resources import OutOfResource
  config = resolve_config(args.experiment, args.sets)
  try:
    summary = train_and_evaluate(config, args.workdir, force=args.force, wait=args.wait)
  except OutOfResource as e:  # a full disk, no permission, no memory: one line
    usage.fail_run("lstmx", e)
  except Held as e:  # another run trains there: a conflict, exit 1
    usage.fail("lstmx", str(e), usage.FAILURE)
  except ValueError as e:  # a setting the run refuses (a changed config without --force)
    usage.fail("lstmx", str(e))
  except OSError as e:  # e.g. a read-only workdir
    usage.fail("lstmx", f"--workdir: cannot write {e.filename!r}: {e.strerror}",
               usage.FAILURE)
  print(final_table(summary))
  print(f"run directory: {os.path.abspath(args.workdir)} (summary.json, metrics.jsonl, "
        "tensorboard/)")


def _report(args) -> None:
  import pandas as pd

  from lstmx.lab import overview, report
  if len(args.out_dirs) > 1 or args.out is not None:
    try:
      path = overview.write(args.out_dirs, args.out)
    except ValueError as e:
      usage.fail("lstmx report", str(e))
    except OSError as e:
      usage.fail("lstmx report", str(e), usage.FAILURE)
    print(f"page: {os.path.abspath(path)}")
    return
  out_dir = args.out_dirs[0]
  try:
    meta = overview.check_output_dir(out_dir)
    experiment = load_experiment(meta.get("experiment") or "", "lstmx report")
    results = pd.read_csv(os.path.join(out_dir, "results.csv"))
  except (OSError, ValueError, KeyError, TypeError) as e:
    usage.fail("lstmx report", str(e))
  try:
    path = report.write(experiment, out_dir, results)
  except OSError as e:
    usage.fail("lstmx report", f"cannot write {e.filename!r}: {e.strerror}", usage.FAILURE)
  print(f"report: {os.path.abspath(path)}")


def _info(args) -> None:
  import json

  from lstmx.lab import info
  environment = info.environment()
  print(json.dumps(environment, indent=1) if args.json else info.format_text(environment))


def _choice(choices: tuple[str, ...]):
  """An argparse ``type`` that accepts one of `choices`, with a "did you mean" else."""
  def check(value: str) -> str:
    if value not in choices:
      raise argparse.ArgumentTypeError(f"expected one of {', '.join(choices)}; got "
                                       f"{value!r}{usage.did_you_mean(value, choices)}")
    return value
  return check


TRAIN_EXAMPLES = """examples:
  lstmx train experiments/smoke.py --workdir runs/smoke
  lstmx train experiments/smoke.py:chrono --workdir runs/chrono --set train.steps=200
  lstmx train experiments/long_dependency.py --preset quick --workers auto
  lstmx train experiments/long_dependency.py --preset tiny --out /tmp/ld --seeds 2"""
REPORT_EXAMPLES = """examples:
  lstmx report runs/long_dependency/quick
  lstmx report runs/long_dependency/quick runs/overfitting/quick --out where.md"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
  pass


def parser() -> argparse.ArgumentParser:
  ap = argparse.ArgumentParser(
      prog="lstmx", formatter_class=_Formatter,
      description="lstmx: train one config, run an experiment's sweep, report it.",
      epilog=f"{TRAIN_EXAMPLES}\n  lstmx info --json\n\n`lstmx COMMAND --help` for a "
      "command's options.")
  ap.add_argument("--version", action="version", version=version(),
                  help="print lstmx's version and jax's, e.g. 'lstmx 0.1.0 (jax 0.7.2)'")
  sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
  tr = sub.add_parser("train", formatter_class=_Formatter, epilog=TRAIN_EXAMPLES,
                      help="train one config (--workdir) or run a sweep (--preset); "
                      "rerun to resume",
                      description="Train one config of an experiment file into --workdir,\n"
                      "or run the file's sweep of a --preset into --out. Rerunning resumes.")
  tr.add_argument("experiment", metavar="FILE[:VARIANT]",
                  help="an experiment file and, with --workdir, one of its VARIANTS (or "
                  "presets), e.g. experiments/smoke.py:chrono")
  tr.add_argument("--workdir", metavar="DIR",
                  help="train one config into DIR (config.json, metrics.jsonl, "
                  "summary.json, checkpoints, tensorboard/), e.g. --workdir runs/smoke")
  tr.add_argument("--preset", type=_choice(PRESETS), metavar="{" + ",".join(PRESETS) + "}",
                  help="run the file's sweep of this preset, e.g. --preset quick")
  tr.add_argument("--out", metavar="DIR",
                  help="with --preset: the sweep's output directory (default "
                  "runs/NAME/PRESET), e.g. --out /tmp/ld")
  tr.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                  help="set one config field by its dotted key, repeatable (of every "
                  "trial with --preset), e.g. --set train.steps=200 --set "
                  "model.hidden_size=64; the keys are lstmx.config's fields")
  tr.add_argument("--force", action="store_true",
                  help="with a changed config: retrain from scratch in the same place "
                  "(or extend, where only train.steps grew), e.g. --set train.steps=2000 "
                  "--force")
  tr.add_argument("--wait", action="store_true",
                  help="with --workdir: where another run trains there, wait for it to "
                  "finish (default: refuse)")
  from lstmx.lab.command import add_sweep_options
  add_sweep_options(tr)
  tr.add_argument("--coordinator", metavar="HOST:PORT",
                  help="multi-host: the coordinator, e.g. --coordinator 10.0.0.1:1234")
  tr.add_argument("--num-processes", type=int, metavar="N",
                  help="multi-host: how many processes, e.g. --num-processes 2")
  tr.add_argument("--process-id", type=int, metavar="I",
                  help="multi-host: this process's index, e.g. --process-id 0")
  sub.add_parser("bench", help="time one LSTM layer against its peers (benchmarks/bench.py; "
                 "`lstmx bench --help`)")
  rp = sub.add_parser("report", formatter_class=_Formatter, epilog=REPORT_EXAMPLES,
                      help="(re)write the report of an experiment's output directory; of "
                      "several: the page 'Limits of LSTMs: what these runs show'")
  rp.add_argument("out_dirs", nargs="+", metavar="DIR",
                  help="output directory of an experiment, e.g. runs/long_dependency/quick")
  from lstmx.lab.overview import DEFAULT_NAME
  rp.add_argument("--out", metavar="PAGE.md", help="write the cross-experiment page here "
                  f"(default: {DEFAULT_NAME} in the directories' common parent), e.g. "
                  "--out where.md")
  inf = sub.add_parser("info", help="devices, versions and the backend 'auto' picks",
                       formatter_class=_Formatter, epilog="examples:\n  lstmx info\n  "
                       "lstmx info --json")
  inf.add_argument("--json", action="store_true", help="as JSON, e.g. lstmx info --json")
  return ap


def _option_strings(ap: argparse.ArgumentParser, command: str | None) -> list[str]:
  """The long options of `ap` and, where given, of its subcommand `command`."""
  parsers = [ap]
  for action in ap._actions:  # argparse keeps subparsers here, and nowhere public
    if isinstance(action, argparse._SubParsersAction) and command in action.choices:
      parsers.append(action.choices[command])
  return [o for p in parsers for a in p._actions for o in a.option_strings
          if o.startswith("--")]


def parse(argv: list[str]) -> argparse.Namespace:
  """`parser`'s arguments; a usage error (exit 2) with a "did you mean" for an unknown
  command or option."""
  if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
    usage.fail("lstmx", f"unknown command {argv[0]!r}; expected one of "
               f"{', '.join(COMMANDS)}{usage.did_you_mean(argv[0], COMMANDS)}")
  ap = parser()
  args, extra = ap.parse_known_args(argv)
  unknown = [a for a in extra if a.startswith("-")]
  if unknown or extra:
    options = _option_strings(ap, args.command)
    first = (unknown or extra)[0]
    hint = usage.did_you_mean(first.split("=", 1)[0], options) if unknown else ""
    usage.fail(f"lstmx {args.command}", f"unrecognized arguments: {' '.join(extra)}{hint}; "
               f"see `lstmx {args.command} --help`")
  return args


def main(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  if argv[:1] == ["bench"]:  # its own parser: `lstmx bench --help`
    return bench(argv[1:])
  args = parse(argv)
  if args.command == "report":
    _report(args)
  if args.command == "info":
    _info(args)
  if args.command == "train":
    _train(args)
  return 0


if __name__ == "__main__":
  sys.exit(main())
