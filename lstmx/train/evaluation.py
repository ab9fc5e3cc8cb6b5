"""Exact evaluation: a split's whole evaluation set, its metrics aggregated exactly.

A finite task (classification, character LM, forecasting: ``task.finite``) is
evaluated over every example of the split in one deterministic pass; a synthetic
task over a fixed set of `examples` examples drawn from a key that depends on the
split only (`lstmx.tasks.base.eval_key`), so every run, seed and batch size scores
the same examples. Batches have exactly `batch_size` rows, the last one padded
with masked-out rows (so the step compiles once). Each metric is the ratio of its
sum and its count over all batches (``Task.metric_sums``), not a mean of batch
means. docs/evaluation.md has the details.

  >>> metrics = evaluate(jax.jit(make_eval_step(modeldef, task)), params, task,
  ...                    "test", batch_size=32, examples=128)
  >>> metrics["accuracy"], metrics["examples"]
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import numpy as np

from lstmx.tasks import Task


def evaluate(eval_step: Callable, params, task: Task, split: str, batch_size: int,
             examples: int, place: Callable = lambda batch: batch,
             batches: Sequence | None = None) -> dict[str, float]:
  """`task`'s metrics over `split`'s evaluation set.

  Args:
    eval_step: ``(params, batch) -> {metric: (sum, count)}``, e.g. a jitted
      `lstmx.train.step.make_eval_step`.
    params: the parameters to evaluate.
    task: the task.
    split: "train", "validation" or "test".
    batch_size: rows per batch (the last batch is padded to it).
    examples: the size of a synthetic task's evaluation set (a finite task
      evaluates every example of the split and ignores it).
    place: puts a host batch where the step wants it (e.g. shards it on a mesh).
    batches: the evaluation set already drawn and placed (`eval_set`), for a split
      evaluated again and again; default: drawn now.

  Returns:
    ``{metric: float}``: the task's metrics (``Task.metrics_from_sums`` of the
    summed (sum, count) pairs, in float64), plus ``examples``, the number of real
    examples evaluated (padding excluded) as a float.
  """
  n = task.eval_size(split, examples)
  # Dispatch every batch before fetching any result: one host sync per evaluation.
  if batches is None:
    batches = (place(batch) for batch in task.eval_batches(split, batch_size, examples))
  pending = [eval_step(params, batch) for batch in batches]
  totals: dict[str, list[float]] = {}
  for sums in jax.device_get(pending):
    for name, (total, count) in sums.items():
      acc = totals.setdefault(name, [0.0, 0.0])
      acc[0] += float(np.float64(total))
      acc[1] += float(np.float64(count))
  metrics = {k: float(v) for k, v in
             task.metrics_from_sums({k: tuple(v) for k, v in totals.items()}).items()}
  metrics["examples"] = float(n)
  return metrics


def eval_set(task: Task, split: str, batch_size: int, examples: int,
             place: Callable = lambda batch: batch) -> list:
  """`split`'s evaluation set as placed batches, to pass to `evaluate` as `batches`."""
  return [place(batch) for batch in task.eval_batches(split, batch_size, examples)]


def eval_sizes(task: Task, examples: int) -> dict[str, int]:
  """``{split: number of examples evaluated}`` for the three splits."""
  return {split: task.eval_size(split, examples) for split in ("train", "validation", "test")}
