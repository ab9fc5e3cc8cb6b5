"""`train_and_evaluate(config, workdir)`: one resumable training run.

The loop dispatches steps (``train.steps_per_call`` a call, sampling inside)
without waiting for them, reads their metrics only at the steps where a hook
acts, stops on a non-finite loss or gradient (at its step), and runs its hooks
(`lstmx.train.hooks`): logging, evaluation with NT-ASGD's trigger, the best
checkpoint and early stopping, and periodic checkpoints. What the run knows
beyond its train state is a `RunRecord`, saved with each checkpoint. At the end
the summary reports the final parameters' metrics and the best checkpoint's
(``at_best``); every logged row also goes to TensorBoard event files. Opening and
finishing a run directory live in `lstmx.train.session`.
"""

from __future__ import annotations

import contextlib
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from lstmx import optim, sharding
from lstmx.compile_stats import compile_stats
from lstmx.config import Config
from lstmx.train import tbptt
from lstmx.train.hooks import Hook, evaluate  # noqa: F401 (evaluate: imported from here too)
from lstmx.train.progress import Progress
from lstmx.train.record import RunRecord
from lstmx.train.resources import out_of_resource
from lstmx.train.session import check_batch_lengths, clear_run, open_session  # noqa: F401
from lstmx.train.step import TrainState, guard, make_train_chunk, make_train_step

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


def train_and_evaluate(config: Config, workdir: str, *, force: bool = False,
                       wait: bool = False) -> dict:
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
  config. A run directory whose checkpoints or summary have no readable
  ``config.json`` holds results of unknown settings: refused (a ValueError naming
  the path), or with `force` retrained from scratch, never reused or relabelled.

  One run writes a run directory at a time: it holds ``workdir/.lock``
  (`lstmx.train.lock`) while it runs; another run there is refused at once (a
  ValueError naming the holder's pid), or with `wait` waits for it. With a sharding
  preset, everything runs under its mesh (`jax.set_mesh`), so the model's
  ``backend="auto"`` sees it.

  Raises:
    lstmx.train.resources.OutOfResource: (an OSError) the run directory cannot be
      written (a full disk, no permission) or the device is out of memory; the
      message names the path and the cause. Nothing is written half: a rerun resumes
      from the last checkpoint.
  """
  rules = sharding.preset(config.sharding.preset)
  with out_of_resources(workdir), contextlib.ExitStack() as cleanup:  # closes checkpoints
    if rules is None:                                        # and event files on errors too
      return _train(config, workdir, force, None, None, cleanup, wait)
    mesh = sharding.mesh_for(config.sharding.preset, config.sharding.model_axis)
    cleanup.enter_context(jax.set_mesh(mesh))
    return _train(config, workdir, force, rules, mesh, cleanup, wait)


@contextlib.contextmanager
def out_of_resources(workdir: str):
  """Raises a full disk, a missing permission or a device out of memory, whichever
  writer or computation meets it, as one `OutOfResource` naming the path (the run
  directory where no file is known) and the cause."""
  try:
    yield
  except Exception as e:  # noqa: BLE001 - XLA's and tensorstore's errors have no common type
    found = out_of_resource(e, workdir)
    if found is None or found is e:
      raise
    raise found from e


def _advance(config: Config, step_for, task, data_key, sample_step, first, state, start: int,
             mesh, rules):
  """(advance, compiled, ok) for `run_steps`, with ``step_for(lr)`` the train step at
  learning rate ``lr`` (a float, or a traced scalar): ``advance(state, ok, step)`` dispatches
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
    step = guard(step_for(config.optimizer.lr))
    placed = jax.jit(lambda s, ok, b: _stacked(step(s, ok, b)), donate_argnums=0)
    ok = jax.device_put(np.bool_(True), NamedSharding(mesh, PartitionSpec()))
    compiled = placed.lower(state, ok, first).compile()
    return (lambda state, ok, i: compiled(state, ok, sample_step(i))), compiled, ok

  def draw(key):
    return task.sample(key, tc.batch_size)

  if tbptt.is_stateful(task):  # the batch is fixed by the step: window step mod K
    draw, data_key = (lambda step: task.train_window(step, tc.batch_size)), None

  def chunk(n: int):  # the data key and the learning rate are arguments, not constants:
    # one program for the trials of every seed and rate, so the persistent compilation
    # cache (lstmx.lab.compile_cache) serves a whole learning-rate grid
    def call(state, ok, key, lr):
      return make_train_chunk(step_for(lr), draw, key, n)(state, ok)
    return jax.jit(call, donate_argnums=0)

  ok = jnp.asarray(True)
  lr = jnp.asarray(config.optimizer.lr)  # weakly typed: it takes the parameters' dtype
  compiled = chunk(k).lower(state, ok, data_key, lr).compile()
  single = compiled
  if k > 1 and (total % k or start % k):  # a remainder: compiled now, outside the wall time
    single = chunk(1).lower(state, ok, data_key, lr).compile()

  def advance(state, ok, step):
    if step % k == 0 and step + k <= total:
      return compiled(state, ok, data_key, lr)
    return single(state, ok, data_key, lr)

  return advance, compiled, ok


def _stacked(out):
  state, ok, metrics = out
  return state, ok, jax.tree.map(lambda m: m[None], metrics)


def _train(config: Config, workdir: str, force: bool, rules, mesh,
           cleanup: contextlib.ExitStack, wait: bool = False) -> dict:
  s = open_session(config, workdir, force, rules, mesh, cleanup, wait=wait)
  if s.summary is not None:  # finished, its summary readable
    return s.summary
  tc = config.train
  first = s.sample_step(s.start)
  check_batch_lengths(first, s.task)

  def step_for(lr):
    return make_train_step(s.modeldef, s.task, optim.build(config.optimizer, tc.steps, lr))

  t0 = time.perf_counter()
  advance, compiled, ok = _advance(config, step_for, s.task, s.data_key, s.sample_step, first,
                                   s.state, s.start, mesh, rules)
  compile_time = time.perf_counter() - t0
  step_bytes = compile_stats(compiled).get("peak_bytes")  # None without a memory analysis
  eval_compile_time = s.compile_eval()

  progress = Progress(total=tc.steps, initial=s.start, enabled=tc.progress)
  s.start_clock()
  state, record, step = s.state, s.record, s.start
  if not s.finished:  # else the summary is rebuilt: no training
    state, record, step = run_steps(advance, state, record, s.hooks(progress), start=s.start,
                                    total=tc.steps, ok=ok, on_diverged=s.on_diverged)
  progress.close()
  return s.finish(state, record, step, compile_time=compile_time,
                  eval_compile_time=eval_compile_time, step_bytes=step_bytes)
