"""Input checks for `lstmx.lstm`: clear errors, never a silent broadcast."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lstmx.params import LSTMParams, StackedParams


def check_params(params: StackedParams) -> tuple[int, int, int, int]:
  """Returns (input_size D, hidden_size H, num_layers L, num_directions)."""
  if not params or not all(layer for layer in params):
    raise ValueError("params must be a non-empty tuple of layers, each a tuple of "
                     "1 or 2 LSTMParams; got an empty one")
  num_dirs = len(params[0])
  if num_dirs not in (1, 2):
    raise ValueError(f"params: each layer must hold 1 or 2 directions; got {num_dirs}")
  H = params[0][0].w_hh.shape[0]
  d_in = params[0][0].w_ih.shape[0]
  for l, layer in enumerate(params):
    if len(layer) != num_dirs:
      raise ValueError(f"params[{l}]: expected {num_dirs} directions like layer 0; "
                       f"got {len(layer)}")
    expected_in = d_in if l == 0 else num_dirs * H
    for d, p in enumerate(layer):
      if not isinstance(p, LSTMParams):
        raise TypeError(f"params[{l}][{d}]: expected LSTMParams; got {type(p).__name__}")
      for name, want in (("w_ih", (expected_in, 4 * H)), ("w_hh", (H, 4 * H)),
                         ("b", (4 * H,))):
        got = tuple(getattr(p, name).shape)
        if got != want:
          raise ValueError(f"params[{l}][{d}].{name}: expected shape {want}; got {got}")
  return d_in, H, len(params), num_dirs


def check_input(x: jax.Array, input_size: int, time_major: bool) -> tuple[int, int]:
  """Returns (B, T)."""
  layout = "[T, B, D]" if time_major else "[B, T, D]"
  if x.ndim != 3:
    raise ValueError(f"x: expected rank 3 {layout}; got shape {tuple(x.shape)}")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(f"x: expected a floating dtype; got {x.dtype}")
  if x.shape[-1] != input_size:
    raise ValueError(f"x: expected {input_size} features (last axis of {layout}) to "
                     f"match params' input size; got shape {tuple(x.shape)}")
  T, B = (x.shape[0], x.shape[1]) if time_major else (x.shape[1], x.shape[0])
  if T < 1 or B < 1:
    raise ValueError(f"x: expected T >= 1 and B >= 1; got shape {tuple(x.shape)}")
  return B, T


def check_seq_lengths(seq_lengths, B: int, T: int) -> jax.Array:
  if not isinstance(seq_lengths, jax.core.Tracer):
    seq_lengths = np.asarray(seq_lengths)
  if seq_lengths.shape != (B,):
    raise ValueError(f"seq_lengths: expected shape ({B},) (one length per batch "
                     f"row); got {tuple(seq_lengths.shape)}")
  if not jnp.issubdtype(seq_lengths.dtype, jnp.integer):
    raise TypeError(f"seq_lengths: expected an integer dtype; got {seq_lengths.dtype}")
  if not isinstance(seq_lengths, jax.core.Tracer):
    lo, hi = int(np.min(seq_lengths)), int(np.max(seq_lengths))
    if lo < 1 or hi > T:
      raise ValueError(f"seq_lengths: expected values in [1, {T}] (T={T}); got "
                       f"min {lo}, max {hi}")
  return jnp.asarray(seq_lengths)


def check_state(initial_state, shape: tuple[int, int, int]):
  if not isinstance(initial_state, (tuple, list)) or len(initial_state) != 2:
    raise ValueError("initial_state: expected a pair (h_0, c_0); got "
                     f"{type(initial_state).__name__}")
  out = []
  for name, s in zip(("h_0", "c_0"), initial_state):
    s = jnp.asarray(s)
    if tuple(s.shape) != shape:
      raise ValueError(f"initial_state {name}: expected shape {shape} "
                       f"[num_layers*num_directions, B, H]; got {tuple(s.shape)}")
    if not jnp.issubdtype(s.dtype, jnp.floating):
      raise TypeError(f"initial_state {name}: expected a floating dtype; got {s.dtype}")
    out.append(s)
  return tuple(out)
