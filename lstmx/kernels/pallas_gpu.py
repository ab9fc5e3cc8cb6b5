"""A streaming Pallas LSTM layer for GPUs: W_hh kept on chip, per-step data streamed.

The idea of FlashRNN (Pöppel et al. 2024): the recurrent weights are loaded
once per program and stay on chip for the whole time loop, while each step's
input projection, gates and states are read from / written to HBM one [b, H]
tile at a time (`lstmx.kernels.pallas` instead holds whole [T, b, 4H] blocks on
chip, which exceeds a GPU's shared memory at realistic sizes).

Forward, for one layer and direction (time-major), gates i, f, g, o:

  1. outside the kernel, one GEMM for every step's input projection
     ``xp = xs @ w_ih + b`` -> [T, B, 4H], laid out per head as
     [heads, T, B, 4, Hh] (Hh = H / heads);
  2. grid = (batch tiles, heads); program (b, j) loads its head's four gate
     blocks W_k = w_hh[j-th rows, gate k's j-th columns], each [Hh, Hh], once,
     and runs all T steps in a `fori_loop`:

         z_k = xp_{t,k} + (r * h_{t-1}) W_k             (k = i, f, g, o)
         c_new = f c_{t-1} + i g,   h_new = o tanh(c_new)
         h_t = zh h_{t-1} + (1 - zh) h_new,   c_t = zc c_{t-1} + (1 - zc) c_new

     with the carry passed through where ``mask[t, b]`` is False (the
     equations of `lstmx.kernels.cell`, written per gate because the Triton
     lowering has no value slicing; the contract tests check them).

With ``heads = 1`` (the default) this is the dense LSTM of the contract. With
``heads > 1`` the recurrence is block-diagonal: only w_hh's diagonal
[Hh, Hh] blocks of each gate are read (h of head j feeds only head j's gates),
and the gradient of w_hh is zero off those blocks -- the exact gradient of the
function computed. It equals the dense LSTM when w_hh is block-diagonal.

Backward: a hand-written reverse-time kernel of the same shape (W_k^T loaded
once) producing dz [T, B, 4H]; dW_ih, dW_hh, db and dX are single GEMMs over all
T*B rows outside it (`lstmx.kernels.gemm.grads_from_dz`).

Compiled mode pads each head to Hp = max(16, next power of two) hidden units
and the batch to a multiple of a power-of-two ``block_b`` >= 16 (Triton's dot
and block shapes need both); padded units stay exactly 0 and are sliced off.
Matmul inputs are ``compute_dtype`` (e.g. bfloat16) with the state, gates and
accumulation in the parameters' dtype (float32).

On chip per program: the four [Hp, Hp] weight blocks, 4 Hp^2 s bytes
(`weight_bytes`): 128 KiB for Hp = 128 in bf16, within an H200 SM's ~227 KiB
shared memory; Hp = 256 needs 512 KiB and does NOT fit (`fits_on_chip`). So the
weights stay on chip for H <= 128 dense, or any H with heads of <= 128 units;
beyond that the kernel still lowers but the compiler must spill the weights
(speed unknown). What is verified without hardware: values and gradients in
interpret mode (tests/test_contract.py), and that the compiled kernels lower
for CUDA (Triton) and TPU (Mosaic) at the benchmark sizes
(tests/test_lowering.py). Speed and on-device correctness are unmeasured.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from lstmx.kernels.cell import zoneout_mix
from lstmx.kernels.contract import KernelOptions, LayerBackend, LayerMasks, layer_function
from lstmx.kernels.gemm import grads_from_dz, input_projection, matmul
from lstmx.params import LSTMParams

# An H200 SM's shared memory per block (opt-in maximum), bytes.
ON_CHIP_BYTES = 227 * 1024


@dataclasses.dataclass(frozen=True)
class GPUBlocks:
  """Tiling of the streaming kernels.

  Attributes:
    block_b: batch rows per program; compiled, rounded up to a power of two >= 16.
    heads: head-wise block-diagonal recurrence with H / heads units per head
      (1: the dense LSTM). H must be divisible by it.
  """

  block_b: int = 16
  heads: int = 1

  def __post_init__(self):
    for name in ("block_b", "heads"):
      v = getattr(self, name)
      if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{name} must be a positive int; got {name}={v!r}")


def _pow2_at_least(n: int, low: int) -> int:
  return max(low, 1 << (n - 1).bit_length())


def padded_head(H: int, heads: int = 1) -> int:
  """Hp: the hidden units per head in compiled mode (a power of two >= 16)."""
  return _pow2_at_least(H // heads, 16)


def weight_bytes(H: int, heads: int = 1, dtype=jnp.bfloat16) -> int:
  """Bytes of the weight blocks one program keeps on chip: 4 Hp^2 s."""
  return 4 * padded_head(H, heads) ** 2 * jnp.dtype(dtype).itemsize


def fits_on_chip(H: int, heads: int = 1, dtype=jnp.bfloat16) -> bool:
  """Whether one program's weight blocks fit an H200 SM's shared memory."""
  return weight_bytes(H, heads, dtype) <= ON_CHIP_BYTES


@dataclasses.dataclass(frozen=True)
class _Static:
  options: KernelOptions
  # "auto" (per lowering platform), "interpret", "compiled"; in a kernel "triton" or "tpu"
  mode: str
  block_b: int
  heads: int
  pad: bool = False  # pad like the compiled modes in interpret mode too (tests)


def pallas_gpu_layer(params, xs, mask, h0, c0, masks: LayerMasks, options: KernelOptions, *,
                     interpret: bool | None = None, blocks: GPUBlocks = GPUBlocks()):
  """The layer contract (`lstmx.kernels.contract`) on the streaming kernels.

  Args:
    interpret: True: Pallas interpret mode; False: compiled (Triton on CUDA,
      Mosaic on TPU); None: interpret mode exactly when lowered for CPU.
    blocks: `GPUBlocks` tiling (and the head-wise option).
  """
  BACKEND.require(options, masks)
  if interpret is not None and not isinstance(interpret, bool):
    raise TypeError(f"interpret: expected None, True or False; got {interpret!r}")
  H = h0.shape[-1]
  if H % blocks.heads:
    raise ValueError(f"blocks.heads must divide H={H}; got heads={blocks.heads}")
  mode = {None: "auto", True: "interpret", False: "compiled"}[interpret]
  regs = masks.for_kernel(xs.shape[0], xs.shape[1], H, h0.dtype)
  return _run(_Static(options, mode, blocks.block_b, blocks.heads), params, xs, mask, h0, c0,
              regs)


def _run(static: _Static, params, xs, mask, h0, c0, regs):
  """Lays the masks out per head and runs `_layer`."""
  T, B, _ = xs.shape
  nh = static.heads
  if mask is None:
    mask = jnp.ones((T, B), bool)
  regs = LayerMasks(*(None if a is None else _to_heads(a, nh=nh) for a in
                      (regs.recurrent, regs.zoneout_h, regs.zoneout_c)))
  return _layer(static, params, xs, mask, h0, c0, regs)


def _to_heads(a, *, nh, gates=False):
  """[..., (4) H] -> [nh, ..., (4,) H / nh]: heads first."""
  lead = a.shape[:-1]
  a = a.reshape(*lead, 4, nh, -1) if gates else a.reshape(*lead, nh, -1)
  return jnp.moveaxis(a, -2, 0)


def _from_heads(a, *, gates=False):
  """Inverse of `_to_heads`: [nh, ..., (4,) Hh] -> [..., (4 *) nh * Hh]."""
  a = jnp.moveaxis(a, 0, -2)
  return a.reshape(*a.shape[:-3], -1) if gates else a.reshape(*a.shape[:-2], -1)


def _diag_blocks(w_hh, nh, *, transpose=False):
  """w_hh [H, 4H] -> [nh, 4, Hh, Hh]: gate k's j-th diagonal block (transposed)."""
  H = w_hh.shape[0]
  hh = H // nh
  w = w_hh.reshape(nh, hh, 4, nh, hh)
  w = jnp.stack([w[j, :, :, j, :] for j in range(nh)])  # [nh, hh, 4, hh]
  return jnp.transpose(w, (0, 2, 3, 1) if transpose else (0, 2, 1, 3))


def block_diagonal_mask(H: int, heads: int, dtype=jnp.float32) -> jax.Array:
  """[H, 4H]: 1 on the w_hh entries the head-wise recurrence reads, else 0."""
  u = jnp.arange(H) // (H // heads)
  cols = jnp.tile(u, 4)
  return (u[:, None] == cols[None, :]).astype(dtype)


# ---------------------------------------------------------------- kernels


def _gates(z):
  """Activated i, f, g, o from the four pre-activation blocks (`cell.activate`)."""
  return jax.nn.sigmoid(z[0]), jax.nn.sigmoid(z[1]), jnp.tanh(z[2]), jax.nn.sigmoid(z[3])


def _forward_kernel(xp_ref, mask_ref, w_ref, h0_ref, c0_ref, r_ref, zh_ref, zc_ref,
                    gates_ref, hs_ref, cs_ref, hn_ref, cn_ref, *, static: _Static):
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
    h_t = jnp.where(valid, zoneout_mix(None if zh_ref is None else zh_ref[t], h, h_new), h)
    c_t = jnp.where(valid, zoneout_mix(None if zc_ref is None else zc_ref[t], c, c_new), c)
    for k, a in enumerate((i, f, g, o)):
      gates_ref[t, :, k, :] = a
    hs_ref[t] = h_t
    cs_ref[t] = c_t
    return h_t, c_t

  h, c = jax.lax.fori_loop(0, T, step, (h0_ref[...], c0_ref[...]), unroll=_unroll(static))
  hn_ref[...] = h
  cn_ref[...] = c


def _backward_kernel(dy_ref, gates_ref, cnew_ref, cprev_ref, mask_ref, wt_ref, dhn_ref, dcn_ref,
                     r_ref, zh_ref, zc_ref, dz_ref, dh0_ref, dc0_ref, *, static: _Static):
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
    zh = None if zh_ref is None else zh_ref[t]
    zc = None if zc_ref is None else zc_ref[t]
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


def _unroll(static: _Static) -> int:
  """The forward loop's unroll; 1 under Triton (its lowering has no unrolled scan)."""
  return 1 if static.mode == "triton" else static.options.unroll


def _with_absent(kernel, n_ins: int, present: tuple[bool, ...], static: _Static):
  """Adapts a kernel naming every ref (absent optional ones None) to positional refs."""
  def body(*refs):
    ins, rest = list(refs[:n_ins]), list(refs[n_ins:])
    optional = [rest.pop(0) if p else None for p in present]
    return kernel(*ins, *optional, *rest, static=static)
  return body


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


def _call(kernel, static: _Static, ins, kinds, outs, regs: LayerMasks):
  """pallas_call over (batch tiles, heads), compiled or interpreted per `static.mode`
  (for "auto", per lowering platform: only the target's branch is lowered)."""
  optional = (regs.recurrent, regs.zoneout_h, regs.zoneout_c)
  present = tuple(a is not None for a in optional)
  extra = [a for a in optional if a is not None]
  kinds = list(kinds) + [_kind(a) for a in extra]
  run = functools.partial(_call_in, kernel, static, kinds, outs, len(ins), present)
  arrays = list(ins) + extra
  if static.mode == "interpret":
    return run("interpret", *arrays)
  branches = dict(cuda=functools.partial(run, "triton"), rocm=functools.partial(run, "triton"),
                  default=functools.partial(run, "tpu"))
  if static.mode == "auto":
    branches["cpu"] = functools.partial(run, "interpret")
  return jax.lax.platform_dependent(*arrays, **branches)


def _call_in(kernel, static: _Static, kinds, outs, n_ins, present, mode, *arrays):
  """One platform's pallas_call, padding the batch to whole tiles and, compiled, each
  head to Hp units and the tile to a power of two >= 16 (sliced off again)."""
  B, hh = outs[0].shape[2], outs[0].shape[-1]
  pad = mode != "interpret" or static.pad
  bb = _pow2_at_least(static.block_b, 16) if pad else min(static.block_b, B)
  hp = _pow2_at_least(hh, 16) if pad else hh
  bp = -B % bb
  arrays = [_pad(a, k, bp, hp - hh) for a, k in zip(arrays, kinds)]
  out_kinds = [_kind(o) for o in outs]
  out_shape = [jax.ShapeDtypeStruct(_pad(o, k, bp, hp - hh).shape, o.dtype)
               for o, k in zip(outs, out_kinds)]
  params = {}
  if mode == "triton":
    from jax.experimental.pallas import triton as plt
    params["compiler_params"] = plt.CompilerParams(num_warps=4, num_stages=1)
  static = dataclasses.replace(static, mode=mode)
  res = pl.pallas_call(
      _with_absent(kernel, n_ins, present, static),
      grid=((B + bp) // bb, static.heads),
      in_specs=[_spec(a.shape, bb, k) for a, k in zip(arrays, kinds)],
      out_specs=[_spec(o.shape, bb, k) for o, k in zip(out_shape, out_kinds)],
      out_shape=out_shape,
      interpret=mode == "interpret",
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


# ---------------------------------------------------------------- VJP


def _shift(seq, first, reverse):
  """The carry entering each step: seq [nh, T, ...] shifted by one along T."""
  if reverse:
    return jnp.concatenate([seq[:, 1:], first[:, None]], axis=1)
  return jnp.concatenate([first[:, None], seq[:, :-1]], axis=1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _layer(static, params, xs, mask, h0, c0, regs):
  out, _ = _layer_fwd(static, params, xs, mask, h0, c0, regs)
  return out


def _layer_fwd(static, params, xs, mask, h0, c0, regs):
  T, B, _ = xs.shape
  H = h0.shape[-1]
  dt = h0.dtype
  opt = static.options
  nh = static.heads
  xp = input_projection(xs, params.w_ih, opt.compute_dtype, opt.precision)
  xp = _to_heads((xp + params.b[None, None, :]).astype(dt), nh=nh, gates=True)  # [nh,T,B,4,Hh]
  m3 = mask[:, :, None].astype(dt)
  w = _diag_blocks(params.w_hh.astype(dt), nh)
  h0k, c0k = (_to_heads(a, nh=nh) for a in (h0, c0))
  seq = jax.ShapeDtypeStruct((nh, T, B, H // nh), dt)
  final = jax.ShapeDtypeStruct((nh, B, H // nh), dt)
  gates, hs, cs, h_n, c_n = _call(
      _forward_kernel, static, (xp, m3, w, h0k, c0k), ("seq", "mask", "weight", "state", "state"),
      [jax.ShapeDtypeStruct((nh, T, B, 4, H // nh), dt), seq, seq, final, final], regs)
  ys = jnp.where(mask[:, :, None], _from_heads(hs), jnp.zeros((), dt))
  out = (ys, (_from_heads(h_n), _from_heads(c_n)))
  return out, (params, xs, mask, h0, c0, regs, gates, hs, cs)


def _layer_bwd(static, residuals, cotangents):
  params, xs, mask, h0, c0, regs, gates, hs, cs = residuals
  dys, (dh_n, dc_n) = cotangents
  T, B, _ = xs.shape
  H = h0.shape[-1]
  dt = h0.dtype
  opt = static.options
  nh = static.heads
  lay = functools.partial(_to_heads, nh=nh)
  c_prev = _shift(cs, lay(c0), opt.reverse)
  if regs.zoneout_c is None:
    c_new = cs  # at valid steps the carried c_t is c_new; masked steps get dz = 0
  else:
    c_new = gates[..., 1, :] * c_prev + gates[..., 0, :] * gates[..., 2, :]
  final = jax.ShapeDtypeStruct((nh, B, H // nh), dt)
  dzs, dh0, dc0 = _call(
      _backward_kernel, static,
      (lay(dys.astype(dt)), gates, c_new, c_prev, mask[:, :, None].astype(dt),
       _diag_blocks(params.w_hh.astype(dt), nh, transpose=True),
       lay(dh_n.astype(dt)), lay(dc_n.astype(dt))),
      ("seq", "seq", "seq", "seq", "mask", "weight", "state", "state"),
      [jax.ShapeDtypeStruct((nh, T, B, 4, H // nh), dt), final, final], regs)
  rmask = None if regs.recurrent is None else _from_heads(regs.recurrent)
  dparams, dxs = grads_from_dz(params, xs, _from_heads(hs), h0, _from_heads(dzs, gates=True),
                               rmask, opt.reverse, opt.compute_dtype, opt.precision)
  if nh > 1:  # only the diagonal blocks are read: the rest has zero gradient
    bd = block_diagonal_mask(H, nh, dparams.w_hh.dtype)
    dparams = LSTMParams(dparams.w_ih, dparams.w_hh * bd, dparams.b)
  return (dparams, dxs, None, _from_heads(dh0).astype(h0.dtype),
          _from_heads(dc0).astype(c0.dtype), None)


_layer.defvjp(_layer_fwd, _layer_bwd)


# The whole contract but memory modes; only by name. Registered lazily by `lstmx.kernels`.
BACKEND = LayerBackend("pallas_gpu", pallas_gpu_layer)


def backend(*, interpret: bool | None = None, blocks: GPUBlocks = GPUBlocks()) -> LayerBackend:
  """A configured ``"pallas_gpu"`` backend for ``lstmx.lstm(..., backend=...)``, e.g.
  ``backend(blocks=GPUBlocks(heads=8))`` for the head-wise recurrence."""
  if interpret is not None and not isinstance(interpret, bool):
    raise TypeError(f"interpret: expected None, True or False; got {interpret!r}")
  if not isinstance(blocks, GPUBlocks):
    raise TypeError(f"blocks: expected GPUBlocks; got {type(blocks).__name__}")
  return LayerBackend("pallas_gpu", functools.partial(pallas_gpu_layer, interpret=interpret,
                                                      blocks=blocks))


lstm_layer_pallas_gpu = layer_function(
    pallas_gpu_layer, "lstm_layer_pallas_gpu",
    "One layer, one direction, time-major, on the streaming Pallas kernels.",
    {"unroll": "steps unrolled per iteration of the in-kernel time loops (1 under Triton).",
     "interpret": "True: Pallas interpret mode; False: compiled; None: interpret\n"
                  "    mode exactly when lowered for CPU.",
     "blocks": "`GPUBlocks` tiling and the head-wise option."})
