"""Strict numerics for the whole suite: strict dtype promotion, rank promotion raises
(equinox's and jax's own test settings), and eight fake CPU devices."""

import gc
import hashlib
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
# Tests listed in tests/slow.txt (or marked `slow`) run after the others. Under
# `pytest --budget S` (the README's test command, so CI) each slow test starts only while
# the session has run for under S seconds, and is skipped with the reason after that; the
# slow tests' order rotates day by day, so successive CI runs cover different ones.
# `pytest -m slow` (or no --budget) runs them all. Under pytest-xdist the controller's
# start time is handed to each worker: every worker measures the budget, and orders the
# tests, from the same moment.

_START = "lstmx_session_start"
_start_key = pytest.StashKey[float]()
_SLOW_LIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slow.txt")


def _slow_ids() -> set[str]:
  with open(_SLOW_LIST) as f:
    return {line.strip() for line in f if line.strip() and not line.startswith("#")}


def pytest_addoption(parser):
  parser.addoption("--budget", type=float, default=0.0, metavar="SECONDS",
                   help="start tests marked slow (tests/slow.txt) only while the session "
                        "has run for under SECONDS (0, the default: no limit). "
                        "Example: --budget 540")


def pytest_configure(config):
  start = getattr(config, "workerinput", {}).get(_START)
  config.stash[_start_key] = float(start) if start is not None else time.time()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):  # pytest-xdist, on the controller, for each worker
  node.workerinput[_START] = node.config.stash[_start_key]


def _rotation(nodeid: str, day: int) -> str:
  return hashlib.sha256(f"{day}:{nodeid}".encode()).hexdigest()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
  slow = _slow_ids()
  for item in items:
    if item.nodeid in slow:
      item.add_marker(pytest.mark.slow)
  day = int(config.stash[_start_key] // 86400)
  items.sort(key=lambda item: ((True, _rotation(item.nodeid, day))
                               if item.get_closest_marker("slow") else (False, "")))


def pytest_runtest_setup(item):
  budget = item.config.getoption("--budget")
  if budget > 0 and item.get_closest_marker("slow") is not None:
    spent = time.time() - item.config.stash[_start_key]
    if spent > budget:
      pytest.skip(f"slow test not started: the session's budget of {budget:.0f} s is spent "
                  f"({spent:.0f} s); run the slow set with `pytest -m slow`")
