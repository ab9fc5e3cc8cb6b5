"""Optimizers as optax chains built from `OptimizerConfig`."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lstmx.config import AVERAGING, OPTIMIZERS, SCHEDULES, OptimizerConfig  # noqa: F401


class AveragingState(NamedTuple):
  """Iterate averaging: ``average`` = mean of the parameters after the last
  ``count`` updates while ``active``; the current parameters while not."""

  average: Any
  count: jax.Array  # int32
  active: jax.Array  # bool


def averaging(active: bool = False) -> optax.GradientTransformation:
  """Tracks the running mean of the iterates; leaves the updates unchanged.

  With w_k the parameters after update k and k0 the first update while active,
  ``average`` = (1 / (k - k0 + 1)) sum_{j=k0..k} w_j, computed incrementally as
  a <- a + (w_k - a) / n. While inactive, ``average`` follows w_k, so switching
  on (`start_averaging`) starts the mean at the next iterate (torch ASGD, t0=0).
  Put it last in a chain: it sees the final updates.
  """

  def init(params):
    return AveragingState(average=jax.tree.map(jnp.copy, params),  # no aliasing under donation
                          count=jnp.zeros((), jnp.int32), active=jnp.asarray(active))

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("averaging: update() needs params")
    new = optax.apply_updates(params, updates)
    count = jnp.where(state.active, state.count + 1, 0)
    n = jnp.maximum(count, 1)
    average = jax.tree.map(
        lambda a, w: jnp.where(state.active, a + (w - a) / n.astype(a.dtype), w),
        state.average, new)
    return updates, AveragingState(average, count, state.active)

  return optax.GradientTransformation(init, update)


def _averaging_state(opt_state) -> AveragingState | None:
  found = [s for s in jax.tree.leaves(opt_state, is_leaf=lambda s: isinstance(s, AveragingState))
           if isinstance(s, AveragingState)]
  return found[0] if found else None


def averaging_active(opt_state) -> bool:
  s = _averaging_state(opt_state)
  return s is not None and bool(jax.device_get(s.active))


def start_averaging(opt_state):
  """`opt_state` with averaging switched on (unchanged without `averaging()`)."""
  def on(s):
    if not isinstance(s, AveragingState):
      return s
    # logical_or keeps the array's sharding, so a compiled step still accepts it.
    return s._replace(active=jnp.logical_or(s.active, True))
  return jax.tree.map(on, opt_state, is_leaf=lambda s: isinstance(s, AveragingState))


def eval_params(params, opt_state):
  """The parameters to evaluate and keep: the iterate average once averaging
  is on, else `params`."""
  s = _averaging_state(opt_state)
  if s is None or not bool(jax.device_get(s.active)):
    return params
  return s.average


def nt_triggered(history: list[float], nonmono: int, mode: str = "min") -> bool:
  """Merity et al. 2017's trigger, on the validation history with the newest
  value last: with ``prev`` the values before it, fires when
  ``len(prev) > nonmono`` and the newest is worse than the best of
  ``prev[:-nonmono]`` (awd-lstm-lm's main.py); with ``nonmono=0``, worse than
  the best earlier value."""
  if len(history) <= nonmono + 1:
    return False
  earlier, newest = history[:len(history) - 1 - nonmono], history[-1]
  return newest > min(earlier) if mode == "min" else newest < max(earlier)


def schedule(cfg: OptimizerConfig, total_steps: int, lr=None) -> optax.Schedule:
  """Learning rate per step: linear warmup, then constant, cosine or step decay.

  ``lr`` (default ``cfg.lr``) may be a traced scalar: a jitted step that takes the
  learning rate as an argument is one program for every rate of a grid."""
  lr = cfg.lr if lr is None else lr
  if cfg.schedule not in SCHEDULES:
    raise ValueError(f"optimizer.schedule: expected one of {SCHEDULES}; got {cfg.schedule!r}")
  if cfg.schedule == "constant":
    main = optax.constant_schedule(lr)
  elif cfg.schedule == "cosine":
    main = optax.cosine_decay_schedule(lr, max(total_steps - cfg.warmup_steps, 1))
  else:
    main = optax.exponential_decay(lr, cfg.step_every, cfg.step_factor, staircase=True)
  if cfg.warmup_steps <= 0:
    return main
  warmup = optax.linear_schedule(0.0, lr, cfg.warmup_steps)
  return optax.join_schedules([warmup, main], [cfg.warmup_steps])


def decay_mask(params, patterns: tuple[str, ...]):
  """True for leaves whose key path contains one of `patterns` (e.g. weights, not biases)."""
  def is_decayed(path, _):
    name = jax.tree_util.keystr(path)
    return any(p in name for p in patterns)
  return jax.tree_util.tree_map_with_path(is_decayed, params)


def build(cfg: OptimizerConfig, total_steps: int, lr=None) -> optax.GradientTransformation:
  """clip_by_global_norm -> [coupled L2] -> optimizer with the schedule -> [averaging].

  ``lr``: the learning rate in place of ``cfg.lr``, a float or a traced scalar (the
  state's structure does not depend on it: `init` with one, `update` with the other).

  ``adamw`` applies decoupled weight decay (Loshchilov & Hutter 2019); the
  others add ``weight_decay * w`` to the gradient (coupled L2). Both use the
  mask from `decay_patterns`.
  """
  if cfg.name not in OPTIMIZERS:
    raise ValueError(f"optimizer.name: expected one of {OPTIMIZERS}; got {cfg.name!r}")
  if cfg.averaging not in AVERAGING:
    raise ValueError(f"optimizer.averaging: expected one of {AVERAGING}; "
                     f"got {cfg.averaging!r}")
  if cfg.nonmono < 0:
    raise ValueError(f"optimizer.nonmono: expected >= 0; got {cfg.nonmono}")
  lr = schedule(cfg, total_steps, lr)
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
  if cfg.averaging != "none":
    parts.append(averaging(active=cfg.averaging == "always"))
  return optax.chain(*parts)
