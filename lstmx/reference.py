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

where (h_new, c_new) is the plain cell update from (r * h_{t-1}, c_{t-1}).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstmx.cell import lstm_step, zoneout_mix
from lstmx.params import LSTMParams


def lstm_layer_reference(
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
    remat_every: int | None = None,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
  """One layer, one direction, time-major.

  Args:
    params: `LSTMParams` with w_ih [D, 4H], w_hh [H, 4H], b [4H].
    xs: [T, B, D] inputs.
    mask: [T, B] bool, True at valid steps; None means all valid.
    h0, c0: [B, H] initial state.
    reverse: run from t = T - 1 down to 0.
    recurrent_mask: optional [B, H] multiplying h_{t-1} in the recurrent matmul.
    zoneout_h, zoneout_c: optional zoneout weights broadcastable to [T, B, H]
      (0/1 in training, the rate in evaluation).
    remat_every: accepted for the contract and ignored: the oracle lets autodiff
      save every residual.

  Returns:
    ys [T, B, H] (zero where masked) and the final (h_n, c_n), each [B, H].
  """
  if mask is None:
    mask = jnp.ones(xs.shape[:2], bool)
  zh, zc = (None if z is None
            else jnp.broadcast_to(jnp.asarray(z, h0.dtype), xs.shape[:2] + h0.shape[-1:])
            for z in (zoneout_h, zoneout_c))

  def step(carry, inputs):
    x_t, m_t, zh_t, zc_t = inputs
    h_in = carry[0] if recurrent_mask is None else carry[0] * recurrent_mask
    (h_new, c_new), _ = lstm_step(params, (h_in, carry[1]), x_t,
                                  compute_dtype=compute_dtype, precision=precision)
    y = zoneout_mix(zh_t, carry[0], h_new)
    m = m_t[:, None]
    h = jnp.where(m, y, carry[0])
    c = jnp.where(m, zoneout_mix(zc_t, carry[1], c_new), carry[1])
    return (h, c), jnp.where(m, y, jnp.zeros_like(y))

  (h_n, c_n), ys = jax.lax.scan(step, (h0, c0), (xs, mask, zh, zc), reverse=reverse,
                                unroll=unroll)
  return ys, (h_n, c_n)
