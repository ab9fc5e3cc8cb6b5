"""The task interface: a generator of batches with its loss, metrics and yardsticks.

Every task predicts one output per step. A batch is a dict of arrays:

* ``inputs``  [B, T, input_size] float32 (one-hot symbols or real values);
* ``targets`` [B, T] int32 class ids (classification) or float32 (regression);
* ``mask``    [B, T] float32 loss weights: the steps whose prediction counts;
* ``lengths`` [B] int32 valid input length (all T unless the task pads).

Sequence-level targets (the adding problem, parity) sit at each sequence's
last valid step, with the mask one there. A model's outputs are
[B, T, output_size]: logits for classification, a value (output_size 1) for
regression.

Each task states its *memoryless baseline*: the best loss a predictor reaches
that sees the current input and the position t but nothing earlier. A model
stuck at that loss has learned no memory.

Evaluation (`lstmx.train.evaluation`) is exact: `eval_batches` yields a split's
evaluation set in fixed batches whose padding rows have a zero mask, and
`metric_sums` gives each metric as a (sum, count) pair, so metrics aggregate
over batches exactly. A *finite* task (a dataset) evaluates every example of the
split; a synthetic one a fixed set of `examples` examples, example i drawn from
``eval_key(split)`` folded with i: the same for every run, seed and batch size
(a smaller set is a prefix of a larger one).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from lstmx.checks import is_int

Batch = dict[str, jax.Array]
Sums = dict[str, tuple[jax.Array, jax.Array]]
SPLITS = ("train", "validation", "test")
EVAL_SEED = 0x6576616C  # "eval": the root of every synthetic evaluation set


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def ratio(total, count):
  """total / max(count, 1): a jax array for jax inputs (traced too), else a Python
  float computed in float64."""
  if isinstance(total, jax.Array) or isinstance(count, jax.Array):
    return total / jnp.maximum(count, 1.0)
  return float(total) / max(float(count), 1.0)


def cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """Per-step cross-entropy [B, T] in nats from logits [B, T, C] and ids [B, T]."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]


@dataclasses.dataclass(frozen=True)
class Task:
  """Base class; subclasses are frozen dataclasses whose fields are the task's parameters."""

  name: ClassVar[str] = ""
  kind: ClassVar[str] = "classification"  # or "regression"
  solved_rule: ClassVar[str] = ""  # the criterion in words, with its source
  finite: ClassVar[bool] = False  # a dataset: evaluation covers every example of a split

  @property
  def input_size(self) -> int:
    raise NotImplementedError

  @property
  def output_size(self) -> int:
    raise NotImplementedError

  @property
  def length(self) -> int:
    """T of the batches `sample` returns."""
    raise NotImplementedError

  @property
  def baseline_loss(self) -> float:
    """The memoryless baseline of `loss` (see the module docstring)."""
    raise NotImplementedError

  @property
  def chance_accuracy(self) -> float | None:
    """Accuracy of the memoryless predictor on the masked steps, where it applies."""
    return None

  @property
  def order_free_accuracy(self) -> float | None:
    """The copy tasks' order-free floor of their recall accuracy (`lstmx.tasks.memory`):
    the best score of a model that remembers which symbols were shown but not their
    order. None where it does not apply."""
    return None

  @property
  def order_free_loss(self) -> float | None:
    """The order-free floor of `loss` (the same predictor's cross-entropy), or None."""
    return None

  def sample(self, key: jax.Array, batch_size: int, split: str = "train") -> Batch:
    """A batch of `batch_size` fresh examples (see the module docstring).

    `split` matters only for tasks with separate train and test distributions
    (the length-generalization tasks); elsewhere every draw is fresh.
    """
    self.check_sample(batch_size, split)
    return self._draw(key, batch_size)

  def _draw(self, key: jax.Array, batch_size: int) -> Batch:
    raise NotImplementedError

  def distribution(self, split: str) -> str:
    """The split whose distribution ``sample(..., split=split)`` draws from: a synthetic
    task draws every split from one distribution ("train"), a dataset (`finite`) each
    split from its own data, and a task whose test split differs (longer sequences)
    returns "test" for it. Splits with one distribution share one compiled program for
    drawing their evaluation sets."""
    self.check_split(split)
    return split if self.finite else "train"

  def check_sample(self, batch_size: int, split: str) -> None:
    """Raises a ValueError naming `batch_size` (an int >= 1, a NumPy or JAX integer
    too) or `split` unless `sample` can draw them."""
    if not is_int(batch_size) or batch_size < 1:
      raise ValueError(f"batch_size: expected an int >= 1; got {batch_size!r}")
    self.check_split(split)

  @staticmethod
  def check_split(split: str) -> None:
    if split not in SPLITS:
      raise ValueError(f"split: expected one of {SPLITS}; got {split!r}")

  def loss(self, outputs: jax.Array, batch: Batch) -> jax.Array:
    """Mean loss over the masked steps (cross-entropy in nats, or squared error)."""
    return masked_mean(self.step_loss(outputs, batch), batch["mask"])

  def step_loss(self, outputs: jax.Array, batch: Batch) -> jax.Array:
    """Per-step loss [B, T] (cross-entropy in nats, or squared error), unmasked."""
    if self.kind == "classification":
      return cross_entropy(outputs, batch["targets"])
    return (outputs[..., 0] - batch["targets"]) ** 2

  def metric_sums(self, outputs: jax.Array, batch: Batch) -> Sums:
    """Each metric of a batch as ``(sum, count)`` float32 scalars, its mean being
    sum / count: summed over batches, they give the exact metric of a whole set.

    ``loss`` and ``accuracy`` count the masked steps; ``sequence_accuracy`` (all
    masked steps of a sequence right) counts the real sequences, those with a
    masked step (padding rows have none). Subclasses add their own metrics here.
    """
    mask = batch["mask"]
    steps = jnp.sum(mask)
    out = {"loss": (jnp.sum(self.step_loss(outputs, batch) * mask), steps)}
    if self.kind == "classification":
      correct = (jnp.argmax(outputs, -1) == batch["targets"]).astype(jnp.float32)
      out["accuracy"] = (jnp.sum(correct * mask), steps)
      real = (jnp.sum(mask, axis=1) > 0).astype(jnp.float32)
      right = (jnp.sum((1.0 - correct) * mask, axis=1) == 0).astype(jnp.float32)
      out["sequence_accuracy"] = (jnp.sum(real * right), jnp.sum(real))
    return out

  def metrics_from_sums(self, sums) -> dict:
    """Means from ``(sum, count)`` pairs (of one batch or summed over many), plus
    ``loss_over_baseline`` = loss / `baseline_loss`. A zero count gives 0. Host
    numbers (numpy or Python) give Python floats, computed in float64."""
    out = {k: ratio(s, c) for k, (s, c) in sums.items()}
    out["loss_over_baseline"] = out["loss"] / self.baseline_loss
    return out

  def metrics(self, outputs: jax.Array, batch: Batch) -> dict[str, jax.Array]:
    """The batch's metrics (means over its masked steps or real sequences)."""
    return self.metrics_from_sums(self.metric_sums(outputs, batch))

  def solved(self, metrics: dict) -> bool:
    raise NotImplementedError

  def metric_names(self) -> tuple[str, ...]:
    """The names of the metrics evaluation reports (`metric_sums`, then
    `metrics_from_sums`), sorted (traced with `jax.eval_shape`: nothing is computed)."""
    def run(key):
      batch = self.sample(key, 2, split="validation")
      outputs = jnp.zeros((*batch["inputs"].shape[:2], self.output_size), jnp.float32)
      return self.metrics_from_sums(self.metric_sums(outputs, batch))
    return tuple(sorted(jax.eval_shape(run, jax.random.key(0))))

  def check_monitor(self, monitor: str) -> None:
    """Raises a ValueError naming ``train.monitor`` unless the task reports `monitor`."""
    names = self.metric_names()
    if monitor not in names:
      raise ValueError(f"train.monitor: expected a metric task {self.name!r} reports, one of "
                       f"{names}; got {monitor!r}")

  def validate(self) -> None:
    """Raises ValueError naming a bad parameter; called by `make`."""

  # Evaluation sets (see the module docstring).

  def eval_size(self, split: str, examples: int) -> int:
    """The number of examples in `split`'s evaluation set: every example of the
    split for a finite task (`examples` ignored), else `examples`."""
    self.check_split(split)
    check_int("evaluation", "examples", examples, 1)
    return int(examples)

  def eval_batches(self, split: str, batch_size: int, examples: int) -> Iterator[Batch]:
    """`split`'s evaluation set (`eval_size` examples) in order, in batches of exactly
    `batch_size` rows: the last one padded with rows whose mask (and every other
    weight) is zero and whose length is T. Deterministic."""
    check_int("evaluation", "batch_size", batch_size, 1)
    n = self.eval_size(split, examples)
    for start in range(0, n, batch_size):
      yield self._eval_batch(split, start, min(batch_size, n - start), batch_size)

  def _eval_batch(self, split: str, start: int, count: int, batch_size: int) -> Batch:
    """Examples ``start .. start + count - 1`` of the evaluation set, padded to
    `batch_size` rows. Synthetic tasks: example i is ``sample(fold_in(eval_key(split),
    i), 1, split)``."""
    return _draw_examples(self, self.distribution(split), batch_size, eval_key(split), start,
                          count)


def check_int(task: str, name: str, value, low: int) -> None:
  """Raises a ValueError naming ``task.name`` unless `value` is an int (a NumPy or JAX
  integer too) >= `low`."""
  if not is_int(value) or value < low:
    raise ValueError(f"{task}.{name}: expected an int >= {low}; got {value!r}")


def one_hot(ids: jax.Array, size: int) -> jax.Array:
  return jax.nn.one_hot(ids, size, dtype=jnp.float32)


def last_step_mask(lengths: jax.Array, T: int) -> jax.Array:
  """[B, T] float mask with a one at each sequence's last valid step."""
  return (jnp.arange(T)[None, :] == (lengths[:, None] - 1)).astype(jnp.float32)


def eval_key(split: str) -> jax.Array:
  """The fixed key of `split`'s synthetic evaluation set (independent of any seed;
  three folds deep, so no run's data or dropout key equals it)."""
  Task.check_split(split)
  root = jax.random.fold_in(jax.random.key(EVAL_SEED), 0)
  return jax.random.fold_in(root, SPLITS.index(split))


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _draw_examples(task: Task, distribution: str, batch_size: int, key, start, count) -> Batch:
  """Examples ``start + r`` (r < batch_size) of the evaluation set whose key is `key`
  (`eval_key` of its split), drawn from `distribution` (`Task.distribution` of the
  split), each alone from its own key; rows r >= count zeroed as padding."""
  rows = jnp.arange(batch_size)
  keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(start + rows)
  batch = jax.vmap(lambda k: task.sample(k, 1, split=distribution))(keys)
  batch = {k: v[:, 0] for k, v in batch.items()}
  return mask_rows(batch, rows < count)


def mask_rows(batch: Batch, real: jax.Array) -> Batch:
  """`batch` with the rows where `real` [B] is False made padding: every array
  zero there, except ``lengths``, which is T (a valid length)."""
  T = batch["inputs"].shape[1]
  out = {}
  for k, v in batch.items():
    keep = real.reshape(real.shape + (1,) * (v.ndim - 1))
    pad = jnp.full_like(v, T) if k == "lengths" else jnp.zeros_like(v)
    out[k] = jnp.where(keep, v, pad)
  return out


def pad_rows(batch: dict[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
  """A host batch of n <= `batch_size` real rows padded to `batch_size` rows: zeros
  (a zero mask), and length T in ``lengths``."""
  n = len(batch["inputs"])
  if n > batch_size:
    raise ValueError(f"batch_size: expected at least the {n} rows given; got {batch_size}")
  T = batch["inputs"].shape[1]
  out = {}
  for k, v in batch.items():
    v = np.asarray(v)
    pad = np.full((batch_size - n,) + v.shape[1:], T if k == "lengths" else 0, v.dtype)
    out[k] = np.concatenate([v, pad])
  return out
