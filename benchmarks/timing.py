"""The one timer of the benchmarks: interleaved rounds in one process.

Every implementation of a table is warmed up, then run once per round, in
turn, for a number of rounds, so that load from other jobs on the machine hits
all of them alike; tables report the median (and minimum) of the rounds.
"""

from __future__ import annotations

import time
from typing import Callable


def interleaved(runs: dict[str, Callable[[], object]], rounds: int,
                warmup: int) -> dict[str, list[float]]:
  """Times zero-argument callables that block until their work is done.

  Args:
    runs: name -> callable (e.g. a `Case`, or a jitted call followed by
      ``block_until_ready``).
    rounds: timed rounds; each round runs every callable once, in order.
    warmup: untimed runs of each callable before the first round.

  Returns:
    name -> seconds of each round (``rounds`` values).
  """
  for run in runs.values():
    for _ in range(warmup):
      run()
  times: dict[str, list[float]] = {k: [] for k in runs}
  for _ in range(rounds):
    for name, run in runs.items():
      t = time.perf_counter()
      run()
      times[name].append(time.perf_counter() - t)
  return times
