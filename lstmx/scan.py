"""The fused scan LSTM layer with a hand-written backward pass.

Forward, for one layer and direction (time-major):

  1. one GEMM for the input projection of every step:
     ``xp = xs.reshape(T*B, D) @ w_ih + b``  ->  [T, B, 4H];
  2. a `lax.scan` whose step is one fused [B, H] x [H, 4H] GEMM plus the cell's
     pointwise math (see `lstmx.cell`).

Residuals kept for the backward: the activated gates [T, B, 4H], the carried
cell state c_t [T, B, H] and the carried hidden state h_t [T, B, H], i.e.
6*T*B*H values (plus the inputs, which the caller holds anyway).

Backward: one reverse scan over the recurrence computes the pre-activation
gradients dz_t [T, B, 4H] (one [B, 4H] x [4H, H] GEMM per step):

    dh   = dy_t + dh_{t+1}                     (only where the step is valid)
    dc   = dc_{t+1} + dh * o * (1 - tanh(c_t)^2)
    dz_i = dc * g * i (1 - i)        dz_f = dc * c_{t-1} * f (1 - f)
    dz_g = dc * i * (1 - g^2)        dz_o = dh * tanh(c_t) * o (1 - o)
    dh_{t-1} = dz_t @ w_hh^T,        dc_{t-1} = dc * f

and then the parameter and input gradients as single GEMMs over all T*B rows:
``dW_ih = X^T dZ``, ``dW_hh = H_prev^T dZ``, ``db = sum dZ``, ``dX = dZ w_ih^T``.

Masked steps (``mask[t, b]`` False) pass the carry through unchanged and
output zero, in both directions; see `lstmx.reference` for why that gives
PyTorch's packed-sequence semantics when ``reverse=True``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from lstmx.cell import activate, matmul
from lstmx.params import LSTMParams


def lstm_layer_scan(
    params: LSTMParams,
    xs: jax.Array,
    mask: jax.Array | None,
    h0: jax.Array,
    c0: jax.Array,
    *,
    reverse: bool = False,
    unroll: int = 1,
    compute_dtype=None,
    precision=None,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
  """One layer, one direction, time-major; same contract as `lstm_layer_reference`.

  Args:
    params: `LSTMParams` with w_ih [D, 4H], w_hh [H, 4H], b [4H].
    xs: [T, B, D] inputs.
    mask: [T, B] bool, True at valid steps; None means all valid.
    h0, c0: [B, H] initial state.
    reverse: run from t = T - 1 down to 0.
    unroll: steps unrolled per scan iteration (forward and backward scans).
    compute_dtype: e.g. ``jnp.bfloat16`` for low-precision matmul inputs; the
      cell state, gates and accumulation stay in the state dtype.
    precision: `jax.lax.Precision` for the matmuls.

  Returns:
    ys [T, B, H] (zero where masked) and the final (h_n, c_n), each [B, H].
  """
  if mask is None:
    mask = jnp.ones(xs.shape[:2], bool)
  return _scan(reverse, unroll, compute_dtype, precision, params, xs, mask, h0, c0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def _scan(reverse, unroll, compute_dtype, precision, params, xs, mask, h0, c0):
  out, _ = _scan_fwd(reverse, unroll, compute_dtype, precision, params, xs, mask, h0, c0)
  return out


def _scan_fwd(reverse, unroll, compute_dtype, precision, params, xs, mask, h0, c0):
  T, B, D = xs.shape
  w_hh = params.w_hh if compute_dtype is None else params.w_hh.astype(compute_dtype)
  xp = matmul(xs.reshape(T * B, D), params.w_ih, compute_dtype, precision)
  xp = (xp + params.b[None, :]).reshape(T, B, -1).astype(h0.dtype)

  def step(carry, inputs):
    h, c = carry
    xp_t, m_t = inputs
    z = xp_t + matmul(h, w_hh, compute_dtype, precision)
    i, f, g, o = activate(z)
    c_new = f * c + i * g
    h_new = o * jnp.tanh(c_new)
    m = m_t[:, None]
    h = jnp.where(m, h_new, h)
    c = jnp.where(m, c_new, c)
    return (h, c), (jnp.concatenate([i, f, g, o], axis=-1), h, c)

  (h_n, c_n), (gates, hs, cs) = jax.lax.scan(
      step, (h0, c0), (xp, mask), reverse=reverse, unroll=unroll)
  ys = jnp.where(mask[:, :, None], hs, jnp.zeros((), hs.dtype))
  return (ys, (h_n, c_n)), (params, xs, mask, h0, c0, gates, hs, cs)


def _previous(seq: jax.Array, first: jax.Array, reverse: bool) -> jax.Array:
  """The carry entering each step: seq shifted by one in scan order."""
  if reverse:
    return jnp.concatenate([seq[1:], first[None]], axis=0)
  return jnp.concatenate([first[None], seq[:-1]], axis=0)


def _scan_bwd(reverse, unroll, compute_dtype, precision, residuals, cotangents):
  params, xs, mask, h0, c0, gates, hs, cs = residuals
  dys, (dh_n, dc_n) = cotangents
  T, B, D = xs.shape
  H = h0.shape[-1]
  w_hh_t = params.w_hh.T
  if compute_dtype is not None:
    w_hh_t = w_hh_t.astype(compute_dtype)
  c_prev = _previous(cs, c0, reverse)

  def step(carry, inputs):
    dh_next, dc_next = carry
    dy, gt, c_t, c_p, m_t = inputs
    m = m_t[:, None]
    i, f, g, o = jnp.split(gt, 4, axis=-1)
    zero = jnp.zeros((), dh_next.dtype)
    dh = jnp.where(m, dh_next + dy, zero)
    tc = jnp.tanh(c_t)
    dc = jnp.where(m, dc_next, zero) + dh * o * (1 - tc * tc)
    dz = jnp.concatenate([
        dc * g * i * (1 - i),
        dc * c_p * f * (1 - f),
        dc * i * (1 - g * g),
        dh * tc * o * (1 - o),
    ], axis=-1)
    dh_prev = matmul(dz, w_hh_t, compute_dtype, precision) + jnp.where(m, zero, dh_next)
    dc_prev = dc * f + jnp.where(m, zero, dc_next)
    return (dh_prev, dc_prev), dz

  (dh0, dc0), dzs = jax.lax.scan(
      step, (dh_n.astype(h0.dtype), dc_n.astype(c0.dtype)),
      (dys.astype(h0.dtype), gates, cs, c_prev, mask),
      reverse=not reverse, unroll=unroll)

  dz2 = dzs.reshape(T * B, 4 * H)
  h_prev = _previous(hs, h0, reverse).reshape(T * B, H)
  dw_ih = matmul(xs.reshape(T * B, D).T, dz2, compute_dtype, precision)
  dw_hh = matmul(h_prev.T, dz2, compute_dtype, precision)
  db = dzs.sum(axis=(0, 1))
  dxs = matmul(dz2, params.w_ih.T, compute_dtype, precision).reshape(T, B, D)
  dparams = LSTMParams(
      w_ih=dw_ih.astype(params.w_ih.dtype),
      w_hh=dw_hh.astype(params.w_hh.dtype),
      b=db.astype(params.b.dtype),
  )
  return dparams, dxs.astype(xs.dtype), None, dh0.astype(h0.dtype), dc0.astype(c0.dtype)


_scan.defvjp(_scan_fwd, _scan_bwd)
