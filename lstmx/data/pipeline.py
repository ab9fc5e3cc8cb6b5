"""Transforms of the train split: subsample, label noise, normalization.

Each is a pure function of its arguments (randomness from a `seed`), and
returns a new `Dataset`. Normalization statistics come from the train split
only and are applied unchanged to every split.

Example:
  >>> train, test = load("wine", "train"), load("wine", "test")
  >>> train = add_label_noise(subsample(train, 60, seed=1), 0.2, seed=1)
  >>> train, test = normalize(train, test)      # test uses train's mean, std
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lstmx.data.dataset import Dataset, allocate


def _check_examples(name: str, ds: Dataset, kinds: tuple[str, ...]) -> None:
  if ds.kind not in kinds:
    raise ValueError(f"{name}: expected a dataset of kind {kinds}; got kind={ds.kind!r}")


def subsample(ds: Dataset, n: int, *, seed: int = 0, stratify: bool = True) -> Dataset:
  """Keeps `n` examples of `ds`, e.g. to study overfitting vs train-set size.

  Args:
    ds: usually the train split.
    n: examples to keep, 1 <= n <= len(ds) (tokens, for an ``"lm"`` stream).
    seed: seeds the choice.
    stratify: for classification, keeps each class's share (largest-remainder
      rounding), so every class with enough examples stays present.

  Returns:
    The chosen examples in their original order; an ``"lm"`` stream keeps its
    first `n` tokens (contiguous text; `seed` is not used).
  """
  if not isinstance(n, (int, np.integer)) or not 1 <= n <= len(ds):
    raise ValueError(f"n: expected an int in [1, {len(ds)}]; got n={n!r}")
  if ds.is_stream:
    return ds.replace(inputs=ds.inputs[:n].copy())
  rng = np.random.default_rng(seed)
  if stratify and ds.kind == "classification":
    classes, counts = np.unique(ds.targets, return_counts=True)
    take = allocate(n, counts)
    rows = np.concatenate([
        rng.choice(np.flatnonzero(ds.targets == c), k, replace=False)
        for c, k in zip(classes, take)])
  else:
    rows = rng.choice(len(ds), n, replace=False)
  return ds.select(np.sort(rows))


def add_label_noise(ds: Dataset, fraction: float, *, seed: int = 0) -> Dataset:
  """Replaces ``round(fraction * N)`` labels by a different, uniform class.

  Exactly that many labels end up wrong: each chosen example gets one of the
  other ``num_classes - 1`` classes, uniformly (symmetric label noise).

  Args:
    ds: a classification `Dataset` (usually train; keep test clean).
    fraction: in [0, 1].
    seed: seeds which examples and which new labels.
  """
  _check_examples("ds", ds, ("classification",))
  if not 0.0 <= fraction <= 1.0:
    raise ValueError(f"fraction: expected a value in [0, 1]; got fraction={fraction!r}")
  if ds.num_classes is None or ds.num_classes < 2:
    raise ValueError(f"ds.num_classes: expected >= 2; got {ds.num_classes!r}")
  rng = np.random.default_rng(seed)
  rows = rng.choice(len(ds), int(round(fraction * len(ds))), replace=False)
  shift = rng.integers(1, ds.num_classes, size=len(rows))
  targets = ds.targets.copy()
  targets[rows] = (targets[rows] + shift) % ds.num_classes
  return ds.replace(targets=targets.astype(ds.targets.dtype))


@dataclasses.dataclass(frozen=True, eq=False)
class Standardizer:
  """Per-feature affine normalization ``(x - mean) / std``.

  Attributes:
    mean: [D] float32, over the train inputs' examples and steps.
    std: [D] float32, same (features with std 0 use 1).
    targets: also normalize targets (forecasting: targets are future inputs).
  """

  mean: np.ndarray
  std: np.ndarray
  targets: bool = False

  def apply(self, x: np.ndarray) -> np.ndarray:
    return ((x - self.mean) / self.std).astype(np.float32)

  def invert(self, y: np.ndarray) -> np.ndarray:
    """Back to the original units (e.g. forecasts)."""
    return (y * self.std + self.mean).astype(np.float32)


def fit_standardizer(train: Dataset) -> Standardizer:
  """Fits per-feature mean and std on `train.inputs` (the train split only)."""
  _check_examples("train", train, ("classification", "forecasting"))
  if train.split != "train":
    raise ValueError(f"train: expected the train split (statistics come from train only); "
                     f"got split={train.split!r}")
  x = np.asarray(train.inputs, np.float64)
  x = x.reshape(-1, x.shape[-1])
  if train.mask is not None and train.inputs.ndim == 3:
    x = x[train.mask.reshape(-1)]
  std = x.std(axis=0)
  std = np.where(std > 0, std, 1.0)
  return Standardizer(mean=x.mean(axis=0).astype(np.float32), std=std.astype(np.float32),
                      targets=train.kind == "forecasting")


def standardize(ds: Dataset, stats: Standardizer) -> Dataset:
  """Applies `stats` (fitted on train) to any split."""
  targets = stats.apply(ds.targets) if stats.targets else ds.targets
  return ds.replace(inputs=stats.apply(ds.inputs), targets=targets)


def normalize(train: Dataset, *others: Dataset) -> tuple[Dataset, ...]:
  """Fits on `train`, applies to `train` and every other split, in order."""
  stats = fit_standardizer(train)
  return tuple(standardize(ds, stats) for ds in (train,) + others)
