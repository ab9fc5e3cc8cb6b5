"""Pallas-specific checks beyond the contract suite: batch tiling (with a padded last
tile), the interpret default, and that the time loop runs inside one kernel call."""

import jax
import jax.numpy as jnp
import pytest

import lstmx
from lstmx.kernels.pallas import PallasBlocks, lstm_layer_pallas
from helpers import assert_trees_close


def _layer_problem(B=5, T=6, D=3, H=4, dtype=jnp.float64):
  keys = jax.random.split(jax.random.key(0), 5)
  p = lstmx.init_lstm(keys[0], D, H, init="torch", dtype=dtype)[0][0]
  xs = jax.random.normal(keys[1], (T, B, D), dtype)
  h0, c0 = (0.5 * jax.random.normal(k, (B, H), dtype) for k in keys[2:4])
  lens = jax.random.randint(keys[4], (B,), 1, T + 1)
  return p, xs, jnp.arange(T)[:, None] < lens[None, :], h0, c0


def _loss(layer, **kw):
  def f(p, xs, mask, h0, c0):
    ys, (h, c) = layer(p, xs, mask, h0, c0, **kw)
    return jnp.sum(jnp.sin(ys)) + jnp.sum(h * c) + jnp.sum(jnp.cos(c))
  return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 3, 4)))


@pytest.mark.parametrize("reverse", [False, True])
def test_batch_tiles_with_padding_match_reference(x64, reverse):
  problem = _layer_problem()
  ref = _loss(lstmx.lstm_layer_reference, reverse=reverse)(*problem)
  got = _loss(lstm_layer_pallas, reverse=reverse, blocks=PallasBlocks(block_b=2))(*problem)
  assert_trees_close(got, ref, rtol=1e-9, atol=1e-10)


def test_one_kernel_call_per_direction_of_the_pass(x64):
  """Forward and backward are each one pallas_call (the time loop is inside it); with
  ``interpret=None`` each is traced twice, once per platform branch."""
  p, xs, mask, h0, c0 = _layer_problem()
  jaxpr = str(jax.make_jaxpr(_loss(lstm_layer_pallas, interpret=True))(p, xs, mask, h0, c0))
  assert jaxpr.count("pallas_call") == 2
  jaxpr = str(jax.make_jaxpr(_loss(lstm_layer_pallas))(p, xs, mask, h0, c0))
  assert jaxpr.count("pallas_call") == 4


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="checks the CPU default")
def test_interpret_defaults_to_true_on_cpu():
  """Without interpret mode a pallas_call cannot lower on CPU; the default must pick it."""
  problem = _layer_problem(B=2, T=3, dtype=jnp.float32)
  with jax.default_matmul_precision("highest"):
    got = lstm_layer_pallas(*problem)
    ref = lstmx.lstm_layer_reference(*problem)
  assert_trees_close(got, ref, rtol=1e-5, atol=1e-6)
