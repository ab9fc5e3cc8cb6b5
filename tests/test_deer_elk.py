"""ELK's damped Newton step in the Newton backends (`damping_method="elk"`): the step is the
regularized least squares' solution for every Jacobian layout, tiny damping is Newton's step,
the damped solve stays finite and honest where Newton fails, and the damped forward reaches
the same fixed point, so values and gradients equal the reference backend's.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstmx
from helpers import layer_value_and_grads
from lstmx.kernels import BACKENDS, KernelOptions, LayerMasks, deer, deer_linear, deer_solve

METHODS = ("quasi_deer", "block_deer", "deer")


def _layer(T, B, H, *, seed=0, scale_hh=1.0, dtype=jnp.float32):
  p = lstmx.init_lstm(jax.random.key(seed), H, H, dtype=dtype)[0][0]
  p = lstmx.LSTMParams(w_ih=p.w_ih, w_hh=p.w_hh * jnp.asarray(scale_hh, dtype), b=p.b)
  xs = jax.random.normal(jax.random.key(seed + 1), (T, B, H), dtype)
  return p, xs, jnp.zeros((B, H), dtype)


def _random_jacobians(method, T, B, H, rng):
  shape = {"quasi_deer": [(T, B, 2 * H)], "block_deer": [(T, B, H)] * 4,
           "deer": [(T, B, 2 * H, 2 * H)]}[method]
  leaves = [jnp.asarray(0.7 * rng.standard_normal(s)) for s in shape]
  A = leaves[0] if len(leaves) == 1 else tuple(leaves)
  return deer_linear.zero_first(A)


def _dense_step(structure, A, b, y, lam):
  """The minimizer of sum_t |s_t - A_t s_{t-1} - b_t|^2 + lam sum_t |s_t - y_t|^2, by the
  normal equations over all T * 2H unknowns of each batch row (A_t made dense by applying
  it to the unit vectors)."""
  T, B, n = b.shape
  eye = jnp.eye(n, dtype=b.dtype)
  cols = jax.vmap(lambda e: structure.apply(A, jnp.broadcast_to(e, b.shape)))(eye)
  dense = np.moveaxis(np.asarray(cols), 0, -1)  # [T, B, n (out), n (in)]
  out = np.zeros(b.shape)
  for i in range(B):
    M = np.eye(T * n)
    for t in range(1, T):
      M[t * n:(t + 1) * n, (t - 1) * n:t * n] = -dense[t, i]
    rhs = M.T @ np.asarray(b[:, i]).reshape(-1) + lam * np.asarray(y[:, i]).reshape(-1)
    out[:, i] = np.linalg.solve(M.T @ M + lam * np.eye(T * n), rhs).reshape(T, n)
  return out


@pytest.mark.parametrize("method", METHODS)
def test_damped_scan_is_the_regularized_least_squares(x64, method):
  """Every layout (diagonal, 2x2 blocks, full) solves the same dense problem; lam = 0 is
  `linear_scan`."""
  T, B, H = 11, 2, 3
  rng = np.random.default_rng(0)
  structure = deer_linear.STRUCTURES[method]
  A = _random_jacobians(method, T, B, H, rng)
  b, y = (jnp.asarray(rng.standard_normal((T, B, 2 * H))) for _ in range(2))
  run = jax.jit(lambda A, b, y, lam: deer_linear.damped_scan(structure, A, b, y, lam))
  for lam in (0.2, 3.0):
    np.testing.assert_allclose(run(A, b, y, lam), _dense_step(structure, A, b, y, lam),
                               rtol=1e-9, atol=1e-10)
  np.testing.assert_allclose(run(A, b, y, 0.0), deer_linear.linear_scan(structure, A, b),
                             rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_tiny_damping_is_the_newton_sweep(x64, method):
  """One LSTM sweep with lam = 1e-10 equals the undamped one; lam = 1 does not."""
  T, B, H = 40, 2, 4
  p, xs, h0 = _layer(T, B, H, seed=2, dtype=jnp.float64)
  s0 = jnp.concatenate([h0, h0], -1)
  S = jnp.asarray(0.3 * np.random.default_rng(1).standard_normal((T, B, 2 * H)))

  @jax.jit
  def sweeps(p, xs, S):
    out = []
    for lam in (0.0, 1e-10, 1.0):
      static = deer_solve.Static(deer.NewtonOptions(method=method, damping=lam))
      xp = deer_solve.project(static, p, xs, jnp.float64)
      out.append(deer_solve.sweep(static, p.w_hh, xp, s0, (None,) * 4, S)[0])
    return out

  newton, tiny, damped = sweeps(p, xs, S)
  np.testing.assert_allclose(tiny, newton, rtol=1e-7, atol=1e-8)
  assert np.abs(np.asarray(damped - newton)).max() > 1e-2


def test_non_convergent_case_stays_finite_and_honest(x64):
  """W_hh x 4 (tests/test_deer.py's non-convergent case), T = 128, 20 sweeps: the merit
  sum_t |s_t - f(s_{t-1})|^2 / 2 of undamped block-DEER explodes; ELK's (lam = 0.1) stays
  finite and ends below Newton's for both methods. Neither converges: the flag says so and
  the fallback is exact."""
  T, B, H, K = 128, 2, 8, 20
  p, xs, h0 = _layer(T, B, H, seed=7, scale_hh=4.0, dtype=jnp.float64)
  ys_ref = lstmx.kernels.reference.reference_layer(p, xs, None, h0, h0, LayerMasks(),
                                                   KernelOptions())[0]

  @jax.jit
  def merits(p, xs):
    return {(m, lam): deer.newton_trace(p, xs, h0, h0, method=m, num_iter=K, damping=lam,
                                        measure="merit")
            for m in ("quasi_deer", "block_deer") for lam in (0.0, 0.1)}

  traces = {k: np.asarray(v) for k, v in merits(p, xs).items()}
  assert traces[("block_deer", 0.0)].max() > 1e4  # the undamped iterates blow up (~4e5)
  for m in ("quasi_deer", "block_deer"):
    newton, elk = traces[(m, 0.0)], traces[(m, 0.1)]
    assert np.all(np.isfinite(elk)) and elk.max() < 1e3, (m, elk)
    assert elk.max() < newton.max() and elk[-1] < newton[-1], (m, elk, newton)

  r = jax.jit(lambda p, xs: deer.newton_solve(p, xs, h0, h0, newton=deer.NewtonOptions(
      method="block_deer", max_iter=K, damping=0.1)))(p, xs)
  assert not bool(r.converged) and int(r.iterations) == K and np.isfinite(float(r.error))
  np.testing.assert_allclose(r.hs, ys_ref, atol=1e-8)  # the fallback


def test_all_T_sweeps_prove_nothing_under_elk(x64):
  """Undamped, T sweeps are exact and count as converged; ELK's damped sweeps are not exact
  after T sweeps, so only the tolerance can make them converged."""
  T, B, H = 12, 2, 4
  p, xs, h0 = _layer(T, B, H, seed=5, scale_hh=4.0, dtype=jnp.float64)
  opts = dict(method="quasi_deer", max_iter=T, tol=1e-30, fallback=False)
  plain = deer.newton_solve(p, xs, h0, h0, newton=deer.NewtonOptions(**opts))
  elk = deer.newton_solve(p, xs, h0, h0, newton=deer.NewtonOptions(damping=1.0, **opts))
  assert bool(plain.converged) and int(plain.iterations) == T
  assert not bool(elk.converged) and int(elk.iterations) == T


@pytest.mark.parametrize("method", ["quasi_deer", "block_deer"])
def test_elk_reaches_the_fixed_point_values_and_gradients(method):
  """Damped forward (lam = 0.02) converges to the sequential solution without the fallback,
  in more sweeps than Newton; the layer's gradients (IFT) equal the reference backend's."""
  T, B, H = 128, 3, 8
  p, xs, _ = _layer(T, B, H, seed=3)
  rng = np.random.default_rng(0)
  h0, c0 = (jnp.asarray(0.5 * rng.standard_normal((B, H)), jnp.float32) for _ in range(2))
  w = jnp.asarray(rng.standard_normal((T, B, H)), jnp.float32)
  ref = BACKENDS.get("reference").layer

  @jax.jit
  def stats(p, xs):
    return [deer.newton_solve(p, xs, h0, c0, newton=deer.NewtonOptions(
        method=method, damping=lam, fallback=False)) for lam in (0.0, 0.02)]

  plain, elk = stats(p, xs)
  ys_ref, _ = ref(p, xs, None, h0, c0, LayerMasks(), KernelOptions())
  assert bool(elk.converged) and int(elk.iterations) > int(plain.iterations)
  np.testing.assert_allclose(elk.hs, ys_ref, atol=1e-5)

  damped = deer.newton_backend(method, damping=0.02).layer

  want = layer_value_and_grads(ref, p, xs, h0, c0, w)
  got = layer_value_and_grads(damped, p, xs, h0, c0, w)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
