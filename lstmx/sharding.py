"""Sharding by logical axis names and one rules object.

Parameters carry logical axes chosen by their names (`logical_axes`):
``w_ih`` ("embed", "gates"), ``w_hh`` ("hidden", "gates"), ``b`` ("gates",),
head ``kernel`` ("hidden", "classes"), ``bias`` ("classes",). Batches carry
("batch", ...). A `ShardingRules` maps logical names to mesh axes; names it
does not map are replicated.

Presets:
  * `data_parallel()`: the batch over the mesh axis ``data``; parameters and
    optimizer state replicated; gradients are all-reduced by XLA.

State is created already sharded: abstract shapes (`jax.eval_shape`), then
shardings, then ``jax.jit(create, out_shardings=...)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

PRESETS = ("none", "data_parallel")

_PARAM_AXES = (  # (substring of the parameter path, logical axes), first match wins
    ("w_ih", ("embed", "gates")),
    ("w_hh", ("hidden", "gates")),
    ("'b_", ("gates",)),
    ("kernel", ("hidden", "classes")),
    ("bias", ("classes",)),
    ("embedding", ("vocab", "embed")),
)


@dataclasses.dataclass(frozen=True)
class ShardingRules:
  """Logical axis name -> mesh axis name (or None for replicated)."""

  rules: tuple[tuple[str, str | None], ...]

  def spec(self, logical: tuple[str | None, ...]) -> P:
    table = dict(self.rules)
    axes = [table.get(name) if name else None for name in logical]
    used = [a for a in axes if a is not None]
    if len(used) != len(set(used)):
      raise ValueError(f"ShardingRules: logical axes {logical} map to mesh axes {axes}, "
                       "which use one mesh axis twice")
    return P(*axes)


def data_parallel() -> ShardingRules:
  return ShardingRules((("batch", "data"),))


def preset(name: str) -> ShardingRules | None:
  if name not in PRESETS:
    raise ValueError(f"sharding.preset: expected one of {PRESETS}; got {name!r}")
  return None if name == "none" else data_parallel()


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh ("data",) over all (global) devices."""
  devices = np.array(jax.devices() if devices is None else devices)
  return Mesh(devices.reshape(-1), ("data",))


def logical_axes(path, leaf) -> tuple[str | None, ...]:
  name = jax.tree_util.keystr(path)
  for pattern, axes in _PARAM_AXES:
    if pattern in name and len(axes) == np.ndim(leaf):
      return axes
  return (None,) * np.ndim(leaf)


def tree_shardings(tree, rules: ShardingRules, mesh: Mesh) -> Any:
  """NamedShardings for a pytree of arrays (parameters or optimizer state)."""
  return jax.tree_util.tree_map_with_path(
      lambda p, x: NamedSharding(mesh, rules.spec(logical_axes(p, x))), tree)


def batch_sharding(rules: ShardingRules, mesh: Mesh, ndim: int) -> NamedSharding:
  return NamedSharding(mesh, rules.spec(("batch",) + (None,) * (ndim - 1)))


def create_sharded(create: Callable[[], Any], rules: ShardingRules, mesh: Mesh) -> Any:
  """Runs `create` under jit with the shardings of its abstract output."""
  abstract = jax.eval_shape(create)
  return jax.jit(create, out_shardings=tree_shardings(abstract, rules, mesh))()


def place_batch(batch: dict, rules: ShardingRules, mesh: Mesh) -> dict:
  """Places a host batch (identical on every process) as global sharded arrays;
  each process transfers only the rows of its own devices."""
  out = {}
  for k, v in batch.items():
    v = np.asarray(v)
    sharding = batch_sharding(rules, mesh, v.ndim)
    out[k] = jax.make_array_from_callback(v.shape, sharding, lambda idx, v=v: v[idx])
  return out
