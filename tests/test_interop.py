"""Converters to and from Flax NNX OptimizedLSTMCell and Linen LSTMCell, checked by
running both sides on the same input."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen, nnx

import lstmx


def _x():
  return jax.random.normal(jax.random.key(3), (2, 11, 3))


def test_from_flax_nnx_optimized_cell_matches_flax_rnn():
  cell = nnx.OptimizedLSTMCell(3, 5, bias_init=nnx.initializers.normal(), rngs=nnx.Rngs(0))
  x = _x()
  with jax.default_matmul_precision("highest"):
    y_flax = nnx.RNN(cell)(x)
    y, _ = lstmx.lstm(lstmx.from_flax_nnx(cell), x)
  np.testing.assert_allclose(y, y_flax, rtol=1e-5, atol=1e-6)


def test_to_flax_nnx_round_trip():
  params = lstmx.init_layer(jax.random.key(0), 3, 5, init="torch")
  cell = nnx.OptimizedLSTMCell(3, 5, rngs=nnx.Rngs(1))
  lstmx.to_flax_nnx(params, cell)
  back = lstmx.from_flax_nnx(cell)
  jax.tree.map(np.testing.assert_array_equal, params, back)


def test_linen_lstm_cell_round_trip_and_outputs():
  cell = linen.LSTMCell(5, bias_init=linen.initializers.normal())
  x = _x()
  variables = linen.RNN(cell).init(jax.random.key(0), x)
  inner = variables["params"]["cell"]
  params = lstmx.from_flax_linen(inner)
  with jax.default_matmul_precision("highest"):
    y_flax = linen.RNN(cell).apply(variables, x)
    y, _ = lstmx.lstm(params, x)
  np.testing.assert_allclose(y, y_flax, rtol=1e-5, atol=1e-6)
  again = lstmx.to_flax_linen(params)["params"]
  jax.tree.map(np.testing.assert_array_equal, again, dict(inner))


def test_linen_optimized_cell_uses_same_layout():
  cell = linen.OptimizedLSTMCell(5, bias_init=linen.initializers.normal())
  x = _x()
  variables = linen.RNN(cell).init(jax.random.key(1), x)
  params = lstmx.from_flax_linen(variables["params"]["cell"])
  with jax.default_matmul_precision("highest"):
    y_flax = linen.RNN(cell).apply(variables, x)
    y, _ = lstmx.lstm(params, x)
  np.testing.assert_allclose(y, y_flax, rtol=1e-5, atol=1e-6)
