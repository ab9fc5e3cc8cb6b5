"""A sweep's command line: the options of ``python experiments/NAME.py`` and ``lstmx
train FILE --preset`` (`add_sweep_options`, read back as one `SweepOptions` by
`sweep_options`), `run_and_print` and `main` (an experiment file's command line) around
`lstmx.lab.runner.run`.

Exit codes: 0 when every trial finished (completed, stopped early or diverged); 1 when a
trial failed (each failure's first line was printed on stderr as it happened;
``--allow-failures`` exits 0), a package or dataset is missing (before any trial ran), another
runner holds the output directory or the output cannot be written; 2 for a usage error (a bad option or value).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import types

import pandas as pd

from lstmx.lab import usage
from lstmx.lab.experiment import PRESETS, Experiment, as_experiment
from lstmx.lab.lock import Held
from lstmx.lab.options import SweepOptions, add_arguments, as_flags
from lstmx.lab.runner import MissingData, run
from lstmx.lab.usage import FAILURE, fail, fail_run
from lstmx.train.resources import OutOfResource

__all__ = ["add_sweep_options", "main", "run_and_print", "sweep_options"]

add_sweep_options = add_arguments


def sweep_options(args: argparse.Namespace) -> SweepOptions:
  """The `SweepOptions` of `add_sweep_options`' options (and ``--force``).

  Raises:
    ValueError: a bad value or combination, naming the option.
  """
  return SweepOptions.from_args(args)


def run_and_print(experiment: Experiment | types.ModuleType, preset: str,
                  out: str | None = None, sets: list[str] = (),
                  options: SweepOptions | None = None, *,
                  prog: str | None = None) -> pd.DataFrame:
  """`run` for a command line: output in `out` (default ``runs/NAME/PRESET``), with
  `options` (default: ``auto`` workers); prints where the results and report are.

  Exits (SystemExit, one line on stderr starting with `prog`, by default the
  experiment's name): 2 on a bad setting; 1 on a missing package or dataset, an output
  directory it cannot write, or, after the results are written, any failed trial
  (unless ``options.allow_failures``)."""
  exp = as_experiment(experiment)
  prog = prog or exp.name
  options = SweepOptions(workers="auto") if options is None else options
  out = out or os.path.join("runs", exp.name, preset)
  try:
    results = run(exp, preset, out, list(sets), options)
  except OutOfResource as e:  # a full disk, no permission, no memory: the sweep stops
    fail_run(prog, e)
  except (MissingData, Held) as e:  # not the command line's fault: exit 1
    fail(prog, str(e), FAILURE)
  except ValueError as e:
    fail(prog, as_flags(str(e)))
  except OSError as e:  # e.g. a read-only output directory
    fail(prog, f"--out: cannot write {e.filename!r}: {e.strerror}", FAILURE)
  counts = results["status"].value_counts().to_dict()
  print(f"{len(results)} trials: {json.dumps(counts)}")
  print(f"results: {os.path.abspath(os.path.join(out, 'results.csv'))}")
  print(f"report:  {os.path.abspath(os.path.join(out, 'report.md'))}")
  sys.stdout.flush()
  failed = int(counts.get("failed", 0))
  if failed and not options.allow_failures:
    fail(prog, f"{failed} of {len(results)} trials failed (their errors above and in "
         f"{os.path.join(out, 'results.csv')}); rerun to retry them, or pass "
         "--allow-failures to exit 0", FAILURE)
  return results


def parser(exp: Experiment) -> argparse.ArgumentParser:
  """The command line of an experiment file."""
  ap = argparse.ArgumentParser(
      description=exp.description,
      epilog=f"example: python {exp.path or 'experiments/NAME.py'} --preset tiny --workers 2")
  ap.add_argument("--preset", default="quick", choices=PRESETS,
                  help="which preset's sweep to run (default quick). Example: --preset tiny")
  ap.add_argument("--out", help="output directory (default runs/NAME/PRESET); rerunning "
                  "resumes there. Example: --out /tmp/ld")
  ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                  help="override a dotted key of every trial's base config (repeatable). "
                  "Example: --set train.steps=200 --set optimizer.lr=1e-3")
  ap.add_argument("--force", action="store_true",
                  help="retrain trials whose results came from different settings")
  add_sweep_options(ap)
  return ap


def main(module: Experiment | types.ModuleType, argv: list[str] | None = None) -> None:
  """The command line of an experiment file: ``python experiments/NAME.py --preset ...``
  (the same as ``lstmx train experiments/NAME.py --preset ...``)."""
  exp = as_experiment(module)
  args = parser(exp).parse_args(argv)
  try:
    options = sweep_options(args)
  except ValueError as e:
    fail(exp.name, str(e))
  run_and_print(exp, args.preset, args.out, args.sets, options)
