"""`lstmx.lstm`: stacked, bidirectional, masked LSTMs with PyTorch's conventions."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from lstmx import backends, validate
from lstmx.params import LSTMParams, as_stacked


def lengths_to_mask(seq_lengths: jax.Array, T: int) -> jax.Array:
  """[T, B] bool mask, True where t < seq_lengths[b]."""
  return jnp.arange(T, dtype=seq_lengths.dtype)[:, None] < seq_lengths[None, :]


def lstm(
    params: LSTMParams | Sequence[Sequence[LSTMParams]],
    x: jax.Array,
    *,
    seq_lengths: jax.Array | None = None,
    initial_state: tuple[jax.Array, jax.Array] | None = None,
    backend: str = "auto",
    unroll: int = 1,
    compute_dtype=None,
    precision=None,
    time_major: bool = False,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
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

  Args:
    params: ``params[layer][direction]`` of `LSTMParams` (see `init_lstm`), or
      a single `LSTMParams` for a one-layer, one-direction LSTM.
    x: [B, T, D] floating inputs ([T, B, D] if `time_major`).
    seq_lengths: optional [B] ints in [1, T].
    initial_state: optional (h_0, c_0), each [L * num_directions, B, H]
      (index ``layer * num_directions + direction``); zeros by default.
    backend: ``"auto"``, ``"scan"`` or ``"reference"`` (see `lstmx.backends`).
    unroll: scan steps unrolled per iteration.
    compute_dtype: e.g. ``jnp.bfloat16`` for bf16 matmul inputs with float32
      cell state and accumulation; None computes in the parameters' dtype.
    precision: `jax.lax.Precision` for the matmuls.
    time_major: x and y are [T, B, ...] instead of [B, T, ...].

  Returns:
    y: [B, T, num_directions * H] outputs of the last layer.
    (h_n, c_n): each [L * num_directions, B, H].

  Example:
    >>> params = lstmx.init_lstm(jax.random.key(0), 3, 16, num_layers=2)
    >>> y, (h, c) = lstmx.lstm(params, jnp.ones((4, 10, 3)))
    >>> y.shape, h.shape
    ((4, 10, 16), (2, 4, 16))
  """
  params = as_stacked(params)
  D, H, L, num_dirs = validate.check_params(params)
  B, T = validate.check_input(x, D, time_major)
  dtype = params[0][0].w_hh.dtype
  if not isinstance(unroll, int) or unroll < 1:
    raise ValueError(f"unroll must be a positive int; got unroll={unroll!r}")
  layer = backends.layer_fn(backend)

  mask = None
  if seq_lengths is not None:
    mask = lengths_to_mask(validate.check_seq_lengths(seq_lengths, B, T), T)
  if initial_state is None:
    h0 = c0 = jnp.zeros((L * num_dirs, B, H), dtype)
  else:
    h0, c0 = validate.check_state(initial_state, (L * num_dirs, B, H))
    h0, c0 = h0.astype(dtype), c0.astype(dtype)

  inputs = (x if time_major else jnp.swapaxes(x, 0, 1)).astype(dtype)
  h_n, c_n = [], []
  for l in range(L):
    outs = []
    for d in range(num_dirs):
      k = l * num_dirs + d
      ys, (h, c) = layer(params[l][d], inputs, mask, h0[k], c0[k], reverse=d == 1,
                         unroll=unroll, compute_dtype=compute_dtype,
                         precision=precision)
      outs.append(ys)
      h_n.append(h)
      c_n.append(c)
    inputs = outs[0] if num_dirs == 1 else jnp.concatenate(outs, axis=-1)
  y = inputs if time_major else jnp.swapaxes(inputs, 0, 1)
  return y, (jnp.stack(h_n), jnp.stack(c_n))
