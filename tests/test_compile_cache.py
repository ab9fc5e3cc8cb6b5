"""The sweep's persistent compilation cache (`lstmx.lab.compile_cache`): `scope`
caches every program in its directory and restores the process's settings;
`uncached` keeps a timed compile out of it."""

import os

import jax
import jax.numpy as jnp

from lstmx.lab import compile_cache


def _files(path) -> set[str]:
  return {os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs}


def test_scope_caches_and_uncached_neither_reads_nor_writes(tmp_path):
  before = jax.config.jax_compilation_cache_dir
  x = jnp.arange(6.0)
  with compile_cache.scope(str(tmp_path)) as used:
    if used != str(tmp_path):  # the user set a cache of their own: it is kept as it is
      return
    jax.jit(lambda v: jnp.sin(v) * 3.0).lower(x).compile()
    cached = _files(tmp_path)
    assert cached  # the first program is written
    with compile_cache.uncached():
      assert not jax.config.jax_enable_compilation_cache
      jax.jit(lambda v: jnp.cos(v) * 5.0).lower(x).compile()
    assert _files(tmp_path) == cached  # nothing written inside uncached()
    assert jax.config.jax_enable_compilation_cache
    jax.jit(lambda v: jnp.tanh(v) * 7.0).lower(x).compile()
    assert len(_files(tmp_path)) > len(cached)  # and caching is back after it
  assert jax.config.jax_compilation_cache_dir == before
