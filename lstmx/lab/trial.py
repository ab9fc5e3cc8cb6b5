"""One trial of a sweep: `run_trial` trains a config in its run directory and runs
the experiment's per-trial analysis; a failure is recorded, never raised. `run_group`
trains several trials together on one device (`lstmx.train.batched`)."""

from __future__ import annotations

import os
import traceback

from lstmx.config import Config
from lstmx.lab.experiment import Experiment
from lstmx.train import train_and_evaluate
from lstmx.train.batched import NotGroupable, train_group
from lstmx.train.loop import clear_run
from lstmx.train.resources import OutOfResource
from lstmx.train.rundir import CorruptRecord, warn, write_json


def run_trial(experiment: Experiment, config: Config, workdir: str, *,
              force: bool = False) -> dict:
  """Trains one trial; a failure is recorded in its summary (and ``failure.json``),
  never raised, except a full disk, a missing permission or no memory (an
  `OutOfResource`, which stops the sweep). A trial whose files are damaged beyond what the engine recovers
  (`CorruptRecord`) is reported and retrained from scratch once."""
  try:
    try:
      summary = train_and_evaluate(config, workdir, force=force)
    except CorruptRecord as e:
      warn(f"trial {workdir}: {e}; retraining it from scratch")
      clear_run(workdir)
      summary = train_and_evaluate(config, workdir, force=force)
    return _analyzed(experiment, config, workdir, summary)
  except OutOfResource:  # a full disk stops the sweep: every trial would fail the same way
    raise
  except Exception as e:  # noqa: BLE001 - one failed trial must not stop a sweep
    return _failure(workdir, e)


def run_group(experiment: Experiment, configs: list[Config], workdirs: list[str], *,
              force: list[bool] | bool = False) -> list[dict]:
  """Trains trials that differ only in values together (`lstmx.train.batched.train_group`)
  and runs each one's analysis; returns their summaries in order. Trials that cannot be
  grouped, or a group that fails (say out of memory), train one by one with `run_trial`
  (each resuming from its own checkpoint): reported on stderr, never raised."""
  forces = list(force) if isinstance(force, (list, tuple)) else [force] * len(configs)
  names = [c.name for c in configs]
  try:
    summaries = train_group(configs, workdirs, force=forces)
  except Exception as e:  # noqa: BLE001 - the trials still train, one by one
    why = str(e) if isinstance(e, NotGroupable) else f"{type(e).__name__}: {e}"
    warn(f"trials {names} trained together: {why}; training them one by one")
    return [run_trial(experiment, c, w, force=f) for c, w, f in zip(configs, workdirs, forces)]
  out = []
  for config, workdir, summary in zip(configs, workdirs, summaries):
    try:
      out.append(_analyzed(experiment, config, workdir, summary))
    except Exception as e:  # noqa: BLE001
      out.append(_failure(workdir, e))
  return out


def _analyzed(experiment: Experiment, config: Config, workdir: str, summary: dict) -> dict:
  """`summary` with the experiment's analysis added (and saved) where it lacks one."""
  if needs_analysis(experiment, summary):
    summary["analysis"] = experiment.analyze(config, workdir)
    write_json(os.path.join(workdir, "summary.json"), summary)
  return summary


def _failure(workdir: str, e: Exception) -> dict:
  """The summary of a trial that raised `e` (`record_failure`)."""
  return record_failure(workdir, f"{type(e).__name__}: {e}", traceback.format_exc())


def record_failure(workdir: str, error: str, trace: str | None = None) -> dict:
  """A failed trial's summary (``status`` failed, its `error` and `trace`), also written
  to its ``failure.json`` where the run directory can be written: the one writer of
  failure records, whether the trial raised, its worker died or Ray gave up on it."""
  summary = {"status": "failed", "error": error}
  if trace:
    summary["traceback"] = trace
  try:
    os.makedirs(workdir, exist_ok=True)
    write_json(os.path.join(workdir, "failure.json"), summary)
  except OSError:
    pass
  return summary


def needs_analysis(experiment: Experiment, summary: dict) -> bool:
  """Whether a finished trial still lacks the experiment's ``analyze`` results."""
  return (experiment.analyze is not None and summary.get("status") != "diverged"
          and "analysis" not in summary)
