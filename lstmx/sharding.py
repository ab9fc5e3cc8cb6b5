"""Sharding by logical axis names and one rules object.

Parameters carry logical axes chosen by their names (`logical_axes`):
``w_ih`` ("embed", "gates"), ``w_hh`` ("recurrent", "gates"), ``b`` ("gates",),
head ``kernel`` ("hidden", "classes"), ``bias`` ("classes",). Batches carry
("batch", ...). A `ShardingRules` maps logical names to mesh axes; names it
does not map are replicated.

Presets (the mesh is always 2-D, ``("data", "model")``, see `make_mesh`):
  * `data_parallel()`: the batch over the mesh axis ``data``; parameters and
    optimizer state replicated; gradients are all-reduced by XLA.
  * `hidden_parallel()`: the hidden units over ``model`` (and the batch over
    ``data`` if that axis has more than one device). Under a mesh whose
    ``model`` axis has more than one device, ``backend="auto"`` runs the LSTM
    layers with `lstmx.kernels.hidden_parallel`: a unit's four gates on one device, one
    all-gather of h_t per step. LSTM weights are stored in contiguous blocks of
    their ``gates`` axis (a unit's gates are strided columns of [D, 4H], which
    one NamedSharding cannot group); the layer regroups them per call.

State is created already sharded: abstract shapes (`jax.eval_shape`), then
shardings, then ``jax.jit(create, out_shardings=...)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

PRESETS = ("none", "data_parallel", "hidden_parallel")

_PARAM_AXES = (  # (substring of the parameter path, logical axes), first match wins
    ("w_ih", ("embed", "gates")),
    ("w_hh", ("recurrent", "gates")),
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


def hidden_parallel() -> ShardingRules:
  return ShardingRules((("batch", "data"), ("gates", "model"), ("hidden", "model")))


def preset(name: str) -> ShardingRules | None:
  if name not in PRESETS:
    raise ValueError(f"sharding.preset: expected one of {PRESETS}; got {name!r}")
  return {"none": None, "data_parallel": data_parallel(),
          "hidden_parallel": hidden_parallel()}[name]


def make_mesh(devices=None, model: int = 1) -> Mesh:
  """A 2-D mesh ("data", "model") over `devices` (all global devices by
  default), `model` devices on the model axis and the rest on data."""
  devices = np.array(jax.devices() if devices is None else devices).reshape(-1)
  if model < 1 or devices.size % model:
    raise ValueError(f"sharding.model_axis: expected a divisor of the device count "
                     f"{devices.size}; got {model}")
  return Mesh(devices.reshape(devices.size // model, model), ("data", "model"))


def mesh_for(preset_name: str, model_axis: int = 0, devices=None) -> Mesh:
  """The mesh of a preset: hidden_parallel puts `model_axis` devices (0 = all)
  on ``model``; data_parallel puts them all on ``data``."""
  n = len(jax.devices() if devices is None else devices)
  model = (model_axis or n) if preset_name == "hidden_parallel" else 1
  return make_mesh(devices, model)


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
