"""`lstmx.compile_stats`: one formula for a compiled program's memory and FLOPs."""

import jax
import jax.numpy as jnp

from lstmx.compile_stats import compile_stats


def test_peak_is_arguments_plus_outputs_minus_aliases_plus_temps():
  x = jnp.ones((64, 64), jnp.float32)
  stats = compile_stats(jax.jit(lambda a: a @ a + 1).lower(x).compile())
  assert stats["argument_bytes"] == 64 * 64 * 4 and stats["output_bytes"] == 64 * 64 * 4
  assert stats["peak_bytes"] == (stats["argument_bytes"] + stats["output_bytes"]
                                 - stats["alias_bytes"] + stats["temp_bytes"])
  # A 64x64x64 matmul is 2 * 64^3 FLOPs (plus the add); XLA's CPU estimate counts them.
  assert 2 * 64 ** 3 <= stats["flops"] <= 2 * 64 ** 3 + 2 * 64 * 64


def test_donated_argument_is_counted_once():
  x = jnp.ones((256, 256), jnp.float32)
  stats = compile_stats(jax.jit(lambda a: a * 2, donate_argnums=0).lower(x).compile())
  assert stats["alias_bytes"] == 256 * 256 * 4
  assert stats["peak_bytes"] == 256 * 256 * 4 + stats["temp_bytes"]
