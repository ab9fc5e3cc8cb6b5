"""The LSTM cell: one step, no notion of time.

With z = x_t @ w_ih + h_{t-1} @ w_hh + b split into gate blocks i, f, g, o:

    i_t = sigmoid(z_i)      f_t = sigmoid(z_f)
    g_t = tanh(z_g)         o_t = sigmoid(z_o)
    c_t = f_t * c_{t-1} + i_t * g_t
    h_t = o_t * tanh(c_t)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstmx.params import LSTMParams


def matmul(a: jax.Array, b: jax.Array, compute_dtype=None, precision=None) -> jax.Array:
  """a @ b with optional low-precision inputs and float32 (or wider) accumulation.

  With `compute_dtype` (e.g. bfloat16) both operands are cast to it and the
  product is accumulated and returned in the wider of their original dtypes.
  """
  # The wider of the two (both are floating); no implicit promotion needed.
  out_dtype = a.dtype if a.dtype.itemsize >= b.dtype.itemsize else b.dtype
  if compute_dtype is not None:
    a = a.astype(compute_dtype)
    b = b.astype(compute_dtype)
  return jnp.matmul(a, b, precision=precision, preferred_element_type=out_dtype)


def activate(z: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Splits fused pre-activations [..., 4H] into activated gates i, f, g, o."""
  zi, zf, zg, zo = jnp.split(z, 4, axis=-1)
  return jax.nn.sigmoid(zi), jax.nn.sigmoid(zf), jnp.tanh(zg), jax.nn.sigmoid(zo)


def _sigmoid_blocks(like: jax.Array) -> jax.Array:
  """[1, ..., 4H] for `like` [..., 4H]: 1 on the sigmoid gates (i, f, o), 0 on g."""
  k = jnp.repeat(jnp.asarray([1, 1, 0, 1], like.dtype), like.shape[-1] // 4)
  return k.reshape((1,) * (like.ndim - 1) + k.shape)


def activate_fused(z: jax.Array) -> jax.Array:
  """All four activated gates [..., 4H] from z [..., 4H] with a single tanh.

  With k = 1 on the sigmoid blocks (i, f, o) and 0 on g, s = 1 - k/2:

      gates = s * tanh(s * z) + k / 2

  since sigmoid(x) = (tanh(x / 2) + 1) / 2. One transcendental over [B, 4H]
  instead of three sigmoids and a tanh on split blocks, and no concatenate;
  equal to `activate` up to rounding.
  """
  k = _sigmoid_blocks(z)
  s = 1 - k / 2
  return s * jnp.tanh(s * z) + k / 2


def gate_derivative(gates: jax.Array) -> jax.Array:
  """d gates / d z [..., 4H] from the activated gates y = `activate_fused(z)`.

      y (1 - y) on i, f, o;    1 - y^2 on g;    i.e.  y (k - y) + (1 - k).
  """
  k = _sigmoid_blocks(gates)
  return gates * (k - gates) + (1 - k)


def cell_update(z: jax.Array, c: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(h_t, c_t) from fused pre-activations z [B, 4H] and c_{t-1} [B, H]."""
  i, f, g, o = activate(z)
  c_new = f * c + i * g
  return o * jnp.tanh(c_new), c_new


def zoneout_mix(z: jax.Array | None, previous: jax.Array, new: jax.Array) -> jax.Array:
  """Zoneout's state update z * previous + (1 - z) * new; `new` itself if z is None.

  z holds 0/1 in training (1 keeps the previous value) and the rate in evaluation.
  """
  if z is None:
    return new
  return z * previous + (1 - z) * new


def lstm_step(
    params: LSTMParams,
    carry: tuple[jax.Array, jax.Array],
    x_t: jax.Array,
    *,
    compute_dtype=None,
    precision=None,
) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
  """One LSTM step.

  Args:
    params: the layer's `LSTMParams` (w_ih [D, 4H], w_hh [H, 4H], b [4H]).
    carry: (h [B, H], c [B, H]) at t - 1.
    x_t: [B, D] input at t.

  Returns:
    ((h_t, c_t), h_t).
  """
  h, c = carry
  z = (matmul(x_t, params.w_ih, compute_dtype, precision)
       + matmul(h, params.w_hh, compute_dtype, precision) + params.b[None, :])
  h_new, c_new = cell_update(z, c)
  return (h_new, c_new), h_new
