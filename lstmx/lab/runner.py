"""The sweep runner: expands an experiment's preset into trials, trains each
through `train_and_evaluate` (one run directory each), and keeps one results
table. It holds no training code.

An experiment is a Python file (see ``experiments/long_dependency.py``) read
through the protocol of `lstmx.lab.experiment` (``NAME``, ``presets()`` and the
optional ``analyze``, ``figures``, ``findings``); `run` and `main` take its
module or its `Experiment`.

Layout of ``out_dir``: ``experiment.json`` (what was run), ``trials/<id>/``
(run directories), ``results.csv`` (one row per trial), ``report.md`` and
``figures/``. Rerunning skips completed trials, resumes interrupted ones and
retries failed ones; the table is rebuilt from the trials' summaries, so no
trial is lost or counted twice.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import traceback
import types

import pandas as pd

from lstmx.config import Config, override, to_dict
from lstmx.lab import report
from lstmx.lab import sweep as sweeps
from lstmx.lab.experiment import PRESETS, Experiment, as_experiment
from lstmx.train import train_and_evaluate
from lstmx.train.progress import Progress
from lstmx.train.rundir import read_json, write_json


def _flatten(prefix: str, value, out: dict) -> None:
  if isinstance(value, dict):
    for k, v in value.items():
      _flatten(f"{prefix}{k}.", v, out)
  elif not isinstance(value, (list, tuple)):
    out[prefix.rstrip(".")] = value


def result_row(trial: str, overrides: dict, summary: dict) -> dict:
  """One results-table row: the trial's overrides, status, metrics and cost."""
  row = {"trial": trial, **overrides}
  for key in ("status", "stop_reason", "steps", "wall_time", "compile_time",
              "step_memory_bytes", "peak_rss_bytes", "param_count", "error"):
    row[key] = summary.get(key)
  _flatten("final.", summary.get("final", {}), row)
  _flatten("best.", summary.get("best", {}), row)
  _flatten("task.", {k: v for k, v in summary.get("task", {}).items() if k != "solved_rule"},
           row)
  _flatten("analysis.", summary.get("analysis", {}), row)
  return row


def run_trial(experiment: Experiment, config: Config, workdir: str) -> dict:
  """Trains one trial; a failure is recorded in its summary, never raised."""
  try:
    summary = train_and_evaluate(config, workdir)
    if _needs_analysis(experiment, summary):
      summary["analysis"] = experiment.analyze(config, workdir)
      write_json(os.path.join(workdir, "summary.json"), summary)
  except Exception as e:  # noqa: BLE001 - one failed trial must not stop a sweep
    summary = {"status": "failed", "error": f"{type(e).__name__}: {e}",
               "traceback": traceback.format_exc()}
    write_json(os.path.join(workdir, "failure.json"), summary)
  return summary


def _needs_analysis(experiment: Experiment, summary: dict) -> bool:
  return (experiment.analyze is not None and summary.get("status") != "diverged"
          and "analysis" not in summary)


def run(experiment: Experiment | types.ModuleType, preset: str, out_dir: str,
        sets: list[str] = (), *, progress: bool = True,
        make_report: bool = True) -> pd.DataFrame:
  """Runs (or resumes) every trial of `preset` in `out_dir`; returns the results table."""
  exp = as_experiment(experiment)
  presets = exp.presets()
  if preset not in presets:
    raise ValueError(f"preset: expected one of {sorted(presets)}; got {preset!r}")
  p = presets[preset]
  base = override(p.base, list(sets))
  trials = [(sweeps.trial_id(ov), ov) for ov in p.sweep]
  ids = [t for t, _ in trials]
  if len(set(ids)) != len(ids):
    raise ValueError(f"{exp.name}.{preset}: the sweep repeats a trial")
  os.makedirs(os.path.join(out_dir, "trials"), exist_ok=True)
  write_json(os.path.join(out_dir, "experiment.json"), {
      "experiment": exp.path, "name": exp.name, "preset": preset,
      "sets": list(sets), "base": to_dict(base),
      "trials": [{"trial": t, "overrides": ov} for t, ov in trials]})
  bar = Progress(total=len(trials), enabled=progress, desc=f"{exp.name}/{preset} trials")
  rows = []
  for i, (tid, ov) in enumerate(trials):
    workdir = os.path.join(out_dir, "trials", tid)
    path = os.path.join(workdir, "summary.json")
    summary = read_json(path) if os.path.exists(path) else None
    if summary is None or _needs_analysis(exp, summary):
      config = sweeps.apply(base, ov)
      config = dataclasses.replace(config, name=f"{exp.name}/{tid}",
                                   train=dataclasses.replace(config.train, progress=False))
      summary = run_trial(exp, config, workdir)
    rows.append(result_row(tid, ov, summary))
    write_results(out_dir, rows)
    bar.update(i + 1, {"done": i + 1, "status": 0.0 if summary["status"] == "failed" else 1.0})
  bar.close()
  results = pd.DataFrame(rows)
  if make_report:
    report.write(exp, out_dir, results)
  return results


def write_results(out_dir: str, rows: list[dict]) -> None:
  path = os.path.join(out_dir, "results.csv")
  pd.DataFrame(rows).to_csv(path + ".tmp", index=False)
  os.replace(path + ".tmp", path)


def run_and_print(experiment: Experiment | types.ModuleType, preset: str,
                  out: str | None = None, sets: list[str] = ()) -> pd.DataFrame:
  """`run` for a command line: output in `out` (default ``runs/NAME/PRESET``), a
  ValueError as a SystemExit, and where the results and report are."""
  exp = as_experiment(experiment)
  out = out or os.path.join("runs", exp.name, preset)
  try:
    results = run(exp, preset, out, list(sets))
  except ValueError as e:
    raise SystemExit(f"{exp.name}: {e}") from None
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
  args = ap.parse_args(argv)
  run_and_print(exp, args.preset, args.out, args.sets)
