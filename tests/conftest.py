"""Strict numerics for the whole suite: strict dtype promotion, rank promotion raises
(equinox's and jax's own test settings), and eight fake CPU devices."""

import gc
import os

# Eight fake CPU devices for the sharding tests; must be set before jax starts.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def x64():
  """Runs a test in float64."""
  with jax.enable_x64(True):
    yield


@pytest.fixture(autouse=True, scope="module")
def _fresh_compilation_caches():
  """Drops each test module's compiled programs when it ends: a pytest-xdist worker runs
  hundreds of modules in one process, and their executables would otherwise accumulate
  (two CI runs of this suite lost a worker to a segfault inside an XLA compile late in
  the run, in a different test each time)."""
  yield
  jax.clear_caches()
  gc.collect()
