"""Synthetic tasks behind one registry.

    >>> task = lstmx.tasks.make("copy", delay=50)
    >>> batch = task.sample(jax.random.key(0), 32)
    >>> batch["inputs"].shape, task.baseline_loss
    ((32, 70, 10), 0.297...)

`names()` lists the tasks; every parameter has a default. See
`lstmx.tasks.base` for the batch layout and the meaning of the baseline.
"""

from __future__ import annotations

import dataclasses

from lstmx.registry import Registry
from lstmx.tasks.adding import Adding
from lstmx.tasks.base import Batch, Task, cross_entropy, masked_mean
from lstmx.tasks.datasets import CharLM, DatasetClassification, Forecast
from lstmx.tasks.formal import CycleNavigation, EvenPairs, Parity
from lstmx.tasks.language import StreamLM
from lstmx.tasks.memory import Copy, SelectiveCopy, VariableCopy
from lstmx.tasks.pixels import SequentialImages
from lstmx.tasks.recall import MQAR, AssociativeRecall

TASKS: Registry[type[Task]] = Registry("task")


def register(cls: type[Task]) -> type[Task]:
  """Adds a Task subclass to the registry under ``cls.name`` (a class decorator)."""
  return TASKS.register(cls.name, cls)


for _cls in (Copy, VariableCopy, SelectiveCopy, Adding, AssociativeRecall, MQAR, Parity,
             EvenPairs, CycleNavigation, SequentialImages, DatasetClassification, CharLM,
             Forecast, StreamLM):
  register(_cls)


def names() -> tuple[str, ...]:
  """The registered task names, sorted."""
  return tuple(sorted(TASKS.names()))


def make(name: str, **params) -> Task:
  """Builds a task by name; unknown names or parameters raise a clear error."""
  if name not in TASKS:
    raise ValueError(f"task: expected one of {names()}; got {name!r}")
  cls = TASKS.get(name)
  fields = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(params) - fields)
  if unknown:
    raise ValueError(f"{name}: unknown parameter(s) {unknown}; expected some of {sorted(fields)}")
  task = cls(**params)
  task.validate()
  return task


__all__ = ["Adding", "AssociativeRecall", "Batch", "CharLM", "Copy", "CycleNavigation",
           "DatasetClassification", "EvenPairs", "Forecast",
           "MQAR", "Parity", "SelectiveCopy", "SequentialImages", "StreamLM", "TASKS", "Task",
           "VariableCopy",
           "cross_entropy",
           "make", "masked_mean", "names", "register"]
