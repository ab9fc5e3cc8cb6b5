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

This module lays the arrays out per head and owns the VJP; the kernels and
their pallas_call are in `lstmx.kernels.pallas_gpu_kernels`, the plumbing shared
with `lstmx.kernels.pallas` in `lstmx.kernels.pallas_common`.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from lstmx.kernels.contract import KernelOptions, LayerBackend, LayerMasks, layer_function
from lstmx.kernels.gemm import grads_from_dz, input_projection
from lstmx.kernels.pallas_common import check_interpret, configured_backend, custom_vjp_layer
from lstmx.kernels.pallas_gpu_kernels import (Static, backward_kernel, call, forward_kernel,
                                              pow2_at_least)
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


def padded_head(H: int, heads: int = 1) -> int:
  """Hp: the hidden units per head in compiled mode (a power of two >= 16)."""
  return pow2_at_least(H // heads, 16)


def weight_bytes(H: int, heads: int = 1, dtype=jnp.bfloat16) -> int:
  """Bytes of the weight blocks one program keeps on chip: 4 Hp^2 s."""
  return 4 * padded_head(H, heads) ** 2 * jnp.dtype(dtype).itemsize


def fits_on_chip(H: int, heads: int = 1, dtype=jnp.bfloat16) -> bool:
  """Whether one program's weight blocks fit an H200 SM's shared memory."""
  return weight_bytes(H, heads, dtype) <= ON_CHIP_BYTES


def pallas_gpu_layer(params, xs, mask, h0, c0, masks: LayerMasks, options: KernelOptions, *,
                     interpret: bool | None = None, blocks: GPUBlocks = GPUBlocks()):
  """The layer contract (`lstmx.kernels.contract`) on the streaming kernels.

  Args:
    interpret: True: Pallas interpret mode; False: compiled (Triton on CUDA,
      Mosaic on TPU); None: interpret mode exactly when lowered for CPU.
    blocks: `GPUBlocks` tiling (and the head-wise option).
  """
  BACKEND.require(options, masks)
  check_interpret(interpret)
  H = h0.shape[-1]
  if H % blocks.heads:
    raise ValueError(f"blocks.heads must divide H={H}; got heads={blocks.heads}")
  regs = masks.for_kernel(xs.shape[0], xs.shape[1], H, h0.dtype)
  return _run(Static(options, interpret, blocks.block_b, blocks.heads), params, xs, mask, h0,
              c0, regs)


def _run(static: Static, params, xs, mask, h0, c0, regs):
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


# ---------------------------------------------------------------- VJP


def _shift(seq, first, reverse):
  """The carry entering each step: seq [nh, T, ...] shifted by one along T."""
  if reverse:
    return jnp.concatenate([seq[:, 1:], first[:, None]], axis=1)
  return jnp.concatenate([first[:, None], seq[:, :-1]], axis=1)


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
  gates, hs, cs, h_n, c_n = call(
      forward_kernel, static, (xp, m3, w, h0k, c0k), ("seq", "mask", "weight", "state", "state"),
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
  dzs, dh0, dc0 = call(
      backward_kernel, static,
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


_layer = custom_vjp_layer(_layer_fwd, _layer_bwd)


# The whole contract but memory modes; only by name. Registered lazily by `lstmx.kernels`.
BACKEND = LayerBackend("pallas_gpu", pallas_gpu_layer)


def backend(*, interpret: bool | None = None, blocks: GPUBlocks = GPUBlocks()) -> LayerBackend:
  """A configured ``"pallas_gpu"`` backend for ``lstmx.lstm(..., backend=...)``, e.g.
  ``backend(blocks=GPUBlocks(heads=8))`` for the head-wise recurrence."""
  return configured_backend("pallas_gpu", pallas_gpu_layer, GPUBlocks, interpret=interpret,
                            blocks=blocks)


lstm_layer_pallas_gpu = layer_function(
    pallas_gpu_layer, "lstm_layer_pallas_gpu",
    "One layer, one direction, time-major, on the streaming Pallas kernels.",
    {"unroll": "steps unrolled per iteration of the in-kernel time loops (1 under Triton).",
     "interpret": "True: Pallas interpret mode; False: compiled; None: interpret\n"
                  "    mode exactly when lowered for CPU.",
     "blocks": "`GPUBlocks` tiling and the head-wise option."})
