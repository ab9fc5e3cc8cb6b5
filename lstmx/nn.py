"""Flax NNX modules: thin wrappers whose ``__call__`` calls the functional core.

Parameters are stored as one ``nnx.Param`` per array, named like PyTorch's
(``w_ih_l0``, ``w_hh_l1_reverse``, ``b_l0``), and reassembled into the
``params[layer][direction]`` pytree of `lstmx.LSTMParams` on each call.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lstmx.cell import lstm_step
from lstmx.lstm import lstm
from lstmx.params import LSTMParams, StackedParams, init_layer, init_lstm


def _suffix(layer: int, direction: int) -> str:
  return f"_l{layer}" + ("_reverse" if direction == 1 else "")


class LSTM(nnx.Module):
  """A stacked, optionally bidirectional LSTM layer (batch-major, like PyTorch).

  Example:
    >>> layer = lstmx.nn.LSTM(3, 16, num_layers=2, rngs=nnx.Rngs(0))
    >>> y, (h_n, c_n) = layer(jnp.ones((4, 10, 3)))   # y: [4, 10, 16]
  """

  def __init__(self, in_features: int, hidden_size: int, *, num_layers: int = 1,
               bidirectional: bool = False, init: str = "forget_bias",
               chrono_max_length: int | None = None, backend: str = "auto",
               unroll: int = 1, compute_dtype=None, param_dtype=jnp.float32,
               rngs: nnx.Rngs):
    self.in_features = in_features
    self.hidden_size = hidden_size
    self.num_layers = num_layers
    self.num_directions = 2 if bidirectional else 1
    self.backend = backend
    self.unroll = unroll
    self.compute_dtype = compute_dtype
    params = init_lstm(rngs.params(), in_features, hidden_size, num_layers=num_layers,
                       bidirectional=bidirectional, init=init,
                       chrono_max_length=chrono_max_length, dtype=param_dtype)
    self.load_params(params, create=True)

  def load_params(self, params: StackedParams, *, create: bool = False) -> None:
    """Sets the module's parameters from a ``params[layer][direction]`` pytree."""
    for l, layer in enumerate(params):
      for d, p in enumerate(layer):
        sfx = _suffix(l, d)
        for name in ("w_ih", "w_hh", "b"):
          if create:
            setattr(self, name + sfx, nnx.Param(getattr(p, name)))
          else:
            getattr(self, name + sfx)[...] = getattr(p, name)

  @property
  def params(self) -> StackedParams:
    """The parameters as the functional core's ``params[layer][direction]``."""
    return tuple(
        tuple(LSTMParams(*(getattr(self, n + _suffix(l, d))[...] for n in ("w_ih", "w_hh", "b")))
              for d in range(self.num_directions))
        for l in range(self.num_layers))

  def __call__(self, x: jax.Array, *, seq_lengths: jax.Array | None = None,
               initial_state: tuple[jax.Array, jax.Array] | None = None):
    """x [B, T, D] -> (y [B, T, num_dirs*H], (h_n, c_n) [L*num_dirs, B, H])."""
    return lstm(self.params, x, seq_lengths=seq_lengths, initial_state=initial_state,
                backend=self.backend, unroll=self.unroll, compute_dtype=self.compute_dtype)


class LSTMCell(nnx.Module):
  """One LSTM step at a time, for decoding and streaming.

  ``cell((h, c), x_t) -> ((h', c'), h')`` with x_t [B, D] and h, c [B, H].
  Its parameters use the same layout as `LSTM` (``w_ih``, ``w_hh``, ``b``).
  """

  def __init__(self, in_features: int, hidden_size: int, *, init: str = "forget_bias",
               chrono_max_length: int | None = None, compute_dtype=None,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    self.in_features = in_features
    self.hidden_size = hidden_size
    self.compute_dtype = compute_dtype
    p = init_layer(rngs.params(), in_features, hidden_size, init=init,
                   chrono_max_length=chrono_max_length, dtype=param_dtype)
    self.w_ih, self.w_hh, self.b = nnx.Param(p.w_ih), nnx.Param(p.w_hh), nnx.Param(p.b)

  @property
  def params(self) -> LSTMParams:
    return LSTMParams(self.w_ih[...], self.w_hh[...], self.b[...])

  def initialize_carry(self, batch_size: int, dtype=None) -> tuple[jax.Array, jax.Array]:
    dtype = dtype or self.w_hh[...].dtype
    zeros = jnp.zeros((batch_size, self.hidden_size), dtype)
    return zeros, zeros

  def __call__(self, carry: tuple[jax.Array, jax.Array], x_t: jax.Array):
    return lstm_step(self.params, carry, x_t, compute_dtype=self.compute_dtype)
