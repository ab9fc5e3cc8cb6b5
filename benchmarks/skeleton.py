"""lstmx's GEMMs without its cell math: the floor XLA's GEMMs set (``--gemm-only``).

`gemm_skeleton` is no peer and not an LSTM: it runs the matmuls of lstmx's
scan kernel with the same shapes, data flow and buffers, so its time is what
those GEMMs alone cost on this machine. `tests/test_bench.py` checks it, in
float64, against a loop of its equations.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

import lstmx
from benchmarks.case import Case, compile_case, random_input
from lstmx.lstm import DEFAULT_UNROLL  # the skeleton's forward unroll follows lstmx's
from lstmx.kernels.gemm import previous


def gemm_skeleton(w_ih, w_hh, x, mode="train", unroll=DEFAULT_UNROLL):
  """lstmx's kernel with its cell math cut down to one tanh: the GEMMs alone.

  Not an LSTM. It runs the matmuls of `lstmx.kernels.scan` with the same shapes, data
  flow and buffers (batch-first x [B, T, D] transposed to time-major, the
  projection ``xp = X w_ih`` updated in place, forward unrolled `unroll`, the
  backward's dZ written over the same buffer), with

      z_t = tanh(xp_t + h_{t-1} w_hh),   h_t = z_i * z_f + z_g * z_o   (the four H-blocks)

  and, for ``mode="train"``, a backward-shaped pass (g starts at ones [B, H])

      dz_t = z_t * [g, g, g, g],   g <- dz_t w_hh^T,   (t = T-1 .. 0)
      dW_ih = X^T dZ,   dW_hh = H_prev^T dZ,   dX = dZ w_ih^T.

  Every output depends on every GEMM, so XLA can drop none of them. Its time is
  what XLA's GEMMs cost on this machine for one LSTM training step (``fwd``:
  forward): a floor for a `lax.scan` kernel with this data flow
  (benchmarks/LOG.md measures the other arrangements).

  Returns: ``fwd``: hs [B, T, H]; ``train``: (dW_ih [D, 4H], dW_hh [H, 4H], dX [B, T, D]).
  """
  B, T, D = x.shape
  H = w_hh.shape[0]
  xs = jnp.swapaxes(x, 0, 1)
  xp = (xs.reshape(T * B, D) @ w_ih).reshape(T, B, 4 * H)

  def fstep(carry, t):
    h, buf = carry
    z = jnp.tanh(jax.lax.dynamic_index_in_dim(buf, t, 0, False) + h @ w_hh)
    buf = jax.lax.dynamic_update_index_in_dim(buf, z, t, 0)
    h = z[:, :H] * z[:, H:2 * H] + z[:, 2 * H:3 * H] * z[:, 3 * H:]
    return (h, buf), h
  (_, zs), hs = jax.lax.scan(fstep, (jnp.zeros((B, H), x.dtype), xp), jnp.arange(T),
                             unroll=unroll)
  if mode == "fwd":
    return jnp.swapaxes(hs, 0, 1)
  w_hh_t = w_hh.T

  def bstep(carry, t):
    g, z, buf = carry
    dz = z * jnp.tile(g, (1, 4))
    buf = jax.lax.dynamic_update_index_in_dim(buf, dz, t, 0)
    z = jax.lax.dynamic_index_in_dim(buf, t - 1, 0, False)  # t - 1 < 0 clamps; unused
    return (dz @ w_hh_t, z, buf), None
  (_, _, dzs), _ = jax.lax.scan(bstep, (jnp.ones((B, H), x.dtype), zs[T - 1], zs),
                                jnp.arange(T), reverse=True)
  dz2 = dzs.reshape(T * B, 4 * H)
  h_prev = previous(hs, jnp.zeros((B, H), x.dtype), reverse=False).reshape(T * B, H)
  dx = (dz2 @ w_ih.T).reshape(T, B, D)
  return xs.reshape(T * B, D).T @ dz2, h_prev.T @ dz2, jnp.swapaxes(dx, 0, 1)


def gemm_skeleton_case(B, T, H, mode) -> Case:
  params = lstmx.init_lstm(jax.random.key(0), H, H)[0][0]
  f = functools.partial(gemm_skeleton, mode=mode)
  return compile_case(f, params.w_ih, params.w_hh, random_input(B, T, H), mode="fwd")  # no autodiff
