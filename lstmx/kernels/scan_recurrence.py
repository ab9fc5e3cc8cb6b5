"""The scan backend's two recurrences: the forward over T steps and the backward for dZ.

Shared by the full-memory custom VJP (`lstmx.kernels.scan`) and the segmented one
(`lstmx.kernels.remat`); the design (in-place buffers, one fused tanh, the bias
added in the step, c_{t-1} saved, backward not unrolled) is explained in
`lstmx.kernels.scan`'s docstring. The pointwise math is `lstmx.kernels.cell`'s.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstmx.kernels.cell import cell_backward, cell_forward
from lstmx.kernels.contract import KernelOptions, LayerMasks
from lstmx.kernels.gemm import grads_from_dz, hidden_grad, input_projection, recurrent_matmul
from lstmx.params import LSTMParams


def _valid(m_t: jax.Array | None) -> jax.Array | None:
  return None if m_t is None else m_t[:, None]


def scan_forward(params: LSTMParams, xs, mask, h0, c0, masks: LayerMasks,
                 options: KernelOptions, *, save_residuals: bool = True):
  """The forward recurrence over all T steps of `xs`.

  Args: as the layer contract (mask may be None; `masks` already `for_kernel`:
    recurrent [B, H] | None, zoneout [T, B, H] | None).

  Returns:
    ys [T, B, H], (h_n, c_n) and the residuals (gates [T, B, 4H] activated,
    hs [T, B, H] the h carried out of each step, c_prev [T, B, H] the c
    carried into each step); with ``save_residuals=False`` (a pass that is not
    differentiated) the scan writes only h per step and the residuals are None.
  """
  T = xs.shape[0]
  cd, prec = options.compute_dtype, options.precision
  rmask = masks.recurrent
  w_hh = params.w_hh if cd is None else params.w_hh.astype(cd)
  # The bias is added inside the step, where the gate fusion reads xp_t anyway:
  # adding it here would be one more pass over [T, B, 4H].
  b = params.b.astype(h0.dtype)[None, :]
  xp = input_projection(xs, params.w_ih, cd, prec).astype(h0.dtype)

  def cell(h, c, xp_t, m_t, zh_t, zc_t):
    z = xp_t + b + recurrent_matmul(h, w_hh, rmask, cd, prec)
    return cell_forward(z, h, c, zoneout_h=zh_t, zoneout_c=zc_t, valid=_valid(m_t))

  regs = (mask, masks.zoneout_h, masks.zoneout_c)
  if not save_residuals:
    def step(carry, inputs):
      _, h_new, c_new = cell(*carry, *inputs)
      return (h_new, c_new), h_new
    (h_n, c_n), hs = jax.lax.scan(step, (h0, c0), (xp,) + regs, reverse=options.reverse,
                                  unroll=options.unroll)
    residuals = None
  else:
    # The activated gates overwrite the projection in its own buffer (step t
    # reads xp[t] only to compute gates[t]), so XLA updates it in place: no
    # second [T, B, 4H] buffer, and none to zero-fill.
    def step(carry, inputs):
      h, c, buf = carry
      t, m_t, zh_t, zc_t = inputs
      xp_t = jax.lax.dynamic_index_in_dim(buf, t, 0, keepdims=False)
      gates, h_new, c_new = cell(h, c, xp_t, m_t, zh_t, zc_t)
      buf = jax.lax.dynamic_update_index_in_dim(buf, gates, t, 0)
      return (h_new, c_new, buf), (h_new, c)
    (h_n, c_n, gates), (hs, c_prevs) = jax.lax.scan(
        step, (h0, c0, xp), (jnp.arange(T),) + regs, reverse=options.reverse,
        unroll=options.unroll)
    residuals = (gates, hs, c_prevs)
  ys = hs if mask is None else jnp.where(mask[:, :, None], hs, jnp.zeros((), hs.dtype))
  return ys, (h_n, c_n), residuals


def scan_backward(params: LSTMParams, xs, mask, h0, c0, masks: LayerMasks, residuals, dys,
                  dh_n, dc_n, options: KernelOptions):
  """The reverse recurrence for dZ, then the parameter and input gradients as GEMMs.

  Args: the inputs of `scan_forward`, its residuals (gates, hs, c_prev), and
    the cotangents dys [T, B, H], dh_n, dc_n [B, H].

  The reverse scan overwrites the gates buffer with dZ step by step, so dZ
  needs no [T, B, 4H] buffer of its own.

  Returns:
    (dparams `LSTMParams`, dxs [T, B, D], dh0 [B, H], dc0 [B, H]).
  """
  gates, hs, c_prevs = residuals
  cd, prec, reverse = options.compute_dtype, options.precision, options.reverse
  rmask = masks.recurrent
  T = xs.shape[0]
  w_hh_t = params.w_hh.T
  if cd is not None:
    w_hh_t = w_hh_t.astype(cd)

  def step(carry, inputs):
    dh_next, dc_next, gt, buf = carry
    t, dy, c_p, m_t, zh_t, zc_t = inputs
    dz, dh_skip, dc_prev = cell_backward(dh_next, dc_next, dy, gt, c_p, zoneout_h=zh_t,
                                         zoneout_c=zc_t, valid=_valid(m_t))
    dh_prev = hidden_grad(dz, w_hh_t, rmask, dh_skip, cd, prec)
    # dz_t overwrites gates[t] in place. The next step's gates are read from the
    # updated buffer, i.e. after the write, so no read of buf can race with it
    # and XLA needs no copy (reading gates[t] in the step itself would need one).
    buf = jax.lax.dynamic_update_index_in_dim(buf, dz.astype(buf.dtype), t, 0)
    gt = jax.lax.dynamic_index_in_dim(buf, t + step_dir, 0, keepdims=False)
    return (dh_prev, dc_prev, gt, buf), None

  step_dir = 1 if reverse else -1  # the index the backward scan visits next
  first = gates[0 if reverse else T - 1]
  (dh0, dc0, _, dzs), _ = jax.lax.scan(
      step, (dh_n.astype(h0.dtype), dc_n.astype(c0.dtype), first, gates),
      (jnp.arange(T), dys.astype(h0.dtype), c_prevs, mask, masks.zoneout_h, masks.zoneout_c),
      reverse=not reverse)  # no unroll: it would cost a buffer copy per iteration

  dparams, dxs = grads_from_dz(params, xs, hs, h0, dzs, rmask, reverse, cd, prec)
  return dparams, dxs, dh0.astype(h0.dtype), dc0.astype(c0.dtype)
