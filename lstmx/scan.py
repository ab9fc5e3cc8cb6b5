"""The fused scan LSTM layer with a hand-written backward pass.

Forward, for one layer and direction (time-major):

  1. one GEMM for the input projection of every step:
     ``xp = xs.reshape(T*B, D) @ w_ih``  ->  [T, B, 4H] (b is added in the step);
  2. a `lax.scan` whose step is one fused [B, H] x [H, 4H] GEMM plus the cell's
     pointwise math, with all four gates activated by one tanh over [B, 4H]
     (`lstmx.cell.activate_fused`).

Residuals kept for the backward: the activated gates [T, B, 4H], written over
xp in its own buffer, the carried hidden state h_t [T, B, H] and the cell
state entering each step c_{t-1} [T, B, H], i.e. 6*T*B*H values (plus the
inputs, which the caller holds anyway); tanh(c_t) is recomputed in the
backward. Without a mask the outputs are the carried h_t themselves, so ys and
the h residual share one buffer. For long sequences, ``remat_every=k``
(`lstmx.remat`) keeps only the carries at every k-th step and recomputes each
segment in the backward.

Memory is speed on a CPU: XLA allocates a program's temporaries as one arena
per call, and an arena above glibc's mmap threshold (32 MiB at most) comes
back as fresh pages every call, each first touch a page fault. Hence the
in-place buffers: the forward writes gates[t] over xp[t], the backward writes
dz_t over gates[t] (docs/performance.md has the measurements).

Backward: one reverse scan over the recurrence computes the pre-activation
gradients dz_t [T, B, 4H] (one [B, 4H] x [4H, H] GEMM per step), in place of
the gates:

    dh   = dy_t + dh_{t+1}                     (only where the step is valid)
    dc   = dc_{t+1} + dh * o * (1 - tanh(c_t)^2)
    dz_i = dc * g * i (1 - i)        dz_f = dc * c_{t-1} * f (1 - f)
    dz_g = dc * i * (1 - g^2)        dz_o = dh * tanh(c_t) * o (1 - o)
    (computed as [dc g, dc c_{t-1}, dc i, dh tanh(c_t)] * `gate_derivative`)
    dh_{t-1} = dz_t @ w_hh^T,        dc_{t-1} = dc * f

and then the parameter and input gradients as single GEMMs over all T*B rows:
``dW_ih = X^T dZ``, ``dW_hh = H_prev^T dZ``, ``db = sum dZ``, ``dX = dZ w_ih^T``.

Masked steps (``mask[t, b]`` False) pass the carry through unchanged and
output zero, in both directions; see `lstmx.reference` for why that gives
PyTorch's packed-sequence semantics when ``reverse=True``.

Regularization (optional, see `lstmx.regularization`): a recurrent-dropout
mask r [B, H] multiplies h_{t-1} in the recurrent matmul, and zoneout weights
zh, zc [T, B, H] mix the new state with the old one,
``h_t = zh h_{t-1} + (1 - zh) h_new``, ``c_t = zc c_{t-1} + (1 - zc) c_new``.
The residuals stay the same (the backward always recomputes
c_new = f c_{t-1} + i g, which zoneout makes differ from c_t), and at a valid
step the backward becomes

    dh_new = (1 - zh) dh,      dc_new = (1 - zc) dc + dh_new * o * (1 - tanh(c_new)^2)
    dz as above with (dh_new, dc_new, tanh(c_new)) in place of (dh, dc, tanh(c_t))
    dh_{t-1} = r * (dz_t @ w_hh^T) + zh * dh,      dc_{t-1} = dc_new * f + zc * dc
    dW_hh = (r * H_prev)^T dZ

With all of them None the computation is exactly the unregularized one.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from lstmx.cell import activate_fused, gate_derivative, matmul, zoneout_mix
from lstmx.params import LSTMParams


def lstm_layer_scan(
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
  """One layer, one direction, time-major; same contract as `lstm_layer_reference`.

  Args:
    params: `LSTMParams` with w_ih [D, 4H], w_hh [H, 4H], b [4H].
    xs: [T, B, D] inputs.
    mask: [T, B] bool, True at valid steps; None means all valid.
    h0, c0: [B, H] initial state.
    reverse: run from t = T - 1 down to 0.
    unroll: steps unrolled per iteration of the forward scan. The backward scan
      always runs one step per iteration: unrolled, its in-place dZ buffer
      would be copied by XLA every iteration (docs/performance.md).
    compute_dtype: e.g. ``jnp.bfloat16`` for low-precision matmul inputs; the
      cell state, gates and accumulation stay in the state dtype.
    precision: `jax.lax.Precision` for the matmuls.
    recurrent_mask: optional [B, H] multiplying h_{t-1} in the recurrent matmul.
    zoneout_h, zoneout_c: optional zoneout weights broadcastable to [T, B, H]
      (0/1 in training, the rate in evaluation).
    remat_every: None saves every step's residuals (fastest); an int k saves
      only the carries at every k-th step and recomputes each k-step segment in
      the backward (`lstmx.remat`): residual memory O(T/k + k) steps instead of
      O(T), for about one extra forward pass.

  Returns:
    ys [T, B, H] (zero where masked) and the final (h_n, c_n), each [B, H].
  """
  if recurrent_mask is not None:
    recurrent_mask = jnp.asarray(recurrent_mask, h0.dtype)
  zh, zc = (None if z is None
            else jnp.broadcast_to(jnp.asarray(z, h0.dtype), xs.shape[:2] + h0.shape[-1:])
            for z in (zoneout_h, zoneout_c))
  regs = (recurrent_mask, zh, zc)
  if remat_every is not None:
    if not isinstance(remat_every, int) or remat_every < 1:
      raise ValueError(f"remat_every must be None or a positive int; got {remat_every!r}")
    if remat_every < xs.shape[0]:
      from lstmx.remat import remat_scan  # lstmx.remat builds on this module
      return remat_scan(remat_every, reverse, unroll, compute_dtype, precision, params, xs,
                        mask, h0, c0, regs)
  return _scan(reverse, unroll, compute_dtype, precision, params, xs, mask, h0, c0, regs)


def scan_forward(params, xs, mask, h0, c0, regs, *, reverse, unroll, compute_dtype,
                 precision, save_residuals=True):
  """The forward recurrence over all T steps of `xs`.

  Args: as `lstm_layer_scan` (mask may be None; regs = (r [B,H] | None,
    zh [T,B,H] | None, zc [T,B,H] | None)).

  Returns:
    ys [T, B, H], (h_n, c_n) and the residuals (gates [T, B, 4H] activated,
    hs [T, B, H] the h carried out of each step, c_prev [T, B, H] the c
    carried into each step); with ``save_residuals=False`` (a pass that is not
    differentiated) the scan writes only h per step and the residuals are None.
  """
  T, B, D = xs.shape
  rmask, zh, zc = regs
  w_hh = params.w_hh if compute_dtype is None else params.w_hh.astype(compute_dtype)
  # The bias is added inside the step, where the gate fusion reads xp_t anyway:
  # adding it here would be one more pass over [T, B, 4H].
  b = params.b.astype(h0.dtype)[None, :]
  xp = matmul(xs.reshape(T * B, D), params.w_ih, compute_dtype, precision)
  xp = xp.reshape(T, B, -1).astype(h0.dtype)

  def cell(h, c, xp_t, m_t, zh_t, zc_t):
    h_in = h if rmask is None else h * rmask
    gates = activate_fused(xp_t + b + matmul(h_in, w_hh, compute_dtype, precision))
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    c_new = f * c + i * g
    h_new = o * jnp.tanh(c_new)
    h_new = zoneout_mix(zh_t, h, h_new)
    c_new = zoneout_mix(zc_t, c, c_new)
    if m_t is not None:
      h_new = jnp.where(m_t[:, None], h_new, h)
      c_new = jnp.where(m_t[:, None], c_new, c)
    return gates, h_new, c_new

  if not save_residuals:
    def step(carry, inputs):
      _, h_new, c_new = cell(*carry, *inputs)
      return (h_new, c_new), h_new
    (h_n, c_n), hs = jax.lax.scan(
        step, (h0, c0), (xp, mask, zh, zc), reverse=reverse, unroll=unroll)
    residuals = None
  else:
    # The activated gates overwrite the projection in its own buffer (step t
    # reads xp[t] only to compute gates[t]), so XLA updates it in place: no
    # second [T, B, 4H] buffer, and none to zero-fill.
    def step(carry, inputs):
      h, c, buf = carry
      t, m_t, zh_t, zc_t = inputs
      xp_t = jax.lax.dynamic_index_in_dim(buf, t, 0, keepdims=False)
      gates, h_new, c_new = cell(h, c, xp_t, m_t, zh_t, zc_t)
      buf = jax.lax.dynamic_update_index_in_dim(buf, gates, t, 0)
      return (h_new, c_new, buf), (h_new, c)
    (h_n, c_n, gates), (hs, c_prevs) = jax.lax.scan(
        step, (h0, c0, xp), (jnp.arange(T), mask, zh, zc), reverse=reverse, unroll=unroll)
    residuals = (gates, hs, c_prevs)
  ys = hs if mask is None else jnp.where(mask[:, :, None], hs, jnp.zeros((), hs.dtype))
  return ys, (h_n, c_n), residuals


def previous(seq: jax.Array, first: jax.Array, reverse: bool) -> jax.Array:
  """The carry entering each step: seq shifted by one in scan order."""
  if reverse:
    return jnp.concatenate([seq[1:], first[None]], axis=0)
  return jnp.concatenate([first[None], seq[:-1]], axis=0)


def scan_backward(params, xs, mask, h0, c0, regs, residuals, dys, dh_n, dc_n, *, reverse,
                  compute_dtype, precision):
  """The reverse recurrence for dZ, then the parameter and input gradients as GEMMs.

  Args: the inputs of `scan_forward`, its residuals (gates, hs, c_prev), and
    the cotangents dys [T, B, H], dh_n, dc_n [B, H].

  The reverse scan overwrites the gates buffer with dZ step by step, so dZ
  needs no [T, B, 4H] buffer of its own.

  Returns:
    (dparams `LSTMParams`, dxs [T, B, D], dh0 [B, H], dc0 [B, H]).
  """
  gates, hs, c_prevs = residuals
  rmask, zh, zc = regs
  T = xs.shape[0]
  w_hh_t = params.w_hh.T
  if compute_dtype is not None:
    w_hh_t = w_hh_t.astype(compute_dtype)

  def step(carry, inputs):
    dh_next, dc_next, gt, buf = carry
    t, dy, c_p, m_t, zh_t, zc_t = inputs
    zero = jnp.zeros((), dh_next.dtype)
    dh = dh_next + dy
    dc = dc_next
    if m_t is not None:
      m = m_t[:, None]
      dh = jnp.where(m, dh, zero)
      dc = jnp.where(m, dc, zero)
    i, f, g, o = jnp.split(gt, 4, axis=-1)
    dh_new = dh if zh_t is None else (1 - zh_t) * dh
    dc_new = dc if zc_t is None else (1 - zc_t) * dc
    tc = jnp.tanh(f * c_p + i * g)  # tanh(c_new), recomputed instead of saved
    dc_new = dc_new + dh_new * o * (1 - tc * tc)
    dgates = jnp.concatenate([dc_new * g, dc_new * c_p, dc_new * i, dh_new * tc], axis=-1)
    dz = dgates * gate_derivative(gt)
    dh_prev = matmul(dz, w_hh_t, compute_dtype, precision)
    if rmask is not None:
      dh_prev = dh_prev * rmask
    if zh_t is not None:
      dh_prev = dh_prev + zh_t * dh
    dc_prev = dc_new * f
    if zc_t is not None:
      dc_prev = dc_prev + zc_t * dc
    if m_t is not None:
      dh_prev = dh_prev + jnp.where(m, zero, dh_next)
      dc_prev = dc_prev + jnp.where(m, zero, dc_next)
    # dz_t overwrites gates[t] in place. The next step's gates are read from the
    # updated buffer, i.e. after the write, so no read of buf can race with it
    # and XLA needs no copy (reading gates[t] in the step itself would need one).
    buf = jax.lax.dynamic_update_index_in_dim(buf, dz.astype(buf.dtype), t, 0)
    gt = jax.lax.dynamic_index_in_dim(buf, t + step_dir, 0, keepdims=False)
    return (dh_prev, dc_prev, gt, buf), None

  step_dir = 1 if reverse else -1  # the index the backward scan visits next
  first = gates[0 if reverse else T - 1]
  (dh0, dc0, _, dzs), _ = jax.lax.scan(
      step, (dh_n.astype(h0.dtype), dc_n.astype(c0.dtype), first, gates),
      (jnp.arange(T), dys.astype(h0.dtype), c_prevs, mask, zh, zc),
      reverse=not reverse)  # no unroll: it would cost a buffer copy per iteration

  dparams, dxs = grads_from_dz(params, xs, hs, h0, dzs, rmask, reverse, compute_dtype,
                               precision)
  return dparams, dxs, dh0.astype(h0.dtype), dc0.astype(c0.dtype)


def grads_from_dz(params, xs, hs, h0, dzs, rmask, reverse, compute_dtype, precision):
  """The parameter and input gradients from dZ [T, B, 4H], as GEMMs over all T*B rows.

  ``dW_ih = X^T dZ``, ``dW_hh = (r * H_prev)^T dZ``, ``db = sum dZ``,
  ``dX = dZ w_ih^T``, with H_prev the h entering each step (hs shifted by one
  in scan order, h0 first). Returns (dparams `LSTMParams`, dxs [T, B, D]).
  """
  T, B, D = xs.shape
  H = h0.shape[-1]
  dz2 = dzs.reshape(T * B, 4 * H)
  # Shifting h (a [T, B, H] copy) is cheaper than slicing dZ ([T, B, 4H]).
  h_prev = previous(hs, h0, reverse)
  if rmask is not None:
    h_prev = h_prev * rmask[None]
  dw_hh = matmul(h_prev.reshape(T * B, H).T, dz2, compute_dtype, precision)
  dw_ih = matmul(xs.reshape(T * B, D).T, dz2, compute_dtype, precision)
  db = dzs.sum(axis=(0, 1))
  dxs = matmul(dz2, params.w_ih.T, compute_dtype, precision).reshape(T, B, D)
  dparams = LSTMParams(
      w_ih=dw_ih.astype(params.w_ih.dtype),
      w_hh=dw_hh.astype(params.w_hh.dtype),
      b=db.astype(params.b.dtype),
  )
  return dparams, dxs.astype(xs.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def _scan(reverse, unroll, compute_dtype, precision, params, xs, mask, h0, c0, regs):
  ys, carry, _ = scan_forward(params, xs, mask, h0, c0, regs, reverse=reverse, unroll=unroll,
                              compute_dtype=compute_dtype, precision=precision,
                              save_residuals=False)
  return ys, carry


def _scan_fwd(reverse, unroll, compute_dtype, precision, params, xs, mask, h0, c0, regs):
  ys, carry, residuals = scan_forward(params, xs, mask, h0, c0, regs, reverse=reverse,
                                      unroll=unroll, compute_dtype=compute_dtype,
                                      precision=precision)
  return (ys, carry), (params, xs, mask, h0, c0, regs, residuals)


def _scan_bwd(reverse, unroll, compute_dtype, precision, saved, cotangents):
  params, xs, mask, h0, c0, regs, residuals = saved
  dys, (dh_n, dc_n) = cotangents
  dparams, dxs, dh0, dc0 = scan_backward(
      params, xs, mask, h0, c0, regs, residuals, dys, dh_n, dc_n, reverse=reverse,
      compute_dtype=compute_dtype, precision=precision)
  # The masks and regularization weights are constants: zero cotangents.
  return dparams, dxs, None, dh0, dc0, None


_scan.defvjp(_scan_fwd, _scan_bwd)
