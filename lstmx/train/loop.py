"""`train_and_evaluate(config, workdir)`: one resumable training run.

The loop dispatches steps (``train.steps_per_call`` a call, sampling inside)
without waiting for them, reads their metrics only at the steps where a hook
acts, stops on a non-finite loss or gradient (at its step), and runs its hooks
(`lstmx.train.hooks`): logging, evaluation with NT-ASGD's trigger, the best
checkpoint and early stopping, and periodic checkpoints. What the run knows
beyond its train state is a `RunRecord`, saved with each checkpoint. At the end
the summary reports the final parameters' metrics and the best checkpoint's
(``at_best``); every logged row also goes to TensorBoard event files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from lstmx import optim, sharding, validate
from lstmx.compile_stats import compile_stats
from lstmx.config import Config
from lstmx.params import param_count
from lstmx.train.checkpoint import Checkpoints
from lstmx.train.hooks import (Checkpoint, Diverge, Every, Evaluate, Hook, KeepBest, LogTrain,
                               NTAveraging, evaluate)
from lstmx.train.progress import Progress
from lstmx.train.record import RUNNING, TERMINAL, RunRecord
from lstmx.train.restore import build
from lstmx.train.rundir import (CorruptRecord, MetricsLog, check_config, config_dict,
                                read_config, read_summary, warn, write_json)
from lstmx.train.step import (TrainState, guard, init_state, make_eval_step, make_train_chunk,
                              make_train_step)
from lstmx.train import tbptt
from lstmx.train.evaluation import eval_set
from lstmx.train.summary import run_summary
from lstmx.train.tensorboard import LOGDIR, TensorBoard

__all__ = ["evaluate", "run_steps", "train_and_evaluate"]


def run_steps(advance, state: TrainState, record: RunRecord, hooks: list[Hook], *,
              start: int, total: int, on_diverged,
              ok=True) -> tuple[TrainState, RunRecord, int]:
  """Steps ``start+1 .. total``, running `hooks` on each step's metrics, until the record stops.

  The steps are dispatched without waiting for their results; the loop fetches
  the metrics (one `jax.device_get` of the window) only at a sync step: a step
  at which a hook acts (its ``when`` cadence; a hook without one acts at every
  step) and the last. There it runs the hooks on each step of the window in
  order, with the state as of the sync step (which hooks read only when they act,
  i.e. at sync steps). A non-finite step ends the run at that step: the steps
  after it in the window were no-ops (`lstmx.train.step.guard`), so the state
  is the last finite one.

  Args:
    advance: ``(state, ok, step) -> (state, ok, metrics)`` dispatches the steps from
      `step` (steps done so far) on; ``metrics`` holds arrays ``[n]`` for its n steps
      (n at most ``total - step``), ``finite`` among them; ``ok`` is the sticky
      finite flag (`guard`), True at the start.
    on_diverged: ``(step, metrics)`` called at a non-finite step, which ends the run.
    ok: the initial finite flag as `advance` takes it.

  Returns:
    (state, record, the last step taken).
  """
  step, pending, done = start, [], start
  hook_cadences = [getattr(h, "when", lambda s: True) for h in hooks]
  while step < total:
    state, ok, metrics = advance(state, ok, step)
    pending.append(metrics)
    step += int(np.shape(metrics["finite"])[0])
    if step < total and not any(when(step) for when in hook_cadences):
      continue
    window, pending = jax.device_get(pending), []
    for chunk in window:
      for i in range(len(chunk["finite"])):
        done += 1
        row = {k: v[i] for k, v in chunk.items()}
        if not row["finite"]:
          on_diverged(done, row)
          return state, record.stop("diverged", f"non-finite loss or gradient at step {done}"), done
        for hook in hooks:
          state, record = hook(done, state, record, row)
          if not record.running:
            return state, record, done
  return state, record, step


def train_and_evaluate(config: Config, workdir: str, *, force: bool = False) -> dict:
  """Trains `config` in `workdir`, resuming from its latest checkpoint if any.

  Returns the summary (also written to ``workdir/summary.json``), with
  ``status`` one of completed, early_stopped, diverged. A finished run returns
  its summary without training; where that summary is missing or unreadable, it
  is rebuilt from the final checkpoint (the final metrics re-evaluated).

  A workdir holding a different config is refused (a ValueError naming the
  differing keys). With `force`, a config that only raises ``train.steps`` (under
  a constant schedule) extends the run from its checkpoint; any other change
  retrains from scratch in the same place (its checkpoints, metrics and summary
  removed first), so the run directory never labels old results with a new
  config. With a sharding
  preset, everything runs under its mesh (`jax.set_mesh`), so the model's
  ``backend="auto"`` sees it.
  """
  rules = sharding.preset(config.sharding.preset)
  with contextlib.ExitStack() as cleanup:  # closes checkpoints and event files on errors too
    if rules is None:
      return _train(config, workdir, force, None, None, cleanup)
    mesh = sharding.mesh_for(config.sharding.preset, config.sharding.model_axis)
    cleanup.enter_context(jax.set_mesh(mesh))
    return _train(config, workdir, force, rules, mesh, cleanup)


def _placement(task, batch_size: int, rules, mesh):
  """(place, sample): `place` puts a batch on the mesh; `sample(key)` draws a placed one."""
  sample_local = jax.jit(lambda k: task.sample(k, batch_size))
  if rules is None:
    return (lambda batch: batch), sample_local

  def place(batch):
    return sharding.place_batch(jax.device_get(batch), rules, mesh)

  return place, lambda k: place(sample_local(k))


def _advance(config: Config, train_step, task, data_key, sample_step, first, state, start: int,
             mesh, rules):
  """(advance, compiled, ok) for `run_steps`: ``advance(state, ok, step)`` dispatches
  ``train.steps_per_call`` steps (k) from a multiple of k as one compiled call
  (sampling inside), and single steps elsewhere (the remainder before ``train.steps``);
  `compiled` is the k-step program (its memory analysis goes in the summary),
  `ok` the initial finite flag. With sharding, batches are sampled and placed from
  the host, one step a call."""
  tc = config.train
  k, total = tc.steps_per_call, tc.steps
  if rules is not None:
    if k != 1:
      raise ValueError(f"train.steps_per_call: expected 1 with sharding.preset="
                       f"{config.sharding.preset!r} (batches are placed on the mesh from "
                       f"the host, one per step); got {k}")
    step = guard(train_step)
    placed = jax.jit(lambda s, ok, b: _stacked(step(s, ok, b)), donate_argnums=0)
    ok = jax.device_put(np.bool_(True), NamedSharding(mesh, PartitionSpec()))
    compiled = placed.lower(state, ok, first).compile()
    return (lambda state, ok, i: compiled(state, ok, sample_step(i))), compiled, ok

  def draw(key):
    return task.sample(key, tc.batch_size)

  if tbptt.is_stateful(task):  # the batch is fixed by the step: window step mod K
    draw, data_key = (lambda step: task.train_window(step, tc.batch_size)), None

  def chunk(n: int):  # the data key is an argument, not a constant: one program per seed's
    # trials, so the persistent compilation cache (lstmx.lab.compile_cache) serves them all
    def call(state, ok, key):
      return make_train_chunk(train_step, draw, key, n)(state, ok)
    return jax.jit(call, donate_argnums=0)

  ok = jnp.asarray(True)
  compiled = chunk(k).lower(state, ok, data_key).compile()
  single = compiled
  if k > 1 and (total % k or start % k):  # a remainder: compiled now, outside the wall time
    single = chunk(1).lower(state, ok, data_key).compile()

  def advance(state, ok, step):
    if step % k == 0 and step + k <= total:
      return compiled(state, ok, data_key)
    return single(state, ok, data_key)

  return advance, compiled, ok


def _stacked(out):
  state, ok, metrics = out
  return state, ok, jax.tree.map(lambda m: m[None], metrics)


def _hooks(config: Config, task, log: MetricsLog, progress: Progress, ckpts: Checkpoints,
           clock, validate, start: tuple[int, TrainState] | None = None) -> list[Hook]:
  """Logging, evaluation (NT-ASGD's trigger, best checkpoint, early stopping), checkpoints."""
  tc = config.train
  on_validation = [KeepBest(ckpts, clock, monitor=tc.monitor, mode=tc.monitor_mode,
                            min_delta=tc.min_delta, patience=tc.patience)]
  if config.optimizer.averaging == "nt":  # before KeepBest: the best checkpoint averages
    on_validation.insert(0, NTAveraging(config.optimizer.nonmono, tc.monitor_mode))
  diverge = [Diverge(Every(tc.log_every, tc.steps), tc.diverge_factor, tc.diverge_patience,
                     start)] if tc.diverge_factor and tc.diverge_patience else []
  return [
      LogTrain(Every(tc.log_every, tc.steps), log, progress, clock, tc.batch_size * task.length),
      *diverge,
      Evaluate(Every(tc.eval_every, tc.steps), validate, log, clock, tc.monitor,
               then=on_validation),
      Checkpoint(Every(tc.checkpoint_every, tc.steps, at_last=False), ckpts, clock),
  ]


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


def _train(config: Config, workdir: str, force: bool, rules, mesh,
           cleanup: contextlib.ExitStack) -> dict:
  os.makedirs(workdir, exist_ok=True)
  old = read_config(workdir)
  changed = check_config(workdir, config, force)  # raises on a change without force
  is_main = jax.process_index() == 0  # the process that writes the run directory
  if changed and not _extends(old, config, changed):
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
  summary_path = os.path.join(workdir, "summary.json")
  extend = record.status == "completed" and start < tc.steps  # more steps, forced
  finished = record.status in TERMINAL and not extend
  if finished:
    summary = _read_summary(summary_path)
    if summary is not None:
      ckpts.close()
      return summary
  else:  # a new run, a resumed one, or one extended
    record = dataclasses.replace(record, status=RUNNING, stop_reason=None)
    log.tensorboard = TensorBoard(workdir, start, enabled=is_main)
    cleanup.callback(log.tensorboard.close)

  key = jax.random.key(tc.seed)
  data_key = jax.random.fold_in(key, 1)
  place, sample = _placement(task, tc.batch_size, rules, mesh)
  train_step = make_train_step(modeldef, task, tx)
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

  def sample_step(step: int):
    return sample(jax.random.fold_in(data_key, step))

  first = sample_step(start)
  check_batch_lengths(first, task)
  t0 = time.perf_counter()
  advance, compiled, ok = _advance(config, train_step, task, data_key, sample_step, first, state,
                                   start, mesh, rules)
  compile_time = time.perf_counter() - t0
  step_bytes = compile_stats(compiled).get("peak_bytes")  # None without a memory analysis
  t0 = time.perf_counter()
  if not finished and not stateful:  # the validation set drawn, its step compiled up front
    cached["validation"] = eval_set(task, "validation", tc.batch_size, eval_examples, place)
    jax.block_until_ready(eval_step(optim.eval_params(state.params, state.opt_state),
                                    cached["validation"][0]))
  eval_compile_time = time.perf_counter() - t0

  progress = Progress(total=tc.steps, initial=start, enabled=tc.progress)
  run_start, wall0 = time.perf_counter(), record.wall_time

  def clock() -> float:
    return wall0 + time.perf_counter() - run_start

  hooks = _hooks(config, task, log, progress, ckpts, clock,
                 validate=lambda params: run_eval(params, "validation"), start=(start, state))
  if finished:  # the summary is rebuilt: no training
    step = start
  else:
    state, record, step = run_steps(
        advance, state, record, hooks, start=start, total=tc.steps, ok=ok,
        on_diverged=lambda step, m: log.write(step, "train", clock(), m))
    record = dataclasses.replace(record, wall_time=clock())  # training: steps and hooks
  progress.close()

  t0 = time.perf_counter()
  state, record, final, at_best = _finish(config.train, state, record, ckpts, run_eval)
  final_eval_time = time.perf_counter() - t0
  if not finished:
    ckpts.save_latest(step, state, record.to_json(), wait=True)
  ckpts.close()  # waits for every save in flight
  summary = run_summary(config, task, record, steps=step, final=final, at_best=at_best,
                        final_eval_time=final_eval_time, compile_time=compile_time,
                        eval_compile_time=eval_compile_time,
                        step_memory_bytes=step_bytes, param_count=n_params,
                        backend=model.resolved_backend(training=True))
  if finished:
    summary["rebuilt_from_checkpoint"] = step
  if log.tensorboard is not None:
    log.tensorboard.hparams(config_dict(config), {"final": final, "at_best": at_best}, step)
    log.tensorboard.close()
  if is_main:
    write_json(summary_path, summary)
  return summary
