"""What every benchmarked implementation is built into: a `Case`.

A builder ``make(B, T, H, mode)`` returns a `Case`: a zero-argument callable
that runs one forward pass (``mode="fwd"``) or one training step (``"train"``:
forward + backward w.r.t. every parameter and the input, loss = sum of the
outputs) and blocks until done; for JAX implementations also the compile time
and the compiled program's memory (`lstmx.compile_stats`' ``peak_bytes``:
argument + output - alias + temp). Input size D = H, batch-major [B, T, D].
A builder raises `Skip` when its package or device is absent.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import jax
import jax.numpy as jnp

from lstmx.compile_stats import compile_stats


class Skip(Exception):
  """The implementation cannot run here (package missing, no GPU, ...)."""


@dataclasses.dataclass
class Case:
  run: Callable[[], None]
  compile_s: float | None = None
  memory_bytes: int | None = None  # compile_stats' peak_bytes: argument + output - alias + temp

  def __call__(self) -> None:
    self.run()


def compile_case(f, *args, argnums=(0, 1), mode="train") -> Case:
  """Jits f(*args) -> outputs (fwd) or its grad w.r.t. `argnums` of sum(outputs)."""
  if mode == "train":
    g = jax.grad(lambda *a: jnp.sum(f(*a).astype(jnp.float32)), argnums=argnums)
  else:
    g = f
  t = time.perf_counter()
  compiled = jax.jit(g).lower(*args).compile()
  compile_s = time.perf_counter() - t
  mem = compile_stats(compiled).get("peak_bytes")
  return Case(lambda: jax.block_until_ready(compiled(*args)), compile_s, mem)


def random_input(B: int, T: int, H: int, dtype=jnp.float32) -> jax.Array:
  """The benchmark input x [B, T, H] (D = H), the same for every implementation."""
  return jax.random.normal(jax.random.key(1), (B, T, H), dtype)
