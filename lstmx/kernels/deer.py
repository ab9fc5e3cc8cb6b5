"""Parallel-in-time LSTM layers by Newton's method: ``deer``, ``block_deer``, ``quasi_deer``.

The layer's states s_t = (h_t, c_t) [B, 2H] solve s_t = f_t(s_{t-1}) for all t
at once (DEER, Lim et al. 2024; quasi-DEER, Gonzalez et al. 2024). From a
guess S^k = (s^k_0 .. s^k_{T-1}) (default: zeros), one Newton sweep
evaluates every step in parallel at the guess (two GEMMs over all T*B rows)
and solves the linearized recurrence

    s^{k+1}_t = f_t(s^k_{t-1}) + A_t (s^{k+1}_{t-1} - s^k_{t-1}),    s_{-1} = (h0, c0)

with `lax.associative_scan` (`lstmx.kernels.deer_linear`). A_t is the step's
Jacobian J_t (``deer``: [2H, 2H] per step, T (2H)^3 work), its per-unit 2x2
(h_j, c_j) blocks (``block_deer``) or its diagonal (``quasi_deer``). Whatever
A_t, s^{k+1}_t is exact wherever s^k_{t-1} was, so after k sweeps the first k
steps are exact and T sweeps give the sequential result: A_t only sets how
fast the rest converges (quadratically for DEER near the solution, linearly
for the approximations, and not at all where the recurrence is far from
contractive).

Stopping: after a sweep with max |S^{k+1} - S^k| < tol (default 1e-6 in
float32, 1e-12 in float64), or after ``min(max_iter, T)`` sweeps. The solve
is *converged* if it stopped on the tolerance (or ran all T sweeps) with
finite values; otherwise the layer falls back to the sequential scan, so a
result is never silently wrong. `newton_solve` returns the iteration count
and the flag.

Damping (a simple stand-in for ELK's Levenberg-Marquardt / Kalman-smoother
step, Gonzalez et al. 2024): ``damping=lam`` uses A_t / (1 + lam), which
interpolates between Newton (lam = 0) and the Picard / Jacobi iteration
s^{k+1}_t = f_t(s^k_{t-1}) (lam -> inf), whose linear recurrence is trivially
stable. The exactness of the first k steps holds for every lam.

Gradients (`jax.custom_vjp`), by the implicit-function theorem at the solution
S: the adjoints lam_t = dL/ds_t solve the reverse linear recurrence

    lam_t = g_t + J_{t+1}^T lam_{t+1}          (g_t: the cotangent of s_t)

and then one vector-Jacobian product of all T steps at once gives the
parameter, input and initial-state gradients. ``deer`` solves it with one
reverse associative scan over (J_{t+1}^T, g_t). The approximate methods keep
their structured A in the scan and iterate on the rest (a preconditioned
Richardson iteration, exact for the first k steps from the end after k sweeps):

    lam^{k+1}_t = A_{t+1}^T lam^{k+1}_{t+1} + g_t + (J_{t+1} - A_{t+1})^T lam^k_{t+1}

where J^T lam is one batched VJP. It stops on max |lam^{k+1} - lam^k| < tol *
max(1, max |lam^{k+1}|) and falls back to a sequential reverse scan otherwise.

Masked steps pass the carry through (their Jacobian is the identity) and
output zero; recurrent dropout and zoneout are part of f_t. ``reverse=True``
flips time around the solve. ``unroll`` is ignored; ``remat_every`` is refused.
Opt-in by name only: ``auto`` never picks these backends.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp

from lstmx.kernels.cell import cell_forward
from lstmx.kernels.contract import (BACKENDS, KernelOptions, LayerBackend, LayerMasks,
                                    layer_function)
from lstmx.kernels.deer_linear import (METHODS, STRUCTURES, cut_recurrent, jacobian,
                                       linear_scan, reverse_linear_scan, scale, shift_back,
                                       zero_first)
from lstmx.kernels.gemm import input_projection, recurrent_matmul
from lstmx.params import LSTMParams

DEFAULT_MAX_ITER = 100


@dataclasses.dataclass(frozen=True)
class NewtonOptions:
  """Static settings of a Newton solve (hashable: a custom-VJP static argument).

  Attributes:
    method: ``"deer"`` (full Jacobian), ``"block_deer"`` (per-unit 2x2 blocks) or
      ``"quasi_deer"`` (diagonal).
    max_iter: the most Newton sweeps (capped at T, where the result is exact).
    tol: stop when max |S^{k+1} - S^k| < tol; None: 1e-6 for float32 (and
      narrower) states, 1e-12 for float64.
    damping: lam >= 0; the sweeps use A_t / (1 + lam) (module docstring).
    fallback: run the sequential scan when the solve did not converge (the
      layer always does; `newton_solve` may skip it to expose the raw iterate).
  """

  method: str = "quasi_deer"
  max_iter: int = DEFAULT_MAX_ITER
  tol: float | None = None
  damping: float = 0.0
  fallback: bool = True

  def __post_init__(self):
    if self.method not in METHODS:
      raise ValueError(f"method must be one of {METHODS}; got method={self.method!r}")
    if not isinstance(self.max_iter, int) or isinstance(self.max_iter, bool) or self.max_iter < 1:
      raise ValueError(f"max_iter must be a positive int; got max_iter={self.max_iter!r}")
    if self.tol is not None and not (isinstance(self.tol, (int, float)) and self.tol > 0
                                     and math.isfinite(self.tol)):
      raise ValueError(f"tol must be None or a positive finite float; got tol={self.tol!r}")
    if not (isinstance(self.damping, (int, float)) and 0 <= self.damping < math.inf):
      raise ValueError(f"damping must be a finite float >= 0; got damping={self.damping!r}")

  def tolerance(self, dtype) -> float:
    """`tol`, or the default for states of `dtype`."""
    if self.tol is not None:
      return float(self.tol)
    return 1e-12 if jnp.dtype(dtype).itemsize >= 8 else 1e-6


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class NewtonResult:
  """What `newton_solve` found.

  Attributes:
    hs, cs: [T, B, H] the states after every step (the sequential fallback's
      when the solve did not converge and `fallback` was on).
    iterations: int32 scalar, the Newton sweeps run.
    converged: bool scalar, the stopping rule was met with finite values.
    error: the last max |S^{k+1} - S^k|.
  """

  hs: jax.Array
  cs: jax.Array
  iterations: jax.Array
  converged: jax.Array
  error: jax.Array


@dataclasses.dataclass(frozen=True)
class _Static:
  newton: NewtonOptions
  compute_dtype: object = None
  precision: object = None


def _one(a):
  return None if a is None else a[None]


def _project(static: _Static, params: LSTMParams, xs, dtype):
  """x_t W_ih + b for every step: [T, B, 4H]."""
  xp = input_projection(xs, params.w_ih, static.compute_dtype, static.precision).astype(dtype)
  return xp + params.b.astype(dtype)[None, None, :]


def _step(static: _Static, w_hh, xp, s_prev, mask, r, zh, zc, *, cut: bool = False):
  """Every step at once from the given entering states: s_prev [T, B, 2H] -> [T, B, 2H].

  `cut` keeps only the diagonal derivative of the recurrent matmul
  (`lstmx.kernels.deer_linear.cut_recurrent`); the value is the same.
  """
  H = s_prev.shape[-1] // 2
  h, c = s_prev[..., :H], s_prev[..., H:]
  rm = _one(r)
  rec = recurrent_matmul(h, w_hh, rm, static.compute_dtype, static.precision).astype(h.dtype)
  if cut:
    rec = cut_recurrent(h, rec, w_hh, rm)
  valid = None if mask is None else mask[:, :, None]
  _, h_t, c_t = cell_forward(xp + rec, h, c, zoneout_h=zh, zoneout_c=zc, valid=valid)
  return jnp.concatenate([h_t, c_t], axis=-1)


def _linearized(static: _Static, w_hh, xp, s_prev, regs, *, exact: bool = False):
  """(f(s_prev) [T, B, 2H], the method's Jacobian at s_prev; the full one if `exact`)."""
  method = "deer" if exact else static.newton.method
  f = lambda sp: _step(static, w_hh, xp, sp, *regs, cut=method != "deer")  # noqa: E731
  value, f_jvp = jax.linearize(f, s_prev)
  return value, jacobian(method, f_jvp, s_prev)


def _previous(S, s0):
  return jnp.concatenate([s0[None], S[:-1]], axis=0)


def _sweep(static: _Static, w_hh, xp, s0, regs, S):
  """One Newton sweep: S^k -> S^{k+1} (module docstring)."""
  structure = STRUCTURES[static.newton.method]
  S_prev = _previous(S, s0)
  F, J = _linearized(static, w_hh, xp, S_prev, regs)
  if static.newton.damping:
    J = scale(J, 1.0 / (1.0 + static.newton.damping))
  A = zero_first(J)  # s_{-1} is known: s_0 = f_0(s0)
  return linear_scan(structure, A, F - structure.apply(A, S_prev))


def _sequential(static: _Static, w_hh, xp, s0, regs):
  """The plain sequential scan of `_step`: [T, B, 2H]."""
  mask, r, zh, zc = regs

  def step(s, inputs):
    xp_t, m_t, zh_t, zc_t = inputs
    s = _step(static, w_hh, xp_t[None], s[None], _one(m_t), r, _one(zh_t), _one(zc_t))[0]
    return s, s

  _, S = jax.lax.scan(step, s0, (xp, mask, zh, zc))
  return S


def _newton(static: _Static, w_hh, xp, s0, regs, guess):
  """Newton sweeps until the stopping rule: (S, iterations, error, converged)."""
  T = xp.shape[0]
  max_iter = min(static.newton.max_iter, T)
  tol = static.newton.tolerance(s0.dtype)

  def cond(state):
    _, k, err = state
    return (k < max_iter) & (err >= tol)  # False on NaN: a diverged solve stops

  def body(state):
    S, k, _ = state
    S_new = _sweep(static, w_hh, xp, s0, regs, S)
    return S_new, k + 1, jnp.max(jnp.abs(S_new - S))

  init = (guess, jnp.zeros((), jnp.int32), jnp.asarray(jnp.inf, s0.dtype))
  S, k, err = jax.lax.while_loop(cond, body, init)
  converged = jnp.all(jnp.isfinite(S)) & ((err < tol) | (k >= T))
  return S, k, err, converged


def _forward(static: _Static, params: LSTMParams, xs, mask, s0, r, zh, zc, guess):
  xp = _project(static, params, xs, s0.dtype)
  regs = (mask, r, zh, zc)
  if guess is None:
    guess = jnp.broadcast_to(s0, (xs.shape[0],) + s0.shape)
  S, k, err, converged = _newton(static, params.w_hh, xp, s0, regs, guess)
  if static.newton.fallback:
    S = jax.lax.cond(converged, lambda: S,
                     lambda: _sequential(static, params.w_hh, xp, s0, regs))
  return S, k, err, converged


def _adjoint(static: _Static, w_hh, xp, S_prev, regs, G):
  """lam [T, B, 2H] of lam_t = g_t + J_{t+1}^T lam_{t+1} (module docstring)."""
  method = static.newton.method
  structure = STRUCTURES[method]
  T = G.shape[0]
  _, D = _linearized(static, w_hh, xp, S_prev, regs)
  A = shift_back(structure.transpose(D))  # A_t = D_{t+1}^T; zero at T - 1
  if method == "deer":
    lam = reverse_linear_scan(structure, A, G)
    converged = jnp.all(jnp.isfinite(lam))
  else:
    f = lambda sp: _step(static, w_hh, xp, sp, *regs)  # noqa: E731
    _, f_vjp = jax.vjp(f, S_prev)
    tol = static.newton.tolerance(G.dtype)
    max_iter = min(static.newton.max_iter, T)

    def cond(state):
      _, k, err, bound = state
      return (k < max_iter) & (err >= bound)

    def body(state):
      lam, k, _, _ = state
      later = shift_back(lam)
      c = G + shift_back(f_vjp(lam)[0]) - structure.apply(A, later)
      new = reverse_linear_scan(structure, A, c)
      bound = tol * jnp.maximum(1.0, jnp.max(jnp.abs(new)))
      return new, k + 1, jnp.max(jnp.abs(new - lam)), bound

    one = jnp.ones((), G.dtype)
    lam, k, err, bound = jax.lax.while_loop(
        cond, body, (jnp.zeros_like(G), jnp.zeros((), jnp.int32), jnp.inf * one, one))
    converged = jnp.all(jnp.isfinite(lam)) & ((err < bound) | (k >= T))
  return jax.lax.cond(converged, lambda: lam,
                      lambda: _sequential_adjoint(static, w_hh, xp, S_prev, regs, G))


def _sequential_adjoint(static: _Static, w_hh, xp, S_prev, regs, G):
  """The adjoint recurrence by a sequential reverse scan of per-step VJPs."""
  mask, r, zh, zc = regs

  def step(mu, inputs):
    g_t, sp_t, xp_t, m_t, zh_t, zc_t = inputs
    lam_t = g_t + mu
    f = lambda s: _step(static, w_hh, xp_t[None], s[None], _one(m_t), r, _one(zh_t),  # noqa: E731
                        _one(zc_t))[0]
    _, vjp = jax.vjp(f, sp_t)
    return vjp(lam_t)[0], lam_t

  _, lam = jax.lax.scan(step, jnp.zeros_like(G[0]), (G, S_prev, xp, mask, zh, zc),
                        reverse=True)
  return lam


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _solve(static, params, xs, mask, s0, r, zh, zc, guess):
  return _forward(static, params, xs, mask, s0, r, zh, zc, guess)[0]


def _solve_fwd(static, params, xs, mask, s0, r, zh, zc, guess):
  S = _forward(static, params, xs, mask, s0, r, zh, zc, guess)[0]
  return S, (params, xs, mask, s0, r, zh, zc, S)


def _solve_bwd(static, saved, dS):
  params, xs, mask, s0, r, zh, zc, S = saved
  regs = (mask, r, zh, zc)
  S_prev = _previous(S, s0)

  def f(p, x, sp):
    return _step(static, p.w_hh, _project(static, p, x, s0.dtype), sp, *regs)

  _, f_vjp = jax.vjp(f, params, xs, S_prev)
  xp = _project(static, params, xs, s0.dtype)
  lam = _adjoint(static, params.w_hh, xp, S_prev, regs, dS.astype(S.dtype))
  dparams, dxs, dS_prev = f_vjp(lam)
  # The masks and regularization weights are constants; the guess does not move S.
  return dparams, dxs, None, dS_prev[0], None, None, None, None


_solve.defvjp(_solve_fwd, _solve_bwd)


def _time_flip(a):
  return None if a is None else jnp.flip(a, axis=0)


def newton_layer(params: LSTMParams, xs, mask, h0, c0, masks: LayerMasks,
                 options: KernelOptions, *, method: str = "quasi_deer",
                 max_iter: int = DEFAULT_MAX_ITER, tol: float | None = None,
                 damping: float = 0.0, guess: tuple[jax.Array, jax.Array] | None = None):
  """The layer contract (`lstmx.kernels.contract`) by Newton sweeps over time.

  Args beyond the contract's: `NewtonOptions`' method, max_iter, tol and
  damping, and `guess`, an optional warm start (hs, cs) each [T, B, H] in the
  layer's own time order (reversed with ``options.reverse``), e.g. the states
  of the previous training step. Non-converged solves fall back to the
  sequential scan.
  """
  BACKENDS.get(method).require(options, masks)
  newton = NewtonOptions(method=method, max_iter=max_iter, tol=tol, damping=damping)
  static = _Static(newton, options.compute_dtype, options.precision)
  T, B, _ = xs.shape
  H = h0.shape[-1]
  km = masks.for_kernel(T, B, H, h0.dtype)
  S_guess = None if guess is None else jnp.concatenate(guess, axis=-1).astype(h0.dtype)
  flip = _time_flip if options.reverse else (lambda a: a)
  S = _solve(static, params, flip(xs), flip(mask), jnp.concatenate([h0, c0], axis=-1),
             km.recurrent, flip(km.zoneout_h), flip(km.zoneout_c), flip(S_guess))
  hs = S[..., :H]
  ys = hs if mask is None else jnp.where(flip(mask)[:, :, None], hs, jnp.zeros((), hs.dtype))
  return flip(ys), (S[-1, :, :H], S[-1, :, H:])


def newton_solve(params: LSTMParams, xs, h0, c0, *, mask=None, masks: LayerMasks = LayerMasks(),
                 newton: NewtonOptions = NewtonOptions(), guess=None, compute_dtype=None,
                 precision=None) -> NewtonResult:
  """The forward solve with its statistics (no gradients; forward time order).

  Args:
    params: `LSTMParams`; xs [T, B, D]; h0, c0 [B, H]; mask [T, B] | None;
      masks: in-kernel `LayerMasks`.
    newton: `NewtonOptions` (with ``fallback=False`` the raw last iterate).
    guess: optional (hs, cs) each [T, B, H], the warm start.

  Returns:
    `NewtonResult`.
  """
  static = _Static(newton, compute_dtype, precision)
  T, B, _ = xs.shape
  H = h0.shape[-1]
  km = masks.for_kernel(T, B, H, h0.dtype)
  S_guess = None if guess is None else jnp.concatenate(guess, axis=-1).astype(h0.dtype)
  S, k, err, converged = _forward(static, params, xs, mask, jnp.concatenate([h0, c0], -1),
                                  km.recurrent, km.zoneout_h, km.zoneout_c, S_guess)
  return NewtonResult(S[..., :H], S[..., H:], k, converged, err)


def newton_trace(params: LSTMParams, xs, h0, c0, *, method: str, num_iter: int,
                 damping: float = 0.0, reference=None) -> jax.Array:
  """max |S^k - S| over all steps and units after each of `num_iter` sweeps from
  zeros, S the sequential solution (or `reference`, (hs, cs) [T, B, H]): [num_iter].

  The iteration count "to within eps of the sequential scan" is the first k with
  trace[k - 1] < eps (`iterations_to`).
  """
  static = _Static(NewtonOptions(method=method, damping=damping))
  xp = _project(static, params, xs, h0.dtype)
  s0 = jnp.concatenate([h0, c0], -1)
  regs = (None, None, None, None)
  exact = (_sequential(static, params.w_hh, xp, s0, regs) if reference is None
           else jnp.concatenate(reference, -1))

  def body(S, _):
    S = _sweep(static, params.w_hh, xp, s0, regs, S)
    err = jnp.max(jnp.abs(S - exact))
    return S, jnp.where(jnp.isfinite(err), err, jnp.inf)

  _, errs = jax.lax.scan(body, jnp.broadcast_to(s0, exact.shape), None, length=num_iter)
  return errs


def iterations_to(trace, eps: float) -> int | None:
  """The first k (1-based) with trace[k - 1] < eps; None if none (on the host)."""
  import numpy as np  # noqa: PLC0415
  hits = np.flatnonzero(np.asarray(trace) < eps)
  return int(hits[0]) + 1 if hits.size else None


def newton_backend(method: str, name: str | None = None, **newton_options) -> LayerBackend:
  """A `LayerBackend` running `newton_layer` with fixed options, e.g.
  ``BACKENDS.register("quasi_500", newton_backend("quasi_deer", "quasi_500", max_iter=500))``."""
  return LayerBackend(name or method,
                      functools.partial(newton_layer, method=method, **newton_options))


for _method in METHODS:
  BACKENDS.register(_method, newton_backend(_method))


def _keyword_layer(method: str):
  return layer_function(
      functools.partial(newton_layer, method=method), f"lstm_layer_{method}",
      f"One layer, one direction, time-major, by Newton sweeps ({method}; "
      "`lstmx.kernels.deer`).",
      {"max_iter, tol, damping": "`NewtonOptions`'.",
       "guess": "optional warm start (hs, cs) each [T, B, H] in the layer's time order."})


lstm_layer_deer = _keyword_layer("deer")
lstm_layer_block_deer = _keyword_layer("block_deer")
lstm_layer_quasi_deer = _keyword_layer("quasi_deer")
