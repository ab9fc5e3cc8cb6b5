"""The one dispatcher: a backend name (or ``auto``) and a call's facts -> a backend.

``auto`` picks ``hidden_parallel`` under an ambient mesh (`jax.set_mesh`) whose
``model`` axis has more than one device; otherwise ``cudnn`` on an NVIDIA GPU
(`current_platform` is ``"cuda"``) when the call is eligible (its `unsupported`
returns None and the dtype is known); otherwise ``scan``. ``pallas`` and the
Newton backends (``deer``, ``block_deer``, ``quasi_deer``) are chosen only by name. A backend named explicitly must accept the call: if its
`unsupported` gives a reason, a ValueError says ``backend='NAME' <reason>``
(e.g. explicit ``cudnn`` on a CPU). Performance models: ``docs/backends.md``.
"""

from __future__ import annotations

import enum

import jax
import jax.extend
import numpy as np

from lstmx.kernels.contract import BACKENDS, KernelBackend, KernelOptions, LayerMasks
from lstmx.kernels.hidden_parallel import model_parallel

AUTO = "auto"


class Backend(enum.Enum):
  """The built-in backend names (``lstmx.Backend``); `resolve` returns one of them."""

  AUTO = "auto"
  SCAN = "scan"
  REFERENCE = "reference"
  HIDDEN_PARALLEL = "hidden_parallel"
  PALLAS = "pallas"
  CUDNN = "cudnn"
  DEER = "deer"
  BLOCK_DEER = "block_deer"
  QUASI_DEER = "quasi_deer"


def names() -> tuple[str, ...]:
  """``"auto"`` and every registered backend."""
  return (AUTO,) + BACKENDS.names()


def current_platform() -> str:
  """``"cuda"`` on an NVIDIA GPU, ``"rocm"`` on an AMD one, else ``jax.default_backend()``."""
  name = jax.default_backend()
  if name != "gpu":
    return name
  version = jax.extend.backend.get_backend().platform_version.lower()
  return "rocm" if "rocm" in version or "hip" in version else "cuda"


def select(backend: str | Backend, options: KernelOptions = KernelOptions(),
           masks: LayerMasks = LayerMasks(), *, dtype=None,
           platform: str | None = None) -> KernelBackend:
  """The backend that runs a call (see the module docstring).

  Args:
    backend: one of `names()` (or a `Backend`), or a `KernelBackend` object,
      used as given (e.g. ``lstmx.kernels.pallas.backend(interpret=False)``).
    options: the call's static options.
    masks: the call's kernel masks (only whether each is None matters).
    dtype: the parameters' (and state's) dtype; None means unknown.
    platform: ``"cpu"``, ``"cuda"``, ``"rocm"``, ``"tpu"``; None means
      `current_platform()`.

  Raises:
    ValueError: an unknown name, or a named backend that cannot run the call.
  """
  if isinstance(backend, KernelBackend) and not isinstance(backend, (str, Backend)):
    chosen, name = backend, backend.name  # a configured backend object
  else:
    name = backend.value if isinstance(backend, Backend) else backend
    chosen = None
  if chosen is None and name != AUTO and name not in BACKENDS:
    raise ValueError(f"backend must be one of {names()}; got backend={backend!r}")
  if chosen is None and name == AUTO:
    if model_parallel():
      name = "hidden_parallel"
    else:
      platform = current_platform() if platform is None else platform
      name = "scan"
      if platform == "cuda" and dtype is not None and "cudnn" in BACKENDS:
        cudnn = BACKENDS.get("cudnn")
        if cudnn.unsupported(options, masks, dtype=dtype, platform=platform) is None:
          return cudnn
  chosen = BACKENDS.get(name) if chosen is None else chosen
  platform = current_platform() if platform is None else platform
  why = chosen.unsupported(options, masks, dtype=dtype, platform=platform)
  if why:
    raise ValueError(f"backend={name!r} {why}")
  return chosen


# Stands for "some mask reaches the kernel" where only that fact is known.
_SOME_MASK = LayerMasks(recurrent=np.ones((), np.float32))


def resolve(backend: str | Backend, *, platform: str | None = None, dtype=None,
            compute_dtype=None, precision=None, regularized: bool = False):
  """`select` from loose facts, returning the chosen name as a `Backend`.

  Args:
    backend: one of `names()`.
    platform: as in `select`.
    dtype: the parameters' (and state's) dtype.
    compute_dtype: the matmul input dtype, None for `dtype`.
    precision: the matmul precision.
    regularized: whether a recurrent-dropout mask or zoneout weights reach the
      layer kernel (weight drop and the non-recurrent dropouts do not count:
      they act outside it).

  Returns:
    The `Backend` member of the chosen name (its name string for a backend
    registered beyond the built-ins).
  """
  options = KernelOptions(compute_dtype=compute_dtype, precision=precision)
  chosen = select(backend, options, _SOME_MASK if regularized else LayerMasks(),
                  dtype=dtype, platform=platform)
  try:
    return Backend(chosen.name)
  except ValueError:
    return chosen.name


def layer_fn(backend: str | Backend, **facts):
  """The contract layer ``layer(params, xs, mask, h0, c0, masks, options)`` of
  `backend`; `facts` are `resolve`'s keyword arguments."""
  name = resolve(backend, **facts)
  return BACKENDS.get(getattr(name, "value", name)).layer
