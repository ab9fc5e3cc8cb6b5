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
trial is lost or counted twice. It always holds a row per trial (``pending``
for one not yet run), and is rewritten atomically after each trial.

A damaged trial (an unreadable or empty ``summary.json``, a checkpoint that does
not restore) is reported on stderr with the file's path and retried: its summary
is rebuilt from its checkpoint, or it resumes from an older checkpoint, or it is
retrained from scratch; it never stops the sweep.

Provenance: before anything runs, each trial's ``config.json`` (and the base
config in ``experiment.json``) is compared with what this run would train; a
difference (say another ``--set``) is refused with the differing keys, or with
``force`` those trials are retrained (or extended, for more ``train.steps``; see
`train_and_evaluate`). ``experiment.json`` is written only after that check.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import types

import pandas as pd

from lstmx.config import Config, override, to_dict
from lstmx.lab import report
from lstmx.lab import sweep as sweeps
from lstmx.lab.experiment import PRESETS, Experiment, as_experiment
from lstmx.lab.pool import Pool, SerialPool, TrialSpec
from lstmx.lab.trial import needs_analysis, run_trial  # noqa: F401 - run_trial re-exported
from lstmx.train.progress import Progress
from lstmx.train.rundir import (CorruptRecord, atomic_write, config_diff, config_dict,
                                read_config, read_json, read_summary, warn, write_json)


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


def _trial_summary(tid: str, workdir: str) -> dict | None:
  """The trial's summary; None where it has none or it is damaged (reported)."""
  try:
    return read_summary(os.path.join(workdir, "summary.json"))
  except CorruptRecord as e:
    warn(f"trial {tid}: {e}; retrying the trial")
    return None


def _changed(out_dir: str, base: Config, configs: dict[str, Config]) -> dict[str, list[str]]:
  """{what: differing keys} between `out_dir`'s records and this run: ``experiment.json``'s
  base config (key ``base``) and each trial's ``config.json`` (key: the trial id).
  Unreadable or missing records are not compared (each trial's config.json is rewritten
  when it runs)."""
  changed = {}
  try:
    meta = read_json(os.path.join(out_dir, "experiment.json"))
  except (FileNotFoundError, CorruptRecord):
    meta = None
  if isinstance(meta, dict) and isinstance(meta.get("base"), dict):
    diff = config_diff(meta["base"], config_dict(base))
    if diff:
      changed["base"] = diff
  for tid, config in configs.items():
    workdir = os.path.join(out_dir, "trials", tid)
    old = read_config(workdir)
    if old is not None:
      diff = config_diff(old, config_dict(config))
    else:  # unverifiable: counts as changed only where the sweep's base did change
      has_results = os.path.exists(os.path.join(workdir, "summary.json"))
      diff = ["config.json (unreadable)"] if "base" in changed and has_results else []
    if diff:
      changed[tid] = diff
  return changed


def run(experiment: Experiment | types.ModuleType, preset: str, out_dir: str,
        sets: list[str] = (), *, progress: bool = True, make_report: bool = True,
        force: bool = False, pool: Pool | None = None) -> pd.DataFrame:
  """Runs (or resumes) every trial of `preset` in `out_dir`; returns the results table.

  The trials to run go to `pool` (default: a `SerialPool`, one after another in this
  process); the table is rewritten as each finishes.

  Raises:
    ValueError: `out_dir` holds results of different settings (naming the differing
      keys), unless `force`: then the trials that differ are retrained from scratch
      (or extended, where only ``train.steps`` grew).
  """
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
  configs = {}
  for tid, ov in trials:
    config = sweeps.apply(base, ov)
    configs[tid] = dataclasses.replace(config, name=f"{exp.name}/{tid}",
                                       train=dataclasses.replace(config.train, progress=False))
  changed = _changed(out_dir, base, configs)
  if changed and not force:
    what = "; ".join(f"{k} differs at {v}" for k, v in changed.items())
    raise ValueError(f"out_dir {out_dir!r} holds results of different settings ({what}); "
                     "use another output directory, or force=True (--force) to retrain them")
  os.makedirs(os.path.join(out_dir, "trials"), exist_ok=True)
  write_json(os.path.join(out_dir, "experiment.json"), {
      "experiment": exp.path, "name": exp.name, "preset": preset,
      "sets": list(sets), "base": to_dict(base),
      "trials": [{"trial": t, "overrides": ov} for t, ov in trials]})
  summaries = {tid: _trial_summary(tid, os.path.join(out_dir, "trials", tid))
               for tid, _ in trials}
  rows = {tid: (result_row(tid, ov, summaries[tid]) if summaries[tid] is not None
                else {"trial": tid, **ov, "status": "pending"}) for tid, ov in trials}
  write_results(out_dir, list(rows.values()))
  todo = [TrialSpec.make(tid, exp, configs[tid], os.path.join(out_dir, "trials", tid),
                        force=tid in changed)
          for tid, _ in trials
          if summaries[tid] is None or needs_analysis(exp, summaries[tid]) or tid in changed]
  overrides = dict(trials)
  bar = Progress(total=len(trials), initial=len(trials) - len(todo), enabled=progress,
                 desc=f"{exp.name}/{preset} trials")
  pool = pool if pool is not None else SerialPool(exp)
  try:
    for done, (spec, summary) in enumerate(pool.run(todo), start=len(trials) - len(todo) + 1):
      rows[spec.trial] = result_row(spec.trial, overrides[spec.trial], summary)
      write_results(out_dir, list(rows.values()))
      bar.update(done, {"done": done, "status": 0.0 if summary["status"] == "failed" else 1.0})
  finally:
    pool.close()
  bar.close()
  results = pd.DataFrame(list(rows.values()))
  if make_report:
    report.write(exp, out_dir, results)
  return results


def write_results(out_dir: str, rows: list[dict]) -> None:
  """Writes ``out_dir/results.csv`` atomically."""
  atomic_write(os.path.join(out_dir, "results.csv"),
               lambda f: pd.DataFrame(rows).to_csv(f, index=False))


def run_and_print(experiment: Experiment | types.ModuleType, preset: str,
                  out: str | None = None, sets: list[str] = (), *,
                  force: bool = False, prog: str | None = None) -> pd.DataFrame:
  """`run` for a command line: output in `out` (default ``runs/NAME/PRESET``), a
  bad setting or an output directory it cannot write as one line (a SystemExit
  starting with `prog`, by default the experiment's name), and where the results
  and report are."""
  exp = as_experiment(experiment)
  out = out or os.path.join("runs", exp.name, preset)
  try:
    results = run(exp, preset, out, list(sets), force=force)
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
  args = ap.parse_args(argv)
  run_and_print(exp, args.preset, args.out, args.sets, force=args.force)
