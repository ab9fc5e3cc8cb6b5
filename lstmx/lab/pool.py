"""Where a sweep's trials run: a pool takes `TrialSpec`s and yields each
``(spec, summary)`` as its trial finishes, in any order.

A `TrialSpec` is plain data (the config as a dict, the experiment by its file's
path), so a trial can run in this process (`SerialPool`), in a worker process or
on another machine: `execute` rebuilds the config and the experiment there and
calls `lstmx.lab.trial.run_trial`, which never raises (a failure is its summary).
Every trial writes only its own run directory, so trials are independent and a
killed pool loses at most the steps since each running trial's last checkpoint.

A `TrialGroup` (``--trials-per-device K``, `group_specs`) is K trials that differ only in
values, trained together as one program on one device (`lstmx.train.batched`); a pool
runs it as one item and yields it with the list of its trials' summaries.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Iterable, Iterator, Protocol

from lstmx.config import Config, from_dict, to_dict
from lstmx.lab import compile_cache
from lstmx.lab.experiment import Experiment, load
from lstmx.lab.trial import run_group, run_trial
from lstmx.train.batched import group_key


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


@dataclasses.dataclass(frozen=True)
class TrialGroup:
  """Trials that train together on one device (`lstmx.lab.trial.run_group`)."""

  specs: tuple[TrialSpec, ...]

  @property
  def trial(self) -> str:
    return "+".join(spec.trial for spec in self.specs)

  @property
  def workdir(self) -> str:  # where a pool records the failure of the whole group
    return self.specs[0].workdir


def group_specs(specs: list[TrialSpec], per_device: int) -> list[TrialSpec | TrialGroup]:
  """`specs` in groups of at most `per_device` trials that may train together
  (`lstmx.train.batched.group_key`: equal but for seed, learning rate and initializer),
  in `specs`' order (a group where its first trial was); a trial alone stays a
  `TrialSpec` (trained as without groups)."""
  buckets: dict[str, list[TrialSpec]] = {}
  for spec in specs:
    buckets.setdefault(group_key(from_dict(Config, spec.config)), []).append(spec)
  out = []
  for bucket in buckets.values():
    for i in range(0, len(bucket), per_device):
      part = bucket[i:i + per_device]
      out.append(part[0] if len(part) == 1 else TrialGroup(tuple(part)))
  order = {spec.trial: i for i, spec in enumerate(specs)}
  first = lambda item: order[item.specs[0].trial if isinstance(item, TrialGroup)  # noqa: E731
                             else item.trial]
  return sorted(out, key=first)


def specs_of(item: TrialSpec | TrialGroup) -> tuple[TrialSpec, ...]:
  """The trials of a pool's item."""
  return item.specs if isinstance(item, TrialGroup) else (item,)


def results(item: TrialSpec | TrialGroup, result) -> list[tuple[TrialSpec, dict]]:
  """``(spec, summary)`` of each trial of a pool's `item` and its `result` (a group's
  list of summaries, or one failure summary for all its trials)."""
  if not isinstance(item, TrialGroup):
    return [(item, result)]
  if isinstance(result, dict):
    return [(spec, result) for spec in item.specs]
  return list(zip(item.specs, result))


@functools.lru_cache(maxsize=8)
def _experiment(path: str) -> Experiment:
  return load(path)


def execute(spec: TrialSpec | TrialGroup, experiment: Experiment | None = None):
  """Runs `spec`'s trial here and returns its summary (``status`` failed on an error);
  for a `TrialGroup`, the list of its trials' summaries.

  `experiment` is used as is where given; otherwise it is loaded from ``spec.experiment``
  (once per process), or, with no path, the trial runs without an ``analyze``.
  """
  if experiment is None:
    path = specs_of(spec)[0].experiment
    experiment = _experiment(path) if path else Experiment(name="")
  if isinstance(spec, TrialGroup):
    with compile_cache.scope(spec.specs[0].compile_cache):
      return run_group(experiment, [from_dict(Config, s.config) for s in spec.specs],
                       [s.workdir for s in spec.specs], force=[s.force for s in spec.specs])
  with compile_cache.scope(spec.compile_cache):
    return run_trial(experiment, from_dict(Config, spec.config), spec.workdir,
                     force=spec.force)


OUT_OF_RESOURCE = "out_of_resource"  # key of a summary: (errno, cause, path)


def execute_or_report(spec: TrialSpec | TrialGroup):
  """`execute` in a process apart from the runner (a local worker, a Ray task): a full
  disk (`OutOfResource`, which `execute` raises) comes back as a failed summary carrying
  `OUT_OF_RESOURCE`, so the runner can stop the sweep with it (`out_of_resource`)."""
  from lstmx.train.resources import OutOfResource
  try:
    return execute(spec)
  except OutOfResource as e:
    return {"status": "failed", "error": f"{type(e).__name__}: {e}",
            OUT_OF_RESOURCE: [e.errno, e.strerror, e.filename]}


def out_of_resource(summary):
  """The `OutOfResource` a trial met in another process (a full disk stops the sweep),
  or None."""
  if isinstance(summary, dict) and OUT_OF_RESOURCE in summary:
    from lstmx.train.resources import OutOfResource
    return OutOfResource(*summary[OUT_OF_RESOURCE])
  return None


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
