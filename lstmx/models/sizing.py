"""Parameter counts without allocating, and widths that match a parameter budget.

    >>> cfg = match_size(ModelConfig(kind="gru"), param_count(ModelConfig(), 4, 4, 20), 4, 4, 20)

`match_size` keeps every field but ``hidden_size`` and picks the width whose
count is nearest the target (binary search; counts grow with the width).
Both are memoized for the life of the process (`ModelConfig` is frozen and
hashable): experiment files size every model of a sweep when their presets
are built, and a count traces the model's construction (~0.1-0.3 s).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
from flax import nnx

from lstmx.models.base import ModelConfig
from lstmx.models.registry import build

TOLERANCE = 0.1  # relative
_MAX_WIDTH = 1 << 20


@functools.lru_cache(maxsize=4096)
def param_count(cfg: ModelConfig, input_size: int, output_size: int,
                max_length: int | None = None) -> int:
  """The number of parameters of ``build(cfg, ...)``, from shapes only (`nnx.eval_shape`)."""
  model = nnx.eval_shape(lambda: build(cfg, input_size, output_size, seed=0,
                                       max_length=max_length))
  return sum(math.prod(v.shape) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))


def _width_step(cfg: ModelConfig) -> int:
  """Widths must be multiples of this (the transformer's heads)."""
  return cfg.num_heads if cfg.kind == "transformer" else 1


@functools.lru_cache(maxsize=1024)
def match_size(cfg: ModelConfig, target_params: int, input_size: int, output_size: int,
               max_length: int | None = None, *, tolerance: float = TOLERANCE) -> ModelConfig:
  """``cfg`` with the ``hidden_size`` whose parameter count is nearest `target_params`.

  Args:
    cfg: the model config; every field but ``hidden_size`` is kept.
    target_params: the parameter budget.
    input_size, output_size, max_length: as for `build`.
    tolerance: the largest relative distance from the target accepted.

  Returns:
    The config with the chosen ``hidden_size`` (a multiple of ``num_heads``
    for the transformer).

  Raises:
    ValueError: if no width comes within `tolerance` of the target (the
      target is below the smallest model, or counts jump past it).
  """
  if target_params < 1:
    raise ValueError(f"target_params: expected a positive int; got {target_params!r}")
  step = _width_step(cfg)
  counts: dict[int, int] = {}

  def count(m: int) -> int:
    if m not in counts:
      counts[m] = param_count(dataclasses.replace(cfg, hidden_size=m * step), input_size,
                              output_size, max_length)
    return counts[m]

  hi = 1
  while count(hi) < target_params and hi * step < _MAX_WIDTH:
    hi *= 2
  lo = max(1, hi // 2)
  while lo < hi:  # the smallest multiplier whose count reaches the target
    mid = (lo + hi) // 2
    if count(mid) >= target_params:
      hi = mid
    else:
      lo = mid + 1
  best = min({max(1, lo - 1), lo}, key=lambda m: abs(count(m) - target_params))
  error = abs(count(best) - target_params) / target_params
  if error > tolerance:
    raise ValueError(
        f"match_size: no model.hidden_size for model.kind={cfg.kind!r} has a parameter count "
        f"within {tolerance:.0%} of {target_params}; nearest is hidden_size={best * step} "
        f"with {count(best)} parameters")
  return dataclasses.replace(cfg, hidden_size=best * step)
