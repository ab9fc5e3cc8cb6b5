"""`train_and_evaluate(config, workdir)`: one resumable training run."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import resource
import sys
import time

import jax
import numpy as np

import lstmx
from lstmx import optim, sharding
from lstmx.config import Config, to_dict
from lstmx.train.checkpoint import Checkpoints
from lstmx.train.progress import Progress
from lstmx.train.restore import build
from lstmx.train.rundir import MetricsLog, read_json, write_json
from lstmx.train.step import init_state, make_eval_step, make_train_step

TERMINAL = ("completed", "early_stopped", "diverged")


def _check_config(workdir: str, config: Config, force: bool) -> None:
  path = os.path.join(workdir, "config.json")
  new = json.loads(json.dumps(to_dict(config), default=str))
  if os.path.exists(path) and not force:
    old = read_json(path)
    if old != new:
      diff = sorted(_diff(old, new))
      raise ValueError(f"workdir {workdir!r} holds a run with a different config "
                       f"(differs at {diff}); use another workdir or force=True (--force)")
  if jax.process_index() == 0:
    write_json(path, new)


def _diff(a, b, prefix=""):
  if isinstance(a, dict) and isinstance(b, dict):
    for k in set(a) | set(b):
      yield from _diff(a.get(k), b.get(k), f"{prefix}{k}.")
  elif a != b:
    yield prefix.rstrip(".")


def _versions() -> dict:
  import flax
  import optax
  import orbax.checkpoint
  return {"lstmx": lstmx.__version__, "jax": jax.__version__, "flax": flax.__version__,
          "optax": optax.__version__, "orbax": orbax.checkpoint.__version__,
          "python": platform.python_version()}


def _backend(config: Config) -> str:
  """The LSTM backend the model's layers resolve to (with the call's facts)."""
  m = config.model
  return lstmx.backends.resolve(
      m.backend, dtype=np.dtype("float32"), compute_dtype=m.compute_dtype,
      regularized=m.regularization.reaches_kernel).value


def _improved(value: float, best: float | None, cfg) -> bool:
  if best is None:
    return True
  if cfg.monitor_mode == "max":
    return value > best + cfg.min_delta
  return value < best - cfg.min_delta


def evaluate(eval_step, params, task, key, batch_size: int, batches: int, split: str,
             place=lambda batch: batch) -> dict:
  """Mean metrics over `batches` fixed batches of `split` (`place` shards a batch)."""
  rows = []
  for i in range(batches):
    batch = place(task.sample(jax.random.fold_in(key, i), batch_size, split=split))
    rows.append(jax.device_get(eval_step(params, batch)))
  return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def train_and_evaluate(config: Config, workdir: str, *, force: bool = False) -> dict:
  """Trains `config` in `workdir`, resuming from its latest checkpoint if any.

  Returns the summary (also written to ``workdir/summary.json``), with
  ``status`` one of completed, early_stopped, diverged. With a sharding
  preset, everything runs under its mesh (`jax.set_mesh`), so the model's
  ``backend="auto"`` sees it.
  """
  rules = sharding.preset(config.sharding.preset)
  if rules is None:
    return _train(config, workdir, force, None, None)
  mesh = sharding.mesh_for(config.sharding.preset, config.sharding.model_axis)
  with jax.set_mesh(mesh):
    return _train(config, workdir, force, rules, mesh)


def _train(config: Config, workdir: str, force: bool, rules, mesh) -> dict:
  os.makedirs(workdir, exist_ok=True)
  _check_config(workdir, config, force)
  tc = config.train
  task, model = build(config)
  tx = optim.build(config.optimizer, tc.steps)
  modeldef, state = init_state(model, tx, tc.seed)
  if rules is not None:
    state = sharding.create_sharded(lambda: init_state(build(config)[1], tx, tc.seed)[1],
                                    rules, mesh)
  n_params = lstmx.param_count(state.params)
  ckpts = Checkpoints(workdir, tc.keep_checkpoints)
  is_main = jax.process_index() == 0  # the process that writes the run directory
  log = MetricsLog(workdir, enabled=is_main)
  meta = {"best_value": None, "best_step": None, "evals_since_best": 0, "wall_time": 0.0,
          "status": "running", "stop_reason": None, "val_history": [], "averaging_step": None}
  restored = ckpts.restore_latest(state)
  if restored is not None:
    state, meta = restored[0], {**meta, **restored[1]}
  start = int(state.step)
  log.truncate_after(start)
  summary_path = os.path.join(workdir, "summary.json")
  extend = meta["status"] == "completed" and start < tc.steps  # more steps, forced
  if meta["status"] in TERMINAL and not extend and os.path.exists(summary_path):
    ckpts.close()
    return read_json(summary_path)
  meta.update(status="running", stop_reason=None)

  key = jax.random.key(tc.seed)
  data_key = jax.random.fold_in(key, 1)
  split_keys = {"validation": jax.random.fold_in(key, 2), "test": jax.random.fold_in(key, 3),
                "train": jax.random.fold_in(key, 4)}
  sample_local = jax.jit(lambda k: task.sample(k, tc.batch_size))
  if rules is None:
    place, sample = (lambda batch: batch), sample_local
  else:
    def place(batch):
      return sharding.place_batch(jax.device_get(batch), rules, mesh)

    def sample(k):
      return place(sample_local(k))
  train_step = jax.jit(make_train_step(modeldef, task, tx), donate_argnums=0)
  eval_step = jax.jit(make_eval_step(modeldef, task))

  t0 = time.perf_counter()
  first = sample(jax.random.fold_in(data_key, start))
  compiled = train_step.lower(state, first).compile()
  compile_time = time.perf_counter() - t0
  mem = compiled.memory_analysis()
  step_bytes = None if mem is None else int(mem.temp_size_in_bytes + mem.argument_size_in_bytes
                                            + mem.output_size_in_bytes)
  tokens_per_batch = tc.batch_size * task.length

  progress = Progress(total=tc.steps, initial=start, enabled=tc.progress)
  run_start, wall0 = time.perf_counter(), meta["wall_time"]
  window_t, window = time.perf_counter(), []
  step = start
  while step < tc.steps:
    batch = sample(jax.random.fold_in(data_key, step))
    state, m = compiled(state, batch)
    step += 1
    m = jax.device_get(m)
    if not m["finite"]:
      meta.update(status="diverged", stop_reason=f"non-finite loss or gradient at step {step}")
      log.write(step, "train", wall0 + time.perf_counter() - run_start, m)
      break
    window.append(m)
    if step % tc.log_every == 0 or step == tc.steps:
      dt = time.perf_counter() - window_t
      row = {k: float(np.mean([w[k] for w in window])) for k in ("loss", "grad_norm")}
      row["tokens_per_s"] = tokens_per_batch * len(window) / max(dt, 1e-9)
      log.write(step, "train", wall0 + time.perf_counter() - run_start, row)
      progress.update(step, row)
      window_t, window = time.perf_counter(), []
    if step % tc.eval_every == 0 or step == tc.steps:
      ev = evaluate(eval_step, optim.eval_params(state.params, state.opt_state), task,
                    split_keys["validation"], tc.batch_size, tc.eval_batches, "validation", place)
      log.write(step, "validation", wall0 + time.perf_counter() - run_start, ev)
      value = ev[tc.monitor]
      if config.optimizer.averaging == "nt" and meta["averaging_step"] is None:
        meta["val_history"].append(value)
        if optim.nt_triggered(meta["val_history"], config.optimizer.nonmono, tc.monitor_mode):
          state = dataclasses.replace(state, opt_state=optim.start_averaging(state.opt_state))
          meta["averaging_step"] = step
      meta["wall_time"] = wall0 + time.perf_counter() - run_start
      if _improved(value, meta["best_value"], tc):
        meta.update(best_value=value, best_step=step, evals_since_best=0)
        ckpts.save_best(step, state, meta)
      else:
        meta["evals_since_best"] += 1
        if tc.patience and meta["evals_since_best"] >= tc.patience:
          meta.update(status="early_stopped",
                      stop_reason=f"no {tc.monitor} improvement > {tc.min_delta} in "
                                  f"{tc.patience} evaluations (best at step {meta['best_step']})")
          break
    if step % tc.checkpoint_every == 0 and step < tc.steps:
      meta["wall_time"] = wall0 + time.perf_counter() - run_start
      ckpts.save_latest(step, state, meta)
  progress.close()

  if meta["status"] == "running":
    meta.update(status="completed", stop_reason=f"reached {tc.steps} steps")
  if meta["status"] == "early_stopped":
    best = ckpts.restore_best(state)
    if best is not None:
      state = dataclasses.replace(state, params=best[0].params, opt_state=best[0].opt_state)
  final = {}
  if meta["status"] != "diverged":
    params = optim.eval_params(state.params, state.opt_state)
    for split in ("train", "validation", "test"):  # train: deterministic, for the gap
      final[split] = evaluate(eval_step, params, task, split_keys[split], tc.batch_size,
                              tc.eval_batches, split, place)
  meta["wall_time"] = wall0 + time.perf_counter() - run_start
  ckpts.save_latest(step, state, meta)
  ckpts.close()
  summary = {
      "name": config.name, "status": meta["status"], "stop_reason": meta["stop_reason"],
      "steps": step, "final": final, "best": {"metric": tc.monitor, "value": meta["best_value"],
                                              "step": meta["best_step"]},
      "task": {"name": task.name, "baseline_loss": task.baseline_loss,
               "chance_accuracy": task.chance_accuracy, "solved_rule": task.solved_rule,
               "solved": bool(final and task.solved(final["validation"]))},
      "wall_time": meta["wall_time"], "compile_time": compile_time,
      "step_memory_bytes": step_bytes,
      "averaging": {"mode": config.optimizer.averaging,
                    "start_step": (0 if config.optimizer.averaging == "always"
                                   else meta["averaging_step"])},
      "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
      "param_count": n_params, "backend": _backend(config),
      "devices": [str(d) for d in jax.devices()], "versions": _versions(),
      "argv": sys.argv,
  }
  if is_main:
    write_json(summary_path, summary)
  return summary
