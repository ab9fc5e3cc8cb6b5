"""The Newton backends (`lstmx.kernels.deer`): values and gradients against the reference,
the exactness of the first k steps, the fallback, and the iteration budgets at init.

The full contract (masking, reverse, regularizers, float64) runs in tests/test_contract.py;
here: long sequences in float32 (T up to 4096, small B and H), the solver's own facts.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstmx
from helpers import layer_value_and_grads
from lstmx.kernels import BACKENDS, KernelOptions, LayerMasks, deer, dispatch

METHODS = ("quasi_deer", "block_deer", "deer")


def _layer(T, B, H, *, init="forget_bias", seed=0, scale_hh=1.0, dtype=jnp.float32):
  kw = {"chrono_max_length": T} if init == "chrono" else {}
  p = lstmx.init_lstm(jax.random.key(seed), H, H, init=init, dtype=dtype, **kw)[0][0]
  if scale_hh != 1.0:
    p = lstmx.LSTMParams(w_ih=p.w_ih, w_hh=p.w_hh * jnp.asarray(scale_hh, dtype), b=p.b)
  xs = jax.random.normal(jax.random.key(seed + 1), (T, B, H), dtype)
  h0 = jnp.zeros((B, H), dtype)
  return p, xs, h0


def _sequential(p, xs, h0):
  return lstmx.kernels.reference.reference_layer(p, xs, None, h0, h0, LayerMasks(),
                                                 KernelOptions())


def test_registered_by_name_never_auto():
  for m in METHODS:
    assert m in dispatch.names()
    assert dispatch.select(m).name == m
    assert dispatch.resolve(m) == dispatch.Backend(m)
  for platform in ("cpu", "cuda", "tpu"):
    assert dispatch.select("auto", platform=platform).name not in METHODS
  with pytest.raises(ValueError, match="remat_every"):
    dispatch.select("quasi_deer", KernelOptions(remat_every=4))


def test_options_errors_name_the_argument():
  with pytest.raises(ValueError, match="method must be one of .*got method='newton'"):
    deer.NewtonOptions(method="newton")
  with pytest.raises(ValueError, match="max_iter must be a positive int; got max_iter=0"):
    deer.NewtonOptions(max_iter=0)
  with pytest.raises(ValueError, match="tol must be .*got tol=-1"):
    deer.NewtonOptions(tol=-1.0)
  with pytest.raises(ValueError, match="damping must be .*got damping=-0.5"):
    deer.NewtonOptions(damping=-0.5)
  with pytest.raises(ValueError, match="damping_method must be one of .*got damping_method='lm'"):
    deer.NewtonOptions(damping_method="lm")


@jax.jit
def _solve_all(p, xs, h0):
  """The three methods' raw solves (one compilation per shape, shared by both inits)."""
  return [deer.newton_solve(p, xs, h0, h0, newton=deer.NewtonOptions(method=m, fallback=False))
          for m in METHODS]


@pytest.mark.parametrize("T", [256, 1024, 4096])
@pytest.mark.parametrize("init", ["forget_bias", "chrono"])
def test_forward_matches_sequential_long(T, init):
  """All three methods within 1e-5 of the sequential scan and converged (no fallback)."""
  p, xs, h0 = _layer(T, 2, 8, init=init)
  ys_ref, (h_ref, c_ref) = _sequential(p, xs, h0)
  for m, r in zip(METHODS, _solve_all(p, xs, h0)):
    assert bool(r.converged), (m, int(r.iterations), float(r.error))
    np.testing.assert_allclose(r.hs, ys_ref, atol=1e-5, err_msg=m)
    np.testing.assert_allclose(r.cs[-1], c_ref, atol=1e-5, err_msg=m)


@pytest.mark.parametrize("method", METHODS)
def test_gradients_match_reference(method):
  """Values and gradients (params, inputs, initial state) through the layer, float32."""
  T, B, H = 300, 3, 8
  p, xs, _ = _layer(T, B, H, seed=3)
  rng = np.random.default_rng(0)
  h0, c0 = (jnp.asarray(0.5 * rng.standard_normal((B, H)), jnp.float32) for _ in range(2))
  w = jnp.asarray(rng.standard_normal((T, B, H)), jnp.float32)

  want = layer_value_and_grads(BACKENDS.get("reference").layer, p, xs, h0, c0, w)
  got = layer_value_and_grads(BACKENDS.get(method).layer, p, xs, h0, c0, w)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("method", METHODS)
def test_first_k_steps_exact_and_T_sweeps_exact(method):
  """After k sweeps the first k steps are exact, even where the solve is far from
  converged (W_hh x 4); T sweeps are exact everywhere."""
  T, B, H = 24, 2, 6
  p, xs, h0 = _layer(T, B, H, scale_hh=4.0, seed=5)
  ys_ref, _ = _sequential(p, xs, h0)
  for k in (1, 7):
    r = deer.newton_solve(p, xs, h0, h0, newton=deer.NewtonOptions(
        method=method, max_iter=k, tol=1e-30, fallback=False))
    assert int(r.iterations) == k
    np.testing.assert_allclose(r.hs[:k], ys_ref[:k], atol=1e-5)
  r = deer.newton_solve(p, xs, h0, h0, newton=deer.NewtonOptions(method=method, max_iter=T,
                                                                 tol=1e-30, fallback=False))
  assert bool(r.converged) and int(r.iterations) == T
  np.testing.assert_allclose(r.hs, ys_ref, atol=1e-5)


def test_non_convergence_flags_and_falls_back(x64):
  """W_hh x 4 at T = 512: quasi-DEER does not converge in 20 sweeps; the flag says so,
  the raw iterate is wrong, and the layer (with its fallback) is exact, without NaN,
  in values and gradients (float64: this recurrence amplifies float32 rounding)."""
  T, B, H = 512, 2, 8
  p, xs, h0 = _layer(T, B, H, scale_hh=4.0, seed=7, dtype=jnp.float64)
  ys_ref, _ = _sequential(p, xs, h0)
  raw = deer.newton_solve(p, xs, h0, h0, newton=deer.NewtonOptions(max_iter=20,
                                                                   fallback=False))
  assert not bool(raw.converged) and int(raw.iterations) <= 20
  assert not np.allclose(np.nan_to_num(raw.hs, nan=9.0), ys_ref, atol=1e-3)
  safe = deer.newton_solve(p, xs, h0, h0, newton=deer.NewtonOptions(max_iter=20))
  assert not bool(safe.converged)
  np.testing.assert_allclose(safe.hs, ys_ref, atol=1e-5)

  def loss(layer, p, xs):
    ys, _ = layer(p, xs, None, h0, h0, LayerMasks(), KernelOptions())
    return jnp.sum(ys ** 2)

  layer = deer.lstm_layer_quasi_deer
  got = jax.grad(lambda p, xs: jnp.sum(layer(p, xs, None, h0, h0, max_iter=20)[0] ** 2),
                 argnums=(0, 1))(p, xs)
  want = jax.grad(lambda *a: loss(BACKENDS.get("reference").layer, *a), argnums=(0, 1))(p, xs)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert np.all(np.isfinite(a))
    np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-8)


# Sweeps to within 1e-5 of the sequential scan at init (B = 16, D = H, float32); the
# prototype's counts were 26-30 / 15-17 / 4-5 (forget bias) and 14-16 / 7-8 / 3 (chrono).
BUDGETS = {"forget_bias": {"quasi_deer": 32, "block_deer": 20, "deer": 6},
           "chrono": {"quasi_deer": 18, "block_deer": 10, "deer": 4}}


@jax.jit
def _traces(p, xs, h0):
  """Each method's distance to the scan after each of its largest budget + 1 sweeps (one
  compilation per shape, shared by both inits)."""
  return [deer.newton_trace(p, xs, h0, h0, method=m,
                            num_iter=max(b[m] for b in BUDGETS.values()) + 1)
          for m in METHODS]


@pytest.mark.parametrize("init", ["forget_bias", "chrono"])
@pytest.mark.parametrize("H", [8, 16])
def test_iterations_at_init_within_budget(init, H):
  T = 512
  p, xs, h0 = _layer(T, 16, H, init=init, seed=H)
  for m, trace in zip(METHODS, _traces(p, xs, h0)):
    k = deer.iterations_to(trace, 1e-5)
    assert k is not None and k <= BUDGETS[init][m], (m, k, np.asarray(trace))
    # Not trivially satisfied: the first sweep is far from the solution.
    assert float(trace[0]) > 1e-3


def test_damping_and_warm_start():
  """Both dampings (ELK's Kalman-smoother step, the A / (1 + lam) scaling) converge to the
  same answer in more sweeps; a warm start from the solution converges in one sweep."""
  T, B, H = 128, 2, 8
  p, xs, h0 = _layer(T, B, H, seed=11)
  ys_ref, _ = _sequential(p, xs, h0)
  solve = jax.jit(lambda p, xs, newton, guess=None: deer.newton_solve(
      p, xs, h0, h0, newton=newton, guess=guess), static_argnums=2)
  plain = solve(p, xs, deer.NewtonOptions(fallback=False))
  for method, lam in (("elk", 0.02), ("scale", 0.5)):
    damped = solve(p, xs, deer.NewtonOptions(damping=lam, damping_method=method,
                                             fallback=False))
    assert bool(damped.converged) and int(damped.iterations) > int(plain.iterations), method
    np.testing.assert_allclose(damped.hs, ys_ref, atol=1e-5, err_msg=method)
  warm = solve(p, xs, deer.NewtonOptions(fallback=False), (plain.hs, plain.cs))
  assert int(warm.iterations) <= 2 and bool(warm.converged)


def test_lstm_api_runs_newton_backends():
  """`lstmx.lstm(backend=...)`: bidirectional and masked, equal to the scan."""
  params = lstmx.init_lstm(jax.random.key(0), 3, 8, bidirectional=True)
  x = jax.random.normal(jax.random.key(1), (4, 50, 3))
  lens = jnp.array([50, 17, 1, 33])
  run = jax.jit(lambda p, x, backend: lstmx.lstm(p, x, seq_lengths=lens, backend=backend),
                static_argnums=2)
  want, (h, c) = run(params, x, "scan")
  for m in METHODS:
    got, (hg, cg) = run(params, x, m)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(cg, c, atol=1e-5)
