"""Regular-language tasks for length generalization (Deletang et al. 2023,
"Neural networks and the Chomsky hierarchy").

Training sequences have lengths uniform in [1, train_length]; ``split="test"``
draws lengths uniform in [train_length + 1, test_length]. Batches are padded
to the split's maximum length; ``lengths`` gives each sequence's length and
the target sits at its last valid step. Feed ``lengths`` to the model as
``seq_lengths`` so padding is ignored. The memoryless baseline is for the
training distribution (see `baseline_loss`).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from lstmx.tasks.base import Batch, Task, check_int, last_step_mask, one_hot



@dataclasses.dataclass(frozen=True)
class _Regular(Task):
  solved_rule = ("test-split (longer) sequence accuracy >= 0.99 (lstmx's criterion; "
                 "Deletang et al. 2023 report accuracy on lengths beyond training)")
  train_length: int = 40
  test_length: int = 100
  num_symbols = 2

  def validate(self):
    check_int(self.name, "train_length", self.train_length, 1)
    check_int(self.name, "test_length", self.test_length, self.train_length + 1)

  input_size = property(lambda self: self.num_symbols)
  length = property(lambda self: self.train_length)
  # The label depends on the first symbol too (training lengths).
  longest_dependency = property(lambda self: self.train_length - 1)

  def lengths_range(self, split: str) -> tuple[int, int]:
    self.check_split(split)
    return (1, self.train_length) if split != "test" else (self.train_length + 1,
                                                            self.test_length)

  def label(self, symbols: jax.Array, valid: jax.Array, lengths: jax.Array) -> jax.Array:
    raise NotImplementedError

  def distribution(self, split: str) -> str:
    self.check_split(split)
    return "test" if split == "test" else "train"  # `lengths_range`

  def sample(self, key: jax.Array, batch_size: int, split: str = "train") -> Batch:
    self.check_sample(batch_size, split)
    lo, hi = self.lengths_range(split)
    k_len, k_sym = jax.random.split(key)
    lengths = jax.random.randint(k_len, (batch_size,), lo, hi + 1)
    symbols = jax.random.randint(k_sym, (batch_size, hi), 0, self.num_symbols)
    valid = jnp.arange(hi)[None, :] < lengths[:, None]
    mask = last_step_mask(lengths, hi)
    label = self.label(symbols, valid, lengths)
    inputs = one_hot(symbols, self.num_symbols) * valid[..., None].astype(jnp.float32)
    targets = jnp.where(mask > 0, label[:, None], 0).astype(jnp.int32)
    return {"inputs": inputs, "targets": targets,
            "mask": mask, "lengths": lengths.astype(jnp.int32)}

  def _last_step_entropy(self, n: int) -> float:
    """Entropy (nats) of the label given the length n and the last symbol."""
    raise NotImplementedError

  @property
  def baseline_loss(self) -> float:
    """Exact memoryless cross-entropy over the training lengths 1..train_length."""
    return float(np.mean([self._last_step_entropy(n) for n in range(1, self.train_length + 1)]))

  def solved(self, metrics) -> bool:
    return float(metrics["sequence_accuracy"]) >= 0.99


@dataclasses.dataclass(frozen=True)
class _FairCoinGivenLast(_Regular):
  """A binary label that the last symbol fixes at length 1 and leaves a fair coin
  at every length n > 1 (uniform symbols): memoryless entropy 0, then log 2."""

  output_size = property(lambda self: 2)
  chance_accuracy = property(lambda self: 0.5)

  def _last_step_entropy(self, n):
    return 0.0 if n == 1 else math.log(2)


@dataclasses.dataclass(frozen=True)
class Parity(_FairCoinGivenLast):
  """Parity check: is the number of ones odd? (label 1 if odd)."""

  name = "parity"

  def label(self, symbols, valid, lengths):
    return jnp.sum(jnp.where(valid, symbols, 0), axis=1) % 2


@dataclasses.dataclass(frozen=True)
class EvenPairs(_FairCoinGivenLast):
  """Even pairs: are the counts of "ab" and "ba" equal? (iff first == last symbol)."""

  name = "even_pairs"

  def label(self, symbols, valid, lengths):
    # Counting pairs directly, to keep the definition visible.
    a, b = symbols[:, :-1], symbols[:, 1:]
    pair_valid = valid[:, 1:]
    ab = jnp.sum((a == 0) & (b == 1) & pair_valid, axis=1)
    ba = jnp.sum((a == 1) & (b == 0) & pair_valid, axis=1)
    return (ab == ba).astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class CycleNavigation(_Regular):
  """Cycle navigation: start at 0 on a cycle of 5; symbols 0, 1, 2 move +0, +1, -1;
  the label is the final position."""

  name = "cycle_navigation"
  num_symbols = 3
  output_size = property(lambda self: 5)
  chance_accuracy = property(lambda self: 0.2)

  def label(self, symbols, valid, lengths):
    moves = jnp.array([0, 1, -1])[symbols]
    return jnp.sum(jnp.where(valid, moves, 0), axis=1) % 5

  def _last_step_entropy(self, n):
    # Position before the last move: sum of n - 1 uniform moves in {0, 1, -1}, mod 5.
    dist = np.zeros(5)
    dist[0] = 1.0
    for _ in range(n - 1):
      dist = (dist + np.roll(dist, 1) + np.roll(dist, -1)) / 3
    p = dist[dist > 0]
    return float(-np.sum(p * np.log(p)))
