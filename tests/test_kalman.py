"""The parallel Kalman smoother behind ELK (`lstmx.kernels.kalman`), float64: against the
sequential filter + RTS smoother and the dense solution of the regularized least squares

    min_x sum_t |x_t - F_t x_{t-1} - u_t|^2 + lam sum_t |x_t - y_t|^2     (F_0 = 0).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstmx.kernels import kalman

# Jitted once per shape (eager associative scans dispatch hundreds of small ops).
smooth = jax.jit(kalman.smooth)
smooth_reference = jax.jit(kalman.smooth_reference)
parallel_filter = jax.jit(kalman.parallel_filter)
sequential_filter = jax.jit(kalman.sequential_filter)


def _problem(T, batch, n, *, scale=1.2, seed=0):
  rng = np.random.default_rng(seed)
  F = scale * rng.standard_normal((T, batch, n, n)) / np.sqrt(n)
  F[0] = 0.0
  u = rng.standard_normal((T, batch, n))
  y = rng.standard_normal((T, batch, n))
  return F, u, y


def _dense(F, u, y, lam):
  """The normal equations (M^T M + lam I) x = M^T u + lam y, M the [T n, T n] block
  lower-bidiagonal map x -> (x_t - F_t x_{t-1})_t, solved densely per batch element."""
  T, batch, n = u.shape
  out = np.zeros_like(u)
  for i in range(batch):
    M = np.eye(T * n)
    for t in range(1, T):
      M[t * n:(t + 1) * n, (t - 1) * n:t * n] = -F[t, i]
    lhs = M.T @ M + lam * np.eye(T * n)
    rhs = M.T @ u[:, i].reshape(-1) + lam * y[:, i].reshape(-1)
    out[:, i] = np.linalg.solve(lhs, rhs).reshape(T, n)
  return out


@pytest.mark.parametrize("n", [1, 2, 5])
@pytest.mark.parametrize("lam", [0.05, 1.0, 30.0])
def test_smoother_equals_sequential_and_dense(x64, n, lam):
  F, u, y = _problem(17, 3, n, seed=n)
  want = _dense(F, u, y, lam)
  got = smooth(F, u, y, lam)
  ref = smooth_reference(F, u, y, lam)
  np.testing.assert_allclose(ref, want, rtol=1e-9, atol=1e-10)
  np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10)
  # Not trivially satisfied: the damped solution is neither y nor the recurrence's.
  assert np.abs(want - y).max() > 1e-2
  assert np.abs(want - _dense(F, u, y, 0.0)).max() > 1e-2


@pytest.mark.parametrize("n", [1, 2, 4])
def test_parallel_filter_equals_sequential(x64, n):
  F, u, y = _problem(23, 2, n, seed=10 + n)
  m, P = parallel_filter(F, u, y, 0.7)
  m_ref, P_ref = sequential_filter(F, u, y, 0.7)
  np.testing.assert_allclose(m, m_ref, rtol=1e-9, atol=1e-11)
  np.testing.assert_allclose(P, P_ref, rtol=1e-9, atol=1e-11)
  # The last filtered mean is the last smoothed one.
  np.testing.assert_allclose(m[-1], smooth(F, u, y, 0.7)[-1], rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_zero_damping_is_the_linear_recurrence(x64, n):
  """lam = 0 (no pseudo-observations): x_t = F_t x_{t-1} + u_t, the undamped Newton step."""
  F, u, y = _problem(40, 2, n, scale=0.6, seed=20 + n)
  x, want = np.zeros_like(u), np.zeros_like(u[0])
  for t in range(u.shape[0]):
    want = np.einsum("bij,bj->bi", F[t], want) + u[t]
    x[t] = want
  np.testing.assert_allclose(smooth(F, u, y, 0.0), x, rtol=1e-9, atol=1e-11)
  np.testing.assert_allclose(smooth(F, u, y, 1e-12), x, rtol=1e-8, atol=1e-9)


def test_large_damping_stays_at_the_observations(x64):
  F, u, y = _problem(12, 2, 2, seed=3)
  x = smooth(F, u, y, 1e9)
  np.testing.assert_allclose(x, y, atol=1e-7)
  assert np.abs(np.asarray(x) - y).max() > 0  # moved, a little


def test_float32_runs_and_is_close(x64):
  F, u, y = _problem(64, 4, 2, seed=5)
  want = _dense(F, u, y, 0.5)
  got = smooth(*(jnp.asarray(a, jnp.float32) for a in (F, u, y)), 0.5)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
