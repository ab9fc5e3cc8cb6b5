"""Strict numerics for the whole suite: strict dtype promotion, rank promotion raises
(equinox's and jax's own test settings), and eight fake CPU devices."""

import gc
import os
import time

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


# --- The slow set: run last, and within a time budget when one is given -----------------
# `pytest --budget S` (the README's test command, so CI) runs every test not marked `slow`,
# then starts slow tests while the session is under S seconds; a slow test that would
# start later is skipped with the reason. `pytest -m slow` (or no --budget) runs them all.
# Under pytest-xdist the controller's start time is handed to each worker, so every
# worker measures the budget from the same moment.

_START = "lstmx_session_start"
_start_key = pytest.StashKey[float]()


def pytest_addoption(parser):
  parser.addoption("--budget", type=float, default=0.0, metavar="SECONDS",
                   help="start tests marked slow only while the session has run for under "
                        "SECONDS (0, the default: no limit). Example: --budget 600")


def pytest_configure(config):
  start = getattr(config, "workerinput", {}).get(_START)
  config.stash[_start_key] = float(start) if start is not None else time.time()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):  # pytest-xdist, on the controller, for each worker
  node.workerinput[_START] = node.config.stash[_start_key]


def pytest_collection_modifyitems(config, items):
  items.sort(key=lambda item: item.get_closest_marker("slow") is not None)  # stable


def pytest_runtest_setup(item):
  budget = item.config.getoption("--budget")
  if budget > 0 and item.get_closest_marker("slow") is not None:
    spent = time.time() - item.config.stash[_start_key]
    if spent > budget:
      pytest.skip(f"slow test not started: the session's budget of {budget:.0f} s is spent "
                  f"({spent:.0f} s); run the slow set with `pytest -m slow`")
