"""Multi-host start-up: `jax.distributed.initialize` from flags or the environment.

    LSTMX_COORDINATOR=10.0.0.1:1234 LSTMX_NUM_PROCESSES=2 LSTMX_PROCESS_ID=0 lstmx train ...
    lstmx train ... --coordinator 127.0.0.1:1234 --num-processes 2 --process-id 0

On CPU the cross-process collectives use gloo. On managed clusters (SLURM,
Cloud TPU) `initialize(auto=True)` lets JAX detect everything.
"""

from __future__ import annotations

import os

import jax


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, auto: bool = False) -> bool:
  """Initializes multi-process JAX if configured; returns whether it did."""
  coordinator = coordinator or os.environ.get("LSTMX_COORDINATOR")
  if num_processes is None and "LSTMX_NUM_PROCESSES" in os.environ:
    num_processes = int(os.environ["LSTMX_NUM_PROCESSES"])
  if process_id is None and "LSTMX_PROCESS_ID" in os.environ:
    process_id = int(os.environ["LSTMX_PROCESS_ID"])
  if coordinator is None and not auto:
    return False
  if coordinator is not None and (num_processes is None or process_id is None):
    raise ValueError("distributed: a coordinator needs num_processes and process_id; got "
                     f"num_processes={num_processes!r}, process_id={process_id!r}")
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if coordinator is None:
    jax.distributed.initialize()
  else:
    jax.distributed.initialize(coordinator, num_processes, process_id)
  return True
