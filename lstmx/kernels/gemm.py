"""The GEMMs every backend shares: mixed-precision matmul, the recurrent matmul and its
transpose, and the parameter / input gradients from dZ as single GEMMs over all T*B rows."""

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


def recurrent_matmul(h: jax.Array, w_hh: jax.Array, rmask: jax.Array | None,
                     compute_dtype=None, precision=None) -> jax.Array:
  """(r * h_{t-1}) @ w_hh: [B, H] x [H, 4H] -> [B, 4H]; r (recurrent dropout) may be None."""
  return matmul(h if rmask is None else h * rmask, w_hh, compute_dtype, precision)


def hidden_grad(dz: jax.Array, w_hh_t: jax.Array, rmask: jax.Array | None,
                dh_skip: jax.Array | None, compute_dtype=None, precision=None) -> jax.Array:
  """dh_{t-1} = r * (dz @ w_hh^T) + dh_skip: [B, 4H] x [4H, H] -> [B, H]."""
  dh = matmul(dz, w_hh_t, compute_dtype, precision)
  if rmask is not None:
    dh = dh * rmask
  return dh if dh_skip is None else dh + dh_skip


def input_projection(xs: jax.Array, w_ih: jax.Array, compute_dtype=None,
                     precision=None) -> jax.Array:
  """xs [T, B, D] @ w_ih [D, 4H] -> [T, B, 4H] as one [T*B, D] GEMM."""
  T, B, D = xs.shape
  return matmul(xs.reshape(T * B, D), w_ih, compute_dtype, precision).reshape(T, B, -1)


def previous(seq: jax.Array, first: jax.Array, reverse: bool) -> jax.Array:
  """The carry entering each step: seq [T, ...] shifted by one in scan order."""
  if reverse:
    return jnp.concatenate([seq[1:], first[None]], axis=0)
  return jnp.concatenate([first[None], seq[:-1]], axis=0)


def grads_from_dz(params: LSTMParams, xs, hs, h0, dzs, rmask, reverse, compute_dtype,
                  precision) -> tuple[LSTMParams, jax.Array]:
  """The parameter and input gradients from dZ [T, B, 4H], as GEMMs over all T*B rows.

  ``dW_ih = X^T dZ``, ``dW_hh = (r * H_prev)^T dZ``, ``db = sum dZ``,
  ``dX = dZ w_ih^T``, with H_prev the h entering each step (hs [T, B, H] shifted
  by one in scan order, h0 first). Returns (dparams `LSTMParams`, dxs [T, B, D]).
  """
  T, B, D = xs.shape
  H = h0.shape[-1]
  dz2 = dzs.reshape(T * B, 4 * H)
  # Shifting h (a [T, B, H] copy) is cheaper than slicing dZ ([T, B, 4H]).
  h_prev = previous(hs, h0, reverse)
  if rmask is not None:
    h_prev = h_prev * rmask[None]
  dw_hh = matmul(h_prev.reshape(T * B, H).T, dz2, compute_dtype, precision)
  dw_ih = matmul(xs.reshape(T * B, D).T, dz2, compute_dtype, precision)
  db = dzs.sum(axis=(0, 1))
  dxs = matmul(dz2, params.w_ih.T, compute_dtype, precision).reshape(T, B, D)
  dparams = LSTMParams(
      w_ih=dw_ih.astype(params.w_ih.dtype),
      w_hh=dw_hh.astype(params.w_hh.dtype),
      b=db.astype(params.b.dtype),
  )
  return dparams, dxs.astype(xs.dtype)
