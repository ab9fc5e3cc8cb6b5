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
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

Batch = dict[str, jax.Array]
SPLITS = ("train", "validation", "test")


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


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

  def sample(self, key: jax.Array, batch_size: int, split: str = "train") -> Batch:
    """A batch of `batch_size` fresh examples (see the module docstring).

    `split` matters only for tasks with separate train and test distributions
    (the length-generalization tasks); elsewhere every draw is fresh.
    """
    self.check_split(split)
    return self._draw(key, batch_size)

  def _draw(self, key: jax.Array, batch_size: int) -> Batch:
    raise NotImplementedError

  @staticmethod
  def check_split(split: str) -> None:
    if split not in SPLITS:
      raise ValueError(f"split: expected one of {SPLITS}; got {split!r}")

  def loss(self, outputs: jax.Array, batch: Batch) -> jax.Array:
    """Mean loss over the masked steps (cross-entropy in nats, or squared error)."""
    if self.kind == "classification":
      return masked_mean(cross_entropy(outputs, batch["targets"]), batch["mask"])
    return masked_mean((outputs[..., 0] - batch["targets"]) ** 2, batch["mask"])

  def metrics(self, outputs: jax.Array, batch: Batch) -> dict[str, jax.Array]:
    out = {"loss": self.loss(outputs, batch)}
    out["loss_over_baseline"] = out["loss"] / self.baseline_loss
    if self.kind == "classification":
      correct = (jnp.argmax(outputs, -1) == batch["targets"]).astype(jnp.float32)
      out["accuracy"] = masked_mean(correct, batch["mask"])
      # All masked steps of a sequence right.
      wrong = jnp.sum((1.0 - correct) * batch["mask"], axis=1)
      out["sequence_accuracy"] = jnp.mean((wrong == 0).astype(jnp.float32))
    return out

  def solved(self, metrics: dict) -> bool:
    raise NotImplementedError

  def metric_names(self) -> tuple[str, ...]:
    """The names of the metrics `metrics` reports, sorted (traced with `jax.eval_shape`:
    nothing is computed)."""
    def run(key):
      batch = self.sample(key, 2, split="validation")
      outputs = jnp.zeros((*batch["inputs"].shape[:2], self.output_size), jnp.float32)
      return self.metrics(outputs, batch)
    return tuple(sorted(jax.eval_shape(run, jax.random.key(0))))

  def check_monitor(self, monitor: str) -> None:
    """Raises a ValueError naming ``train.monitor`` unless the task reports `monitor`."""
    names = self.metric_names()
    if monitor not in names:
      raise ValueError(f"train.monitor: expected a metric task {self.name!r} reports, one of "
                       f"{names}; got {monitor!r}")

  def validate(self) -> None:
    """Raises ValueError naming a bad parameter; called by `make`."""


def check_int(task: str, name: str, value, low: int) -> None:
  """Raises a ValueError naming ``task.name`` unless `value` is an int (a numpy int
  too) >= `low`."""
  if (not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_))
      or value < low):
    raise ValueError(f"{task}.{name}: expected an int >= {low}; got {value!r}")


def one_hot(ids: jax.Array, size: int) -> jax.Array:
  return jax.nn.one_hot(ids, size, dtype=jnp.float32)


def last_step_mask(lengths: jax.Array, T: int) -> jax.Array:
  """[B, T] float mask with a one at each sequence's last valid step."""
  return (jnp.arange(T)[None, :] == (lengths[:, None] - 1)).astype(jnp.float32)
