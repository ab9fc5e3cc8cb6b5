"""One run's setup and finish around its steps: `open_session` reads and prepares a run
directory (config check, model, optimizer, restore, metrics log, evaluation), and
`Session.finish` evaluates, saves and writes ``summary.json``.

`lstmx.train.loop.train_and_evaluate` trains one session's steps; the grouped driver
(`lstmx.train.batched`) trains several sessions' steps as one vmapped program. Both
write a run directory through the same calls, so a run directory does not tell how it
was trained.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from typing import Any, Callable

import jax
import numpy as np

from lstmx import optim, sharding, validate
from lstmx.config import Config
from lstmx.params import param_count
from lstmx.train import lock, resources, tbptt
from lstmx.train.checkpoint import Checkpoints
from lstmx.train.evaluation import eval_set, evaluate
from lstmx.train.hooks import (Checkpoint, Diverge, Every, Evaluate, Hook, KeepBest, LogTrain,
                               NTAveraging)
from lstmx.train.progress import Progress
from lstmx.train.record import RUNNING, TERMINAL, RunRecord
from lstmx.train.restore import build
from lstmx.train.rundir import (CorruptRecord, MetricsLog, check_config, config_dict,
                                read_config, read_summary, warn, write_json)
from lstmx.train.step import ModelDef, TrainState, init_state, make_eval_step
from lstmx.train.summary import run_summary
from lstmx.train.tensorboard import LOGDIR, TensorBoard


@dataclasses.dataclass
class Session:
  """A run directory opened for training (or for rebuilding its summary).

  Attributes:
    config, workdir: the run's.
    task, model, modeldef, tx: built from `config` (`model` holds its initial parameters).
    state, record: restored from the latest checkpoint, else fresh.
    start: ``state.step`` at opening.
    finished: the run had ended (only its summary is rebuilt; no training).
    summary: the finished run's readable summary (nothing to do), else None.
    ckpts, log: its checkpoints and metrics log (TensorBoard files once it trains).
    data_key: the key each step's batch folds its step into.
    place, sample: `_placement`'s (a batch on the mesh; a placed batch from a key).
    run_eval: ``run_eval(params, split) -> metrics``, exact (`lstmx.train.evaluation`).
    stateful: a stream task (TBPTT; the model state travels in ``state.carry``).
  """

  config: Config
  workdir: str
  task: Any
  model: Any
  modeldef: ModelDef
  tx: Any
  state: TrainState
  record: RunRecord
  start: int
  finished: bool
  summary: dict | None
  ckpts: Checkpoints
  log: MetricsLog
  data_key: jax.Array
  place: Callable
  sample: Callable
  run_eval: Callable
  eval_step: Callable
  stateful: bool
  is_main: bool
  n_params: int
  cached: dict
  wall0: float = 0.0
  run_start: float = 0.0

  def sample_step(self, step: int):
    """The batch of step ``step + 1`` (steps done so far: `step`)."""
    return self.sample(jax.random.fold_in(self.data_key, step))

  def compile_eval(self) -> float:
    """Draws the validation set and compiles the evaluation step up front (not for a
    finished or stream run); returns the seconds it took."""
    t0 = time.perf_counter()
    if not self.finished and not self.stateful:
      tc = self.config.train
      self.cached["validation"] = eval_set(self.task, "validation", tc.batch_size,
                                           tc.eval_batches * tc.batch_size, self.place)
      jax.block_until_ready(self.eval_step(
          optim.eval_params(self.state.params, self.state.opt_state),
          self.cached["validation"][0]))
    return time.perf_counter() - t0

  def start_clock(self) -> None:
    self.run_start, self.wall0 = time.perf_counter(), self.record.wall_time

  def clock(self) -> float:
    """Seconds of training so far, over all sessions of the run."""
    return self.wall0 + time.perf_counter() - self.run_start

  def hooks(self, progress: Progress) -> list[Hook]:
    """Logging, evaluation (NT-ASGD's trigger, best checkpoint, early stopping),
    checkpoints."""
    tc, config = self.config.train, self.config
    on_validation = [KeepBest(self.ckpts, self.clock, monitor=tc.monitor, mode=tc.monitor_mode,
                              min_delta=tc.min_delta, patience=tc.patience)]
    if config.optimizer.averaging == "nt":  # before KeepBest: the best checkpoint averages
      on_validation.insert(0, NTAveraging(config.optimizer.nonmono, tc.monitor_mode))
    diverge = ([Diverge(Every(tc.log_every, tc.steps), tc.diverge_factor, tc.diverge_patience,
                        (self.start, self.state))]
               if tc.diverge_factor and tc.diverge_patience else [])
    return [
        LogTrain(Every(tc.log_every, tc.steps), self.log, progress, self.clock,
                 tc.batch_size * self.task.length),
        *diverge,
        Evaluate(Every(tc.eval_every, tc.steps),
                 lambda params: self.run_eval(params, "validation"), self.log, self.clock,
                 tc.monitor, then=on_validation, progress=progress, solved=self.task.solved,
                 stop_when_solved=tc.stop_when_solved, streak=tc.solved_streak),
        Checkpoint(Every(tc.checkpoint_every, tc.steps, at_last=False), self.ckpts,
                   self.clock),
    ]

  def on_diverged(self, step: int, metrics: dict) -> None:
    """Logs the non-finite step that ends the run."""
    self.log.write(step, "train", self.clock(), metrics)

  def finish(self, state: TrainState, record: RunRecord, step: int, *, compile_time: float,
             eval_compile_time: float, step_bytes: int | None, **extra) -> dict:
    """Evaluates the final and best parameters, saves the last checkpoint, writes and
    returns the summary (`extra` keys added to it)."""
    if not self.finished:
      record = dataclasses.replace(record, wall_time=self.clock())  # training: steps, hooks
    t0 = time.perf_counter()
    state, record, final, at_best = _finish(self.config.train, state, record, self.ckpts,
                                            self.run_eval)
    final_eval_time = time.perf_counter() - t0
    if not self.finished:
      self.ckpts.save_latest(step, state, record.to_json(), wait=True)
    self.ckpts.close()  # waits for every save in flight
    summary = run_summary(self.config, self.task, record, steps=step, final=final,
                          at_best=at_best, final_eval_time=final_eval_time,
                          compile_time=compile_time, eval_compile_time=eval_compile_time,
                          step_memory_bytes=step_bytes, param_count=self.n_params,
                          backend=self.model.resolved_backend(training=True))
    summary.update(extra)
    if self.finished:
      summary["rebuilt_from_checkpoint"] = step
    if self.log.tensorboard is not None:
      self.log.tensorboard.hparams(config_dict(self.config),
                                   {"final": final, "at_best": at_best}, step)
      self.log.tensorboard.close()
    if self.is_main:
      write_json(os.path.join(self.workdir, "summary.json"), summary)
    return summary


def open_session(config: Config, workdir: str, force: bool, rules, mesh,
                 cleanup: contextlib.ExitStack, *, wait: bool = False) -> Session:
  """Opens `workdir` for `config` (see `lstmx.train.loop.train_and_evaluate` for what a
  changed config, `force`, `wait` and a finished run mean); `cleanup` closes its
  checkpoints and event files, then releases the run directory's lock."""
  resources.quiet_background_failures()  # the writers' threads: the run raises it
  os.makedirs(workdir, exist_ok=True)
  is_main = jax.process_index() == 0  # the process that writes the run directory
  if is_main:
    cleanup.enter_context(hold_run(workdir, wait))
  old = read_config(workdir)
  unknown = old is None and holds_results(workdir)
  if unknown:
    check_settings_known(workdir, force)  # raises without force
  changed = check_config(workdir, config, force)  # raises on a change without force
  if unknown and is_main:
    clear_run(workdir)
  elif changed and not _extends(old, config, changed):
    warn(f"workdir {workdir!r}: the config differs at {changed}; retraining from scratch "
         "(force)")
    if is_main:
      clear_run(workdir)
  tc = config.train
  task, model = build(config)
  task.check_monitor(tc.monitor)  # before compiling
  tx = optim.build(config.optimizer, tc.steps)
  stateful = tbptt.is_stateful(task)
  carry = None
  if stateful:  # TBPTT: the model state travels in the train state
    if rules is not None:
      raise ValueError(f"sharding.preset: expected 'none' for the stream task {task.name!r} "
                       f"(its state is carried between steps); got {config.sharding.preset!r}")
    task.windows_per_epoch(tc.batch_size)  # raises on a batch size the stream cannot fill
    carry = tbptt.initial_carry(model, tc.batch_size)
  modeldef, state = init_state(model, tx, tc.seed, carry)
  if rules is not None:
    state = sharding.create_sharded(lambda: init_state(build(config)[1], tx, tc.seed)[1],
                                    rules, mesh)
  n_params = param_count(state.params)
  ckpts = Checkpoints(workdir, tc.keep_checkpoints)
  cleanup.callback(ckpts.close)
  log = MetricsLog(workdir, enabled=is_main)  # with TensorBoard once the run trains
  record = RunRecord()
  restored = ckpts.restore_latest(state)
  if restored is not None:
    state, record = restored[0], RunRecord.from_json(restored[1])
  start = int(state.step)
  log.truncate_after(start)
  extend = record.status == "completed" and start < tc.steps  # more steps, forced
  finished = record.status in TERMINAL and not extend
  summary = None
  if finished:
    summary = _read_summary(os.path.join(workdir, "summary.json"))
    if summary is not None:
      ckpts.close()
  else:  # a new run, a resumed one, or one extended
    record = dataclasses.replace(record, status=RUNNING, stop_reason=None)
    log.tensorboard = TensorBoard(workdir, start, enabled=is_main)
    cleanup.callback(log.tensorboard.close)

  data_key = jax.random.fold_in(jax.random.key(tc.seed), 1)
  place, sample = _placement(task, tc.batch_size, rules, mesh)
  eval_step = jax.jit(make_eval_step(modeldef, task))
  eval_examples = tc.eval_batches * tc.batch_size
  cached = {}  # the validation set, evaluated again and again: drawn and placed once
  stream_eval = tbptt.stream_evaluator(modeldef, task) if stateful else None

  def run_eval(params, split: str) -> dict:  # exact: lstmx.train.evaluation
    if stateful:
      return stream_eval(params, split)
    if split == "validation" and split not in cached:
      cached[split] = eval_set(task, split, tc.batch_size, eval_examples, place)
    return evaluate(eval_step, params, task, split, tc.batch_size, eval_examples, place,
                    batches=cached.get(split))

  return Session(config=config, workdir=workdir, task=task, model=model, modeldef=modeldef,
                 tx=tx, state=state, record=record, start=start, finished=finished,
                 summary=summary, ckpts=ckpts, log=log, data_key=data_key, place=place,
                 sample=sample, run_eval=run_eval, eval_step=eval_step, stateful=stateful,
                 is_main=is_main, n_params=n_params, cached=cached)


def _placement(task, batch_size: int, rules, mesh):
  """(place, sample): `place` puts a batch on the mesh; `sample(key)` draws a placed one."""
  sample_local = jax.jit(lambda k: task.sample(k, batch_size))
  if rules is None:
    return (lambda batch: batch), sample_local

  def place(batch):
    return sharding.place_batch(jax.device_get(batch), rules, mesh)

  return place, lambda k: place(sample_local(k))


def _finish(tc, state: TrainState, record: RunRecord, ckpts: Checkpoints, run_eval):
  """(state, record, final, at_best) of a run that stopped.

  `final`: metrics by split of the parameters the run ends with (the best
  checkpoint's after early stopping; none after divergence). `at_best`:
  ``{"step", "train", "validation", "test"}``, the metrics of the best-validation
  checkpoint's parameters (selected by validation only), or None where the run has
  no best checkpoint (e.g. it diverged before its first evaluation) or it does
  not restore (reported).
  """
  if record.running:
    record = record.stop("completed", f"reached {tc.steps} steps")
  try:
    best = ckpts.restore_best(state)
  except CorruptRecord as e:
    if record.status == "early_stopped":
      raise
    warn(f"{e}; the summary has no at_best")
    best = None
  if record.status == "early_stopped" and best is not None:
    state = dataclasses.replace(state, params=best[0].params, opt_state=best[0].opt_state)
  final = {}
  if record.status != "diverged":
    final = _evaluate_all(state, run_eval)
  at_best = None
  if best is not None:
    best_step = best[1]["best_step"]
    same = (record.status == "early_stopped"  # the final parameters are the best ones
            or record.status == "completed" and best_step == int(state.step))
    at_best = {"step": best_step, **(final if same else _evaluate_all(best[0], run_eval))}
  return state, record, final, at_best


def _evaluate_all(state: TrainState, run_eval) -> dict:
  """Metrics by split of the parameters `state` evaluates with (the average once averaging)."""
  params = optim.eval_params(state.params, state.opt_state)
  return {split: run_eval(params, split)  # train: deterministic, for the gap
          for split in ("train", "validation", "test")}


def check_batch_lengths(batch, task) -> None:
  """Checks a batch's ``lengths`` on the host, where their values are known (under
  `jit` the LSTM cannot check them): each in [1, T], or a ValueError naming the task.
  With several processes each checks the shards it holds."""
  lengths = batch.get("lengths")
  if lengths is None:
    return
  T = batch["inputs"].shape[1]
  parts = ([s.data for s in lengths.addressable_shards] if isinstance(lengths, jax.Array)
           else [lengths])
  values = np.concatenate([np.asarray(p).reshape(-1) for p in parts])
  try:
    validate.check_seq_lengths(values, values.shape[0], T)
  except (TypeError, ValueError) as e:
    raise ValueError(f"task {task.name!r}: its batch lengths: {e}") from None


def hold_run(workdir: str, wait: bool = False):
  """`workdir`'s lock (`lstmx.train.lock`), held while a run writes there.

  Raises:
    lstmx.train.lock.Held: (a ValueError) another run holds it, and not `wait`.
  """
  return lock.hold(workdir, f"--workdir {workdir!r}: another run (pid {{pid}}) is training "
                   "there; expected one run per run directory: wait for it to finish "
                   "(--wait waits for it), or use another --workdir", wait=wait)


def holds_results(workdir: str) -> bool:
  """Whether `workdir` holds a run's results: a ``summary.json`` or a checkpoint."""
  if os.path.exists(os.path.join(workdir, "summary.json")):
    return True
  root = os.path.join(workdir, "checkpoints")
  return any(os.path.isdir(os.path.join(root, kind)) and os.listdir(os.path.join(root, kind))
             for kind in ("latest", "best"))


def check_settings_known(workdir: str, force: bool) -> None:
  """Refuses a run directory whose results have no readable ``config.json`` (their
  settings are unknown, so they can be neither reused nor resumed), unless `force`:
  then they are reported and retrained from scratch.

  Raises:
    ValueError: naming the ``config.json`` path and what to do.
  """
  path = os.path.join(workdir, "config.json")
  if not force:
    raise ValueError(f"{path}: expected the settings of the results in {workdir!r}; got a "
                     "missing or unreadable file, so they are unknown and cannot be reused "
                     "or resumed: retrain from scratch with force=True (--force), or use "
                     "another workdir")
  warn(f"{path}: missing or unreadable, so the settings of the results in {workdir!r} are "
       "unknown; retraining from scratch (force)")


def _extends(old: dict | None, config: Config, changed: list[str]) -> bool:
  """Whether a run trained with config dict `old` continues as `config`: only
  ``train.steps`` grew, and the schedule does not depend on it."""
  return (old is not None and changed == ["train.steps"]
          and config.optimizer.schedule == "constant"
          and config.train.steps > old["train"]["steps"])


def clear_run(workdir: str) -> None:
  """Removes a run's results (checkpoints, metrics, summary, TensorBoard files), keeping
  ``config.json``."""
  shutil.rmtree(os.path.join(workdir, "checkpoints"), ignore_errors=True)
  shutil.rmtree(os.path.join(workdir, LOGDIR), ignore_errors=True)
  for name in ("metrics.jsonl", "summary.json"):
    path = os.path.join(workdir, name)
    if os.path.exists(path):
      os.remove(path)


def _read_summary(path: str) -> dict | None:
  try:
    return read_summary(path)
  except CorruptRecord as e:
    warn(f"{e}; rebuilding it from the checkpoint")
    return None
