"""`RunRecord`: what a run knows beyond its train state, saved beside it in each checkpoint.

The record is a frozen dataclass; the loop and its hooks return new records
(`dataclasses.replace`) rather than editing one. In a checkpoint it is the
JSON object of its fields, the same keys the engine's earlier ``meta`` dict
had, so runs checkpointed before the record existed resume too.
"""

from __future__ import annotations

import dataclasses
from typing import Any

RUNNING = "running"
TERMINAL = ("completed", "early_stopped", "diverged")


@dataclasses.dataclass(frozen=True)
class RunRecord:
  """The run's progress that is not arrays.

  Attributes:
    status: ``running`` or one of `TERMINAL`.
    stop_reason: why the run stopped, for the summary (None while running).
    best_value: the best monitored validation value so far (None before the first evaluation).
    best_step: the step of `best_value`.
    evals_since_best: evaluations since `best_value` (early stopping's patience counter).
    val_history: the monitored values NT-ASGD's trigger has seen (until it fires).
    averaging_step: the step NT-ASGD switched averaging on (None until then).
    wall_time: seconds of training so far, over all sessions of the run.
    initial_loss: the training loss of the run's first step (the divergence rule's
      reference, `lstmx.train.hooks.Diverge`).
    diverge_windows: consecutive log windows so far whose mean loss broke that rule.
    solved_step: the first evaluation step whose validation metrics met the task's solved
      rule (`Task.solved`); None until one does (the steps to solve, censored at the
      steps run).
    solved_streak: consecutive evaluations, up to the latest, that met the rule.
  """
  status: str = RUNNING
  stop_reason: str | None = None
  best_value: float | None = None
  best_step: int | None = None
  evals_since_best: int = 0
  val_history: tuple[float, ...] = ()
  averaging_step: int | None = None
  wall_time: float = 0.0
  initial_loss: float | None = None
  diverge_windows: int = 0
  solved_step: int | None = None
  solved_streak: int = 0

  @property
  def running(self) -> bool:
    return self.status == RUNNING

  def stop(self, status: str, reason: str) -> RunRecord:
    """The record of a run that ends now with `status` (one of `TERMINAL`)."""
    if status not in TERMINAL:
      raise ValueError(f"status: expected one of {TERMINAL}; got {status!r}")
    return dataclasses.replace(self, status=status, stop_reason=reason)

  def to_json(self) -> dict[str, Any]:
    out = dataclasses.asdict(self)
    out["val_history"] = list(self.val_history)
    return out

  @classmethod
  def from_json(cls, data: dict[str, Any]) -> RunRecord:
    """The record saved as `data` (unknown keys are an error: a newer engine's checkpoint)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
      raise ValueError(f"checkpoint record: unknown fields {unknown}")
    data = dict(data)
    data["val_history"] = tuple(data.get("val_history", ()))
    return cls(**data)
