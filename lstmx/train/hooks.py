"""The training loop's side concerns as hooks, each at its own cadence.

After every finite step the loop calls its hooks in order,
``state, record = hook(step, state, record, metrics)``; a hook that ends the
run (``record.running`` False) ends the step. Periodic hooks fire at steps
k, 2k, ... and (unless told otherwise) at the last step, like clu's
``periodic_actions`` in the Flax examples:

  - `LogTrain`: mean train loss and gradient norm since its last row, and tokens/s.
  - `Diverge`: ends the run as ``diverged`` when the mean train loss of a number of
    consecutive log windows exceeds a multiple of the initial loss (`divergence_rule`).
  - `Evaluate`: validation metrics of the parameters to keep (a line on the screen), then its
    `OnValidation` hooks with the monitored value: `NTAveraging` (NT-ASGD's
    trigger) and `KeepBest` (best checkpoint and early stopping).
  - `Checkpoint`: the latest checkpoint (the loop saves the last step's itself).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Protocol, Sequence

import jax
import numpy as np

from lstmx import optim
from lstmx.train.checkpoint import Checkpoints
from lstmx.train.evaluation import evaluate  # noqa: F401 (moved there; imported from here too)
from lstmx.train.progress import Progress
from lstmx.train.record import RunRecord
from lstmx.train.rundir import MetricsLog
from lstmx.train.step import TrainState

Clock = Callable[[], float]  # seconds of training so far, over all sessions of the run


class Hook(Protocol):
  def __call__(self, step: int, state: TrainState, record: RunRecord,
               metrics: dict[str, Any]) -> tuple[TrainState, RunRecord]:
    """Runs after step `step` (1-based) produced `state` and its train `metrics`."""


class OnValidation(Protocol):
  def __call__(self, step: int, value: float, state: TrainState,
               record: RunRecord) -> tuple[TrainState, RunRecord]:
    """Runs after an evaluation at `step` measured the monitored metric as `value`."""


@dataclasses.dataclass(frozen=True)
class Every:
  """A cadence: true at steps k, 2k, ... below `last`, and at `last` iff `at_last`."""
  k: int
  last: int
  at_last: bool = True

  def __call__(self, step: int) -> bool:
    return self.at_last if step == self.last else step % self.k == 0


class Periodic:
  """A hook that sees every step's metrics (`observe`) and acts at its cadence (`fire`)."""

  def __init__(self, when: Every):
    self.when = when

  def __call__(self, step, state, record, metrics):
    self.observe(step, metrics)
    if self.when(step):
      return self.fire(step, state, record)
    return state, record

  def observe(self, step: int, metrics: dict[str, Any]) -> None:
    pass

  def fire(self, step: int, state: TrainState,
           record: RunRecord) -> tuple[TrainState, RunRecord]:
    raise NotImplementedError


class LogTrain(Periodic):
  """A ``train`` row: loss and grad_norm averaged over the steps since the last row."""

  def __init__(self, when: Every, log: MetricsLog, progress: Progress, clock: Clock,
               tokens_per_batch: int):
    super().__init__(when)
    self.log, self.progress, self.clock = log, progress, clock
    self.tokens_per_batch = tokens_per_batch
    self.window, self.window_t = [], time.perf_counter()

  def observe(self, step, metrics):
    self.window.append(metrics)

  def fire(self, step, state, record):
    dt = time.perf_counter() - self.window_t
    row = {k: float(np.mean([w[k] for w in self.window])) for k in ("loss", "grad_norm")}
    row["tokens_per_s"] = self.tokens_per_batch * len(self.window) / max(dt, 1e-9)
    self.log.write(step, "train", self.clock(), row)
    self.progress.update(step, row)
    self.window, self.window_t = [], time.perf_counter()
    return state, record


def divergence_rule(factor: float | None, patience: int, window: int,
                    initial_loss: float | None = None) -> dict[str, Any]:
  """The divergence rule of `Diverge` in words and numbers, for the summary."""
  on = bool(factor) and patience > 0
  rule = ("a non-finite loss or gradient at any step"
          + (f"; or a mean training loss above {factor:g} x the initial loss (the first "
             f"step's) in {patience} consecutive log windows of {window} steps" if on else ""))
  return {"rule": rule, "factor": factor if on else None, "patience": patience if on else 0,
          "window_steps": window, "reference": "initial_loss", "initial_loss": initial_loss}


class Diverge(Periodic):
  """Ends the run as ``diverged`` when the mean training loss of `patience` consecutive
  log windows (the `when` cadence) exceeds `factor` times the initial loss.

  The initial loss is the loss of the run's first step, kept in the record (so a
  resumed run keeps its reference and its count of windows); a run whose initial
  loss is not positive has no such rule. Like a non-finite step, a diverged run
  keeps its last good state: the hook copies the parameters and optimizer state
  to the host after each window under the threshold and puts them back when the
  run stops, so the loop's last checkpoint holds them (one copy per window). Before
  the first good window of a session it keeps `start`, the (step, state) the session
  started from, unless the run was already above the threshold then; across several
  processes (no host copy) it keeps its current state.
  """

  def __init__(self, when: Every, factor: float, patience: int,
               start: tuple[int, TrainState] | None = None):
    super().__init__(when)
    self.factor, self.patience = factor, patience
    self.window: list[float] = []
    self.good: tuple[int, Any] | None = None  # (step, host copy of (params, opt_state))
    self.start = None
    if start is not None and jax.process_count() == 1:
      self.start = (start[0], jax.device_get((start[1].params, start[1].opt_state)))

  def __call__(self, step, state, record, metrics):
    if self.start is not None:  # the session's first step
      if record.diverge_windows == 0:
        self.good = self.start
      self.start = None
    if record.initial_loss is None:
      record = dataclasses.replace(record, initial_loss=float(metrics["loss"]))
    self.window.append(float(metrics["loss"]))
    if not self.when(step):
      return state, record
    mean, self.window = float(np.mean(self.window)), []
    threshold = self.factor * record.initial_loss
    if not (record.initial_loss > 0 and mean > threshold):
      if jax.process_count() == 1:  # a host copy needs every shard on this host
        self.good = (step, jax.device_get((state.params, state.opt_state)))
      return state, dataclasses.replace(record, diverge_windows=0)
    record = dataclasses.replace(record, diverge_windows=record.diverge_windows + 1)
    if record.diverge_windows < self.patience:
      return state, record
    kept = "its current parameters (no good state to go back to in this session)"
    if self.good is not None:
      good_step, (params, opt_state) = self.good
      put = lambda host, live: jax.device_put(host, getattr(live, "sharding", None))  # noqa: E731
      state = dataclasses.replace(state, params=jax.tree.map(put, params, state.params),
                                  opt_state=jax.tree.map(put, opt_state, state.opt_state))
      kept = f"the parameters of step {good_step}"
    return state, record.stop(
        "diverged", f"training loss above {self.factor:g} x the initial loss "
        f"{record.initial_loss:.4g} (> {threshold:.4g}) in {self.patience} consecutive log "
        f"windows (mean {mean:.4g} in the window ending at step {step}); the run keeps {kept}")


class Evaluate(Periodic):
  """A ``validation`` row for the parameters to keep (the average once averaging), shown
  by `progress` (where given) as a line, then each of `then` with the row's `monitor`
  value, in order; then the task's solved rule: `solved` (``metrics -> bool``) holding
  for the first time sets the record's ``solved_step``; where `stop_when_solved`, the
  run ends (``early_stopped``) once the rule held at `streak` evaluations in a row."""

  def __init__(self, when: Every, validate: Callable[[Any], dict[str, float]], log: MetricsLog,
               clock: Clock, monitor: str, then: Sequence[OnValidation] = (),
               progress: Progress | None = None,
               solved: Callable[[dict], bool] | None = None, stop_when_solved: bool = False,
               streak: int = 1):
    super().__init__(when)
    self.validate, self.log, self.clock = validate, log, clock
    self.monitor, self.then, self.progress = monitor, tuple(then), progress
    self.solved, self.stop_when_solved, self.streak = solved, stop_when_solved, streak

  def fire(self, step, state, record):
    metrics = self.validate(optim.eval_params(state.params, state.opt_state))
    self.log.write(step, "validation", self.clock(), metrics)
    if self.progress is not None:
      self.progress.validation(step, metrics)
    for hook in self.then:
      state, record = hook(step, metrics[self.monitor], state, record)
    if self.solved is None:
      return state, record
    solved = bool(self.solved(metrics))
    record = dataclasses.replace(
        record, solved_streak=record.solved_streak + 1 if solved else 0,
        solved_step=step if solved and record.solved_step is None else record.solved_step)
    if self.stop_when_solved and record.running and record.solved_streak >= self.streak:
      record = record.stop("early_stopped", f"solved at step {record.solved_step}, held "
                           f"for {record.solved_streak} evaluation(s) to step {step} "
                           "(train.stop_when_solved)")
    return state, record


@dataclasses.dataclass(frozen=True)
class NTAveraging:
  """NT-ASGD (Merity et al. 2017): collects the monitored values until
  `optim.nt_triggered` fires, then switches the optimizer's averaging on."""
  nonmono: int
  mode: str = "min"

  def __call__(self, step, value, state, record):
    if record.averaging_step is not None:
      return state, record
    record = dataclasses.replace(record, val_history=record.val_history + (value,))
    if optim.nt_triggered(list(record.val_history), self.nonmono, self.mode):
      state = dataclasses.replace(state, opt_state=optim.start_averaging(state.opt_state))
      record = dataclasses.replace(record, averaging_step=step)
    return state, record


def improved(value: float, best: float | None, mode: str, min_delta: float) -> bool:
  """Whether `value` beats `best` by more than `min_delta` (any value beats None)."""
  if best is None:
    return True
  return value > best + min_delta if mode == "max" else value < best - min_delta


class KeepBest:
  """Saves the best checkpoint when the monitored value improves; ends the run
  (``early_stopped``) after `patience` evaluations without improvement (0: never)."""

  def __init__(self, ckpts: Checkpoints, clock: Clock, *, monitor: str, mode: str,
               min_delta: float, patience: int):
    self.ckpts, self.clock = ckpts, clock
    self.monitor, self.mode, self.min_delta, self.patience = monitor, mode, min_delta, patience

  def __call__(self, step, value, state, record):
    record = dataclasses.replace(record, wall_time=self.clock())
    if improved(value, record.best_value, self.mode, self.min_delta):
      record = dataclasses.replace(record, best_value=value, best_step=step, evals_since_best=0)
      self.ckpts.save_best(step, state, record.to_json())
      return state, record
    record = dataclasses.replace(record, evals_since_best=record.evals_since_best + 1)
    if self.patience and record.evals_since_best >= self.patience:
      record = record.stop("early_stopped",
                           f"no {self.monitor} improvement > {self.min_delta} in "
                           f"{self.patience} evaluations (best at step {record.best_step})")
    return state, record


class Checkpoint(Periodic):
  """The latest checkpoint: state and record (with the wall time so far)."""

  def __init__(self, when: Every, ckpts: Checkpoints, clock: Clock):
    super().__init__(when)
    self.ckpts, self.clock = ckpts, clock

  def fire(self, step, state, record):
    record = dataclasses.replace(record, wall_time=self.clock())
    self.ckpts.save_latest(step, state, record.to_json())
    return state, record

