"""The contract every backend meets: outputs, final state and gradients equal the
reference's in float64, over shapes, lengths, masking, reverse, stacking and unroll.

A new backend joins by being added to `BACKENDS`. Pallas runs in interpret mode on
CPU (float64 works there), where each distinct layer shape costs a second or two
of compilation, so it gets fewer random examples and a subset of the lengths.
"""

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstmx
from helpers import assert_trees_close, random_problem, value_and_grads

BACKENDS = ["scan", "pallas"]
EXAMPLES = {"scan": 12, "pallas": 3}
LENGTHS = {  # (T, bidirectional)
    "scan": [(T, bd) for T in (1, 7, 129, 300) for bd in (False, True)],
    "pallas": [(1, False), (129, True)],
}
TOL = dict(rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_reference_random_shapes(backend):
  @hypothesis.settings(max_examples=EXAMPLES[backend], deadline=None, derandomize=True,
                       database=None)
  @hypothesis.given(
      B=st.integers(1, 5), T=st.integers(1, 40), D=st.integers(1, 9), H=st.integers(1, 12),
      num_layers=st.integers(1, 3), bidirectional=st.booleans(), masked=st.booleans(),
      with_state=st.booleans(), unroll=st.sampled_from([1, 2, 3, 8]))
  def check(B, T, D, H, num_layers, bidirectional, masked, with_state, unroll):
    with jax.enable_x64(True):
      problem = random_problem(B * 1000 + T, B, T, D, H, num_layers=num_layers,
                               bidirectional=bidirectional, masked=masked,
                               with_state=with_state)
      ref = value_and_grads(*problem, "reference")
      got = value_and_grads(*problem, backend, unroll=unroll)
      assert_trees_close(got, ref, **TOL)
  check()


@pytest.mark.parametrize("backend,T,bidirectional",
                         [(b, T, bd) for b in BACKENDS for T, bd in LENGTHS[b]])
def test_matches_reference_lengths(x64, backend, T, bidirectional):
  problem = random_problem(T, 3, T, 4, 6, num_layers=2, bidirectional=bidirectional,
                           masked=True)
  ref = value_and_grads(*problem, "reference")
  got = value_and_grads(*problem, backend, unroll=4)
  assert_trees_close(got, ref, **TOL)


@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_reference_float32_highest_precision(backend):
  problem = random_problem(3, 4, 33, 5, 16, num_layers=2, bidirectional=True, masked=True,
                           dtype=jnp.float32)
  with jax.default_matmul_precision("highest"):
    ref = value_and_grads(*problem, "reference")
    got = value_and_grads(*problem, backend)
  assert_trees_close(got, ref, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_padded_outputs_exactly_zero(x64, backend):
  params, x, _, _ = random_problem(0, 3, 9, 4, 5, bidirectional=True)
  lens = jnp.array([9, 3, 1])
  y, _ = lstmx.lstm(params, x, seq_lengths=lens, backend=backend)
  for b, n in enumerate([9, 3, 1]):
    assert np.all(np.asarray(y[b, n:]) == 0.0)
    assert np.all(np.asarray(y[b, :n]) != 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("deterministic", [False, True])
def test_regularized_matches_reference(x64, backend, deterministic):
  """Recurrent dropout and zoneout go inside the kernel (and its backward)."""
  problem = random_problem(5, 3, 9, 3, 4, bidirectional=True, masked=True)
  reg = lstmx.Regularization(recurrent_dropout=0.3, weight_drop=0.2, zoneout_h=0.2,
                             zoneout_c=0.3)
  kw = dict(regularization=reg, key=jax.random.key(3), deterministic=deterministic)
  ref = value_and_grads(*problem, "reference", **kw)
  got = value_and_grads(*problem, backend, **kw)
  assert_trees_close(got, ref, **TOL)


def test_auto_resolves_to_a_tested_backend():
  assert lstmx.backends.resolve("auto").value in BACKENDS
