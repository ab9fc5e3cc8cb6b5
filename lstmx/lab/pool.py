"""Where a sweep's trials run: a pool takes `TrialSpec`s and yields each
``(spec, summary)`` as its trial finishes, in any order.

A `TrialSpec` is plain data (the config as a dict, the experiment by its file's
path), so a trial can run in this process (`SerialPool`), in a worker process or
on another machine: `execute` rebuilds the config and the experiment there and
calls `lstmx.lab.trial.run_trial`, which never raises (a failure is its summary).
Every trial writes only its own run directory, so trials are independent and a
killed pool loses at most the steps since each running trial's last checkpoint.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Iterable, Iterator, Protocol

from lstmx.config import Config, from_dict, to_dict
from lstmx.lab import compile_cache
from lstmx.lab.experiment import Experiment, load
from lstmx.lab.trial import run_trial


@dataclasses.dataclass(frozen=True)
class TrialSpec:
  """One trial, as data.

  Attributes:
    trial: the trial's id (`lstmx.lab.sweep.trial_id`).
    experiment: the experiment file's path (reloaded where the trial runs, for its
      ``analyze``); empty where the experiment has no file.
    config: the trial's config as `lstmx.config.to_dict` gives it.
    workdir: the trial's run directory.
    force: retrain (or extend) a run directory that holds another config.
    compile_cache: the directory of the sweep's persistent compilation cache
      (`lstmx.lab.compile_cache`); None: none.
  """

  trial: str
  experiment: str
  config: dict[str, Any]
  workdir: str
  force: bool = False
  compile_cache: str | None = None

  @classmethod
  def make(cls, trial: str, experiment: Experiment, config: Config, workdir: str,
           force: bool = False, compile_cache: str | None = None) -> TrialSpec:
    return cls(trial, experiment.path, to_dict(config), workdir, force, compile_cache)


@functools.lru_cache(maxsize=8)
def _experiment(path: str) -> Experiment:
  return load(path)


def execute(spec: TrialSpec, experiment: Experiment | None = None) -> dict:
  """Runs `spec`'s trial here and returns its summary (``status`` failed on an error).

  `experiment` is used as is where given; otherwise it is loaded from ``spec.experiment``
  (once per process), or, with no path, the trial runs without an ``analyze``.
  """
  if experiment is None:
    experiment = _experiment(spec.experiment) if spec.experiment else Experiment(name="")
  with compile_cache.scope(spec.compile_cache):
    return run_trial(experiment, from_dict(Config, spec.config), spec.workdir,
                     force=spec.force)


class Pool(Protocol):
  """Runs trials; `run` yields ``(spec, summary)`` as each finishes, in any order."""

  def run(self, specs: Iterable[TrialSpec]) -> Iterator[tuple[TrialSpec, dict]]:
    ...

  def close(self) -> None:
    ...


class SerialPool:
  """Trials one after another in this process (the experiment object is used as is, so
  experiments built in code without a file work too)."""

  workers = 1
  local = True  # on this machine: the sweep's compilation cache is safe to share

  def __init__(self, experiment: Experiment | None = None):
    self.experiment = experiment

  def run(self, specs: Iterable[TrialSpec]) -> Iterator[tuple[TrialSpec, dict]]:
    for spec in specs:
      yield spec, execute(spec, self.experiment)

  def close(self) -> None:
    pass
