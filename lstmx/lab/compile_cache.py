"""A sweep's persistent compilation cache: trials that compile the same program
compile it once.

The seeds of one configuration trace to the same programs (the seed enters them as
data, never as a constant), so with JAX's persistent compilation cache pointed at
``OUT/.cache/jax`` the second seed's trial loads what the first compiled, in this
process or in another worker process on the same machine. On the 2-core machine a
copy trial at H=64, T=100 compiles its training and evaluation steps in ~1.7 s of a
~6 s trial (docs/sweeps.md).

`scope` sets the cache for the trials it wraps and restores the process's settings
after, so a notebook that calls `lstmx.lab.run` keeps its own. A cache the user set
(``JAX_COMPILATION_CACHE_DIR`` or ``jax.config.update("jax_compilation_cache_dir",
...)``) is used as it is. Ray trials do not use it (`lstmx.lab.runner.run`): a cache
on a shared directory would hand one node's CPU executables to another node, whose
CPU may lack the instructions they were compiled for.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import jax
from jax.experimental.compilation_cache import compilation_cache

SUBDIR = os.path.join(".cache", "jax")


def sweep_cache(out_dir: str) -> str:
  """The cache directory of the sweep writing to `out_dir`."""
  return os.path.join(out_dir, SUBDIR)


@contextlib.contextmanager
def _cache_settings(values: dict) -> Iterator[None]:
  """Within the block, the JAX config `values` (name -> value) hold; restored after.
  JAX opens its cache, and decides whether to use one, once a process: both are asked
  again on entry and on exit."""
  saved = {name: getattr(jax.config, name) for name in values}
  for name, value in values.items():
    jax.config.update(name, value)
  compilation_cache.reset_cache()
  try:
    yield
  finally:
    for name, value in saved.items():
      jax.config.update(name, value)
    compilation_cache.reset_cache()


@contextlib.contextmanager
def uncached() -> Iterator[None]:
  """Within the block, compilations neither read nor write the persistent cache (a
  compile time measured there is a compile's, not a cache load's); restored after."""
  with _cache_settings({"jax_enable_compilation_cache": False}):
    yield


@contextlib.contextmanager
def scope(path: str | None) -> Iterator[str | None]:
  """Within the block, JAX compilations are cached in `path` (every program, however
  fast it compiled); yields the directory in use (the user's own, if set; None when
  `path` is None and the user set none)."""
  own = jax.config.jax_compilation_cache_dir
  if path is None or own:
    yield own
    return
  os.makedirs(path, exist_ok=True)
  with _cache_settings({"jax_compilation_cache_dir": path,
                        "jax_persistent_cache_min_compile_time_secs": 0.0,
                        "jax_persistent_cache_min_entry_size_bytes": -1}):
    yield path
