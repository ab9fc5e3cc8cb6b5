"""Associative recall and multi-query associative recall (MQAR).

Token ids: 0 blank, 1..num_keys keys, num_keys + 1..num_keys + num_values
values, then a query marker. Outputs are value classes 0..num_values - 1;
every step that does not ask for a value has mask 0 (its target is 0).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

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
  """Multi-query associative recall (Arora et al. 2023, "Zoology").

  `num_pairs` (key, value) pairs with distinct keys fill the first
  ``2 * num_pairs`` steps; each key is then queried once, in random order, at
  random distinct later steps of a sequence of `length` steps (blanks
  elsewhere). At each query step the target is the key's value. Memoryless
  baseline ``ln num_values``; chance ``1 / num_values``.
  """

  name = "mqar"
  solved_rule = "accuracy >= 0.99 over query steps (Zoology reports query accuracy)"
  length: int = 64
  num_pairs: int = 8
  num_keys: int = 64
  num_values: int = 64

  def validate(self):
    check_int(self.name, "num_pairs", self.num_pairs, 1)
    check_int(self.name, "length", self.length, 3 * self.num_pairs)
    check_int(self.name, "num_keys", self.num_keys, self.num_pairs)
    check_int(self.name, "num_values", self.num_values, 2)

  input_size = property(lambda self: self.num_keys + self.num_values + 1)
  output_size = property(lambda self: self.num_values)
  baseline_loss = property(lambda self: math.log(self.num_values))
  chance_accuracy = property(lambda self: 1.0 / self.num_values)

  def _draw(self, key: jax.Array, batch_size: int) -> Batch:
    N, K, V, T = self.num_pairs, self.num_keys, self.num_values, self.length
    k_k, k_v, k_o, k_p = jax.random.split(key, 4)
    keys = _distinct(k_k, batch_size, N, K) + 1
    values = jax.random.randint(k_v, (batch_size, N), 0, V)
    pairs = jnp.stack([keys, values + K + 1], axis=2).reshape(batch_size, 2 * N)
    order = _distinct(k_o, batch_size, N, N)  # which pair each query asks for
    positions = jnp.sort(_distinct(k_p, batch_size, N, T - 2 * N), axis=1) + 2 * N
    rows = jnp.arange(batch_size)[:, None]
    tokens = jnp.zeros((batch_size, T), jnp.int32).at[:, :2 * N].set(pairs)
    tokens = tokens.at[rows, positions].set(jnp.take_along_axis(keys, order, axis=1))
    targets = jnp.zeros((batch_size, T), jnp.int32)
    targets = targets.at[rows, positions].set(jnp.take_along_axis(values, order, axis=1))
    mask = jnp.zeros((batch_size, T), jnp.float32).at[rows, positions].set(1.0)
    return {"inputs": one_hot(tokens, self.input_size), "targets": targets, "mask": mask,
            "lengths": jnp.full((batch_size,), T, jnp.int32)}

  def solved(self, metrics) -> bool:
    return float(metrics["accuracy"]) >= 0.99
