"""The streaming Pallas kernels of `lstmx.kernels.pallas_gpu`, and their pallas_call.

`forward_kernel` and `backward_kernel` run one (batch tile, head) program's whole
time loop with its four [hp, hp] gate blocks of W_hh (W^T in the backward) on
chip and each step's [b, hp] tiles streamed; the equations and the layout are in
`lstmx.kernels.pallas_gpu`, which lays the arrays out per head and owns the VJP.
`call` runs a kernel over the grid (batch tiles, heads) per lowering platform:
Pallas interpret mode on CPU (``interpret=None``), Triton on CUDA/ROCm, Mosaic on
TPU, padding compiled modes to Triton's block shapes (batch tile and hp powers
of two >= 16) and slicing the padding off again.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from lstmx.kernels.cell import zoneout_mix
from lstmx.kernels.contract import KernelOptions, LayerMasks
from lstmx.kernels.gemm import matmul
from lstmx.kernels.pallas_common import at, optional_inputs, per_platform, with_absent

# Compiled targets per lowering platform: Triton on CUDA and ROCm, Mosaic elsewhere (TPU).
COMPILED_TARGETS = {"cuda": "triton", "rocm": "triton", "default": "tpu"}


@dataclasses.dataclass(frozen=True)
class Static:
  """The kernels' static settings (hashable: a custom-VJP non-differentiable argument).

  Attributes:
    options: the layer's `KernelOptions`.
    interpret: True: interpret mode; False: compiled; None: per lowering platform.
    block_b: batch rows per program (compiled: rounded up to a power of two >= 16).
    heads: programs per batch tile, one per head of H / heads units.
    pad: pad like the compiled modes in interpret mode too (tests).
    target: inside a kernel, what it runs as: "interpret", "triton" or "tpu".
  """

  options: KernelOptions
  interpret: bool | None
  block_b: int
  heads: int
  pad: bool = False
  target: str = ""


def pow2_at_least(n: int, low: int) -> int:
  """The smallest power of two >= max(n, low) (for low a power of two)."""
  return max(low, 1 << (n - 1).bit_length())


def _gates(z):
  """Activated i, f, g, o from the four pre-activation blocks (`cell.activate`)."""
  return jax.nn.sigmoid(z[0]), jax.nn.sigmoid(z[1]), jnp.tanh(z[2]), jax.nn.sigmoid(z[3])


def forward_kernel(xp_ref, mask_ref, w_ref, h0_ref, c0_ref, r_ref, zh_ref, zc_ref,
                   gates_ref, hs_ref, cs_ref, hn_ref, cn_ref, *, static: Static):
  """xp [T,b,4,hp], mask [T,b,1], w [4,hp,hp], h0, c0 [b,hp], r [b,hp] | None, zh, zc
  [T,b,hp] | None -> gates [T,b,4,hp], hs, cs [T,b,hp], h_n, c_n [b,hp]."""
  T = xp_ref.shape[0]
  opt = static.options
  cd, prec = opt.compute_dtype, opt.precision
  ws = [w_ref[k] if cd is None else w_ref[k].astype(cd) for k in range(4)]  # once, all T
  r = None if r_ref is None else r_ref[...]

  def step(s, carry):
    h, c = carry
    t = T - 1 - s if opt.reverse else s
    hr = h if r is None else h * r
    z = [xp_ref[t, :, k, :] + matmul(hr, ws[k], cd, prec).astype(h.dtype) for k in range(4)]
    i, f, g, o = _gates(z)
    c_new = f * c + i * g
    h_new = o * jnp.tanh(c_new)
    valid = mask_ref[t] > 0
    h_t = jnp.where(valid, zoneout_mix(at(zh_ref, t), h, h_new), h)
    c_t = jnp.where(valid, zoneout_mix(at(zc_ref, t), c, c_new), c)
    for k, a in enumerate((i, f, g, o)):
      gates_ref[t, :, k, :] = a
    hs_ref[t] = h_t
    cs_ref[t] = c_t
    return h_t, c_t

  h, c = jax.lax.fori_loop(0, T, step, (h0_ref[...], c0_ref[...]), unroll=_unroll(static))
  hn_ref[...] = h
  cn_ref[...] = c


def backward_kernel(dy_ref, gates_ref, cnew_ref, cprev_ref, mask_ref, wt_ref, dhn_ref, dcn_ref,
                    r_ref, zh_ref, zc_ref, dz_ref, dh0_ref, dc0_ref, *, static: Static):
  """dys [T,b,hp], gates [T,b,4,hp], c_new, c_prev [T,b,hp], mask [T,b,1], W^T
  [4,hp,hp], dh_n, dc_n [b,hp], r, zh, zc | None -> dz [T,b,4,hp], dh0, dc0 [b,hp].
  Runs time opposite to the forward; the equations of `lstmx.kernels.cell.cell_backward`."""
  T = dy_ref.shape[0]
  opt = static.options
  cd, prec = opt.compute_dtype, opt.precision
  wts = [wt_ref[k] if cd is None else wt_ref[k].astype(cd) for k in range(4)]
  r = None if r_ref is None else r_ref[...]

  def step(s, carry):
    dh_next, dc_next = carry
    t = s if opt.reverse else T - 1 - s
    zero = jnp.zeros((), dh_next.dtype)
    valid = mask_ref[t] > 0
    dh = jnp.where(valid, dh_next + dy_ref[t], zero)
    dc = jnp.where(valid, dc_next, zero)
    i, f, g, o = (gates_ref[t, :, k, :] for k in range(4))
    zh, zc = at(zh_ref, t), at(zc_ref, t)
    dh_new = dh if zh is None else (1 - zh) * dh
    dc_new = dc if zc is None else (1 - zc) * dc
    c_prev = cprev_ref[t]
    tc = jnp.tanh(cnew_ref[t])
    dc_new = dc_new + dh_new * o * (1 - tc * tc)
    dz = (dc_new * g * i * (1 - i), dc_new * c_prev * f * (1 - f),
          dc_new * i * (1 - g * g), dh_new * tc * o * (1 - o))
    for k in range(4):
      dz_ref[t, :, k, :] = dz[k]
    dhp = matmul(dz[0], wts[0], cd, prec)
    for k in range(1, 4):
      dhp = dhp + matmul(dz[k], wts[k], cd, prec)
    dhp = dhp.astype(dh.dtype)
    if r is not None:
      dhp = dhp * r
    dh_prev = dhp + jnp.where(valid, zero, dh_next)
    dc_prev = dc_new * f + jnp.where(valid, zero, dc_next)
    if zh is not None:
      dh_prev = dh_prev + zh * dh
    if zc is not None:
      dc_prev = dc_prev + zc * dc
    return dh_prev, dc_prev

  dh0, dc0 = jax.lax.fori_loop(0, T, step, (dhn_ref[...], dcn_ref[...]),
                               unroll=_unroll(static))
  dh0_ref[...] = dh0
  dc0_ref[...] = dc0


def _unroll(static: Static) -> int:
  """The forward loop's unroll; 1 under Triton (its lowering has no unrolled scan)."""
  return 1 if static.target == "triton" else static.options.unroll


def _spec(shape: tuple[int, ...], bb: int, kind: str) -> pl.BlockSpec:
  """Blocks of one program (b, j): ``seq`` [nh, T, B, ...] and ``state`` [nh, B, hp]
  take head j and batch tile b; ``mask`` [T, B, 1] batch tile b; ``weight``
  [nh, 4, hp, hp] head j. The time axis stays whole: refs are indexed per step."""
  if kind == "weight":
    return pl.BlockSpec((None,) + shape[1:], lambda b, j: (j, 0, 0, 0))
  if kind == "mask":
    return pl.BlockSpec((shape[0], bb, 1), lambda b, j: (0, b, 0))
  if kind == "state":
    return pl.BlockSpec((None, bb, shape[2]), lambda b, j: (j, b, 0))
  rest = shape[3:]
  return pl.BlockSpec((None, shape[1], bb) + rest,
                      lambda b, j: (j, 0, b) + (0,) * len(rest))


def _kind(a) -> str:
  return {5: "seq", 4: "seq", 3: "state"}[a.ndim]


def call(kernel, static: Static, ins, kinds, outs, regs: LayerMasks) -> list[jax.Array]:
  """``kernel`` over the grid (batch tiles, heads), interpreted or compiled per
  ``static.interpret`` (None: per lowering platform, only the target's branch lowered).

  Args:
    kernel: `forward_kernel` or `backward_kernel`.
    ins: its required inputs, laid out per head; ``kinds`` names each one's
      blocks (`_spec`: "seq", "state", "mask", "weight").
    outs: ShapeDtypeStructs of its outputs ([nh, T, B, ...] or [nh, B, hh]).
    regs: the kernel masks, per head; the present ones follow ``ins``.

  Returns:
    The outputs, unpadded.
  """
  present, extra = optional_inputs(regs)
  kinds = list(kinds) + [_kind(a) for a in extra]
  run = functools.partial(_call_in, kernel, static, kinds, outs, len(ins), present)
  return per_platform(run, static.interpret, *ins, *extra, compiled=COMPILED_TARGETS)


def _call_in(kernel, static: Static, kinds, outs, n_ins, present, target, *arrays):
  """One platform's pallas_call, padding the batch to whole tiles and, compiled, each
  head to Hp units and the tile to a power of two >= 16 (sliced off again)."""
  B, hh = outs[0].shape[2], outs[0].shape[-1]
  pad = target != "interpret" or static.pad
  bb = pow2_at_least(static.block_b, 16) if pad else min(static.block_b, B)
  hp = pow2_at_least(hh, 16) if pad else hh
  bp = -B % bb
  arrays = [_pad(a, k, bp, hp - hh) for a, k in zip(arrays, kinds)]
  out_kinds = [_kind(o) for o in outs]
  out_shape = [jax.ShapeDtypeStruct(_pad(o, k, bp, hp - hh).shape, o.dtype)
               for o, k in zip(outs, out_kinds)]
  params = {}
  if target == "triton":
    from jax.experimental.pallas import triton as plt
    params["compiler_params"] = plt.CompilerParams(num_warps=4, num_stages=1)
  static = dataclasses.replace(static, target=target)
  res = pl.pallas_call(
      with_absent(kernel, n_ins, present, static),
      grid=((B + bp) // bb, static.heads),
      in_specs=[_spec(a.shape, bb, k) for a, k in zip(arrays, kinds)],
      out_specs=[_spec(o.shape, bb, k) for o, k in zip(out_shape, out_kinds)],
      out_shape=out_shape,
      interpret=target == "interpret",
      **params,
  )(*arrays)
  return [_unpad(r, k, B, hh) for r, k in zip(res, out_kinds)]


_BATCH_AXIS = {"seq": 2, "state": 1, "mask": 1, "weight": None}


def _pad(a, kind, bp, dh):
  """Zero-pads the batch axis by bp and the hidden axis (both for weights) by dh;
  `a` may be a ShapeDtypeStruct (returned padded as one)."""
  widths = [(0, 0)] * len(a.shape)
  if _BATCH_AXIS[kind] is not None:
    widths[_BATCH_AXIS[kind]] = (0, bp)
  if kind != "mask":
    widths[-1] = (0, dh)
  if kind == "weight":
    widths[-2] = (0, dh)
  if isinstance(a, jax.ShapeDtypeStruct):
    return jax.ShapeDtypeStruct(tuple(n + l + r for n, (l, r) in zip(a.shape, widths)), a.dtype)
  return a if not any(r for _, r in widths) else jnp.pad(a, widths)


def _unpad(a, kind, B, hh):
  index = [slice(None)] * a.ndim
  index[_BATCH_AXIS[kind]] = slice(0, B)
  index[-1] = slice(0, hh)
  return a[tuple(index)]
