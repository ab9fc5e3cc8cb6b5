"""The one dispatcher that maps a backend name to a layer implementation.

Every backend implements the same contract as
`lstmx.reference.lstm_layer_reference`:
``layer(params, xs [T,B,D], mask [T,B] | None, h0, c0, *, reverse, unroll,
compute_dtype, precision, recurrent_mask [B,H] | None, zoneout_h | None,
zoneout_c | None) -> (ys [T,B,H], (h_n, c_n))``; the regularization arguments
(see `lstmx.regularization`) must be handled inside the kernel, never by
falling back to another backend. A backend that cannot handle some of them
raises NotImplementedError, and `resolve` never routes such calls to it.

Backends (performance models in ``docs/backends.md``):

* ``scan``: the fused custom-VJP `lax.scan` (`lstmx.scan`), every platform.
* ``reference``: autodiff of a plain scan (`lstmx.reference`), the oracle.
* ``pallas``: the fused-recurrence Pallas kernels (`lstmx.pallas_lstm`), whole
  contract; interpret mode on CPU. Only by name, never by ``auto``.
* ``cudnn``: cuDNN through `jax.experimental.rnn` (`lstmx.cudnn`), NVIDIA GPUs
  only, float32, no recurrent dropout / zoneout (see `lstmx.cudnn.unsupported`).
* ``hidden_parallel``: hidden units over a ``model`` mesh axis
  (`lstmx.hidden_parallel`), whole contract; needs a mesh.
* ``auto``: ``hidden_parallel`` under a mesh with a ``model`` axis of more
  than one device; else ``cudnn`` on an NVIDIA GPU when the call is eligible;
  else ``scan``.

New kernels register here and join the contract tests in
``tests/test_contract.py``.
"""

from __future__ import annotations

import enum
from typing import Callable

import jax
import jax.extend

from lstmx import cudnn
from lstmx.cudnn import lstm_layer_cudnn
from lstmx.hidden_parallel import MODEL, lstm_layer_hidden_parallel
from lstmx.pallas_lstm import lstm_layer_pallas
from lstmx.reference import lstm_layer_reference
from lstmx.scan import lstm_layer_scan


class Backend(enum.Enum):
  AUTO = "auto"
  SCAN = "scan"
  REFERENCE = "reference"
  HIDDEN_PARALLEL = "hidden_parallel"
  PALLAS = "pallas"
  CUDNN = "cudnn"


_LAYERS: dict[Backend, Callable] = {
    Backend.SCAN: lstm_layer_scan,
    Backend.REFERENCE: lstm_layer_reference,
    Backend.HIDDEN_PARALLEL: lstm_layer_hidden_parallel,
    Backend.PALLAS: lstm_layer_pallas,
    Backend.CUDNN: lstm_layer_cudnn,
}

# Backends whose layer takes ``remat_every`` (nested checkpointing, `lstmx.remat`);
# the reference accepts and ignores it.
REMAT_BACKENDS = frozenset({Backend.SCAN, Backend.REFERENCE})


def _model_parallel() -> bool:
  """True under an ambient mesh (`jax.set_mesh`) whose ``model`` axis has > 1 device."""
  mesh = jax.sharding.get_abstract_mesh()
  return MODEL in getattr(mesh, "axis_names", ()) and mesh.shape[MODEL] > 1


def names() -> tuple[str, ...]:
  return tuple(b.value for b in Backend)


def current_platform() -> str:
  """``"cuda"`` on an NVIDIA GPU, ``"rocm"`` on an AMD one, else ``jax.default_backend()``."""
  name = jax.default_backend()
  if name != "gpu":
    return name
  version = jax.extend.backend.get_backend().platform_version.lower()
  return "rocm" if "rocm" in version or "hip" in version else "cuda"


def resolve(backend: str | Backend, *, platform: str | None = None, dtype=None,
            compute_dtype=None, precision=None, regularized: bool = False) -> Backend:
  """Resolves a name (or `Backend`) to a concrete backend for one call.

  ``auto`` picks ``hidden_parallel`` under an ambient mesh (`jax.set_mesh`)
  whose ``model`` axis has more than one device (`lstmx.hidden_parallel`);
  otherwise ``cudnn`` when `platform` is ``"cuda"`` and the call is
  eligible (`lstmx.cudnn.unsupported` returns None: float32 `dtype`, no
  `compute_dtype`, precision None/HIGH/HIGHEST, not `regularized`), and
  ``scan`` otherwise. Facts left unknown (dtype None) never select cuDNN.
  An explicit ``cudnn`` on another platform or for an ineligible call raises
  a ValueError naming the argument. ``pallas`` is only chosen by name.

  Args:
    backend: one of `names()`.
    platform: ``"cpu"``, ``"cuda"``, ``"rocm"``, ``"tpu"``; None means
      `current_platform()`.
    dtype: the parameters' (and state's) dtype.
    compute_dtype: the matmul input dtype, None for `dtype`.
    precision: the matmul precision.
    regularized: whether a recurrent-dropout mask or zoneout weights reach the
      layer kernel (weight drop and the non-recurrent dropouts do not count:
      they act outside it).
  """
  try:
    b = Backend(backend)
  except ValueError:
    raise ValueError(f"backend must be one of {names()}; got backend={backend!r}") from None
  if b not in (Backend.AUTO, Backend.CUDNN):
    return b
  platform = current_platform() if platform is None else platform
  why = cudnn.unsupported(dtype=dtype, compute_dtype=compute_dtype, precision=precision,
                          regularized=regularized)
  if b is Backend.AUTO:
    if _model_parallel():
      return Backend.HIDDEN_PARALLEL
    return Backend.CUDNN if platform == "cuda" and why is None else Backend.SCAN
  if platform != "cuda":
    raise ValueError(f"backend='cudnn' needs an NVIDIA GPU, but jax runs on "
                     f"platform={platform!r}; use backend='auto' or 'scan'")
  if why is not None and dtype is not None:
    raise ValueError(f"backend='cudnn' cannot run this call: {why}")
  return b


def layer_fn(backend: str | Backend, **facts) -> Callable:
  """The layer function for `backend`; `facts` are `resolve`'s keyword arguments."""
  return _LAYERS[resolve(backend, **facts)]
