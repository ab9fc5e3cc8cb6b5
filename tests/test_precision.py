"""Mixed precision: bf16 matmul inputs, float32 state and accumulation."""

import jax
import jax.numpy as jnp
import numpy as np

import lstmx
from helpers import random_problem, value_and_grads

# Stated tolerance of the bf16 path against float32, relative to each array's scale.
BF16_REL_TOL = 3e-2


def test_bf16_close_to_float32():
  problem = random_problem(0, 8, 64, 16, 32, num_layers=2, bidirectional=True, masked=True,
                           dtype=jnp.float32)
  (y, h, c), grads = value_and_grads(*problem, "scan", compute_dtype=jnp.bfloat16)
  (y32, h32, c32), grads32 = value_and_grads(*problem, "scan")
  assert y.dtype == h.dtype == jnp.float32
  for a, b in zip(jax.tree.leaves(((y, h, c), grads)), jax.tree.leaves(((y32, h32, c32), grads32))):
    err = float(jnp.max(jnp.abs(a - b))) / (float(jnp.max(jnp.abs(b))) + 1e-6)
    assert err < BF16_REL_TOL
  # and it really is a different (lower-precision) computation
  assert float(jnp.max(jnp.abs(y - y32))) > 0


def test_bf16_jaxpr_has_bf16_dots():
  params, x, _, _ = random_problem(0, 2, 5, 3, 4, dtype=jnp.float32)
  jaxpr = jax.make_jaxpr(lambda p, x: lstmx.lstm(p, x, compute_dtype=jnp.bfloat16)[0])(params, x)
  assert "bf16" in str(jaxpr)
