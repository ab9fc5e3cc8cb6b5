"""A Pallas fused-recurrence LSTM layer: W_hh loaded once, the time loop inside the kernel.

Forward, for one layer and direction (time-major):

  1. one GEMM outside the kernel for every step's input projection,
     ``xp = xs.reshape(T*B, D) @ w_ih + b``  ->  [T, B, 4H];
  2. one Pallas kernel per batch tile (grid = B / block_b) that loads w_hh
     [H, 4H] once and runs all T steps in a `fori_loop`, each step one fused
     [block_b, H] x [H, 4H] GEMM plus the pointwise cell

         z = xp_t + (r * h_{t-1}) W_hh,   i, f, g, o = sigmoid/sigmoid/tanh/sigmoid(z)
         c_new = f c_{t-1} + i g,         h_new = o tanh(c_new)
         h_t = zh h_{t-1} + (1 - zh) h_new,  c_t = zc c_{t-1} + (1 - zc) c_new

     with the carry passed through where ``mask[t, b]`` is False.

Backward: a hand-written Pallas kernel (not autodiff, and not a call into
`lstmx.scan`), the same structure as the forward: W_hh^T [4H, H] loaded once,
one reverse-time loop producing the pre-activation gradients dz_t [T, B, 4H]
with the equations of `lstmx.scan`'s docstring; then dW_ih, dW_hh, db and dX
as single GEMMs over all T*B rows outside the kernel.

The whole layer contract is supported: masks, reverse, initial state,
compute_dtype, precision, recurrent dropout and zoneout. Residuals are those
of `lstmx.scan` (gates [T,B,4H], h_t and c_t [T,B,H]).

On CPU the kernels run with ``interpret=True`` (the default there), which
also supports float64. The reference is `lstmx.reference.lstm_layer_reference`.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from lstmx.cell import activate, matmul, zoneout_mix
from lstmx.params import LSTMParams
from lstmx.scan import grads_from_dz, previous


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
  reverse: bool
  unroll: int
  compute_dtype: object
  precision: object
  interpret: bool
  block_b: int


def lstm_layer_pallas(
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
    interpret: bool | None = None,
    blocks: PallasBlocks = PallasBlocks(),
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
  """One layer, one direction, time-major; same contract as `lstm_layer_reference`.

  Args:
    params: `LSTMParams` with w_ih [D, 4H], w_hh [H, 4H], b [4H].
    xs: [T, B, D] inputs.
    mask: [T, B] bool, True at valid steps; None means all valid.
    h0, c0: [B, H] initial state.
    reverse: run from t = T - 1 down to 0.
    unroll: steps unrolled per iteration of the in-kernel time loops.
    compute_dtype: e.g. ``jnp.bfloat16`` for low-precision matmul inputs.
    precision: `jax.lax.Precision` for the matmuls.
    recurrent_mask: optional [B, H] multiplying h_{t-1} in the recurrent matmul.
    zoneout_h, zoneout_c: optional zoneout weights broadcastable to [T, B, H].
    interpret: run the kernels in Pallas interpret mode; None means True
      exactly when ``jax.default_backend() == "cpu"``.
    blocks: `PallasBlocks` tiling.

  Returns:
    ys [T, B, H] (zero where masked) and the final (h_n, c_n), each [B, H].
  """
  if interpret is None:
    interpret = jax.default_backend() == "cpu"
  T, B, _ = xs.shape
  H = h0.shape[-1]
  bb = B if blocks.block_b is None else min(blocks.block_b, B)
  pad = -B % bb
  if mask is None:
    mask = jnp.ones((T, B), bool)
  regs = (
      None if recurrent_mask is None else jnp.broadcast_to(
          jnp.asarray(recurrent_mask, h0.dtype), (B, H)),
      *(None if z is None else jnp.broadcast_to(jnp.asarray(z, h0.dtype), (T, B, H))
        for z in (zoneout_h, zoneout_c)),
  )
  if pad:  # padded rows are masked out everywhere, then sliced off
    xs = jnp.pad(xs, ((0, 0), (0, pad), (0, 0)))
    mask = jnp.pad(mask, ((0, 0), (0, pad)))
    h0, c0 = (jnp.pad(a, ((0, pad), (0, 0))) for a in (h0, c0))
    regs = tuple(None if a is None else jnp.pad(a, [(0, 0)] * (a.ndim - 2) + [(0, pad), (0, 0)])
                 for a in regs)
  static = _Static(reverse, unroll, compute_dtype, precision, bool(interpret), bb)
  ys, (h_n, c_n) = _layer(static, params, xs, mask, h0, c0, regs)
  return ys[:, :B], (h_n[:B], c_n[:B])


# ---------------------------------------------------------------- kernels


def _forward_kernel(*refs, static: _Static, flags: tuple[bool, bool, bool]):
  """Refs: xp [T,b,4H], mask [T,b,1], w_hh [H,4H], h0, c0 [b,H], then the
  present ones of r [b,H], zh, zc [T,b,H]; outputs gates [T,b,4H], hs, cs
  [T,b,H], h_n, c_n [b,H]."""
  xp_ref, mask_ref, w_ref, h0_ref, c0_ref, *rest = refs
  r_ref, zh_ref, zc_ref = (rest.pop(0) if f else None for f in flags)
  gates_ref, hs_ref, cs_ref, hn_ref, cn_ref = rest
  T = xp_ref.shape[0]
  cd, prec = static.compute_dtype, static.precision
  w = w_ref[...] if cd is None else w_ref[...].astype(cd)  # loaded once for all T steps
  r = None if r_ref is None else r_ref[...]

  def step(s, carry):
    h, c = carry
    t = T - 1 - s if static.reverse else s
    z = xp_ref[t] + matmul(h if r is None else h * r, w, cd, prec)
    i, f, g, o = activate(z)
    c_new = f * c + i * g
    h_new = o * jnp.tanh(c_new)
    m = mask_ref[t] > 0
    h = jnp.where(m, zoneout_mix(None if zh_ref is None else zh_ref[t], h, h_new), h)
    c = jnp.where(m, zoneout_mix(None if zc_ref is None else zc_ref[t], c, c_new), c)
    gates_ref[t] = jnp.concatenate([i, f, g, o], axis=-1)
    hs_ref[t] = h
    cs_ref[t] = c
    return h, c

  h, c = jax.lax.fori_loop(0, T, step, (h0_ref[...], c0_ref[...]), unroll=static.unroll)
  hn_ref[...] = h
  cn_ref[...] = c


def _backward_kernel(*refs, static: _Static, flags: tuple[bool, bool, bool]):
  """Refs: dys [T,b,H], gates [T,b,4H], c_new, c_prev [T,b,H], mask [T,b,1],
  w_hh^T [4H,H], dh_n, dc_n [b,H], then the present ones of r, zh, zc;
  outputs dz [T,b,4H], dh0, dc0 [b,H]. Runs time opposite to the forward."""
  dy_ref, gates_ref, cnew_ref, cprev_ref, mask_ref, wt_ref, dhn_ref, dcn_ref, *rest = refs
  r_ref, zh_ref, zc_ref = (rest.pop(0) if f else None for f in flags)
  dz_ref, dh0_ref, dc0_ref = rest
  T = dy_ref.shape[0]
  cd, prec = static.compute_dtype, static.precision
  wt = wt_ref[...] if cd is None else wt_ref[...].astype(cd)
  r = None if r_ref is None else r_ref[...]

  def step(s, carry):
    dh_next, dc_next = carry
    t = s if static.reverse else T - 1 - s
    m = mask_ref[t] > 0
    i, f, g, o = jnp.split(gates_ref[t], 4, axis=-1)
    zero = jnp.zeros((), dh_next.dtype)
    dh = jnp.where(m, dh_next + dy_ref[t], zero)
    dc = jnp.where(m, dc_next, zero)
    zh = None if zh_ref is None else zh_ref[t]
    zc = None if zc_ref is None else zc_ref[t]
    dh_new = dh if zh is None else (1 - zh) * dh
    dc_new = dc if zc is None else (1 - zc) * dc
    tc = jnp.tanh(cnew_ref[t])
    dc_new = dc_new + dh_new * o * (1 - tc * tc)
    dz = jnp.concatenate([
        dc_new * g * i * (1 - i),
        dc_new * cprev_ref[t] * f * (1 - f),
        dc_new * i * (1 - g * g),
        dh_new * tc * o * (1 - o),
    ], axis=-1)
    dz_ref[t] = dz
    dh_prev = matmul(dz, wt, cd, prec)
    if r is not None:
      dh_prev = dh_prev * r
    if zh is not None:
      dh_prev = dh_prev + zh * dh
    dh_prev = dh_prev + jnp.where(m, zero, dh_next)
    dc_prev = dc_new * f
    if zc is not None:
      dc_prev = dc_prev + zc * dc
    dc_prev = dc_prev + jnp.where(m, zero, dc_next)
    return dh_prev, dc_prev

  dh0, dc0 = jax.lax.fori_loop(0, T, step, (dhn_ref[...], dcn_ref[...]),
                               unroll=static.unroll)
  dh0_ref[...] = dh0
  dc0_ref[...] = dc0


def _spec(shape: tuple[int, ...], bb: int) -> pl.BlockSpec:
  """Tiles the batch axis: axis 1 of [T, B, F], axis 0 of [B, F]."""
  if len(shape) == 3:
    return pl.BlockSpec((shape[0], bb, shape[2]), lambda i: (0, i, 0))
  return pl.BlockSpec((bb, shape[1]), lambda i: (i, 0))


def _call(kernel, static: _Static, ins, outs, weight_index: int, regs):
  """pallas_call over batch tiles; ins[weight_index] is a whole weight matrix."""
  flags = tuple(a is not None for a in regs)
  ins = list(ins) + [a for a in regs if a is not None]
  specs = [pl.BlockSpec(a.shape, lambda i: (0, 0)) if k == weight_index
           else _spec(a.shape, static.block_b) for k, a in enumerate(ins)]
  B = ins[0].shape[1]
  return pl.pallas_call(
      functools.partial(kernel, static=static, flags=flags),
      grid=(B // static.block_b,),
      in_specs=specs,
      out_specs=[_spec(o.shape, static.block_b) for o in outs],
      out_shape=outs,
      interpret=static.interpret,
  )(*ins)


# ---------------------------------------------------------------- VJP


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _layer(static, params, xs, mask, h0, c0, regs):
  out, _ = _layer_fwd(static, params, xs, mask, h0, c0, regs)
  return out


def _layer_fwd(static, params, xs, mask, h0, c0, regs):
  T, B, D = xs.shape
  H = h0.shape[-1]
  dt = h0.dtype
  xp = matmul(xs.reshape(T * B, D), params.w_ih, static.compute_dtype, static.precision)
  xp = (xp + params.b[None, :]).reshape(T, B, 4 * H).astype(dt)
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
  T, B, D = xs.shape
  H = h0.shape[-1]
  dt = h0.dtype
  rmask, _, zc = regs
  c_prev = previous(cs, c0, static.reverse)
  if zc is None:
    c_new = cs  # at valid steps the carried c_t is c_new; masked steps get dz = 0
  else:
    i, f, g, _ = jnp.split(gates, 4, axis=-1)
    c_new = f * c_prev + i * g
  final = jax.ShapeDtypeStruct((B, H), dt)
  dzs, dh0, dc0 = _call(
      _backward_kernel, static,
      (dys.astype(dt), gates, c_new, c_prev, mask[:, :, None].astype(dt),
       params.w_hh.T.astype(dt), dh_n.astype(dt), dc_n.astype(dt)),
      [jax.ShapeDtypeStruct((T, B, 4 * H), dt), final, final], 5, regs)

  dparams, dxs = grads_from_dz(params, xs, hs, h0, dzs, rmask, static.reverse,
                               static.compute_dtype, static.precision)
  # The mask and the regularization weights are constants: zero cotangents.
  return dparams, dxs, None, dh0.astype(h0.dtype), dc0.astype(c0.dtype), None


_layer.defvjp(_layer_fwd, _layer_bwd)
