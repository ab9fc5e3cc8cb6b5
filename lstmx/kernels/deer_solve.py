"""The Newton solver behind `lstmx.kernels.deer`: the steps, a sweep, the loop, the IFT backward.

The states S = (s_0 .. s_{T-1}) [T, B, 2H], s_t = (h_t, c_t), solve s_t = f_t(s_{t-1})
(s_{-1} = (h0, c0)). `sweep` maps a guess S^k to S^{k+1} (`lstmx.kernels.deer`'s
docstring has the equations and the damping); `newton` loops it under the stopping
rule; `forward` adds the sequential fallback; `solve` is the custom-VJP solve whose
backward solves the adjoint recurrence at the solution (implicit-function theorem).
Everything takes a `Static` (the `NewtonOptions` and the GEMMs' dtype/precision).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp

from lstmx.kernels.cell import cell_forward
from lstmx.kernels.deer_linear import (STRUCTURES, cut_recurrent, damped_scan, jacobian,
                                       linear_scan, reverse_linear_scan, scale, shift_back,
                                       zero_first)
from lstmx.kernels.gemm import input_projection, recurrent_matmul
from lstmx.params import LSTMParams


@dataclasses.dataclass(frozen=True)
class Static:
  """The solve's static settings: ``newton`` a `lstmx.kernels.deer.NewtonOptions`."""

  newton: Any
  compute_dtype: object = None
  precision: object = None


def one(a):
  """a[None] (a leading length-1 time axis), or None."""
  return None if a is None else a[None]


def project(static: Static, params: LSTMParams, xs, dtype):
  """x_t W_ih + b for every step: [T, B, 4H]."""
  xp = input_projection(xs, params.w_ih, static.compute_dtype, static.precision).astype(dtype)
  return xp + params.b.astype(dtype)[None, None, :]


def step(static: Static, w_hh, xp, s_prev, mask, r, zh, zc, *, cut: bool = False):
  """Every step at once from the given entering states: s_prev [T, B, 2H] -> [T, B, 2H].

  `cut` keeps only the diagonal derivative of the recurrent matmul
  (`lstmx.kernels.deer_linear.cut_recurrent`); the value is the same.
  """
  H = s_prev.shape[-1] // 2
  h, c = s_prev[..., :H], s_prev[..., H:]
  rm = one(r)
  rec = recurrent_matmul(h, w_hh, rm, static.compute_dtype, static.precision).astype(h.dtype)
  if cut:
    rec = cut_recurrent(h, rec, w_hh, rm)
  valid = None if mask is None else mask[:, :, None]
  _, h_t, c_t = cell_forward(xp + rec, h, c, zoneout_h=zh, zoneout_c=zc, valid=valid)
  return jnp.concatenate([h_t, c_t], axis=-1)


def linearized(static: Static, w_hh, xp, s_prev, regs, *, exact: bool = False):
  """(f(s_prev) [T, B, 2H], the method's Jacobian at s_prev; the full one if `exact`)."""
  method = "deer" if exact else static.newton.method
  f = lambda sp: step(static, w_hh, xp, sp, *regs, cut=method != "deer")  # noqa: E731
  value, f_jvp = jax.linearize(f, s_prev)
  return value, jacobian(method, f_jvp, s_prev)


def previous(S, s0):
  """The entering states (s_{-1} .. s_{T-2}) [T, B, 2H]."""
  return jnp.concatenate([s0[None], S[:-1]], axis=0)


def sweep(static: Static, w_hh, xp, s0, regs, S):
  """One Newton sweep S^k -> S^{k+1}, and max |S^k - f(S^k_prev)| (the residual at S^k)."""
  newton = static.newton
  structure = STRUCTURES[newton.method]
  S_prev = previous(S, s0)
  F, J = linearized(static, w_hh, xp, S_prev, regs)
  if newton.damping and newton.damping_method == "scale":
    J = scale(J, 1.0 / (1.0 + newton.damping))
  A = zero_first(J)  # s_{-1} is known: s_0 = f_0(s0)
  b = F - structure.apply(A, S_prev)
  if newton.elk:
    S_new = damped_scan(structure, A, b, S, newton.damping)
  else:
    S_new = linear_scan(structure, A, b)
  return S_new, jnp.max(jnp.abs(S - F))


def sequential(static: Static, w_hh, xp, s0, regs):
  """The plain sequential scan of `step`: [T, B, 2H]."""
  mask, r, zh, zc = regs

  def body(s, inputs):
    xp_t, m_t, zh_t, zc_t = inputs
    s = step(static, w_hh, xp_t[None], s[None], one(m_t), r, one(zh_t), one(zc_t))[0]
    return s, s

  _, S = jax.lax.scan(body, s0, (xp, mask, zh, zc))
  return S


def newton(static: Static, w_hh, xp, s0, regs, guess):
  """Newton sweeps until the stopping rule: (S, iterations, error, converged).

  error: max |S^{k+1} - S^k| of the last sweep (ELK: the larger of it and the
  residual max |S^k - f(S^k_prev)|, since a damped step can be small far from the
  solution). Converged: error < tol with finite values, or (undamped or
  ``"scale"``-damped) all T sweeps run, which are exact.
  """
  T = xp.shape[0]
  max_iter = min(static.newton.max_iter, T)
  tol = static.newton.tolerance(s0.dtype)
  elk = static.newton.elk

  def cond(state):
    _, k, err = state
    return (k < max_iter) & (err >= tol)  # False on NaN: a diverged solve stops

  def body(state):
    S, k, _ = state
    S_new, residual = sweep(static, w_hh, xp, s0, regs, S)
    err = jnp.max(jnp.abs(S_new - S))
    return S_new, k + 1, jnp.maximum(err, residual) if elk else err

  init = (guess, jnp.zeros((), jnp.int32), jnp.asarray(jnp.inf, s0.dtype))
  S, k, err = jax.lax.while_loop(cond, body, init)
  exact = (err < tol) if elk else ((err < tol) | (k >= T))
  return S, k, err, jnp.all(jnp.isfinite(S)) & exact


def forward(static: Static, params: LSTMParams, xs, mask, s0, r, zh, zc, guess):
  """`newton` from `guess` (None: s0 everywhere), then the fallback if asked and needed."""
  xp = project(static, params, xs, s0.dtype)
  regs = (mask, r, zh, zc)
  if guess is None:
    guess = jnp.broadcast_to(s0, (xs.shape[0],) + s0.shape)
  S, k, err, converged = newton(static, params.w_hh, xp, s0, regs, guess)
  if static.newton.fallback:
    S = jax.lax.cond(converged, lambda: S,
                     lambda: sequential(static, params.w_hh, xp, s0, regs))
  return S, k, err, converged


def adjoint(static: Static, w_hh, xp, S_prev, regs, G):
  """lam [T, B, 2H] of lam_t = g_t + J_{t+1}^T lam_{t+1} (`lstmx.kernels.deer`)."""
  method = static.newton.method
  structure = STRUCTURES[method]
  T = G.shape[0]
  _, D = linearized(static, w_hh, xp, S_prev, regs)
  A = shift_back(structure.transpose(D))  # A_t = D_{t+1}^T; zero at T - 1
  if method == "deer":
    lam = reverse_linear_scan(structure, A, G)
    converged = jnp.all(jnp.isfinite(lam))
  else:
    f = lambda sp: step(static, w_hh, xp, sp, *regs)  # noqa: E731
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

    one_ = jnp.ones((), G.dtype)
    lam, k, err, bound = jax.lax.while_loop(
        cond, body, (jnp.zeros_like(G), jnp.zeros((), jnp.int32), jnp.inf * one_, one_))
    converged = jnp.all(jnp.isfinite(lam)) & ((err < bound) | (k >= T))
  return jax.lax.cond(converged, lambda: lam,
                      lambda: sequential_adjoint(static, w_hh, xp, S_prev, regs, G))


def sequential_adjoint(static: Static, w_hh, xp, S_prev, regs, G):
  """The adjoint recurrence by a sequential reverse scan of per-step VJPs."""
  mask, r, zh, zc = regs

  def body(mu, inputs):
    g_t, sp_t, xp_t, m_t, zh_t, zc_t = inputs
    lam_t = g_t + mu
    f = lambda s: step(static, w_hh, xp_t[None], s[None], one(m_t), r, one(zh_t),  # noqa: E731
                       one(zc_t))[0]
    _, vjp = jax.vjp(f, sp_t)
    return vjp(lam_t)[0], lam_t

  _, lam = jax.lax.scan(body, jnp.zeros_like(G[0]), (G, S_prev, xp, mask, zh, zc),
                        reverse=True)
  return lam


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def solve(static, params, xs, mask, s0, r, zh, zc, guess):
  """The states S [T, B, 2H] (`forward`), differentiable by the implicit-function theorem."""
  return forward(static, params, xs, mask, s0, r, zh, zc, guess)[0]


def _solve_fwd(static, params, xs, mask, s0, r, zh, zc, guess):
  S = forward(static, params, xs, mask, s0, r, zh, zc, guess)[0]
  return S, (params, xs, mask, s0, r, zh, zc, S)


def _solve_bwd(static, saved, dS):
  params, xs, mask, s0, r, zh, zc, S = saved
  regs = (mask, r, zh, zc)
  S_prev = previous(S, s0)

  def f(p, x, sp):
    return step(static, p.w_hh, project(static, p, x, s0.dtype), sp, *regs)

  _, f_vjp = jax.vjp(f, params, xs, S_prev)
  xp = project(static, params, xs, s0.dtype)
  lam = adjoint(static, params.w_hh, xp, S_prev, regs, dS.astype(S.dtype))
  dparams, dxs, dS_prev = f_vjp(lam)
  # The masks and regularization weights are constants; the guess does not move S.
  return dparams, dxs, None, dS_prev[0], None, None, None, None


solve.defvjp(_solve_fwd, _solve_bwd)
