"""`lstmx.lstm`: stacked, bidirectional, masked LSTMs with PyTorch's conventions."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp

from lstmx import validate
from lstmx.checks import check_bool, check_float_dtype, is_int
from lstmx.kernels import KernelOptions, select
from lstmx.params import LSTMParams, as_stacked
from lstmx.penalties import ar_penalty, tar_penalty
from lstmx.regularization import Masks, Regularization, apply_mask, draw_masks


# Steps unrolled per iteration of the forward scan (docs/performance.md): the
# default of `lstm`, `lstmx.nn.LSTM` and the model config.
DEFAULT_UNROLL = 2


def lengths_to_mask(seq_lengths: jax.Array, T: int) -> jax.Array:
  """[T, B] bool mask, True where t < seq_lengths[b].

  Compared in int32 whatever the integer dtype of `seq_lengths`: a [T] time
  index in uint8 would wrap for T > 255.
  """
  return jnp.arange(T, dtype=jnp.int32)[:, None] < seq_lengths.astype(jnp.int32)[None, :]


def lstm(
    params: LSTMParams | Sequence[Sequence[LSTMParams]],
    x: jax.Array,
    *,
    seq_lengths: jax.Array | None = None,
    initial_state: tuple[jax.Array, jax.Array] | None = None,
    backend: str = "auto",
    unroll: int = DEFAULT_UNROLL,
    compute_dtype=None,
    precision=None,
    time_major: bool = False,
    regularization: Regularization | None = None,
    key: jax.Array | None = None,
    deterministic: bool | None = None,
    return_penalties: bool = False,
    remat_every: int | None = None,
):
  """Runs a stacked, optionally bidirectional LSTM over a batch of sequences.

  Per layer and direction, with gates in order i, f, g, o:

      z_t = x_t W_ih + h_{t-1} W_hh + b
      c_t = sigmoid(z_f) * c_{t-1} + sigmoid(z_i) * tanh(z_g)
      h_t = sigmoid(z_o) * tanh(c_t)

  The conventions are ``torch.nn.LSTM(batch_first=True)``'s. Layer l > 0 reads
  layer l - 1's output (both directions concatenated). With `seq_lengths`,
  outputs at padded positions are exactly zero, ``h_n, c_n`` are each
  sequence's state at its last valid step, and the reverse direction runs over
  each sequence's valid part only (packed-sequence semantics). The padded
  content of `x` never affects the result.

  With `regularization` (see `lstmx.Regularization`), every mask is drawn once
  from `key` before any scan (`lstmx.draw_masks`): input / between-layer /
  output dropout multiply the activations here, weight drop multiplies each
  w_hh before its scan, and recurrent dropout and zoneout go into the layer
  kernel, whose custom backward handles them. Padded steps still pass the carry
  through and output zero.

  Args:
    params: ``params[layer][direction]`` of `LSTMParams` (see `init_lstm`), or
      a single `LSTMParams` for a one-layer, one-direction LSTM.
    x: [B, T, D] floating inputs ([T, B, D] if `time_major`).
    seq_lengths: optional [B] ints in [1, T], of any integer dtype (the mask is
      computed in int32); floats and bools are refused. Concrete values are
      checked; under `jax.jit` the values are traced and cannot be, so a length
      of 0, negative or > T passes unnoticed there: check them on the host where
      they are known, before the jitted call.
    initial_state: optional (h_0, c_0), each [L * num_directions, B, H]
      (index ``layer * num_directions + direction``); zeros by default.
    backend: ``"auto"``, ``"scan"``, ``"reference"``, ``"hidden_parallel"``,
      ``"pallas"`` or ``"cudnn"`` (see `lstmx.backends`).
    unroll: steps unrolled per iteration of the forward scan (default 2: up to
      1.3x faster forwards at small H on CPU, neutral at large H; see
      docs/performance.md). Results equal unroll=1's up to float rounding.
    compute_dtype: e.g. ``jnp.bfloat16`` for bf16 matmul inputs with float32
      cell state and accumulation; None computes in the parameters' dtype. Only
      floating dtypes are accepted.
    precision: `jax.lax.Precision` for the matmuls.
    time_major: x and y are [T, B, ...] instead of [B, T, ...].
    regularization: optional `Regularization`; None (or all rates 0) computes
      exactly the unregularized LSTM.
    key: PRNG key for the masks; required in training mode.
    deterministic: True for evaluation (no dropout, zoneout by its expectation),
      False for training, or None. Required when `regularization` has a non-zero
      rate. Only bools (or None) are accepted: ``"False"`` is a TypeError.
    return_penalties: also return ``{"ar", "tar", "loss"}``: the unweighted
      `ar_penalty` of y (after output dropout) and `tar_penalty` of the last
      layer's raw output (before output dropout), over valid steps, and
      ``loss = reg.ar * ar + reg.tar * tar`` to add to the training loss.
    remat_every: memory mode of the layer kernel for long sequences: None saves
      every step's residuals; k saves only the carries every k steps and
      recomputes each segment in the backward (see `lstmx.kernels.remat`;
      k ~ sqrt(T)); the scan and reference backends take it.

  Returns:
    y: [B, T, num_directions * H] outputs of the last layer.
    (h_n, c_n): each [L * num_directions, B, H].
    penalties: only with `return_penalties` (see above).

  Example:
    >>> params = lstmx.init_lstm(jax.random.key(0), 3, 16, num_layers=2)
    >>> y, (h, c) = lstmx.lstm(params, jnp.ones((4, 10, 3)))
    >>> y.shape, h.shape
    ((4, 10, 16), (2, 4, 16))
    >>> reg = lstmx.Regularization(layer_dropout=0.3, recurrent_dropout=0.2, tar=1.0)
    >>> y, (h, c), pen = lstmx.lstm(params, jnp.ones((4, 10, 3)), regularization=reg,
    ...                             key=jax.random.key(1), deterministic=False,
    ...                             return_penalties=True)   # loss += pen["loss"]
  """
  params = as_stacked(params)
  D, H, L, num_dirs = validate.check_params(params)
  time_major = check_bool("time_major", time_major)
  x = validate.as_array(x)
  B, T = validate.check_input(x, D, time_major)
  dtype = params[0][0].w_hh.dtype
  if not is_int(unroll) or unroll < 1:
    raise ValueError(f"unroll must be a positive int; got unroll={unroll!r}")
  unroll = int(unroll)
  if remat_every is not None and is_int(remat_every):
    remat_every = int(remat_every)  # KernelOptions checks the rest
  compute_dtype = check_float_dtype("compute_dtype", compute_dtype)
  deterministic = check_bool("deterministic", deterministic, allow_none=True)
  return_penalties = check_bool("return_penalties", return_penalties)
  mask = None
  if seq_lengths is not None:
    mask = lengths_to_mask(validate.check_seq_lengths(seq_lengths, B, T), T)
  if initial_state is None:
    h0 = c0 = jnp.zeros((L * num_dirs, B, H), dtype)
  else:
    h0, c0 = validate.check_state(initial_state, (L * num_dirs, B, H))
    h0, c0 = h0.astype(dtype), c0.astype(dtype)
  masks = _masks(regularization, key, deterministic, params, T, B)
  options = KernelOptions(unroll=unroll, compute_dtype=compute_dtype, precision=precision,
                          remat_every=remat_every)
  # Every layer-direction has the same masks present (one Regularization).
  kernel = select(backend, options, masks.layers[0][0], dtype=dtype)

  inputs = (x if time_major else jnp.swapaxes(x, 0, 1)).astype(dtype)
  if mask is not None:
    # Padding never matters, values or gradients: zero it before any arithmetic.
    # (Masking after the input projection is too late: dW_ih = X^T dZ multiplies
    # a NaN or inf in X by its zero cotangent, which is NaN.)
    inputs = jnp.where(mask[:, :, None], inputs, jnp.zeros((), dtype))
  inputs = apply_mask(inputs, masks.input)
  h_n, c_n = [], []
  for l in range(L):
    if l > 0:
      inputs = apply_mask(inputs, masks.between[l - 1])
    outs = []
    for d in range(num_dirs):
      k = l * num_dirs + d
      p, m = params[l][d], masks.layers[l][d]
      if m.weight is not None:
        p = dataclasses.replace(p, w_hh=p.w_hh * m.weight)
      ys, (h, c) = kernel.layer(p, inputs, mask, h0[k], c0[k], m,
                                dataclasses.replace(options, reverse=d == 1))
      outs.append(ys)
      h_n.append(h)
      c_n.append(c)
    inputs = outs[0] if num_dirs == 1 else jnp.concatenate(outs, axis=-1)
  raw, inputs = inputs, apply_mask(inputs, masks.output)
  y = inputs if time_major else jnp.swapaxes(inputs, 0, 1)
  if not return_penalties:
    return y, (jnp.stack(h_n), jnp.stack(c_n))
  reg = regularization or Regularization()
  ar = ar_penalty(inputs, mask, time_major=True)
  tar = tar_penalty(raw, mask, time_major=True)
  penalties = {"ar": ar, "tar": tar, "loss": reg.ar * ar + reg.tar * tar}
  return y, (jnp.stack(h_n), jnp.stack(c_n)), penalties


def _masks(reg: Regularization | None, key, deterministic: bool | None, params, T: int,
           B: int) -> Masks:
  """The forward pass's masks; all None without an active regularization."""
  if reg is not None and not isinstance(reg, Regularization):
    raise TypeError(f"regularization: expected lstmx.Regularization or None; got "
                    f"{type(reg).__name__}")
  if reg is None or not reg.needs_mode:
    return draw_masks(Regularization(), None, params, T, B, deterministic=True)
  if deterministic is None:
    raise ValueError("deterministic: regularization is active, so pass deterministic=True "
                     "(evaluation) or deterministic=False (training, with key=...); got None")
  if not deterministic and key is None:
    raise ValueError("key: training mode (deterministic=False) with regularization needs a "
                     "PRNG key, e.g. key=jax.random.key(0); got None")
  return draw_masks(reg, key, params, T, B, deterministic=bool(deterministic))
