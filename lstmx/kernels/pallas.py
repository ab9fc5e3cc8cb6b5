"""A Pallas fused-recurrence LSTM layer: W_hh loaded once, the time loop inside the kernel.

Forward, for one layer and direction (time-major):

  1. one GEMM outside the kernel for every step's input projection,
     ``xp = xs.reshape(T*B, D) @ w_ih + b``  ->  [T, B, 4H];
  2. one Pallas kernel per batch tile (grid = B / block_b) that loads w_hh
     [H, 4H] once and runs all T steps in a `fori_loop`, each step one fused
     [block_b, H] x [H, 4H] GEMM plus the pointwise cell
     (`lstmx.kernels.cell.cell_forward`, called inside the kernel body):

         z = xp_t + (r * h_{t-1}) W_hh,   i, f, g, o = sigmoid/sigmoid/tanh/sigmoid(z)
         c_new = f c_{t-1} + i g,         h_new = o tanh(c_new)
         h_t = zh h_{t-1} + (1 - zh) h_new,  c_t = zc c_{t-1} + (1 - zc) c_new

     with the carry passed through where ``mask[t, b]`` is False.

Backward: a hand-written Pallas kernel (not autodiff, and not a call into the
scan backend), the same structure as the forward: W_hh^T [4H, H] loaded once,
one reverse-time loop producing the pre-activation gradients dz_t [T, B, 4H]
with `lstmx.kernels.cell.cell_backward`; then dW_ih, dW_hh, db and dX as single
GEMMs over all T*B rows outside the kernel (`lstmx.kernels.gemm.grads_from_dz`).

The whole layer contract is supported except memory modes (``remat_every``):
masks, reverse, initial state, compute_dtype, precision, recurrent dropout and
zoneout. Residuals: gates [T,B,4H], h_t and c_t [T,B,H] (the scan backend
saves c_{t-1} instead; here c_{t-1} is c_t shifted, outside the kernel).

Compiled or interpreted (``interpret``): None (the default) decides per
lowering platform with `jax.lax.platform_dependent`: Pallas interpret mode when
lowered for CPU (which also supports float64), the compiled kernel (Mosaic TPU,
Mosaic GPU) when lowered for a TPU or GPU -- so ``jax.export`` for ``"tpu"`` on
a CPU-only machine exports the compiled kernel. True or False forces one mode;
`backend(interpret=..., blocks=...)` makes a configured backend object that
``lstmx.lstm(..., backend=...)`` takes. This kernel keeps whole [T, b, 4H] blocks
on chip: it lowers for TPU but exceeds a GPU's shared memory at realistic sizes
(see `lstmx.kernels.pallas_gpu` and docs/pallas.md). The reference is
`lstmx.kernels.reference`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from lstmx.kernels.cell import c_update, cell_backward, cell_forward
from lstmx.kernels.contract import KernelOptions, LayerBackend, LayerMasks, layer_function
from lstmx.kernels.gemm import (grads_from_dz, hidden_grad, input_projection, previous,
                                recurrent_matmul)
from lstmx.kernels.pallas_common import (at, check_interpret, configured_backend,
                                         custom_vjp_layer, optional_inputs, per_platform,
                                         with_absent)


@dataclasses.dataclass(frozen=True)
class PallasBlocks:
  """Tiling of the Pallas kernels.

  Attributes:
    block_b: batch rows per program (the grid is ceil(B / block_b) programs,
      the batch padded with masked rows); None puts the whole batch in one.
  """

  block_b: int | None = None


@dataclasses.dataclass(frozen=True)
class _Static:
  options: KernelOptions
  interpret: bool | None  # None: per lowering platform (`per_platform`)
  block_b: int


def pallas_layer(params, xs, mask, h0, c0, masks: LayerMasks, options: KernelOptions, *,
                 interpret: bool | None = None, blocks: PallasBlocks = PallasBlocks()):
  """The layer contract (`lstmx.kernels.contract`) on the Pallas kernels.

  Args:
    interpret: run the kernels in Pallas interpret mode (True), compiled
      (False), or None: interpret mode exactly when lowered for CPU
      (`jax.lax.platform_dependent`).
    blocks: `PallasBlocks` tiling.
  """
  BACKEND.require(options, masks)
  check_interpret(interpret)
  T, B, _ = xs.shape
  bb = B if blocks.block_b is None else min(blocks.block_b, B)
  pad = -B % bb
  if mask is None:
    mask = jnp.ones((T, B), bool)
  regs = masks.for_kernel(T, B, h0.shape[-1], h0.dtype)
  if pad:  # padded rows are masked out everywhere, then sliced off
    xs = jnp.pad(xs, ((0, 0), (0, pad), (0, 0)))
    mask = jnp.pad(mask, ((0, 0), (0, pad)))
    h0, c0 = (jnp.pad(a, ((0, pad), (0, 0))) for a in (h0, c0))
    regs = jax.tree.map(lambda a: jnp.pad(a, [(0, 0)] * (a.ndim - 2) + [(0, pad), (0, 0)]),
                        regs)
  ys, (h_n, c_n) = _layer(_Static(options, interpret, bb), params, xs, mask, h0, c0, regs)
  return ys[:, :B], (h_n[:B], c_n[:B])


def backend(*, interpret: bool | None = None, blocks: PallasBlocks = PallasBlocks()
            ) -> LayerBackend:
  """A configured ``"pallas"`` backend for ``lstmx.lstm(..., backend=...)``.

  Example (force the compiled kernels, e.g. to export them from a CPU host):
    >>> be = lstmx.kernels.pallas.backend(interpret=False)
    >>> f = jax.jit(lambda p, x: lstmx.lstm(p, x, backend=be)[0])
    >>> jax.export.export(f, platforms=("tpu",))(params, x)   # doctest: +SKIP
  """
  return configured_backend("pallas", pallas_layer, PallasBlocks, interpret=interpret,
                            blocks=blocks)


# ---------------------------------------------------------------- kernels


def _forward_kernel(xp_ref, mask_ref, w_ref, h0_ref, c0_ref, r_ref, zh_ref, zc_ref,
                    gates_ref, hs_ref, cs_ref, hn_ref, cn_ref, *, static: _Static):
  """xp [T,b,4H], mask [T,b,1], w_hh [H,4H], h0, c0 [b,H], r [b,H] | None, zh, zc
  [T,b,H] | None -> gates [T,b,4H], hs, cs [T,b,H], h_n, c_n [b,H]."""
  T = xp_ref.shape[0]
  opt = static.options
  cd, prec = opt.compute_dtype, opt.precision
  w = w_ref[...] if cd is None else w_ref[...].astype(cd)  # loaded once for all T steps
  r = None if r_ref is None else r_ref[...]

  def step(s, carry):
    h, c = carry
    t = T - 1 - s if opt.reverse else s
    z = xp_ref[t] + recurrent_matmul(h, w, r, cd, prec)
    gates, h, c = cell_forward(z, h, c, zoneout_h=at(zh_ref, t), zoneout_c=at(zc_ref, t),
                               valid=mask_ref[t] > 0, fused=False)
    gates_ref[t] = gates
    hs_ref[t] = h
    cs_ref[t] = c
    return h, c

  h, c = jax.lax.fori_loop(0, T, step, (h0_ref[...], c0_ref[...]), unroll=opt.unroll)
  hn_ref[...] = h
  cn_ref[...] = c


def _backward_kernel(dy_ref, gates_ref, cnew_ref, cprev_ref, mask_ref, wt_ref, dhn_ref, dcn_ref,
                     r_ref, zh_ref, zc_ref, dz_ref, dh0_ref, dc0_ref, *, static: _Static):
  """dys [T,b,H], gates [T,b,4H], c_new, c_prev [T,b,H], mask [T,b,1], w_hh^T [4H,H],
  dh_n, dc_n [b,H], r, zh, zc | None -> dz [T,b,4H], dh0, dc0 [b,H]. Runs time opposite
  to the forward."""
  T = dy_ref.shape[0]
  opt = static.options
  cd, prec = opt.compute_dtype, opt.precision
  wt = wt_ref[...] if cd is None else wt_ref[...].astype(cd)
  r = None if r_ref is None else r_ref[...]

  def step(s, carry):
    dh_next, dc_next = carry
    t = s if opt.reverse else T - 1 - s
    dz, dh_skip, dc_prev = cell_backward(
        dh_next, dc_next, dy_ref[t], gates_ref[t], cprev_ref[t], c_new=cnew_ref[t],
        zoneout_h=at(zh_ref, t), zoneout_c=at(zc_ref, t), valid=mask_ref[t] > 0)
    dz_ref[t] = dz
    return hidden_grad(dz, wt, r, dh_skip, cd, prec), dc_prev

  dh0, dc0 = jax.lax.fori_loop(0, T, step, (dhn_ref[...], dcn_ref[...]), unroll=opt.unroll)
  dh0_ref[...] = dh0
  dc0_ref[...] = dc0


def _spec(shape: tuple[int, ...], bb: int) -> pl.BlockSpec:
  """Tiles the batch axis: axis 1 of [T, B, F], axis 0 of [B, F]."""
  if len(shape) == 3:
    return pl.BlockSpec((shape[0], bb, shape[2]), lambda i: (0, i, 0))
  return pl.BlockSpec((bb, shape[1]), lambda i: (i, 0))


def _call(kernel, static: _Static, ins, outs, weight_index: int, regs: LayerMasks):
  """pallas_call over batch tiles; ins[weight_index] is a whole weight matrix."""
  present, extra = optional_inputs(regs)
  n_ins = len(ins)
  ins = list(ins) + extra
  specs = [pl.BlockSpec(a.shape, lambda i: (0, 0)) if k == weight_index
           else _spec(a.shape, static.block_b) for k, a in enumerate(ins)]
  B = ins[0].shape[1]

  def run(target, *arrays):
    return pl.pallas_call(
        with_absent(kernel, n_ins, present, static),
        grid=(B // static.block_b,),
        in_specs=specs,
        out_specs=[_spec(o.shape, static.block_b) for o in outs],
        out_shape=outs,
        interpret=target == "interpret",
    )(*arrays)
  return per_platform(run, static.interpret, *ins)


# ---------------------------------------------------------------- VJP


def _layer_fwd(static, params, xs, mask, h0, c0, regs):
  T, B, _ = xs.shape
  H = h0.shape[-1]
  dt = h0.dtype
  opt = static.options
  xp = input_projection(xs, params.w_ih, opt.compute_dtype, opt.precision)
  xp = (xp + params.b[None, None, :]).astype(dt)
  m3 = mask[:, :, None].astype(dt)
  state = jax.ShapeDtypeStruct((T, B, H), dt)
  final = jax.ShapeDtypeStruct((B, H), dt)
  gates, hs, cs, h_n, c_n = _call(
      _forward_kernel, static, (xp, m3, params.w_hh.astype(dt), h0, c0),
      [jax.ShapeDtypeStruct((T, B, 4 * H), dt), state, state, final, final], 2, regs)
  ys = jnp.where(mask[:, :, None], hs, jnp.zeros((), dt))
  return (ys, (h_n, c_n)), (params, xs, mask, h0, c0, regs, gates, hs, cs)


def _layer_bwd(static, residuals, cotangents):
  params, xs, mask, h0, c0, regs, gates, hs, cs = residuals
  dys, (dh_n, dc_n) = cotangents
  T, B, _ = xs.shape
  H = h0.shape[-1]
  dt = h0.dtype
  opt = static.options
  c_prev = previous(cs, c0, opt.reverse)
  if regs.zoneout_c is None:
    c_new = cs  # at valid steps the carried c_t is c_new; masked steps get dz = 0
  else:
    c_new = c_update(gates, c_prev)
  final = jax.ShapeDtypeStruct((B, H), dt)
  dzs, dh0, dc0 = _call(
      _backward_kernel, static,
      (dys.astype(dt), gates, c_new, c_prev, mask[:, :, None].astype(dt),
       params.w_hh.T.astype(dt), dh_n.astype(dt), dc_n.astype(dt)),
      [jax.ShapeDtypeStruct((T, B, 4 * H), dt), final, final], 5, regs)

  dparams, dxs = grads_from_dz(params, xs, hs, h0, dzs, regs.recurrent, opt.reverse,
                               opt.compute_dtype, opt.precision)
  # The mask and the regularization weights are constants: zero cotangents.
  return dparams, dxs, None, dh0.astype(h0.dtype), dc0.astype(c0.dtype), None


_layer = custom_vjp_layer(_layer_fwd, _layer_bwd)


# The whole contract but memory modes; only by name. Registered lazily by `lstmx.kernels`.
BACKEND = LayerBackend("pallas", pallas_layer)


lstm_layer_pallas = layer_function(
    pallas_layer, "lstm_layer_pallas",
    "One layer, one direction, time-major, on the Pallas kernels.",
    {"unroll": "steps unrolled per iteration of the in-kernel time loops.",
     "interpret": "True: Pallas interpret mode; False: compiled; None: interpret\n"
                  "    mode exactly when lowered for CPU (`per_platform`).",
     "blocks": "`PallasBlocks` tiling."})
