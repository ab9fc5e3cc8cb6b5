"""Bad input gets a clear error naming the argument, with expected and actual values."""

import jax
import jax.numpy as jnp
import pytest

import lstmx

P = lstmx.init_lstm(jax.random.key(0), 3, 4, num_layers=2, bidirectional=True)
X = jnp.ones((2, 5, 3))


@pytest.mark.parametrize("kwargs,x,exc,pattern", [
    ({}, jnp.ones((5, 3)), ValueError, r"x: expected rank 3 \[B, T, D\]; got shape \(5, 3\)"),
    ({}, jnp.ones((2, 5, 4)), ValueError, r"x: expected 3 features.*got shape \(2, 5, 4\)"),
    ({}, jnp.ones((2, 5, 3), jnp.int32), TypeError, r"x: expected a floating dtype; got int32"),
    ({}, jnp.ones((2, 0, 3)), ValueError, r"x: expected T >= 1"),
    ({"seq_lengths": jnp.array([5, 0])}, X, ValueError,
     r"seq_lengths: expected values in \[1, 5\].*min 0"),
    ({"seq_lengths": jnp.array([5, 6])}, X, ValueError,
     r"seq_lengths: expected values in \[1, 5\].*max 6"),
    ({"seq_lengths": jnp.array([5, 2, 3])}, X, ValueError,
     r"seq_lengths: expected shape \(2,\).*got \(3,\)"),
    ({"seq_lengths": jnp.array([5.0, 2.0])}, X, TypeError,
     r"seq_lengths: expected an integer dtype"),
    ({"initial_state": (jnp.zeros((2, 2, 4)), jnp.zeros((4, 2, 4)))}, X, ValueError,
     r"initial_state h_0: expected shape \(4, 2, 4\).*got \(2, 2, 4\)"),
    ({"initial_state": jnp.zeros((4, 2, 4))}, X, ValueError, r"initial_state: expected a pair"),
    ({"backend": "cuda"}, X, ValueError, r"backend must be one of"),
    ({"unroll": 0}, X, ValueError, r"unroll must be a positive int; got unroll=0"),
])
def test_bad_input_raises_clear_error(kwargs, x, exc, pattern):
  with pytest.raises(exc, match=pattern):
    lstmx.lstm(P, x, **kwargs)


def test_bad_params_raise():
  bad = ((P[0][0],), (P[1][0],))  # layer 1 expects 2H inputs from a bidirectional layer 0
  with pytest.raises(ValueError, match=r"params\[1\]\[0\].w_ih: expected shape \(4, 16\); got \(8, 16\)"):
    lstmx.lstm(bad, X)
  with pytest.raises(ValueError, match=r"params\[1\]: expected 2 directions"):
    lstmx.lstm((P[0], P[1][:1]), X)


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(init="xavier"), r"init must be one of"),
    (dict(init="chrono"), r"chrono_max_length"),
    (dict(num_layers=0), r"num_layers must be a positive int; got num_layers=0"),
])
def test_bad_init_raises(kwargs, pattern):
  with pytest.raises(ValueError, match=pattern):
    lstmx.init_lstm(jax.random.key(0), 3, 4, **kwargs)


def test_seq_lengths_traced_under_jit_still_checks_shape():
  f = jax.jit(lambda lens: lstmx.lstm(P, X, seq_lengths=lens)[0])
  with pytest.raises(ValueError, match=r"seq_lengths: expected shape \(2,\)"):
    f(jnp.array([1, 2, 3]))
