"""Several trials per device: `train_group(configs, workdirs)` trains K runs that differ
only in values as one compiled program, vmapped over a leading trial axis.

What may differ within a group (`VALUE_KEYS`): ``train.seed`` (the initial parameters,
the data and the dropout keys), ``optimizer.lr`` (a traced argument of the step: every
schedule scales it, and the optimizer state's structure does not depend on it) and the
initializer (``model.init``, ``model.chrono_max_length``: each trial's parameters are
initialized alone, then stacked). Everything else must be equal (`group_key`): the
shapes, the model (regularization rates included: the model's modules branch on them in
Python and keep them in their static graph), the optimizer's other settings, the steps
and cadences, the task (with ``data_seed="train.seed"`` the seed picks the dataset's
split, so the seed must be equal too).

The K train states are stacked leaf by leaf ([K, ...]); one call advances all of them
``train.steps_per_call`` steps (`jax.vmap` of `lstmx.train.step.make_train_chunk`).
At each step where a hook acts, each trial's state is sliced out and *its own* hooks
(`lstmx.train.session.Session.hooks`) run on it, so its run directory (metrics,
checkpoints, record, ``summary.json``) is written by the same calls as a run trained
alone. A trial that stops (diverged, early stopped) is frozen: its sticky finite flag
(`lstmx.train.step.guard`) is set False, so later steps leave its state unchanged while
the others go on, and it is finished at once (final evaluation, last checkpoint,
``summary.json``), as it would be alone. A killed group resumes: each trial from its own
checkpoint (trials whose checkpoints are at different steps train as separate groups).

Results match the trials trained one by one up to float32 rounding (vmap batches the
matmuls differently), not bit for bit.
"""

from __future__ import annotations

import contextlib
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from lstmx import optim
from lstmx.compile_stats import compile_stats
from lstmx.config import Config
from lstmx.tasks.datasets import FOLLOW_TRAIN_SEED
from lstmx.train.progress import Progress
from lstmx.train.rundir import config_dict
from lstmx.train.session import Session, check_batch_lengths, open_session
from lstmx.train.step import make_train_chunk, make_train_step

VALUE_KEYS = ("name", "train.seed", "optimizer.lr", "model.init", "model.chrono_max_length")


class NotGroupable(ValueError):
  """Trials that cannot train as one program (the message says why)."""


def group_key(config: Config) -> str:
  """The config as JSON with the fields that may differ within a group blanked
  (`VALUE_KEYS`; ``train.seed`` kept where it picks the task's data split): trials
  with equal keys may train together."""
  d = config_dict(config)
  keep_seed = config.task.params.get("data_seed") == FOLLOW_TRAIN_SEED
  for key in VALUE_KEYS:
    if key == "train.seed" and keep_seed:
      continue
    *path, last = key.split(".")
    node = d
    for part in path:
      node = node.get(part, {})
    if last in node:
      node[last] = None
  return json.dumps(d, sort_keys=True, default=str)


def train_group(configs: list[Config], workdirs: list[str], *,
                force: bool | list[bool] = False) -> list[dict]:
  """Trains `configs` (in `workdirs`) together; returns their summaries in order.

  Each run is opened as `lstmx.train.loop.train_and_evaluate` opens it (a finished
  one returns its summary, a killed one resumes from its latest checkpoint, `force`
  as there). The runs still to train are grouped by the step they resume from.

  Raises:
    NotGroupable: configs that differ beyond `VALUE_KEYS`, a sharding preset, a stream
      (TBPTT) task, or models whose graphs differ; nothing has trained then.
    ValueError: `configs` and `workdirs` of different lengths, or none.
  """
  if not configs or len(configs) != len(workdirs):
    raise ValueError(f"train_group: expected as many workdirs as configs (at least one); "
                     f"got {len(configs)} configs and {len(workdirs)} workdirs")
  forces = list(force) if isinstance(force, (list, tuple)) else [force] * len(configs)
  keys = [group_key(c) for c in configs]
  for c, k in zip(configs, keys):
    if k != keys[0]:
      raise NotGroupable(f"trials {configs[0].name!r} and {c.name!r} differ beyond "
                         f"{VALUE_KEYS}")
  if configs[0].sharding.preset != "none":
    raise NotGroupable(f"sharding.preset: expected 'none' for trials trained together; got "
                       f"{configs[0].sharding.preset!r}")
  with contextlib.ExitStack() as cleanup:  # closes checkpoints and event files on errors too
    sessions = [open_session(c, w, f, None, None, cleanup)
                for c, w, f in zip(configs, workdirs, forces)]
    if sessions[0].stateful:
      raise NotGroupable(f"task {sessions[0].task.name!r}: a stream task (its model state is "
                         "carried between steps) trains one trial at a time")
    graph = sessions[0].modeldef.graphdef
    for s in sessions:
      if s.modeldef.graphdef != graph or (jax.tree.structure(s.state)
                                          != jax.tree.structure(sessions[0].state)):
        raise NotGroupable(f"trial {s.config.name!r}: its model's graph or train state "
                           f"differs from {sessions[0].config.name!r}'s")
    summaries: dict[int, dict] = {}
    by_start: dict[int, list[int]] = {}
    for i, s in enumerate(sessions):
      if s.summary is not None:
        summaries[i] = s.summary
      elif s.finished:  # its summary is rebuilt from its final checkpoint
        summaries[i] = s.finish(s.state, s.record, s.start, compile_time=0.0,
                                eval_compile_time=0.0, step_bytes=None)
      else:
        by_start.setdefault(s.start, []).append(i)
    for idx in by_start.values():
      for i, summary in zip(idx, _train_together([sessions[i] for i in idx])):
        summaries[i] = summary
  return [summaries[i] for i in range(len(configs))]


def _train_together(sessions: list[Session]) -> list[dict]:
  """Trains `sessions` (all at one start step) as one vmapped program."""
  s0 = sessions[0]
  tc, task, start = s0.config.train, s0.task, s0.start
  for s in sessions:
    check_batch_lengths(s.sample_step(start), s.task)
  states = jax.tree.map(lambda *x: jnp.stack(x), *[s.state for s in sessions])
  data_keys = jnp.stack([s.data_key for s in sessions])
  rates = jnp.asarray([s.config.optimizer.lr for s in sessions], jnp.float32)
  oks = jnp.ones((len(sessions),), bool)

  def chunk(n: int):
    def one(state, ok, key, lr):
      step = make_train_step(s0.modeldef, task, optim.build(s0.config.optimizer,
                                                          tc.steps, lr))
      return make_train_chunk(step, lambda k: task.sample(k, tc.batch_size), key, n)(state, ok)
    return jax.jit(jax.vmap(one), donate_argnums=0)

  k, total = tc.steps_per_call, tc.steps
  t0 = time.perf_counter()
  compiled = chunk(k).lower(states, oks, data_keys, rates).compile()
  single = compiled
  if k > 1 and (total % k or start % k):  # a remainder: compiled now, outside the wall time
    single = chunk(1).lower(states, oks, data_keys, rates).compile()
  compile_time = time.perf_counter() - t0
  step_bytes = compile_stats(compiled).get("peak_bytes")

  def advance(states, oks, step):
    program = compiled if step % k == 0 and step + k <= total else single
    return program(states, oks, data_keys, rates)

  eval_compile_times = [s.compile_eval() for s in sessions]
  progress = [Progress(total=total, initial=start, enabled=tc.progress and i == 0)
              for i in range(len(sessions))]
  for s in sessions:
    s.start_clock()
  hooks = [s.hooks(p) for s, p in zip(sessions, progress)]
  group = {"trials": len(sessions), "names": [s.config.name for s in sessions],
           "note": "compile_time and step_memory_bytes are the group's program's"}

  def finish(i, state, record, step):  # as soon as trial i stops: its run directory complete
    progress[i].close()
    return sessions[i].finish(state, record, step, compile_time=compile_time,
                              eval_compile_time=eval_compile_times[i],
                              step_bytes=step_bytes, trials_per_device=group)

  return run_together(advance, states, oks, sessions, hooks, start=start, total=total,
                      on_stop=finish)


@jax.jit
def _unstack(states):
  """The K states of stacked `states` ([K, ...] leaves), as a list."""
  n = jax.tree.leaves(states)[0].shape[0]
  return [jax.tree.map(lambda x, i=i: x[i], states) for i in range(n)]


@jax.jit
def _put(states, i, state):
  """Stacked `states` with trial `i`'s replaced by `state`."""
  return jax.tree.map(lambda s, x: s.at[i].set(x), states, state)


def run_together(advance, states, oks, sessions: list[Session], hooks: list[list], *,
                 start: int, total: int, on_stop) -> list:
  """`lstmx.train.loop.run_steps` for K stacked states: steps ``start+1 .. total`` until
  every trial has stopped, each trial's hooks on its own metrics and state.

  Args:
    advance: ``(states, oks, step) -> (states, oks, metrics)``, metrics [K, n].
    states, oks: the stacked train states and the trials' finite flags [K].
    sessions, hooks: each trial's session and hooks.
    on_stop: ``(i, state, record, step)`` called once per trial when it stops (at the
      sync step where its stop is seen, or at the end) with its state, record and last
      step.

  Returns:
    each trial's `on_stop` result, in order.
  """
  K = len(sessions)
  records = [s.record for s in sessions]
  done, live, results = [start] * K, [True] * K, [None] * K
  step, pending = start, []
  cadences = [getattr(h, "when", lambda s: True) for h in hooks[0]]  # equal for all trials
  while step < total and any(live):
    states, oks, metrics = advance(states, oks, step)
    pending.append(metrics)
    step += int(np.shape(metrics["finite"])[1])
    if step < total and not any(when(step) for when in cadences):
      continue
    window, pending = jax.device_get(pending), []
    views, stopped = _unstack(states), []
    for chunk in window:
      for j in range(chunk["finite"].shape[1]):
        for i in range(K):
          if not live[i]:
            continue
          done[i] += 1
          row = {key: v[i, j] for key, v in chunk.items()}
          if not row["finite"]:  # the guard has frozen it at its last finite state
            sessions[i].on_diverged(done[i], row)
            records[i] = records[i].stop("diverged",
                                         f"non-finite loss or gradient at step {done[i]}")
            live[i] = False
            stopped.append(i)
            continue
          for hook in hooks[i]:
            new, records[i] = hook(done[i], views[i], records[i], row)
            if new is not views[i]:  # e.g. averaging switched on, good parameters put back
              views[i] = new
              states = _put(states, i, new)
            if not records[i].running:
              live[i] = False
              stopped.append(i)
              oks = oks.at[i].set(False)  # frozen from here on
              break
    for i in stopped:
      results[i] = on_stop(i, views[i], records[i], done[i])
  views = _unstack(states)
  for i in range(K):
    if results[i] is None:
      results[i] = on_stop(i, views[i], records[i], done[i])
  return results
