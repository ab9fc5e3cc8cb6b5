"""The LSTM cell's pointwise math: THE one place of it. Every backend calls these.

With z = x_t @ w_ih + h_{t-1} @ w_hh + b split into gate blocks i, f, g, o:

    i_t = sigmoid(z_i)      f_t = sigmoid(z_f)
    g_t = tanh(z_g)         o_t = sigmoid(z_o)
    c_new = f_t * c_{t-1} + i_t * g_t
    h_new = o_t * tanh(c_new)

and, with zoneout weights zh, zc (0/1 in training, the rate in evaluation; see
`lstmx.regularization`) and a validity mask m (False: the step is skipped and
the carry passes through unchanged),

    h_t = m ? zh h_{t-1} + (1 - zh) h_new : h_{t-1}      (likewise c_t with zc).

`cell_forward` computes this from z; `cell_backward` computes its pre-activation
gradient dz and the carries' gradients from the saved gates and c_{t-1}:

    dh   = m ? dy_t + dh_{t+1} : 0,      dc = m ? dc_{t+1} : 0
    dh_new = (1 - zh) dh,      dc_new = (1 - zc) dc + dh_new * o * (1 - tanh(c_new)^2)
    dz_i = dc_new * g * i (1 - i)        dz_f = dc_new * c_{t-1} * f (1 - f)
    dz_g = dc_new * i * (1 - g^2)        dz_o = dh_new * tanh(c_new) * o (1 - o)
    (computed as [dc_new g, dc_new c_{t-1}, dc_new i, dh_new tanh(c_new)] * `gate_derivative`)
    dh_{t-1} = r * (dz @ w_hh^T) + zh dh + (m ? 0 : dh_{t+1})
    dc_{t-1} = dc_new * f + zc dc + (m ? 0 : dc_{t+1})

The GEMM dz @ w_hh^T belongs to the backend's loop (`lstmx.kernels.gemm.hidden_grad`);
`cell_backward` returns the rest of dh_{t-1} as its "skip" term. Everything here is
plain jnp on [..., H] / [..., 4H] arrays, so Pallas kernel bodies call it too.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstmx.kernels.gemm import matmul, recurrent_matmul
from lstmx.params import LSTMParams


def activate(z: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Splits fused pre-activations [..., 4H] into activated gates i, f, g, o."""
  zi, zf, zg, zo = jnp.split(z, 4, axis=-1)
  return jax.nn.sigmoid(zi), jax.nn.sigmoid(zf), jnp.tanh(zg), jax.nn.sigmoid(zo)


def _sigmoid_blocks(like: jax.Array) -> jax.Array:
  """[1, ..., 4H] for `like` [..., 4H]: 1 on the sigmoid gates (i, f, o), 0 on g."""
  # From an iota, not an array constant: Pallas kernel bodies may not capture constants.
  H = like.shape[-1] // 4
  u = jax.lax.broadcasted_iota(jnp.int32, (1,) * (like.ndim - 1) + (4 * H,), like.ndim - 1)
  return ((u < 2 * H) | (u >= 3 * H)).astype(like.dtype)


def activate_fused(z: jax.Array) -> jax.Array:
  """All four activated gates [..., 4H] from z [..., 4H] with a single tanh.

  With k = 1 on the sigmoid blocks (i, f, o) and 0 on g, s = 1 - k/2:

      gates = s * tanh(s * z) + k / 2

  since sigmoid(x) = (tanh(x / 2) + 1) / 2. One transcendental over [B, 4H]
  instead of three sigmoids and a tanh on split blocks, and no concatenate;
  equal to `activate` up to rounding.
  """
  k = _sigmoid_blocks(z)
  s = 1 - k / 2
  return s * jnp.tanh(s * z) + k / 2


def gate_derivative(gates: jax.Array) -> jax.Array:
  """d gates / d z [..., 4H] from the activated gates y = `activate_fused(z)`.

      y (1 - y) on i, f, o;    1 - y^2 on g;    i.e.  y (k - y) + (1 - k).
  """
  k = _sigmoid_blocks(gates)
  return gates * (k - gates) + (1 - k)


def zoneout_mix(z: jax.Array | None, previous: jax.Array, new: jax.Array) -> jax.Array:
  """Zoneout's state update z * previous + (1 - z) * new; `new` itself if z is None.

  z holds 0/1 in training (1 keeps the previous value) and the rate in evaluation.
  """
  if z is None:
    return new
  return z * previous + (1 - z) * new


def c_update(gates: jax.Array, c_prev: jax.Array) -> jax.Array:
  """c_new = f * c_{t-1} + i * g [..., H] from the activated gates [..., 4H]."""
  i, f, g, _ = jnp.split(gates, 4, axis=-1)
  return f * c_prev + i * g


def _select(valid: jax.Array | None, new: jax.Array, old: jax.Array) -> jax.Array:
  return new if valid is None else jnp.where(valid, new, old)


def _add(a: jax.Array | None, b: jax.Array | None) -> jax.Array | None:
  return b if a is None else a if b is None else a + b


def cell_forward(
    z: jax.Array,
    h_prev: jax.Array,
    c_prev: jax.Array,
    *,
    zoneout_h: jax.Array | None = None,
    zoneout_c: jax.Array | None = None,
    valid: jax.Array | None = None,
    fused: bool = True,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One step's pointwise forward.

  Args:
    z: [..., 4H] pre-activations (bias included).
    h_prev, c_prev: [..., H] the carry entering the step.
    zoneout_h, zoneout_c: optional [..., H] zoneout weights of this step.
    valid: optional [..., 1] bool; False passes the carry through.
    fused: activate all gates with one tanh (`activate_fused`) instead of
      three sigmoids and a tanh (`activate`); equal up to rounding.

  Returns:
    (gates [..., 4H] activated, h_t [..., H], c_t [..., H]).
  """
  if fused:
    gates = activate_fused(z)
    i, f, g, o = jnp.split(gates, 4, axis=-1)
  else:
    i, f, g, o = activate(z)
    gates = jnp.concatenate([i, f, g, o], axis=-1)  # dead code unless the caller saves it
  c_new = f * c_prev + i * g
  h_new = o * jnp.tanh(c_new)
  h = _select(valid, zoneout_mix(zoneout_h, h_prev, h_new), h_prev)
  c = _select(valid, zoneout_mix(zoneout_c, c_prev, c_new), c_prev)
  return gates, h, c


def cell_backward(
    dh_next: jax.Array,
    dc_next: jax.Array,
    dy: jax.Array | None,
    gates: jax.Array,
    c_prev: jax.Array,
    *,
    c_new: jax.Array | None = None,
    zoneout_h: jax.Array | None = None,
    zoneout_c: jax.Array | None = None,
    valid: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array | None, jax.Array]:
  """One step's pointwise backward (the equations of the module docstring).

  Args:
    dh_next, dc_next: [..., H] gradients reaching the carry out of the step.
    dy: [..., H] gradient of the step's output, or None.
    gates: [..., 4H] the step's activated gates.
    c_prev: [..., H] the cell state entering the step.
    c_new: [..., H] f c_prev + i g if the caller saved it; None recomputes it.
    zoneout_h, zoneout_c, valid: as in `cell_forward`.

  Returns:
    (dz [..., 4H], dh_skip [..., H] or None, dc_prev [..., H]), with
    dh_{t-1} = r * (dz @ w_hh^T) + dh_skip computed by the caller's loop.
  """
  zero = jnp.zeros((), dh_next.dtype)
  dh = dh_next if dy is None else dh_next + dy
  dc = dc_next
  if valid is not None:
    dh = jnp.where(valid, dh, zero)
    dc = jnp.where(valid, dc, zero)
  i, f, g, o = jnp.split(gates, 4, axis=-1)
  dh_new = dh if zoneout_h is None else (1 - zoneout_h) * dh
  dc_new = dc if zoneout_c is None else (1 - zoneout_c) * dc
  tc = jnp.tanh(c_update(gates, c_prev) if c_new is None else c_new)
  dc_new = dc_new + dh_new * o * (1 - tc * tc)
  dgates = jnp.concatenate([dc_new * g, dc_new * c_prev, dc_new * i, dh_new * tc], axis=-1)
  dz = dgates * gate_derivative(gates)
  dh_skip = None if zoneout_h is None else zoneout_h * dh
  dc_prev = _add(dc_new * f, None if zoneout_c is None else zoneout_c * dc)
  if valid is not None:
    dh_skip = _add(dh_skip, jnp.where(valid, zero, dh_next))
    dc_prev = dc_prev + jnp.where(valid, zero, dc_next)
  return dz, dh_skip, dc_prev


def lstm_step(
    params: LSTMParams,
    carry: tuple[jax.Array, jax.Array],
    x_t: jax.Array,
    *,
    compute_dtype=None,
    precision=None,
    recurrent_mask: jax.Array | None = None,
    zoneout_h: jax.Array | None = None,
    zoneout_c: jax.Array | None = None,
    valid: jax.Array | None = None,
) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
  """One LSTM step: the oracle the reference backend scans.

  Args:
    params: the layer's `LSTMParams` (w_ih [D, 4H], w_hh [H, 4H], b [4H]).
    carry: (h [B, H], c [B, H]) at t - 1.
    x_t: [B, D] input at t.
    recurrent_mask: optional [B, H] multiplying h_{t-1} in the recurrent matmul.
    zoneout_h, zoneout_c, valid: as in `cell_forward`.

  Returns:
    ((h_t, c_t), h_t).
  """
  h, c = carry
  z = (matmul(x_t, params.w_ih, compute_dtype, precision)
       + recurrent_matmul(h, params.w_hh, recurrent_mask, compute_dtype, precision)
       + params.b[None, :])
  _, h, c = cell_forward(z, h, c, zoneout_h=zoneout_h, zoneout_c=zoneout_c, valid=valid,
                         fused=False)
  return (h, c), h
