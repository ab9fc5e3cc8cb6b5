"""Sequential and permuted pixel images (Le, Jaitly & Hinton 2015).

An image is read one pixel per step (``layout="pixels"``: 64 steps for the
8x8 sklearn digits, 784 for MNIST and Fashion-MNIST once fetched) or one row
per step (``layout="rows"``); ``permuted=True`` applies one fixed random
permutation of the steps (pMNIST). The class is predicted at the last step.
Batches draw examples uniformly at random from the chosen split of
`lstmx.data`.

Memoryless baseline: the entropy of the training split's class prior (a
model that keeps no memory sees only the last pixel, which carries almost no
information about the class). Solved (lstmx's criterion): validation
accuracy >= 0.9 (digits and MNIST; LSTMs reach about 0.98 on pixel MNIST,
Le et al. 2015).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from lstmx.tasks.base import Batch, Task, last_step_mask

DATASETS = ("digits", "mnist", "fashion_mnist")


@functools.lru_cache(maxsize=8)
def _split_arrays(dataset: str, layout: str, split: str, data_seed: int):
  from lstmx import data
  ds = data.load(dataset, split, seed=data_seed, layout=layout)
  x = np.asarray(ds.inputs, np.float32)
  x = x / max(float(x.max()), 1.0)  # pixel intensities to [0, 1]
  return x, np.asarray(ds.targets, np.int32), int(ds.num_classes)


@dataclasses.dataclass(frozen=True)
class SequentialImages(Task):
  name = "sequential_images"
  solved_rule = "validation accuracy >= 0.9 (lstmx's criterion)"
  dataset: str = "digits"
  layout: str = "pixels"
  permuted: bool = False
  permute_seed: int = 0
  data_seed: int = 0

  def validate(self):
    if self.dataset not in DATASETS:
      raise ValueError(f"{self.name}.dataset: expected one of {DATASETS}; got {self.dataset!r}")
    if self.layout not in ("pixels", "rows"):
      raise ValueError(f"{self.name}.layout: expected 'pixels' or 'rows'; got {self.layout!r}")

  def _arrays(self, split: str):
    x, y, k = _split_arrays(self.dataset, self.layout, split, self.data_seed)
    if self.permuted:
      perm = np.random.default_rng(self.permute_seed).permutation(x.shape[1])
      x = x[:, perm]
    return x, y, k

  input_size = property(lambda self: self._arrays("train")[0].shape[2])
  output_size = property(lambda self: self._arrays("train")[2])
  length = property(lambda self: self._arrays("train")[0].shape[1])

  @property
  def baseline_loss(self) -> float:
    _, y, k = self._arrays("train")
    p = np.bincount(y, minlength=k) / len(y)
    p = p[p > 0]
    return float(-np.sum(p * np.log(p)))

  @property
  def chance_accuracy(self) -> float:
    _, y, k = self._arrays("train")
    return float(np.bincount(y, minlength=k).max() / len(y))

  def sample(self, key: jax.Array, batch_size: int, split: str = "train") -> Batch:
    self.check_split(split)
    x, y, _ = self._arrays(split)
    idx = jax.random.randint(key, (batch_size,), 0, x.shape[0])
    T = x.shape[1]
    lengths = jnp.full((batch_size,), T, jnp.int32)
    mask = last_step_mask(lengths, T)
    labels = jnp.asarray(y)[idx]
    return {"inputs": jnp.asarray(x)[idx], "mask": mask, "lengths": lengths,
            "targets": jnp.where(mask > 0, labels[:, None], 0).astype(jnp.int32)}

  def solved(self, metrics) -> bool:
    return float(metrics["accuracy"]) >= 0.9
