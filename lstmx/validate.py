"""Input checks for `lstmx.lstm`: clear errors, never a silent broadcast."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lstmx.params import LSTMParams, StackedParams


def check_params(params: StackedParams) -> tuple[int, int, int, int]:
  """Returns (input_size D, hidden_size H, num_layers L, num_directions)."""
  if not params or not all(layer for layer in params):
    got = "no layers" if not params else f"layer {[bool(x) for x in params].index(False)} empty"
    raise ValueError("params: expected a non-empty tuple of layers, each a tuple of "
                     f"1 or 2 LSTMParams; got {got}")
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
        leaf = getattr(p, name)
        if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
          raise TypeError(f"params[{l}][{d}].{name}: expected an array; got "
                          f"{type(leaf).__name__}")
        got = tuple(leaf.shape)
        if got != want:
          raise ValueError(f"params[{l}][{d}].{name}: expected shape {want}; got {got}")
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
          raise TypeError(f"params[{l}][{d}].{name}: expected a floating dtype; got "
                          f"{leaf.dtype}")
  return d_in, H, len(params), num_dirs


def as_array(x, name: str = "x"):
  """`x` itself if it is an array (jax, numpy or traced), else ``np.asarray(x)``.

  Nested lists of numbers are accepted; anything numpy cannot make a numeric
  array of is a TypeError naming `name`.
  """
  if isinstance(x, (jax.Array, np.ndarray, jax.core.Tracer)):
    return x
  try:
    out = np.asarray(x)
  except (TypeError, ValueError) as e:
    raise TypeError(f"{name}: expected an array; got {type(x).__name__} that numpy cannot "
                    f"convert ({e})") from None
  if out.dtype.kind in "OUSV":
    raise TypeError(f"{name}: expected an array of numbers; got {type(x).__name__} of "
                    f"dtype {out.dtype}")
  return out


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
  """`seq_lengths` as an int32 array of shape [B].

  Any integer dtype is accepted (and gives the same result: the mask is computed
  in int32); floats and bools are a TypeError. Concrete values are checked to lie
  in [1, T]; traced values (under `jax.jit`) cannot be, so check them where they
  are known.
  """
  if not isinstance(seq_lengths, jax.core.Tracer):
    # On the host: a concrete jax array's min would be staged under an outer jit.
    seq_lengths = np.asarray(as_array(seq_lengths, "seq_lengths"))
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
  # Concrete values are <= T, so int32 holds them (and an 8-bit dtype no longer
  # overflows in the [T] time index the mask compares them with).
  return jnp.asarray(seq_lengths).astype(jnp.int32)


def check_state(initial_state, shape: tuple[int, int, int]):
  if not isinstance(initial_state, (tuple, list)) or len(initial_state) != 2:
    raise ValueError("initial_state: expected a pair (h_0, c_0); got "
                     f"{type(initial_state).__name__}")
  out = []
  for name, s in zip(("h_0", "c_0"), initial_state):
    s = jnp.asarray(as_array(s, f"initial_state {name}"))
    if tuple(s.shape) != shape:
      raise ValueError(f"initial_state {name}: expected shape {shape} "
                       f"[num_layers*num_directions, B, H]; got {tuple(s.shape)}")
    if not jnp.issubdtype(s.dtype, jnp.floating):
      raise TypeError(f"initial_state {name}: expected a floating dtype; got {s.dtype}")
    out.append(s)
  return tuple(out)
