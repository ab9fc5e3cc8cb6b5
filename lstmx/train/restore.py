"""Rebuilding a trained model from a run directory."""

from __future__ import annotations

from lstmx import models, optim, tasks
from lstmx.config import Config
from lstmx.tasks.datasets import resolve_params
from lstmx.train import tbptt
from lstmx.train.checkpoint import Checkpoints
from lstmx.train.step import init_state


def build(config: Config, *, seed: int | None = None):
  """(task, model) freshly initialized from `config`."""
  # data_seed="train.seed" (a classification split per seed) becomes the run's seed.
  params = resolve_params(config.task.params, config.train.seed)
  task = tasks.make(config.task.name, **params)
  model = models.build(config.model, task.input_size, task.output_size,
                       seed=config.train.seed if seed is None else seed, max_length=task.length)
  return task, model


def _restore_target(config: Config):
  """(task, the model's graph, a training state to restore a checkpoint into)."""
  task, model = build(config)
  tx = optim.build(config.optimizer, config.train.steps)
  carry = (tbptt.initial_carry(model, config.train.batch_size) if tbptt.is_stateful(task)
           else None)
  modeldef, target = init_state(model, tx, config.train.seed, carry)
  return task, modeldef, target


def load_trained(config: Config, workdir: str):
  """(task, model) with the parameters of the run's latest checkpoint (the
  iterate average when the run averaged, as in its final evaluation)."""
  task, modeldef, target = _restore_target(config)
  ckpts = Checkpoints(workdir, config.train.keep_checkpoints)
  restored = ckpts.restore_latest(target)
  ckpts.close()
  if restored is None:
    raise FileNotFoundError(f"workdir: no checkpoint in {workdir!r}")
  state = restored[0]
  return task, modeldef.merge(optim.eval_params(state.params, state.opt_state))


def checkpointed(config: Config, workdir: str):
  """(step, model) for each checkpoint the run keeps, in step order (its training
  parameters, not an iterate average)."""
  _, modeldef, target = _restore_target(config)
  ckpts = Checkpoints(workdir, config.train.keep_checkpoints)
  try:
    for step in sorted(ckpts.latest.all_steps()):
      state, _ = Checkpoints._restore_step(ckpts.latest, step, target)
      yield int(step), modeldef.merge(state.params)
  finally:
    ckpts.close()
