"""The scan backend's memory mode for long sequences: ``remat_every=k``.

The T steps are cut into S = ceil(T / k) segments of k steps (the last one
padded with masked steps, which pass the carry through and output zero).

Forward: an outer scan over segments runs `scan_forward` on each segment
(input projection included, so no [T, B, 4H] array ever exists) and keeps only
the carry (h, c) entering every segment, [S, B, H] each, besides the outputs.

Backward: an outer scan over the segments in reverse scan order recomputes
each segment's forward from its saved carry, runs `scan_backward` on it with the
incoming (dh, dc), accumulates dW_ih, dW_hh, db and emits the segment's dX:

    residual memory  ~ S * 2BH  +  k * 7BH     instead of T * 7BH,

for one extra forward pass (its GEMMs included). k ~ sqrt(T) balances the two
terms. Values equal the default mode's up to the order of the gradient sums.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from lstmx.kernels.contract import KernelOptions, LayerMasks
from lstmx.kernels.scan_recurrence import scan_backward, scan_forward


def _segments(a: jax.Array | None, k: int, fill) -> jax.Array | None:
  """[T, ...] -> [S, k, ...], padding the end of time with `fill`."""
  if a is None:
    return None
  T = a.shape[0]
  S = -(-T // k)
  if S * k != T:
    pad = jnp.full((S * k - T,) + a.shape[1:], fill, a.dtype)
    a = jnp.concatenate([a, pad], axis=0)
  return a.reshape((S, k) + a.shape[1:])


def _unsegment(a: jax.Array, T: int) -> jax.Array:
  """[S, k, ...] -> [T, ...]."""
  return a.reshape((-1,) + a.shape[2:])[:T]


def _segment_inputs(k, xs, mask, masks: LayerMasks):
  """Segmented xs, mask (None only if T is a multiple of k and there was none), zh, zc."""
  T, B = xs.shape[:2]
  if mask is None and T % k:
    mask = jnp.ones((T, B), bool)
  return (_segments(xs, k, 0), _segments(mask, k, False), _segments(masks.zoneout_h, k, 0),
          _segments(masks.zoneout_c, k, 0))


def _segment_masks(masks: LayerMasks, zh_s, zc_s) -> LayerMasks:
  return dataclasses.replace(masks, zoneout_h=zh_s, zoneout_c=zc_s)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def remat_scan(options: KernelOptions, params, xs, mask, h0, c0, masks: LayerMasks):
  """The scan layer with residuals saved only every ``options.remat_every`` steps;
  `masks` already `for_kernel`. Returns ys [T, B, H], (h_n, c_n)."""
  # Not differentiated: the plain forward over all T steps, nothing saved.
  ys, carry, _ = scan_forward(params, xs, mask, h0, c0, masks, options, save_residuals=False)
  return ys, carry


def _remat_fwd(options, params, xs, mask, h0, c0, masks):
  T, k = xs.shape[0], options.remat_every

  def segment(carry, inputs):
    x_s, m_s, zh_s, zc_s = inputs
    ys, carry_out, _ = scan_forward(params, x_s, m_s, *carry, _segment_masks(masks, zh_s, zc_s),
                                    options, save_residuals=False)
    return carry_out, (ys, carry)

  (h_n, c_n), (ys, (h_starts, c_starts)) = jax.lax.scan(
      segment, (h0, c0), _segment_inputs(k, xs, mask, masks), reverse=options.reverse)
  saved = (params, xs, mask, h0, c0, masks, h_starts, c_starts)
  return (_unsegment(ys, T), (h_n, c_n)), saved


def _remat_bwd(options, saved, cotangents):
  params, xs, mask, h0, c0, masks, h_starts, c_starts = saved
  dys, (dh_n, dc_n) = cotangents
  T, k = xs.shape[0], options.remat_every

  def segment(carry, inputs):
    dh, dc, acc = carry
    x_s, m_s, zh_s, zc_s, dy_s, h_s, c_s = inputs
    masks_s = _segment_masks(masks, zh_s, zc_s)
    _, _, residuals = scan_forward(params, x_s, m_s, h_s, c_s, masks_s, options)
    dp, dx_s, dh, dc = scan_backward(params, x_s, m_s, h_s, c_s, masks_s, residuals, dy_s,
                                     dh, dc, options)
    acc = jax.tree.map(jnp.add, acc, dp)
    return (dh, dc, acc), dx_s

  zeros = jax.tree.map(jnp.zeros_like, params)
  inputs = _segment_inputs(k, xs, mask, masks) + (
      _segments(dys.astype(h0.dtype), k, 0), h_starts, c_starts)
  (dh0, dc0, dparams), dxs = jax.lax.scan(
      segment, (dh_n.astype(h0.dtype), dc_n.astype(c0.dtype), zeros), inputs,
      reverse=not options.reverse)
  return dparams, _unsegment(dxs, T), None, dh0, dc0, None


remat_scan.defvjp(_remat_fwd, _remat_bwd)
