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

The solver itself lives in `lstmx.kernels.deer_solve`; this module holds the
options, the public functions and the backend registration.

Stopping: after a sweep with max |S^{k+1} - S^k| < tol (default 1e-6 in
float32, 1e-12 in float64), or after ``min(max_iter, T)`` sweeps. The solve
is *converged* if it stopped on the tolerance (or, without ELK's damping, ran
all T sweeps) with finite values; otherwise the layer falls back to the sequential scan, so a
result is never silently wrong. `newton_solve` returns the iteration count
and the flag.

Damping (``damping=lam > 0``; ``damping_method``):

* ``"elk"`` (default; ELK, Gonzalez et al. 2024): the Levenberg-Marquardt step.
  With b_t = f_t(s^k_{t-1}) - A_t s^k_{t-1}, S^{k+1} minimizes

      sum_t |s_t - A_t s_{t-1} - b_t|^2 + lam sum_t |s_t - s^k_t|^2,

  the smoothed mean of a linear-Gaussian state-space model (dynamics A_t, unit
  noise; pseudo-observations s^k_t with variance 1/lam), solved exactly by a
  parallel Kalman filter + RTS smoother (`lstmx.kernels.kalman`, two associative
  scans; per coordinate for ``quasi_deer``, per unit for ``block_deer``, jointly
  for ``deer``). lam -> 0 is the Newton step; large lam a short step
  (about (1/lam) times the merit's negative gradient: a trust region of radius
  ~1/lam around S^k), which keeps the iterates bounded where the undamped
  linear recurrence blows up. The first k steps are no longer exact after k
  sweeps, so the stopping rule also requires the residual
  max |S^k - f(S^k_prev)| < tol and running all T sweeps proves nothing.
  lam is fixed (no step acceptance), so the true merit sum |s_t - f(s_{t-1})|^2
  need not fall at every sweep. (The paper's released code takes the filtered
  means; the smoothed mean here is the exact minimizer above.)
* ``"scale"``: the cheap heuristic A_t / (1 + lam), interpolating between Newton
  (lam = 0) and the Picard / Jacobi iteration s^{k+1}_t = f_t(s^k_{t-1})
  (lam -> inf); the first k steps stay exact. Not ELK.

Both keep the fixed point (the sequential solution), so the gradients below do
not depend on the damping.

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

from lstmx.kernels.contract import (BACKENDS, KernelOptions, LayerBackend, LayerMasks,
                                    layer_function)
from lstmx.kernels.deer_linear import METHODS
from lstmx.kernels.deer_solve import Static, forward, project, sequential, solve, step, sweep
from lstmx.params import LSTMParams

DAMPING_METHODS = ("elk", "scale")
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
    damping: lam >= 0; 0 is Newton's step, lam > 0 damps it (module docstring).
    damping_method: ``"elk"`` (the Levenberg-Marquardt step by a Kalman smoother)
      or ``"scale"`` (A_t / (1 + lam)).
    fallback: run the sequential scan when the solve did not converge (the
      layer always does; `newton_solve` may skip it to expose the raw iterate).
  """

  method: str = "quasi_deer"
  max_iter: int = DEFAULT_MAX_ITER
  tol: float | None = None
  damping: float = 0.0
  damping_method: str = "elk"
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
    if self.damping_method not in DAMPING_METHODS:
      raise ValueError(f"damping_method must be one of {DAMPING_METHODS}; "
                       f"got damping_method={self.damping_method!r}")

  @property
  def elk(self) -> bool:
    """Whether the sweeps take ELK's damped (Kalman-smoother) step."""
    return self.damping > 0 and self.damping_method == "elk"

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
    error: the last max |S^{k+1} - S^k| (ELK: or the residual, if larger).
  """

  hs: jax.Array
  cs: jax.Array
  iterations: jax.Array
  converged: jax.Array
  error: jax.Array


def _time_flip(a):
  return None if a is None else jnp.flip(a, axis=0)


def newton_layer(params: LSTMParams, xs, mask, h0, c0, masks: LayerMasks,
                 options: KernelOptions, *, method: str = "quasi_deer",
                 max_iter: int = DEFAULT_MAX_ITER, tol: float | None = None,
                 damping: float = 0.0, damping_method: str = "elk",
                 guess: tuple[jax.Array, jax.Array] | None = None):
  """The layer contract (`lstmx.kernels.contract`) by Newton sweeps over time.

  Args beyond the contract's: `NewtonOptions`' method, max_iter, tol,
  damping and damping_method, and `guess`, an optional warm start (hs, cs) each [T, B, H] in the
  layer's own time order (reversed with ``options.reverse``), e.g. the states
  of the previous training step. Non-converged solves fall back to the
  sequential scan.
  """
  BACKENDS.get(method).require(options, masks)
  newton = NewtonOptions(method=method, max_iter=max_iter, tol=tol, damping=damping,
                         damping_method=damping_method)
  static = Static(newton, options.compute_dtype, options.precision)
  T, B, _ = xs.shape
  H = h0.shape[-1]
  km = masks.for_kernel(T, B, H, h0.dtype)
  S_guess = None if guess is None else jnp.concatenate(guess, axis=-1).astype(h0.dtype)
  flip = _time_flip if options.reverse else (lambda a: a)
  S = solve(static, params, flip(xs), flip(mask), jnp.concatenate([h0, c0], axis=-1),
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
  static = Static(newton, compute_dtype, precision)
  T, B, _ = xs.shape
  H = h0.shape[-1]
  km = masks.for_kernel(T, B, H, h0.dtype)
  S_guess = None if guess is None else jnp.concatenate(guess, axis=-1).astype(h0.dtype)
  S, k, err, converged = forward(static, params, xs, mask, jnp.concatenate([h0, c0], -1),
                                 km.recurrent, km.zoneout_h, km.zoneout_c, S_guess)
  return NewtonResult(S[..., :H], S[..., H:], k, converged, err)


def newton_trace(params: LSTMParams, xs, h0, c0, *, method: str, num_iter: int,
                 damping: float = 0.0, damping_method: str = "elk", reference=None,
                 measure: str = "error") -> jax.Array:
  """A measure of each of `num_iter` sweeps' iterate S^k from s0 everywhere: [num_iter].

  measure: ``"error"``: max |S^k - S| over all steps and units, S the sequential
  solution (or `reference`, (hs, cs) [T, B, H]); ``"residual"``: max |S^k -
  f(S^k_prev)|; ``"merit"``: sum |S^k - f(S^k_prev)|^2 / 2 (the Newton / ELK
  objective). Non-finite values read inf.

  The iteration count "to within eps of the sequential scan" is the first k with
  trace[k - 1] < eps (`iterations_to`).
  """
  if measure not in ("error", "residual", "merit"):
    raise ValueError(f"measure must be 'error', 'residual' or 'merit'; got measure={measure!r}")
  static = Static(NewtonOptions(method=method, damping=damping, damping_method=damping_method))
  xp = project(static, params, xs, h0.dtype)
  s0 = jnp.concatenate([h0, c0], -1)
  regs = (None, None, None, None)
  exact = None
  if measure == "error":
    exact = (sequential(static, params.w_hh, xp, s0, regs) if reference is None
             else jnp.concatenate(reference, -1))

  def body(S, _):
    S = sweep(static, params.w_hh, xp, s0, regs, S)[0]
    if measure == "error":
      value = jnp.max(jnp.abs(S - exact))
    else:
      r = S - step(static, params.w_hh, xp, jnp.concatenate([s0[None], S[:-1]]), *regs)
      value = jnp.max(jnp.abs(r)) if measure == "residual" else 0.5 * jnp.sum(r * r)
    return S, jnp.where(jnp.isfinite(value), value, jnp.inf)

  _, values = jax.lax.scan(body, jnp.broadcast_to(s0, xp.shape[:2] + s0.shape[-1:]), None,
                           length=num_iter)
  return values


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
      {"max_iter, tol, damping, damping_method": "`NewtonOptions`'.",
       "guess": "optional warm start (hs, cs) each [T, B, H] in the layer's time order."})


lstm_layer_deer = _keyword_layer("deer")
lstm_layer_block_deer = _keyword_layer("block_deer")
lstm_layer_quasi_deer = _keyword_layer("quasi_deer")
