"""`param_count` and `match_size` memoized for the life of the process.

Experiment files size every model of a sweep when their presets are built,
and a test session builds them several times (each test loads the file
afresh); counting a Transformer's parameters traces its construction
(~0.1-0.3 s), and a match takes 10-20 counts. `ModelConfig` is frozen and
hashable, so the results are cached here by argument.

    >>> cfg = matched(ModelConfig(kind="mlp"), 20_000, 8, 10, 8)
    >>> n = count(cfg, 8, 10, 8)
"""

from __future__ import annotations

import functools

from lstmx.config import ModelConfig
from lstmx.models.sizing import TOLERANCE, match_size, param_count


@functools.lru_cache(maxsize=4096)
def count(cfg: ModelConfig, input_size: int, output_size: int,
          max_length: int | None = None) -> int:
  """`lstmx.models.param_count`, cached."""
  return param_count(cfg, input_size, output_size, max_length)


@functools.lru_cache(maxsize=1024)
def matched(cfg: ModelConfig, target_params: int, input_size: int, output_size: int,
            max_length: int | None = None, *, tolerance: float = TOLERANCE) -> ModelConfig:
  """`lstmx.models.match_size`, cached (it raises, uncached, when nothing matches)."""
  return match_size(cfg, target_params, input_size, output_size, max_length,
                    tolerance=tolerance)
