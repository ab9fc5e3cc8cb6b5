"""Optimizers as optax chains built from `OptimizerConfig`."""

from __future__ import annotations

import jax
import optax

from lstmx.config import OptimizerConfig

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "step")


def schedule(cfg: OptimizerConfig, total_steps: int) -> optax.Schedule:
  """Learning rate per step: linear warmup, then constant, cosine or step decay."""
  if cfg.schedule not in SCHEDULES:
    raise ValueError(f"optimizer.schedule: expected one of {SCHEDULES}; got {cfg.schedule!r}")
  if cfg.schedule == "constant":
    main = optax.constant_schedule(cfg.lr)
  elif cfg.schedule == "cosine":
    main = optax.cosine_decay_schedule(cfg.lr, max(total_steps - cfg.warmup_steps, 1))
  else:
    main = optax.exponential_decay(cfg.lr, cfg.step_every, cfg.step_factor, staircase=True)
  if cfg.warmup_steps <= 0:
    return main
  warmup = optax.linear_schedule(0.0, cfg.lr, cfg.warmup_steps)
  return optax.join_schedules([warmup, main], [cfg.warmup_steps])


def decay_mask(params, patterns: tuple[str, ...]):
  """True for leaves whose key path contains one of `patterns` (e.g. weights, not biases)."""
  def is_decayed(path, _):
    name = jax.tree_util.keystr(path)
    return any(p in name for p in patterns)
  return jax.tree_util.tree_map_with_path(is_decayed, params)


def build(cfg: OptimizerConfig, total_steps: int) -> optax.GradientTransformation:
  """clip_by_global_norm -> [coupled L2] -> optimizer with the schedule.

  ``adamw`` applies decoupled weight decay (Loshchilov & Hutter 2019); the
  others add ``weight_decay * w`` to the gradient (coupled L2). Both use the
  mask from `decay_patterns`.
  """
  if cfg.name not in OPTIMIZERS:
    raise ValueError(f"optimizer.name: expected one of {OPTIMIZERS}; got {cfg.name!r}")
  lr = schedule(cfg, total_steps)
  mask = lambda params: decay_mask(params, cfg.decay_patterns)  # noqa: E731
  parts = []
  if cfg.clip_norm is not None:
    parts.append(optax.clip_by_global_norm(cfg.clip_norm))
  if cfg.weight_decay and cfg.name != "adamw":
    parts.append(optax.add_decayed_weights(cfg.weight_decay, mask))
  if cfg.name == "adam":
    parts.append(optax.adam(lr, cfg.b1, cfg.b2, cfg.eps))
  elif cfg.name == "adamw":
    parts.append(optax.adamw(lr, cfg.b1, cfg.b2, cfg.eps, weight_decay=cfg.weight_decay,
                             mask=mask))
  elif cfg.name == "sgd":
    parts.append(optax.sgd(lr, momentum=cfg.momentum or None))
  else:
    parts.append(optax.rmsprop(lr, eps=cfg.eps, momentum=cfg.momentum or None))
  return optax.chain(*parts)
