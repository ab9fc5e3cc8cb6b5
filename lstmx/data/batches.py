"""Deterministic batch iteration, exact resume, and multi-process sharding.

The order of an epoch is a pure function of (seed, epoch):
``np.random.default_rng([seed, epoch]).permutation(N)``. Step k of the epoch
is rows ``perm[k*B:(k+1)*B]``, so a run restarted at (epoch, step) sees
exactly the batches it would have seen (`batches(..., start_step=step)`),
without replaying the steps before.

Two ways to split work across the P processes of a multi-host run:

  * `shard(ds, p, P)`: process p keeps only every P-th example (a token
    stream: its p-th contiguous chunk); each process then iterates its own
    shard. Shards partition the dataset exactly.
  * `batches(..., process_index=p, process_count=P)`: every process walks
    the same global order and takes rows ``[p*B/P, (p+1)*B/P)`` of each
    global batch of B, so the global batch does not depend on P.

Example:
  >>> for batch in batches(train, 32, seed=0, epoch=3, start_step=10):
  ...   state, metrics = train_step(state, batch)   # batch: dict of numpy arrays
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from lstmx.data.dataset import Dataset


def _check_process(process_index: int, process_count: int) -> None:
  if not isinstance(process_count, (int, np.integer)) or process_count < 1:
    raise ValueError(f"process_count: expected a positive int; got {process_count!r}")
  if not isinstance(process_index, (int, np.integer)) or not 0 <= process_index < process_count:
    raise ValueError(f"process_index: expected an int in [0, {process_count}); got "
                     f"{process_index!r}")


def shard(ds: Dataset, process_index: int, process_count: int) -> Dataset:
  """The part of `ds` that process `process_index` of `process_count` reads.

  Examples are dealt round-robin (rows ``process_index::process_count``, so
  class-ordered sources still give balanced shards); an ``"lm"`` token stream
  is cut into `process_count` contiguous chunks (``np.array_split``).
  Together the shards partition `ds`; their sizes differ by at most one.

  Args:
    ds: a `Dataset`.
    process_index: this process, e.g. ``jax.process_index()``.
    process_count: processes, e.g. ``jax.process_count()``.
  """
  _check_process(process_index, process_count)
  if ds.is_stream:
    chunk = np.array_split(ds.inputs, process_count)[process_index]
    return ds.replace(inputs=chunk.copy())
  return ds.select(np.arange(process_index, len(ds), process_count))


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
  """[n] int64, the example order of `epoch`; a pure function of its args."""
  return np.random.default_rng([seed, epoch]).permutation(n)


def steps_per_epoch(n: int, batch_size: int, drop_remainder: bool = True) -> int:
  return n // batch_size if drop_remainder else -(-n // batch_size)


def batches(ds: Dataset, batch_size: int, *, seed: int = 0, epoch: int = 0,
            start_step: int = 0, shuffle: bool = True, drop_remainder: bool = True,
            process_index: int = 0, process_count: int = 1
            ) -> Iterator[dict[str, np.ndarray]]:
  """Yields the batches of one epoch of an example dataset, in a fixed order.

  Args:
    ds: a classification or forecasting `Dataset` (for ``"lm"`` use
      `batchify` and `tbptt_batches`).
    batch_size: B, the global batch size.
    seed, epoch: select the order (`epoch_permutation`); ignored when
      `shuffle` is False (the dataset order).
    start_step: the first step to yield, for an exact resume.
    drop_remainder: skips a last batch smaller than B (fixed shapes for jit).
    process_index, process_count: yield only this process's rows
      ``[p*B/P, (p+1)*B/P)`` of each global batch (B must divide by P).

  Yields:
    Dicts with ``"inputs"`` [b, ...], ``"targets"`` [b, ...], ``"index"``
    [b] and, if the dataset has one, ``"mask"`` [b, T]; b = B / P (the last
    batch may be smaller when `drop_remainder` is False).
  """
  if ds.is_stream:
    raise ValueError(f"ds: expected an example dataset; got kind={ds.kind!r} (use "
                     "batchify and tbptt_batches for token streams)")
  if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
    raise ValueError(f"batch_size: expected a positive int; got {batch_size!r}")
  _check_process(process_index, process_count)
  if batch_size % process_count:
    raise ValueError(f"batch_size: expected a multiple of process_count={process_count}; "
                     f"got {batch_size}")
  steps = steps_per_epoch(len(ds), batch_size, drop_remainder)
  if not isinstance(start_step, (int, np.integer)) or not 0 <= start_step <= steps:
    raise ValueError(f"start_step: expected an int in [0, {steps}]; got {start_step!r}")
  order = epoch_permutation(len(ds), seed, epoch) if shuffle else np.arange(len(ds))
  local = batch_size // process_count
  fields = {"inputs": ds.inputs, "targets": ds.targets, "index": ds.index, "mask": ds.mask}
  for k in range(start_step, steps):
    rows = order[k * batch_size:(k + 1) * batch_size]
    rows = rows[process_index * local:(process_index + 1) * local]
    yield {name: a[rows] for name, a in fields.items() if a is not None}
