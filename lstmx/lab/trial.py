"""One trial of a sweep: `run_trial` trains a config in its run directory and runs
the experiment's per-trial analysis; a failure is recorded, never raised."""

from __future__ import annotations

import os
import traceback

from lstmx.config import Config
from lstmx.lab.experiment import Experiment
from lstmx.train import train_and_evaluate
from lstmx.train.loop import clear_run
from lstmx.train.rundir import CorruptRecord, warn, write_json


def run_trial(experiment: Experiment, config: Config, workdir: str, *,
              force: bool = False) -> dict:
  """Trains one trial; a failure is recorded in its summary (and ``failure.json``),
  never raised. A trial whose files are damaged beyond what the engine recovers
  (`CorruptRecord`) is reported and retrained from scratch once."""
  try:
    try:
      summary = train_and_evaluate(config, workdir, force=force)
    except CorruptRecord as e:
      warn(f"trial {workdir}: {e}; retraining it from scratch")
      clear_run(workdir)
      summary = train_and_evaluate(config, workdir, force=force)
    if needs_analysis(experiment, summary):
      summary["analysis"] = experiment.analyze(config, workdir)
      write_json(os.path.join(workdir, "summary.json"), summary)
  except Exception as e:  # noqa: BLE001 - one failed trial must not stop a sweep
    summary = {"status": "failed", "error": f"{type(e).__name__}: {e}",
               "traceback": traceback.format_exc()}
    write_json(os.path.join(workdir, "failure.json"), summary)
  return summary


def needs_analysis(experiment: Experiment, summary: dict) -> bool:
  """Whether a finished trial still lacks the experiment's ``analyze`` results."""
  return (experiment.analyze is not None and summary.get("status") != "diverged"
          and "analysis" not in summary)
