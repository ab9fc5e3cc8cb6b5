"""Sweeps as data: lists of overrides (``{"dotted.key": value}``) built by
`product`, `zip_`, `chain` and `seeds`; `apply` sets them on a config.

    >>> sweep = product({"task.params.delay": [10, 50], "model.init": ["forget_bias", "chrono"]})
    >>> config = apply(Config(), sweep[0])
    >>> len(seeds(sweep, 3))
    12
"""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any, Mapping, Sequence

from lstmx.config import set_many

Overrides = dict[str, Any]


def product(axes: Mapping[str, Sequence[Any]]) -> list[Overrides]:
  """The cartesian product of the value lists, first key varying slowest."""
  keys = list(axes)
  return [dict(zip(keys, values)) for values in itertools.product(*(axes[k] for k in keys))]


def zip_(axes: Mapping[str, Sequence[Any]]) -> list[Overrides]:
  """Values taken together position by position; all lists must be equally long."""
  lengths = {k: len(v) for k, v in axes.items()}
  if len(set(lengths.values())) > 1:
    raise ValueError(f"zip_: expected lists of one length; got lengths {lengths}")
  keys = list(axes)
  return [dict(zip(keys, values)) for values in zip(*(axes[k] for k in keys))]


def chain(*sweeps: Sequence[Overrides]) -> list[Overrides]:
  return [dict(o) for s in sweeps for o in s]


def cross(a: Sequence[Overrides], b: Sequence[Overrides]) -> list[Overrides]:
  """Every override of `a` combined with every override of `b`."""
  return [{**x, **y} for x in a for y in b]


def seeds(sweep: Sequence[Overrides], n: int, key: str = "train.seed") -> list[Overrides]:
  return cross(sweep, [{key: s} for s in range(n)])


def trial_id(overrides: Overrides) -> str:
  """A stable short id for a set of overrides."""
  text = json.dumps(overrides, sort_keys=True, default=str)
  return hashlib.sha1(text.encode()).hexdigest()[:10]


def apply(config, overrides: Overrides):
  """The config with each dotted key set to its value (type-checked), through the
  one dotted-path setter `lstmx.config.set_path` (``model.kind`` first).

  Keys under ``meta.`` are labels for the results table (e.g. ``meta.model``)
  and do not touch the config.
  """
  items = [(k, v) for k, v in overrides.items() if not k.startswith("meta.")]
  return set_many(config, items)
