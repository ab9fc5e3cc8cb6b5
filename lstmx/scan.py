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

Regularization (optional, see `lstmx.regularization`): a recurrent-dropout
mask r [B, H] multiplies h_{t-1} in the recurrent matmul, and zoneout weights
zh, zc [T, B, H] mix the new state with the old one,
``h_t = zh h_{t-1} + (1 - zh) h_new``, ``c_t = zc c_{t-1} + (1 - zc) c_new``.
The residuals stay the same; the backward recomputes c_new = f c_{t-1} + i g
when zc is given, and at a valid step becomes

    dh_new = (1 - zh) dh,      dc_new = (1 - zc) dc + dh_new * o * (1 - tanh(c_new)^2)
    dz as above with (dh_new, dc_new, tanh(c_new)) in place of (dh, dc, tanh(c_t))
    dh_{t-1} = r * (dz_t @ w_hh^T) + zh * dh,      dc_{t-1} = dc_new * f + zc * dc
    dW_hh = (r * H_prev)^T dZ

With all of them None the computation is exactly the unregularized one.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from lstmx.cell import activate, matmul, zoneout_mix
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
    recurrent_mask: jax.Array | None = None,
    zoneout_h: jax.Array | None = None,
    zoneout_c: jax.Array | None = None,
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
    recurrent_mask: optional [B, H] multiplying h_{t-1} in the recurrent matmul.
    zoneout_h, zoneout_c: optional zoneout weights broadcastable to [T, B, H]
      (0/1 in training, the rate in evaluation).

  Returns:
    ys [T, B, H] (zero where masked) and the final (h_n, c_n), each [B, H].
  """
  if mask is None:
    mask = jnp.ones(xs.shape[:2], bool)
  if recurrent_mask is not None:
    recurrent_mask = jnp.asarray(recurrent_mask, h0.dtype)
  zh, zc = (None if z is None
            else jnp.broadcast_to(jnp.asarray(z, h0.dtype), xs.shape[:2] + h0.shape[-1:])
            for z in (zoneout_h, zoneout_c))
  regs = (recurrent_mask, zh, zc)
  return _scan(reverse, unroll, compute_dtype, precision, params, xs, mask, h0, c0, regs)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def _scan(reverse, unroll, compute_dtype, precision, params, xs, mask, h0, c0, regs):
  out, _ = _scan_fwd(reverse, unroll, compute_dtype, precision, params, xs, mask, h0, c0,
                     regs)
  return out


def _scan_fwd(reverse, unroll, compute_dtype, precision, params, xs, mask, h0, c0, regs):
  T, B, D = xs.shape
  rmask, zh, zc = regs
  w_hh = params.w_hh if compute_dtype is None else params.w_hh.astype(compute_dtype)
  xp = matmul(xs.reshape(T * B, D), params.w_ih, compute_dtype, precision)
  xp = (xp + params.b[None, :]).reshape(T, B, -1).astype(h0.dtype)

  def step(carry, inputs):
    h, c = carry
    xp_t, m_t, zh_t, zc_t = inputs
    h_in = h if rmask is None else h * rmask
    z = xp_t + matmul(h_in, w_hh, compute_dtype, precision)
    i, f, g, o = activate(z)
    c_new = f * c + i * g
    h_new = o * jnp.tanh(c_new)
    m = m_t[:, None]
    h = jnp.where(m, zoneout_mix(zh_t, h, h_new), h)
    c = jnp.where(m, zoneout_mix(zc_t, c, c_new), c)
    return (h, c), (jnp.concatenate([i, f, g, o], axis=-1), h, c)

  (h_n, c_n), (gates, hs, cs) = jax.lax.scan(
      step, (h0, c0), (xp, mask, zh, zc), reverse=reverse, unroll=unroll)
  ys = jnp.where(mask[:, :, None], hs, jnp.zeros((), hs.dtype))
  return (ys, (h_n, c_n)), (params, xs, mask, h0, c0, regs, gates, hs, cs)


def _previous(seq: jax.Array, first: jax.Array, reverse: bool) -> jax.Array:
  """The carry entering each step: seq shifted by one in scan order."""
  if reverse:
    return jnp.concatenate([seq[1:], first[None]], axis=0)
  return jnp.concatenate([first[None], seq[:-1]], axis=0)


def _scan_bwd(reverse, unroll, compute_dtype, precision, residuals, cotangents):
  params, xs, mask, h0, c0, regs, gates, hs, cs = residuals
  rmask, zh, zc = regs
  dys, (dh_n, dc_n) = cotangents
  T, B, D = xs.shape
  H = h0.shape[-1]
  w_hh_t = params.w_hh.T
  if compute_dtype is not None:
    w_hh_t = w_hh_t.astype(compute_dtype)
  c_prev = _previous(cs, c0, reverse)
  if zc is None:
    c_new = cs  # at valid steps the carried c_t is c_new; masked steps get dz = 0
  else:
    i, f, g, _ = jnp.split(gates, 4, axis=-1)
    c_new = f * c_prev + i * g

  def step(carry, inputs):
    dh_next, dc_next = carry
    dy, gt, c_new_t, c_p, m_t, zh_t, zc_t = inputs
    m = m_t[:, None]
    i, f, g, o = jnp.split(gt, 4, axis=-1)
    zero = jnp.zeros((), dh_next.dtype)
    dh = jnp.where(m, dh_next + dy, zero)
    dc = jnp.where(m, dc_next, zero)
    dh_new = dh if zh_t is None else (1 - zh_t) * dh
    dc_new = dc if zc_t is None else (1 - zc_t) * dc
    tc = jnp.tanh(c_new_t)
    dc_new = dc_new + dh_new * o * (1 - tc * tc)
    dz = jnp.concatenate([
        dc_new * g * i * (1 - i),
        dc_new * c_p * f * (1 - f),
        dc_new * i * (1 - g * g),
        dh_new * tc * o * (1 - o),
    ], axis=-1)
    dh_prev = matmul(dz, w_hh_t, compute_dtype, precision)
    if rmask is not None:
      dh_prev = dh_prev * rmask
    if zh_t is not None:
      dh_prev = dh_prev + zh_t * dh
    dh_prev = dh_prev + jnp.where(m, zero, dh_next)
    dc_prev = dc_new * f
    if zc_t is not None:
      dc_prev = dc_prev + zc_t * dc
    dc_prev = dc_prev + jnp.where(m, zero, dc_next)
    return (dh_prev, dc_prev), dz

  (dh0, dc0), dzs = jax.lax.scan(
      step, (dh_n.astype(h0.dtype), dc_n.astype(c0.dtype)),
      (dys.astype(h0.dtype), gates, c_new, c_prev, mask, zh, zc),
      reverse=not reverse, unroll=unroll)

  dz2 = dzs.reshape(T * B, 4 * H)
  h_prev = _previous(hs, h0, reverse)
  if rmask is not None:
    h_prev = h_prev * rmask[None]
  h_prev = h_prev.reshape(T * B, H)
  dw_ih = matmul(xs.reshape(T * B, D).T, dz2, compute_dtype, precision)
  dw_hh = matmul(h_prev.T, dz2, compute_dtype, precision)
  db = dzs.sum(axis=(0, 1))
  dxs = matmul(dz2, params.w_ih.T, compute_dtype, precision).reshape(T, B, D)
  dparams = LSTMParams(
      w_ih=dw_ih.astype(params.w_ih.dtype),
      w_hh=dw_hh.astype(params.w_hh.dtype),
      b=db.astype(params.b.dtype),
  )
  # The masks and regularization weights are constants: zero cotangents.
  return dparams, dxs.astype(xs.dtype), None, dh0.astype(h0.dtype), dc0.astype(c0.dtype), None


_scan.defvjp(_scan_fwd, _scan_bwd)
