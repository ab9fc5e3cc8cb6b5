"""Initializers: shapes, the documented distributions and biases."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstmx
from lstmx.params import gate_slice


def test_shapes_stacked_bidirectional():
  p = lstmx.init_lstm(jax.random.key(0), 3, 8, num_layers=3, bidirectional=True)
  assert len(p) == 3 and all(len(layer) == 2 for layer in p)
  assert p[0][1].w_ih.shape == (3, 32)
  assert p[2][0].w_ih.shape == (16, 32) and p[2][0].w_hh.shape == (8, 32)
  assert p[0][0].b.shape == (32,)
  assert not np.array_equal(p[0][0].w_hh, p[0][1].w_hh)


def test_torch_init_bounds():
  H = 64
  p = lstmx.init_layer(jax.random.key(0), 10, H, init="torch")
  bound = 1 / math.sqrt(H)
  assert float(jnp.max(jnp.abs(p.w_ih))) <= bound
  assert float(jnp.max(jnp.abs(p.w_hh))) <= bound
  assert float(jnp.max(jnp.abs(p.b))) <= 2 * bound
  assert float(jnp.std(p.w_hh)) == pytest.approx(bound / math.sqrt(3), rel=0.05)


def test_forget_bias_default_and_orthogonal_recurrent():
  H = 16
  p = lstmx.init_layer(jax.random.key(0), 5, H)
  np.testing.assert_array_equal(p.b[gate_slice("f", H)], 1.0)
  for g in ("i", "g", "o"):
    np.testing.assert_array_equal(p.b[gate_slice(g, H)], 0.0)
  for g in lstmx.GATES:
    w = p.w_hh[:, gate_slice(g, H)]
    np.testing.assert_allclose(w.T @ w, np.eye(H), atol=1e-5)


def test_flax_init_zero_bias():
  p = lstmx.init_layer(jax.random.key(0), 5, 4, init="flax")
  np.testing.assert_array_equal(p.b, 0.0)


def test_chrono_init():
  H, t_max = 2000, 100
  p = lstmx.init_layer(jax.random.key(0), 5, H, init="chrono", chrono_max_length=t_max)
  b_f, b_i = p.b[gate_slice("f", H)], p.b[gate_slice("i", H)]
  np.testing.assert_array_equal(b_i, -b_f)
  assert float(b_f.min()) >= 0.0 and float(b_f.max()) <= math.log(t_max - 1) + 1e-6
  # exp(b_f) ~ U[1, T_max - 1]: mean (T_max) / 2.
  assert float(jnp.mean(jnp.exp(b_f))) == pytest.approx(t_max / 2, rel=0.05)
