"""The reference LSTM layer: `lstm_step` under `lax.scan`, differentiated by autodiff.

This is the oracle every fast backend is tested against. It does nothing
clever: the input projection happens inside each step and gradients come from
JAX's autodiff of the scan.

Masking (PyTorch packed-sequence semantics): where ``mask[t, b]`` is False the
step is skipped, so the carry passes through unchanged and the output is zero.
Running the scan with ``reverse=True`` under such a mask starts each sequence
at its own last valid step, because the carry stays at its initial value across
the padded tail.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstmx.cell import lstm_step
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
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
  """One layer, one direction, time-major.

  Args:
    params: `LSTMParams` with w_ih [D, 4H], w_hh [H, 4H], b [4H].
    xs: [T, B, D] inputs.
    mask: [T, B] bool, True at valid steps; None means all valid.
    h0, c0: [B, H] initial state.
    reverse: run from t = T - 1 down to 0.

  Returns:
    ys [T, B, H] (zero where masked) and the final (h_n, c_n), each [B, H].
  """
  if mask is None:
    mask = jnp.ones(xs.shape[:2], bool)

  def step(carry, inputs):
    x_t, m_t = inputs
    new_carry, y = lstm_step(params, carry, x_t, compute_dtype=compute_dtype,
                             precision=precision)
    m = m_t[:, None]
    h = jnp.where(m, new_carry[0], carry[0])
    c = jnp.where(m, new_carry[1], carry[1])
    return (h, c), jnp.where(m, y, jnp.zeros_like(y))

  (h_n, c_n), ys = jax.lax.scan(step, (h0, c0), (xs, mask), reverse=reverse,
                                unroll=unroll)
  return ys, (h_n, c_n)
