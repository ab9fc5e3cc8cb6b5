"""The cuDNN LSTM layer (through `jax.experimental.rnn`) and its weight converter.

cuDNN runs the whole recurrence, forward and backward, in its own fused
kernels (the cell's math is cuDNN's, not `lstmx.kernels.cell`'s; this module is
only the glue); JAX exposes them as ``jax.experimental.rnn.lstm`` (batch-first,
lowered only on CUDA/ROCm). Its weights are one flat vector; per pseudo-layer
(layer l forward, then layer l reverse, ...) it holds

    W_ih^T [4H, D], W_hh^T [4H, H]          for every pseudo-layer, then
    b_ih [4H], b_hh [4H]                    for every pseudo-layer,

gate blocks in order i, f, g, o: lstmx's order, so the converter only
transposes. cuDNN has two biases where lstmx has one, b = b_ih + b_hh: the
converter writes b into b_ih and zeros into b_hh (their gradients are equal, so
the gradient reaching b is exact).

The layer meets the contract of `lstmx.kernels.contract` with limits (see
`CudnnBackend.unsupported`): an NVIDIA GPU, float32 without `compute_dtype`, no
recurrent dropout or zoneout (cuDNN has no per-step stochastic hook), precision
None/HIGH/HIGHEST, no memory modes, and a mask that is a prefix in time
(``mask[t, b] = t < len[b]``; `lstmx.lstm` only ever builds such masks).
``reverse=True`` runs cuDNN forward over each sequence's valid part flipped in
time (packed-sequence semantics).

The reference for this file's conversion is ``jax.experimental.rnn.lstm_ref``
(pure JAX, runs on CPU); ``tests/test_backends.py`` checks it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.experimental import rnn

from lstmx.kernels.contract import KernelOptions, LayerBackend, LayerMasks, layer_function
from lstmx.params import LSTMParams, StackedParams

# Indirection so tests on CPU can swap in ``jax.experimental.rnn.lstm_ref``.
_cudnn_lstm = rnn.lstm

_PRECISIONS = (None, jax.lax.Precision.HIGH, jax.lax.Precision.HIGHEST)


def to_cudnn_weights(params: StackedParams) -> jax.Array:
  """Packs ``params[layer][direction]`` into cuDNN's flat weight vector.

  Returns:
    [P] with P = ``jax.experimental.rnn.get_num_params_in_lstm(D, H, L, bidirectional)``.
  """
  pseudo = [p for layer in params for p in layer]
  linear = [w for p in pseudo for w in (p.w_ih.T.reshape(-1), p.w_hh.T.reshape(-1))]
  biases = [v for p in pseudo for v in (p.b, jnp.zeros_like(p.b))]
  return jnp.concatenate(linear + biases)


def from_cudnn_weights(weights: jax.Array, input_size: int, hidden_size: int,
                       num_layers: int, bidirectional: bool) -> StackedParams:
  """The inverse of `to_cudnn_weights`; b = b_ih + b_hh."""
  w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(weights, input_size, hidden_size,
                                                   num_layers, bidirectional)
  dirs = 2 if bidirectional else 1
  return tuple(
      tuple(LSTMParams(w_ih=w_ih[k].T, w_hh=w_hh[k].T, b=b_ih[k] + b_hh[k])
            for k in range(l * dirs, (l + 1) * dirs))
      for l in range(num_layers))


def _effective_precision(precision):
  if precision is None:
    precision = jax.config.jax_default_matmul_precision
  if precision is None:
    return None
  if isinstance(precision, (tuple, list)):
    precision = precision[0]
  try:
    return jax.lax.Precision(precision)
  except ValueError:
    return precision  # e.g. "tensorfloat32": not one cuDNN's wrapper accepts


def _flip_valid(x: jax.Array, lengths: jax.Array) -> jax.Array:
  """x [B, T, F] with each row's first lengths[b] steps reversed, padding left in place."""
  lengths = lengths.astype(jnp.int32)  # an 8-bit index would wrap for T > 255
  t = jnp.arange(x.shape[1], dtype=jnp.int32)[None, :]
  idx = jnp.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
  return jnp.take_along_axis(x, idx[:, :, None], axis=1)


def cudnn_layer(params: LSTMParams, xs, mask, h0, c0, masks: LayerMasks,
                options: KernelOptions):
  """The layer contract (`lstmx.kernels.contract`) on cuDNN; ``unroll`` is ignored
  (cuDNN schedules its own loop). A call `unsupported` rejects raises
  NotImplementedError (the platform is the dispatcher's to check)."""
  BACKEND.require(options, masks, dtype=params.w_hh.dtype)
  T, B, D = xs.shape
  H = h0.shape[-1]
  if mask is None:
    lengths = jnp.full((B,), T, jnp.int32)
  else:
    lengths = mask.sum(axis=0, dtype=jnp.int32)
  x = jnp.swapaxes(xs, 0, 1)
  if options.reverse:
    x = _flip_valid(x, lengths)
  # Positional: rnn.lstm is a custom_vjp whose trailing arguments are static.
  y, h_n, c_n = _cudnn_lstm(x, h0[None], c0[None], to_cudnn_weights(((params,),)), lengths,
                            D, H, 1, 0.0, False, options.precision)
  if options.reverse:
    y = _flip_valid(y, lengths)
  ys = jnp.swapaxes(y, 0, 1)
  if mask is not None:
    ys = jnp.where(mask[:, :, None], ys, jnp.zeros((), ys.dtype))
  return ys, (h_n[0], c_n[0])


class CudnnBackend(LayerBackend):
  """``backend="cudnn"``: NVIDIA GPUs; chosen by ``auto`` there when eligible."""

  def unsupported(self, options: KernelOptions, masks: LayerMasks, *, dtype=None,
                  platform: str | None = None) -> str | None:
    """Why a call cannot run on cuDNN (the end of "backend='cudnn' ..."), or None.

    Args:
      options: compute_dtype must be None (cuDNN through JAX runs float32 only),
        precision None, HIGH (TF32 allowed) or HIGHEST (no TF32), remat_every None.
      masks: no recurrent dropout or zoneout (cuDNN cannot apply them per step).
      dtype: the parameters' / state dtype; must be float32 (None: unknown).
      platform: must be ``"cuda"`` (None: unknown).
    """
    if platform is not None and platform != "cuda":
      return (f"needs an NVIDIA GPU, but jax runs on platform={platform!r}; use "
              f"backend='auto' or 'scan'")
    if dtype is not None and jnp.dtype(dtype) != jnp.float32:
      why = f"dtype: cuDNN runs float32 parameters only; got {dtype}"
    elif options.compute_dtype is not None:
      why = f"compute_dtype: cuDNN runs float32 only; got compute_dtype={options.compute_dtype}"
    elif _effective_precision(options.precision) not in _PRECISIONS:
      why = f"precision: cuDNN takes None, HIGH or HIGHEST; got precision={options.precision!r}"
    elif masks.reaches_kernel:
      why = ("regularization: recurrent dropout and zoneout act inside each step, which "
             "cuDNN cannot do; use backend='scan'")
    else:
      return super().unsupported(options, masks)
    return f"cannot run this call: {why}"


BACKEND = CudnnBackend("cudnn", cudnn_layer)  # registered lazily by `lstmx.kernels`


lstm_layer_cudnn = layer_function(
    cudnn_layer, "lstm_layer_cudnn", "One layer, one direction, time-major, on cuDNN.",
    {"params": "`LSTMParams` (float32) with w_ih [D, 4H], w_hh [H, 4H], b [4H].",
     "mask": "[T, B] bool prefix mask (True for t < len[b]), or None for all valid.",
     "reverse": "run each sequence from its last valid step down to 0.",
     "unroll": "ignored (cuDNN schedules its own loop).",
     "compute_dtype": "must be None; see `CudnnBackend.unsupported` for every limit:\n"
                      "    anything it rejects raises NotImplementedError."})
