"""The layer contract every backend meets: static options, kernel masks, the protocol.

A backend runs ONE layer in ONE direction, time-major:

    layer(params, xs [T,B,D], mask [T,B] | None, h0 [B,H], c0 [B,H],
          masks: LayerMasks, options: KernelOptions) -> (ys [T,B,H], (h_n [B,H], c_n [B,H]))

with ys zero where ``mask`` is False and the carry passed through there
(PyTorch's packed-sequence semantics; see `lstmx.kernels.reference`). The
masks' recurrent dropout and zoneout are applied inside the recurrence by the
backend itself (never by falling back to another one); a backend that cannot
says so in `unsupported`, which the dispatcher (`lstmx.kernels.dispatch`) asks
before choosing it. `LayerMasks.weight` acts on w_hh outside the kernel
(`lstmx.lstm`) and is ignored here.

Array annotations name their axes: T time, B batch, D input features, H hidden units.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Callable, Protocol, runtime_checkable

import jax
import jax.numpy as jnp

from lstmx.params import LSTMParams
from lstmx.registry import Registry

Inputs = Annotated[jax.Array, "T B D"]
Mask = Annotated[jax.Array, "T B"]
State = Annotated[jax.Array, "B H"]
Outputs = Annotated[jax.Array, "T B H"]


@dataclasses.dataclass(frozen=True)
class KernelOptions:
  """Static settings of one layer call (hashable: custom-VJP non-differentiable args).

  Attributes:
    reverse: run from t = T - 1 down to 0.
    unroll: steps unrolled per iteration of the forward loop.
    compute_dtype: e.g. ``jnp.bfloat16`` for low-precision matmul inputs; the
      cell state, gates and accumulation stay in the state dtype.
    precision: `jax.lax.Precision` for the matmuls.
    remat_every: None saves every step's residuals; k saves only the carries
      every k steps and recomputes each segment in the backward (scan only).
  """

  reverse: bool = False
  unroll: int = 1
  compute_dtype: object = None
  precision: object = None
  remat_every: int | None = None

  def __post_init__(self):
    k = self.remat_every
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
      raise ValueError(f"remat_every must be None or a positive int; got {k!r}")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LayerMasks:
  """One layer-direction's masks for the kernel; None means "not applied".

  Attributes:
    recurrent: [B, H], 0 or 1/keep, multiplies h_{t-1} in the recurrent matmul.
    zoneout_h, zoneout_c: [T, B, H] 0/1 in training (1 keeps the previous
      value); in evaluation a scalar, the rate.
    weight: [H, 4H], 0 or 1/keep, multiplies w_hh before the scan.
  """

  recurrent: jax.Array | None = None
  zoneout_h: jax.Array | None = None
  zoneout_c: jax.Array | None = None
  weight: jax.Array | None = None

  @property
  def reaches_kernel(self) -> bool:
    """True if the recurrence itself must apply a mask (`Regularization.reaches_kernel`)."""
    return not (self.recurrent is None and self.zoneout_h is None and self.zoneout_c is None)

  def for_kernel(self, T: int, B: int, H: int, dtype) -> LayerMasks:
    """The in-kernel masks cast to `dtype` and broadcast to full shape (recurrent
    [B, H], zoneout [T, B, H]); `weight` dropped (it acted outside the kernel)."""
    def full(a, shape):
      return None if a is None else jnp.broadcast_to(jnp.asarray(a, dtype), shape)
    return LayerMasks(recurrent=full(self.recurrent, (B, H)),
                      zoneout_h=full(self.zoneout_h, (T, B, H)),
                      zoneout_c=full(self.zoneout_c, (T, B, H)))


@runtime_checkable
class KernelBackend(Protocol):
  """A layer implementation; registered by name in `BACKENDS`.

  Attributes:
    name: its registry name (``backend=`` of `lstmx.lstm`).
  """

  name: str

  def layer(self, params: LSTMParams, xs: Inputs, mask: Mask | None, h0: State, c0: State,
            masks: LayerMasks, options: KernelOptions
            ) -> tuple[Outputs, tuple[State, State]]:
    """Runs the layer (see the module docstring)."""
    ...

  def unsupported(self, options: KernelOptions, masks: LayerMasks, *, dtype,
                  platform: str | None) -> str | None:
    """None if the call can run here, else why not, as the end of a sentence that
    starts ``backend='NAME' ...`` (e.g. ``"cannot run this call: dtype: ..."``).
    Facts left unknown (dtype or platform None) are never a reason."""
    ...


# Every backend, by name. Built-in ones register on import of `lstmx.kernels`;
# the optional ones (pallas, cudnn) lazily, so their jax.experimental modules load
# only when they are first asked for.
BACKENDS: Registry[KernelBackend] = Registry("backend")


@dataclasses.dataclass(frozen=True)
class LayerBackend:
  """A `KernelBackend` from a contract layer function: it runs every call except
  memory modes (``remat_every``) unless `memory_modes`. Subclasses narrow
  `unsupported` further (cuDNN).

  Attributes:
    name: the registry name.
    layer_fn: ``layer_fn(params, xs, mask, h0, c0, masks, options)``.
    memory_modes: whether ``options.remat_every`` is honoured (or harmlessly ignored).
  """

  name: str
  layer_fn: Callable
  memory_modes: bool = False

  def layer(self, params: LSTMParams, xs: Inputs, mask: Mask | None, h0: State, c0: State,
            masks: LayerMasks, options: KernelOptions
            ) -> tuple[Outputs, tuple[State, State]]:
    return self.layer_fn(params, xs, mask, h0, c0, masks, options)

  def unsupported(self, options: KernelOptions, masks: LayerMasks, *, dtype=None,
                  platform: str | None = None) -> str | None:
    del masks, dtype, platform
    if self.memory_modes or options.remat_every is None:
      return None
    return (f"cannot run this call: remat_every: {self.name} has no memory modes (scan "
            f"and reference take remat_every); got remat_every={options.remat_every!r}")

  def require(self, options: KernelOptions, masks: LayerMasks, *, dtype=None) -> None:
    """Raises NotImplementedError if `unsupported` (platform aside) rejects the call."""
    why = self.unsupported(options, masks, dtype=dtype)
    if why:
      raise NotImplementedError(f"backend={self.name!r} {why}")


_ARGS = {
    "params": "`LSTMParams` with w_ih [D, 4H], w_hh [H, 4H], b [4H].",
    "xs": "[T, B, D] inputs.",
    "mask": "[T, B] bool, True at valid steps; None means all valid.",
    "h0, c0": "[B, H] initial state.",
    "reverse": "run from t = T - 1 down to 0.",
    "unroll": "steps unrolled per iteration of the forward loop.",
    "compute_dtype": ("e.g. ``jnp.bfloat16`` for low-precision matmul inputs; the\n"
                      "    cell state, gates and accumulation stay in the state dtype."),
    "precision": "`jax.lax.Precision` for the matmuls.",
    "recurrent_mask": "optional [B, H] multiplying h_{t-1} in the recurrent matmul.",
    "zoneout_h, zoneout_c": ("optional zoneout weights broadcastable to [T, B, H]\n"
                             "    (0/1 in training, the rate in evaluation)."),
    "remat_every": ("must be None: this backend has no memory modes (NotImplementedError\n"
                    "    otherwise)."),
}
_RETURNS = "ys [T, B, H] (zero where masked) and the final (h_n, c_n), each [B, H]."


def layer_function(layer, name: str, summary: str, args: dict[str, str] | None = None):
  """The keyword form ``name(params, xs, mask, h0, c0, *, reverse, unroll, compute_dtype,
  precision, recurrent_mask, zoneout_h, zoneout_c, remat_every, **backend_options)`` of a
  contract `layer` (``lstmx.lstm_layer_scan`` etc.): it builds the `KernelOptions`
  and `LayerMasks` and passes `backend_options` (e.g. Pallas ``blocks``) on.

  Args:
    layer: ``layer(params, xs, mask, h0, c0, masks, options, **backend_options)``.
    name: the function's name.
    summary: the first paragraph of its docstring.
    args: argument descriptions replacing or adding to the contract's own.
  """

  def keyword_layer(params: LSTMParams, xs: Inputs, mask: Mask | None, h0: State, c0: State,
                    *, reverse: bool = False, unroll: int = 1, compute_dtype=None,
                    precision=None, recurrent_mask: jax.Array | None = None,
                    zoneout_h: jax.Array | None = None, zoneout_c: jax.Array | None = None,
                    remat_every: int | None = None, **backend_options
                    ) -> tuple[Outputs, tuple[State, State]]:
    options = KernelOptions(reverse=reverse, unroll=unroll, compute_dtype=compute_dtype,
                            precision=precision, remat_every=remat_every)
    masks = LayerMasks(recurrent=recurrent_mask, zoneout_h=zoneout_h, zoneout_c=zoneout_c)
    return layer(params, xs, mask, h0, c0, masks, options, **backend_options)

  described = dict(_ARGS, **(args or {}))
  keyword_layer.__name__ = keyword_layer.__qualname__ = name
  keyword_layer.__doc__ = (summary + "\n\nArgs:\n"
                           + "".join(f"  {k}: {v}\n" for k, v in described.items())
                           + "\nReturns:\n  " + _RETURNS + "\n")
  return keyword_layer
