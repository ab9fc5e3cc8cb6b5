"""What an experiment's ``analyze(config, workdir)`` loads of its finished trial,
without reaching into the training engine: the task and model as initialized
(`fresh`), as trained (`trained`: the parameters of the final evaluation), and at
every checkpoint the run kept (`checkpoints`).

    >>> task, model = fresh(config)
    >>> task, model = trained(config, workdir)
    >>> for step, model in checkpoints(config, workdir): ...
"""

from __future__ import annotations

from typing import Iterator

from lstmx.config import Config


def fresh(config: Config):
  """(task, model) of `config`, freshly initialized from its seed."""
  from lstmx.train import restore
  return restore.build(config)


def trained(config: Config, workdir: str):
  """(task, model) with the parameters of the run's final evaluation (its latest
  checkpoint; the iterate average where the run averaged)."""
  from lstmx.train import restore
  return restore.load_trained(config, workdir)


def checkpoints(config: Config, workdir: str) -> Iterator[tuple[int, object]]:
  """(step, model) at each checkpoint the run kept, in step order."""
  from lstmx.train import restore
  yield from restore.checkpointed(config, workdir)
