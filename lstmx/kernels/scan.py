"""The fused scan LSTM layer with a hand-written backward pass (``backend="scan"``).

Forward, for one layer and direction (time-major):

  1. one GEMM for the input projection of every step:
     ``xp = xs.reshape(T*B, D) @ w_ih``  ->  [T, B, 4H] (b is added in the step);
  2. a `lax.scan` whose step is one fused [B, H] x [H, 4H] GEMM plus the cell's
     pointwise math (`lstmx.kernels.cell.cell_forward`), with all four gates
     activated by one tanh over [B, 4H] (`activate_fused`).

Residuals kept for the backward: the activated gates [T, B, 4H], written over
xp in its own buffer, the carried hidden state h_t [T, B, H] and the cell
state entering each step c_{t-1} [T, B, H], i.e. 6*T*B*H values (plus the
inputs, which the caller holds anyway); tanh(c_t) is recomputed in the
backward. Without a mask the outputs are the carried h_t themselves, so ys and
the h residual share one buffer. For long sequences, ``remat_every=k``
(`lstmx.kernels.remat`) keeps only the carries at every k-th step and
recomputes each segment in the backward.

Memory is speed on a CPU: XLA allocates a program's temporaries as one arena
per call, and an arena above glibc's mmap threshold (32 MiB at most) comes
back as fresh pages every call, each first touch a page fault. Hence the
in-place buffers: the forward writes gates[t] over xp[t], the backward writes
dz_t over gates[t] (docs/performance.md has the measurements).

Backward: one reverse scan over the recurrence computes the pre-activation
gradients dz_t [T, B, 4H] (one [B, 4H] x [4H, H] GEMM per step), in place of
the gates, with `lstmx.kernels.cell.cell_backward` (its docstring has the
equations, recurrent dropout r [B, H] and zoneout zh, zc [T, B, H] included),
and then the parameter and input gradients as single GEMMs over all T*B rows
(`lstmx.kernels.gemm.grads_from_dz`):
``dW_ih = X^T dZ``, ``dW_hh = (r * H_prev)^T dZ``, ``db = sum dZ``, ``dX = dZ w_ih^T``.
The backward always recomputes c_new = f c_{t-1} + i g, which zoneout makes
differ from c_t, so the residuals are the same with or without regularization.

Masked steps (``mask[t, b]`` False) pass the carry through unchanged and
output zero, in both directions; see `lstmx.kernels.reference` for why that
gives PyTorch's packed-sequence semantics when ``reverse=True``.
"""

from __future__ import annotations

import functools

import jax

from lstmx.kernels.contract import (BACKENDS, KernelOptions, LayerBackend, LayerMasks,
                                    layer_function)
from lstmx.kernels.remat import remat_scan
from lstmx.kernels.scan_recurrence import scan_backward, scan_forward


def scan_layer(params, xs, mask, h0, c0, masks: LayerMasks, options: KernelOptions):
  """The layer contract (`lstmx.kernels.contract`) on the fused scan."""
  T, B, _ = xs.shape
  masks = masks.for_kernel(T, B, h0.shape[-1], h0.dtype)
  if options.remat_every is not None and options.remat_every < T:
    return remat_scan(options, params, xs, mask, h0, c0, masks)
  return _scan(options, params, xs, mask, h0, c0, masks)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _scan(options, params, xs, mask, h0, c0, masks):
  ys, carry, _ = scan_forward(params, xs, mask, h0, c0, masks, options, save_residuals=False)
  return ys, carry


def _scan_fwd(options, params, xs, mask, h0, c0, masks):
  ys, carry, residuals = scan_forward(params, xs, mask, h0, c0, masks, options)
  return (ys, carry), (params, xs, mask, h0, c0, masks, residuals)


def _scan_bwd(options, saved, cotangents):
  params, xs, mask, h0, c0, masks, residuals = saved
  dys, (dh_n, dc_n) = cotangents
  dparams, dxs, dh0, dc0 = scan_backward(params, xs, mask, h0, c0, masks, residuals, dys,
                                         dh_n, dc_n, options)
  # The masks and regularization weights are constants: zero cotangents.
  return dparams, dxs, None, dh0, dc0, None


_scan.defvjp(_scan_fwd, _scan_bwd)


# Every platform, the whole contract, memory modes.
BACKEND = BACKENDS.register("scan", LayerBackend("scan", scan_layer, memory_modes=True))


lstm_layer_scan = layer_function(
    scan_layer, "lstm_layer_scan",
    "One layer, one direction, time-major, on the fused scan (custom VJP).",
    {"unroll": "steps unrolled per iteration of the forward scan. The backward scan\n"
               "    always runs one step per iteration: unrolled, its in-place dZ buffer\n"
               "    would be copied by XLA every iteration (docs/performance.md).",
     "remat_every": "None saves every step's residuals (fastest); an int k saves\n"
                    "    only the carries at every k-th step and recomputes each k-step\n"
                    "    segment in the backward (`lstmx.kernels.remat`): residual memory\n"
                    "    O(T/k + k) steps instead of O(T), for about one extra forward pass."})
