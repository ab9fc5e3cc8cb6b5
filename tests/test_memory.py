"""Memory modes of the scan kernel: ``remat_every=k`` equals the default mode
(values and gradients, float64) and shrinks the compiled program's temp memory."""

import jax
import jax.numpy as jnp
import pytest

import lstmx
from helpers import assert_trees_close, random_problem, value_and_grads

TOL = dict(rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("T,k", [(12, 4), (13, 4), (13, 5), (7, 1), (5, 5), (5, 9)])
@pytest.mark.parametrize("bidirectional,masked", [(False, False), (True, True)])
def test_remat_equals_default(x64, T, k, bidirectional, masked):
  problem = random_problem(T * 10 + k, 3, T, 4, 5, num_layers=2, bidirectional=bidirectional,
                           masked=masked)
  ref = value_and_grads(*problem, "scan")
  got = value_and_grads(*problem, "scan", remat_every=k)
  assert_trees_close(got, ref, **TOL)


def test_remat_with_regularization_and_unroll(x64):
  params, x, lens, state = random_problem(3, 4, 11, 3, 6, bidirectional=True, masked=True)
  reg = lstmx.Regularization(recurrent_dropout=0.3, zoneout_h=0.2, zoneout_c=0.4)

  def run(**kw):
    def f(params, x, state):
      y, (h, c) = lstmx.lstm(params, x, seq_lengths=lens, initial_state=state,
                             regularization=reg, key=jax.random.key(7),
                             deterministic=False, **kw)
      return jnp.sum(jnp.sin(y)) + jnp.sum(h * c), (y, h, c)
    return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True))(params, x, state)

  assert_trees_close(run(remat_every=4, unroll=2), run(), **TOL)


def test_remat_rejects_bad_values():
  params, x, _, _ = random_problem(0, 2, 5, 3, 4, dtype=jnp.float32)
  for bad in (0, -2, 2.5):
    with pytest.raises(ValueError, match="remat_every must be None or a positive int"):
      lstmx.lstm(params, x, remat_every=bad)


def _temp_bytes(remat_every, T=512, B=4, H=32, unroll=1):
  params = lstmx.init_lstm(jax.random.key(0), H, H)
  x = jnp.zeros((B, T, H))

  def loss(p, x):
    return jnp.sum(lstmx.lstm(p, x, remat_every=remat_every, unroll=unroll)[0])
  compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(params, x).compile()
  return compiled.memory_analysis().temp_size_in_bytes


def test_remat_shrinks_compiled_temp_memory():
  full, remat = _temp_bytes(None), _temp_bytes(16)
  # Default keeps ~10 B*H values per step (xp/gates, h, c, dZ); remat ~T/k carries.
  assert remat < full / 4, (remat, full)


@pytest.mark.parametrize("unroll", [1, 2, 4])
def test_default_step_keeps_one_gate_sized_buffer(unroll):
  # The forward writes the gates over the input projection and the backward
  # writes dZ over the gates, in place: one [T, B, 4H] buffer plus h and the
  # previous c, ~7 B*H values per step (it was 18 before the in-place scans).
  # A copy of any [T, B, 4H] buffer would add 4 and fail this (an unrolled
  # backward scan did: XLA copied the dZ buffer in every iteration).
  T, B, H = 512, 4, 32
  per_step = _temp_bytes(None, T, B, H, unroll) / (T * B * H * 4)
  assert per_step < 8, per_step
