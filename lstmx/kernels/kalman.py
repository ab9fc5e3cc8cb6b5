"""The Kalman smoother of ELK's damped Newton step, parallel over time, beside its references.

ELK (Gonzalez et al. 2024, "Towards Scalable and Stable Parallelization of
Nonlinear RNNs") damps a Newton sweep of s_t = f(s_{t-1}) the Levenberg-Marquardt
way: from the guess y = s^k, with the linearization s_t ~ F_t s_{t-1} + u_t
(F_t the [structured] Jacobian, u_t = f(y_{t-1}) - F_t y_{t-1}), the next
iterate minimizes

    sum_t |x_t - F_t x_{t-1} - u_t|^2 + lam sum_t |x_t - y_t|^2,   x_{-1} known,    (1)

(the caller folds x_{-1} into u_0 and sets F_0 = 0). (1) is the negative
log-posterior of the linear-Gaussian state-space model

    x_t = F_t x_{t-1} + u_t + w_t,  w_t ~ N(0, I);    y_t = x_t + v_t,  v_t ~ N(0, I / lam)

so its minimizer is the smoothed mean, computed exactly by a Kalman filter and
a Rauch-Tung-Striebel smoother. lam = 0 is the undamped Newton step (the
linear recurrence x_t = F_t x_{t-1} + u_t); lam -> inf stays at y.

Here both passes are associative scans of depth O(log T) (Sarkka and
Garcia-Fernandez 2021, "Temporal parallelization of Bayesian smoothers"):

* filter: the elements a_t = (A, b, C, eta, J) of the conditionals
  p(x_t | x_{t-1}, y_t) and likelihoods p(y_t | x_{t-1}), here (with
  rho = 1/(1+lam), kappa = lam/(1+lam), unit dynamics and observation maps)

      A = rho F_t,  b = rho u_t + kappa y_t,  C = rho I,
      eta = kappa F_t^T (y_t - u_t),  J = kappa F_t^T F_t,

  combined (i before j, M = (I + C_i J_j)^{-1}) as

      A = A_j M A_i,  b = A_j M (b_i + C_i eta_j) + b_j,  C = A_j M C_i A_j^T + C_j,
      eta = A_i^T M^T (eta_j - J_j b_i) + eta_i,  J = A_i^T M^T J_j A_i + J_i;

  the prefix products' (b, C) are the filtered means m_t and covariances P_t.
* smoother: the smoothed means solve the backward linear recurrence
  x_t = E_t x_{t+1} + g_t, E_t = P_t F_{t+1}^T (F_{t+1} P_t F_{t+1}^T + I)^{-1},
  g_t = m_t - E_t (F_{t+1} m_t + u_{t+1}) (E, g = 0, m at the last step): one
  reverse associative scan (the smoothed covariances are not needed).

Shapes: states [T, ..., n], matrices [T, ..., n, n] (any batch axes "...";
n = 1 for quasi-ELK's diagonal, 2 for the per-unit blocks, 2H for full ELK).
Small n (1, 2) use broadcast products and closed-form inverses.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# -- small dense matrices over batch axes ------------------------------------------------------


def _mm(a, b):
  """a @ b for [..., n, k] @ [..., k, m]."""
  if a.shape[-1] <= 2:
    return jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)
  return jnp.matmul(a, b)


def _mv(a, v):
  """a @ v for [..., n, k] @ [..., k]."""
  if a.shape[-1] <= 2:
    return jnp.sum(a * v[..., None, :], axis=-1)
  return jnp.einsum("...ij,...j->...i", a, v)


def _tr(a):
  return jnp.swapaxes(a, -1, -2)


def _inv(a):
  """a^{-1} for [..., n, n] (closed form for n <= 2)."""
  n = a.shape[-1]
  if n == 1:
    return 1.0 / a
  if n == 2:
    p, q, r, s = a[..., 0, 0], a[..., 0, 1], a[..., 1, 0], a[..., 1, 1]
    det = p * s - q * r
    return jnp.stack([jnp.stack([s, -q], -1), jnp.stack([-r, p], -1)], -2) / det[..., None, None]
  return jnp.linalg.inv(a)


def _eye_like(a):
  return jnp.broadcast_to(jnp.eye(a.shape[-1], dtype=a.dtype), a.shape)


def _lam(lam, dtype):
  lam = jnp.asarray(lam, dtype)
  return 1.0 / (1.0 + lam), lam / (1.0 + lam)


# -- the filter ----------------------------------------------------------------------------------


def filter_elements(F, u, y, lam):
  """The filter's scan elements (A, b, C, eta, J) of every step (module docstring).

  Args:
    F: [T, ..., n, n] dynamics (F_0 = 0: x_{-1} is folded into u_0).
    u: [T, ..., n] offsets; y: [T, ..., n] pseudo-observations; lam: scalar >= 0.
  """
  rho, kappa = _lam(lam, u.dtype)
  Ft = _tr(F)
  A = rho * F
  b = rho * u + kappa * y
  C = rho * _eye_like(F)
  eta = kappa * _mv(Ft, y - u)
  J = kappa * _mm(Ft, F)
  return A, b, C, eta, J


def filter_combine(first, second):
  """The elements of steps i..j from those of i..k (`first`) and k+1..j (`second`)."""
  A1, b1, C1, eta1, J1 = first
  A2, b2, C2, eta2, J2 = second
  M = _inv(_eye_like(C1) + _mm(C1, J2))
  A2M, MtT = _mm(A2, M), _tr(M)
  A1t = _tr(A1)
  A = _mm(A2M, A1)
  b = _mv(A2M, b1 + _mv(C1, eta2)) + b2
  C = _mm(_mm(A2M, C1), _tr(A2)) + C2
  A1tMt = _mm(A1t, MtT)
  eta = _mv(A1tMt, eta2 - _mv(J2, b1)) + eta1
  J = _mm(_mm(A1tMt, J2), A1) + J1
  return A, b, C, eta, J


def parallel_filter(F, u, y, lam):
  """Filtered means [T, ..., n] and covariances [T, ..., n, n] by one associative scan."""
  _, m, P, _, _ = jax.lax.associative_scan(filter_combine, filter_elements(F, u, y, lam))
  return m, P


def sequential_filter(F, u, y, lam):
  """The textbook Kalman filter (predict, update) by `lax.scan`: the reference."""
  lam = jnp.asarray(lam, u.dtype)

  def step(carry, inputs):
    m, P = carry
    F_t, u_t, y_t = inputs
    m_pred = _mv(F_t, m) + u_t
    P_pred = _mm(_mm(F_t, P), _tr(F_t)) + _eye_like(P)
    # K = P^- (P^- + I / lam)^{-1} = lam P^- (lam P^- + I)^{-1}: finite at lam = 0.
    K = lam * _mm(P_pred, _inv(lam * P_pred + _eye_like(P)))
    m_new = m_pred + _mv(K, y_t - m_pred)
    P_new = P_pred - _mm(K, P_pred)
    return (m_new, P_new), (m_new, P_new)

  zero_m = jnp.zeros_like(u[0])
  _, (m, P) = jax.lax.scan(step, (zero_m, jnp.zeros_like(F[0])), (F, u, y))
  return m, P


# -- the smoother --------------------------------------------------------------------------------


def _shift_back(a):
  return jnp.concatenate([a[1:], jnp.zeros_like(a[:1])], axis=0)


def smoother_elements(F, u, m, P):
  """(E, g) [T, ..., n, n], [T, ..., n] of x_t = E_t x_{t+1} + g_t from the filter's m, P."""
  F_next, u_next = _shift_back(F), _shift_back(u)  # zero after the last step: E = 0, g = m
  PFt = _mm(P, _tr(F_next))
  E = _mm(PFt, _inv(_mm(F_next, PFt) + _eye_like(P)))
  g = m - _mv(E, _mv(F_next, m) + u_next)
  return E, g


def _smoother_combine(later, earlier):
  E2, g2 = later
  E1, g1 = earlier
  return _mm(E1, E2), _mv(E1, g2) + g1


def smooth(F, u, y, lam):
  """The minimizer of (1) [T, ..., n]: parallel filter, then a reverse associative scan.

  Args:
    F: [T, ..., n, n] (F_0 = 0); u, y: [T, ..., n]; lam: scalar >= 0.
  """
  m, P = parallel_filter(F, u, y, lam)
  E, g = smoother_elements(F, u, m, P)
  _, x = jax.lax.associative_scan(_smoother_combine, (E, g), reverse=True)
  return x


def smooth_reference(F, u, y, lam):
  """`smooth` by the sequential filter and the textbook Rauch-Tung-Striebel pass."""
  m, P = sequential_filter(F, u, y, lam)
  F_next, u_next = _shift_back(F), _shift_back(u)

  def step(x_next, inputs):
    m_t, P_t, F_n, u_n = inputs
    P_pred = _mm(_mm(F_n, P_t), _tr(F_n)) + _eye_like(P_t)
    G = _mm(_mm(P_t, _tr(F_n)), _inv(P_pred))
    x = m_t + _mv(G, x_next - _mv(F_n, m_t) - u_n)
    return x, x

  _, x = jax.lax.scan(step, jnp.zeros_like(m[0]), (m, P, F_next, u_next), reverse=True)
  return x
