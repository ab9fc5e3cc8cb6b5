"""The one dispatcher that maps a backend name to a layer implementation.

Every backend implements the same contract as
`lstmx.reference.lstm_layer_reference`:
``layer(params, xs [T,B,D], mask [T,B] | None, h0, c0, *, reverse, unroll,
compute_dtype, precision, recurrent_mask [B,H] | None, zoneout_h | None,
zoneout_c | None) -> (ys [T,B,H], (h_n, c_n))``; the regularization arguments
(see `lstmx.regularization`) must be handled inside the kernel, never by
falling back to another backend.
New kernels (Pallas, cuDNN) register here and join the contract tests in
``tests/test_contract.py``.
"""

from __future__ import annotations

import enum
from typing import Callable

import jax

from lstmx.hidden_parallel import MODEL, lstm_layer_hidden_parallel
from lstmx.reference import lstm_layer_reference
from lstmx.scan import lstm_layer_scan


class Backend(enum.Enum):
  AUTO = "auto"
  SCAN = "scan"
  REFERENCE = "reference"
  HIDDEN_PARALLEL = "hidden_parallel"


_LAYERS: dict[Backend, Callable] = {
    Backend.SCAN: lstm_layer_scan,
    Backend.REFERENCE: lstm_layer_reference,
    Backend.HIDDEN_PARALLEL: lstm_layer_hidden_parallel,
}


def _model_parallel() -> bool:
  """True under an ambient mesh (`jax.set_mesh`) whose ``model`` axis has > 1 device."""
  mesh = jax.sharding.get_abstract_mesh()
  return MODEL in getattr(mesh, "axis_names", ()) and mesh.shape[MODEL] > 1


def names() -> tuple[str, ...]:
  return tuple(b.value for b in Backend)


def resolve(backend: str | Backend) -> Backend:
  """Resolves a name (or `Backend`) to a concrete backend.

  ``auto`` picks the fastest backend that supports the call on the current
  platform: ``hidden_parallel`` under an ambient mesh with a ``model`` axis of
  more than one device (`lstmx.hidden_parallel`), else the fused ``scan``.
  """
  try:
    b = Backend(backend)
  except ValueError:
    raise ValueError(f"backend must be one of {names()}; got backend={backend!r}") from None
  if b is Backend.AUTO:
    return Backend.HIDDEN_PARALLEL if _model_parallel() else Backend.SCAN
  return b


def layer_fn(backend: str | Backend) -> Callable:
  return _LAYERS[resolve(backend)]
