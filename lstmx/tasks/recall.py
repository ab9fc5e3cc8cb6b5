"""Associative recall and multi-query associative recall (MQAR).

Outputs are value classes 0..num_values - 1; every step that does not ask for
a value has mask 0 (its target is 0). Token ids differ: see each class.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from lstmx.tasks.base import Batch, Task, check_int, one_hot


def _distinct(key, batch_size: int, n: int, k: int) -> jax.Array:
  """[B, n] distinct ints in [0, k) per row."""
  return jnp.argsort(jax.random.uniform(key, (batch_size, k)), axis=1)[:, :n]


@dataclasses.dataclass(frozen=True)
class AssociativeRecall(Task):
  """Associative recall (Ba et al. 2016, "Using fast weights to attend to the recent past").

  `num_pairs` (key, value) pairs with distinct keys, one token per step, then
  a query marker and one of the keys; the target at the last step is its
  value. Memoryless baseline ``ln num_values``; chance ``1 / num_values``.
  Token ids: 0 blank, 1..num_keys keys, num_keys + 1..num_keys + num_values
  values, then the query marker.
  """

  name = "associative_recall"
  solved_rule = "accuracy >= 0.99 at the query step (lstmx's criterion)"
  num_pairs: int = 8
  num_keys: int = 16
  num_values: int = 16

  def validate(self):
    check_int(self.name, "num_pairs", self.num_pairs, 1)
    check_int(self.name, "num_keys", self.num_keys, self.num_pairs)
    check_int(self.name, "num_values", self.num_values, 2)

  input_size = property(lambda self: self.num_keys + self.num_values + 2)
  output_size = property(lambda self: self.num_values)
  length = property(lambda self: 2 * self.num_pairs + 2)
  longest_dependency = property(lambda self: self.length - 1)  # first key -> last step
  baseline_loss = property(lambda self: math.log(self.num_values))
  chance_accuracy = property(lambda self: 1.0 / self.num_values)

  def _draw(self, key: jax.Array, batch_size: int) -> Batch:
    N, K, V = self.num_pairs, self.num_keys, self.num_values
    k_k, k_v, k_q = jax.random.split(key, 3)
    keys = _distinct(k_k, batch_size, N, K) + 1
    values = jax.random.randint(k_v, (batch_size, N), 0, V)
    q = jax.random.randint(k_q, (batch_size,), 0, N)
    pairs = jnp.stack([keys, values + K + 1], axis=2).reshape(batch_size, 2 * N)
    query = jnp.take_along_axis(keys, q[:, None], axis=1)
    marker = jnp.full((batch_size, 1), K + V + 1, jnp.int32)
    tokens = jnp.concatenate([pairs, marker, query], axis=1)
    T = self.length
    target = jnp.take_along_axis(values, q[:, None], axis=1)
    targets = jnp.zeros((batch_size, T), jnp.int32).at[:, -1].set(target[:, 0])
    mask = jnp.zeros((batch_size, T), jnp.float32).at[:, -1].set(1.0)
    return {"inputs": one_hot(tokens, self.input_size), "targets": targets, "mask": mask,
            "lengths": jnp.full((batch_size,), T, jnp.int32)}

  def solved(self, metrics) -> bool:
    return float(metrics["accuracy"]) >= 0.99


@dataclasses.dataclass(frozen=True)
class MQAR(Task):
  """Multi-query associative recall (Arora et al. 2023, "Zoology"), following
  their ``multiquery_ar`` generator.

  The vocabulary of `vocab_size` V tokens is split in two: keys are ids
  ``1 .. V/2 - 1``, values ``V/2 .. V - 1``. A sequence of `length` T steps
  opens with `num_pairs` N pairs ``k_1 v_1 ... k_N v_N`` whose keys are
  distinct and whose values are distinct. Each key is queried once, in the
  remaining ``T - 2N`` steps: key i sits at step ``2N + 2 g_i``, the gaps
  ``g_1..g_N`` drawn without replacement from ``0 .. (T - 2N)/2 - 1`` with
  probability proportional to ``(g + 1) ** (power_a - 1)`` (a power law; Zoology
  uses a = 0.01 for training and test; a = 1 is uniform). Every other step holds
  a random token uniform over the whole vocabulary (Zoology's
  ``random_non_queries``), not a blank. At a query step the target is the
  key's value, as a class ``0 .. V - V/2 - 1`` (its id minus V/2); no other
  step counts.

  Reference lines: the memoryless baseline ``ln(V - V/2)`` (the value alone is
  unknown without memory; `baseline_loss`), and the *bag-of-values floor*
  ``ln N`` (`bag_of_values_loss`): the loss of a model that remembers which
  values occurred but not which key they went with.
  """

  name = "mqar"
  solved_rule = "accuracy >= 0.99 over query steps (Zoology reports query accuracy)"
  length: int = 64
  num_pairs: int = 4
  vocab_size: int = 8192
  power_a: float = 0.01

  def validate(self):
    check_int(self.name, "num_pairs", self.num_pairs, 1)
    check_int(self.name, "length", self.length, 4 * self.num_pairs)
    if self.length % 2:
      raise ValueError(f"{self.name}.length: expected an even int; got {self.length!r}")
    check_int(self.name, "vocab_size", self.vocab_size, 2 * self.num_pairs + 2)
    a = self.power_a
    if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 < a <= 1:
      raise ValueError(f"{self.name}.power_a: expected a number in (0, 1]; got {a!r}")

  input_size = property(lambda self: self.vocab_size)
  num_values = property(lambda self: self.vocab_size - self.vocab_size // 2)
  output_size = property(lambda self: self.num_values)
  baseline_loss = property(lambda self: math.log(self.num_values))
  bag_of_values_loss = property(lambda self: math.log(self.num_pairs))
  chance_accuracy = property(lambda self: 1.0 / self.num_values)
  longest_dependency = property(lambda self: self.length - 1)

  def gap_probabilities(self) -> np.ndarray:
    """[(T - 2N) / 2] probabilities of one gap g = 0, 1, ...: (g + 1) ** (a - 1), normalized."""
    space = (self.length - 2 * self.num_pairs) // 2
    p = np.arange(1, space + 1, dtype=np.float64) ** (self.power_a - 1.0)
    return p / p.sum()

  def _draw(self, key: jax.Array, batch_size: int) -> Batch:
    N, V, T = self.num_pairs, self.vocab_size, self.length
    half = V // 2
    k_k, k_v, k_g, k_f = jax.random.split(key, 4)
    keys = _distinct(k_k, batch_size, N, half - 1) + 1  # ids 1 .. V/2 - 1
    values = _distinct(k_v, batch_size, N, V - half) + half  # ids V/2 .. V - 1
    # Gaps without replacement, weighted by the power law: the Gumbel top-N of
    # log p is a draw in order without replacement (gap i goes to key i).
    log_p = jnp.log(jnp.asarray(self.gap_probabilities(), jnp.float32))
    gumbel = jax.random.gumbel(k_g, (batch_size, log_p.shape[0]))
    gaps = jnp.argsort(-(log_p[None] + gumbel), axis=1)[:, :N]
    positions = 2 * N + 2 * gaps
    rows = jnp.arange(batch_size)[:, None]
    pairs = jnp.stack([keys, values], axis=2).reshape(batch_size, 2 * N)
    tokens = jax.random.randint(k_f, (batch_size, T), 0, V)  # random filler
    tokens = tokens.at[:, :2 * N].set(pairs).at[rows, positions].set(keys)
    targets = jnp.zeros((batch_size, T), jnp.int32).at[rows, positions].set(values - half)
    mask = jnp.zeros((batch_size, T), jnp.float32).at[rows, positions].set(1.0)
    return {"inputs": one_hot(tokens, V), "targets": targets, "mask": mask,
            "lengths": jnp.full((batch_size,), T, jnp.int32)}

  def solved(self, metrics) -> bool:
    return float(metrics["accuracy"]) >= 0.99
