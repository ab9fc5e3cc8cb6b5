"""The reference LSTM layer: `lstm_step` under `lax.scan`, differentiated by autodiff.

This is the oracle every fast backend is tested against. It does nothing
clever: the input projection happens inside each step and gradients come from
JAX's autodiff of the scan.

Masking (PyTorch packed-sequence semantics): where ``mask[t, b]`` is False the
step is skipped, so the carry passes through unchanged and the output is zero.
Running the scan with ``reverse=True`` under such a mask starts each sequence
at its own last valid step, because the carry stays at its initial value across
the padded tail.

Regularization inside the recurrence (masks drawn by `lstmx.draw_masks`,
treated as constants): with a recurrent-dropout mask r [B, H] the step sees
r * h_{t-1} in its recurrent matmul, and with zoneout weights zh, zc [T, B, H]

    h_t = zh_t * h_{t-1} + (1 - zh_t) * h_new,   c_t = zc_t * c_{t-1} + (1 - zc_t) * c_new

where (h_new, c_new) is the plain cell update from (r * h_{t-1}, c_{t-1})
(`lstmx.kernels.cell`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstmx.kernels.cell import lstm_step
from lstmx.kernels.contract import (BACKENDS, Inputs, KernelOptions, LayerMasks, LayerBackend,
                                    Mask, Outputs, State, layer_function)
from lstmx.params import LSTMParams


def reference_layer(params: LSTMParams, xs: Inputs, mask: Mask | None, h0: State, c0: State,
                    masks: LayerMasks, options: KernelOptions
                    ) -> tuple[Outputs, tuple[State, State]]:
  """The layer contract (`lstmx.kernels.contract`); ``remat_every`` is ignored: the
  oracle lets autodiff save every residual."""
  T, B, _ = xs.shape
  if mask is None:
    mask = jnp.ones((T, B), bool)
  km = masks.for_kernel(T, B, h0.shape[-1], h0.dtype)

  def step(carry, inputs):
    x_t, m_t, zh_t, zc_t = inputs
    valid = m_t[:, None]
    (h, c), _ = lstm_step(params, carry, x_t, compute_dtype=options.compute_dtype,
                          precision=options.precision, recurrent_mask=km.recurrent,
                          zoneout_h=zh_t, zoneout_c=zc_t, valid=valid)
    return (h, c), jnp.where(valid, h, jnp.zeros((), h.dtype))

  (h_n, c_n), ys = jax.lax.scan(step, (h0, c0), (xs, mask, km.zoneout_h, km.zoneout_c),
                                reverse=options.reverse, unroll=options.unroll)
  return ys, (h_n, c_n)


# The oracle runs everything, everywhere (remat_every is accepted and ignored).
BACKEND = BACKENDS.register("reference", LayerBackend("reference", reference_layer,
                                                      memory_modes=True))


lstm_layer_reference = layer_function(
    reference_layer, "lstm_layer_reference",
    "One layer, one direction, time-major, by autodiff of a plain scan: the oracle.",
    {"remat_every": "accepted for the contract and ignored: the oracle lets autodiff\n"
                    "    save every residual."})
