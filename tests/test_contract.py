"""The contract every backend meets: outputs, final state and gradients equal the
reference's in float64, over shapes, lengths, masking, reverse, stacking and unroll.

A new backend joins by being added to `BACKENDS`.
"""

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstmx
from helpers import assert_trees_close, random_problem, value_and_grads

BACKENDS = ["scan"]
TOL = dict(rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@hypothesis.settings(max_examples=12, deadline=None, derandomize=True)
@hypothesis.given(
    B=st.integers(1, 5), T=st.integers(1, 40), D=st.integers(1, 9), H=st.integers(1, 12),
    num_layers=st.integers(1, 3), bidirectional=st.booleans(), masked=st.booleans(),
    with_state=st.booleans(), unroll=st.sampled_from([1, 2, 3, 8]))
def test_matches_reference_random_shapes(backend, B, T, D, H, num_layers, bidirectional,
                                         masked, with_state, unroll):
  with jax.enable_x64(True):
    problem = random_problem(B * 1000 + T, B, T, D, H, num_layers=num_layers,
                             bidirectional=bidirectional, masked=masked,
                             with_state=with_state)
    ref = value_and_grads(*problem, "reference")
    got = value_and_grads(*problem, backend, unroll=unroll)
    assert_trees_close(got, ref, **TOL)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("T", [1, 7, 129, 300])
@pytest.mark.parametrize("bidirectional", [False, True])
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


def test_auto_resolves_to_a_tested_backend():
  assert lstmx.backends.resolve("auto").value in BACKENDS
