"""What a sweep's trials need, checked before the first one starts: `preflight` loads each
distinct dataset task's data once in the runner, so a missing optional package or a
dataset not fetched stops the sweep at once (`MissingData`, naming the install or fetch
command) instead of failing every trial."""

from __future__ import annotations

from lstmx.config import Config


class MissingData(ValueError):
  """A package or dataset that a sweep's trials need is missing (found before any trial
  ran; the message names the command that installs or fetches it)."""


def preflight(configs: list[Config]) -> None:
  """Checks that the optional packages and fetched datasets `configs`' tasks read are
  there, loading each distinct dataset task's data once here, before any trial starts.

  Raises:
    MissingData: naming the trials' task and the install or fetch command.
  """
  from lstmx import tasks
  from lstmx.data.dataset import DataNotFoundError, MissingDependencyError
  from lstmx.tasks.datasets import resolve_params
  seen = set()
  for config in configs:
    params = resolve_params(config.task.params, config.train.seed)
    key = (config.task.name, repr(sorted(params.items())))
    if key in seen:
      continue
    seen.add(key)
    try:
      task = tasks.make(config.task.name, **params)
      if getattr(task, "dataset", None) is not None:
        loss = task.baseline_loss  # reads the training split (a property in some tasks)
        if callable(loss):
          loss()
    except (MissingDependencyError, DataNotFoundError) as e:
      raise MissingData(f"task {config.task.name!r} ({config.name}): {e}; no trial was "
                        "started") from None
    except Exception:  # noqa: BLE001 - any other problem is the trial's to report
      continue
