"""Truncated backpropagation through time with carried state, and stateful evaluation.

For stream tasks (``task.stateful``, `lstmx.tasks.language.StreamLM`) the
`TrainState` holds ``carry`` = (h, c), each [num_layers, B, H]: the model's
state at the end of the previous window. A step

    carry_0 = 0 if batch["reset"] else stop_gradient(state.carry)
    outputs, carry_T, penalty = model.stream(inputs, carry_0, key)
    loss = task.loss(outputs, batch) + penalty

differentiates the loss of its window only (gradients stop at the window's
start: truncated BPTT, Williams & Peng 1990; Zaremba et al. 2014) and stores
carry_T for the next window. Evaluation runs every window of a split in one
`lax.scan`, carrying the state across them, and sums each metric exactly
(`lstmx.tasks.language.eval_windows`).

  >>> evaluate = stream_evaluator(modeldef, task)
  >>> evaluate(params, "validation")["perplexity"]
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lstmx.tasks import Batch, Task


def is_stateful(task: Task) -> bool:
  """Whether `task` trains with carried state (TBPTT)."""
  return bool(getattr(task, "stateful", False))


def initial_carry(model, batch_size: int):
  """The zero (h, c) of a stream model's `zero_state`, each [num_layers, B, H]."""
  if not hasattr(model, "stream"):
    raise ValueError(f"model.kind: a stream task (TBPTT with carried state) needs a model "
                     f"with a `stream` method (model.kind='lstm' with model.embedding_size); "
                     f"got {type(model).__name__}")
  if getattr(model, "embed", None) is None:
    raise ValueError("model.embedding_size: a stream task feeds token ids [B, T], which the "
                     "model must embed; got embedding_size=None")
  return model.zero_state(batch_size)


def stream_loss(modeldef, task: Task, params, carry, batch: Batch, key: jax.Array | None):
  """(loss + penalty, (loss, new carry)) of one window from `carry` (reset by
  ``batch["reset"]``, gradients stopped); training mode with `key`."""
  carry = jax.tree.map(lambda c: jnp.where(batch["reset"], jnp.zeros_like(c), c), carry)
  carry = jax.lax.stop_gradient(carry)
  outputs, carry, penalty = modeldef.merge(params).stream(batch["inputs"], carry, key)
  loss = task.loss(outputs, batch)
  return loss + penalty, (loss, carry)


def stream_evaluator(modeldef, task: Task) -> Callable[[object, str], dict]:
  """``evaluate(params, split) -> {metric: float}``: the exact stateful evaluation of
  `split` (every prediction once; ``examples`` = their number).

  The windows are built once per split and kept on the device; the scan over
  them compiles once per split shape.
  """
  cache: dict[str, dict] = {}

  @jax.jit
  def sums(params, windows):
    model = modeldef.merge(params)

    def one(carry, w):
      outputs, carry, _ = model.stream(w["inputs"], carry)
      return carry, task.metric_sums(outputs, w)

    carry = model.zero_state(windows["inputs"].shape[1])
    return jax.lax.scan(one, carry, windows)[1]  # per window; summed on the host in float64

  def evaluate(params, split: str) -> dict:
    if split not in cache:
      cache[split] = {k: jnp.asarray(v) for k, v in task.eval_windows(split).items()}
    per_window = jax.device_get(sums(params, cache[split]))
    metrics = task.metrics_from_sums({
        k: (np.sum(s, dtype=np.float64), np.sum(c, dtype=np.float64))
        for k, (s, c) in per_window.items()})
    metrics = {k: float(v) for k, v in metrics.items()}
    metrics["examples"] = float(task.eval_size(split, 0))
    return metrics

  return evaluate
