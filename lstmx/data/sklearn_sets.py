"""Small classification sets bundled with scikit-learn (no download).

  * ``digits``: 1797 optical digits, 8x8 pixels in 0..16 scaled to [0, 1].
  * ``iris`` (150 x 4, 3 classes), ``wine`` (178 x 13, 3 classes),
    ``breast_cancer`` (569 x 30, 2 classes): tabular features, raw units
    (standardize with `lstmx.data.normalize`, fitted on train).

Splits: stratified 70/15/15 by `seed` (`lstmx.data.dataset.FRACTIONS`).
"""

from __future__ import annotations

import functools

import numpy as np

from lstmx.data.dataset import Dataset, check_choice, split_rows
from lstmx.data.registry import register, require

SKLEARN = "scikit-learn==1.9.1"
DIGITS_LAYOUTS = ("rows", "pixels", "flat")
TABULAR_LAYOUTS = ("sequence", "step", "flat")


@functools.lru_cache(maxsize=None)
def _source(name: str) -> tuple[np.ndarray, np.ndarray]:
  datasets = require("sklearn.datasets", SKLEARN, name)
  bunch = getattr(datasets, f"load_{name}")()
  x = np.asarray(bunch.data, np.float32)
  y = np.asarray(bunch.target, np.int32)
  x.flags.writeable = False
  y.flags.writeable = False
  return x, y


def _dataset(name: str, split: str, seed: int, x: np.ndarray, y: np.ndarray) -> Dataset:
  rows = split_rows(y, split, seed)
  return Dataset(name=name, split=split, kind="classification", inputs=x[rows],
                 targets=y[rows], index=rows, num_classes=int(y.max()) + 1)


@register("digits", "classification",
          "scikit-learn optical digits: 1797 8x8 images, 10 classes, read row by row "
          "(8 steps x 8) or pixel by pixel (64 steps x 1)", (SKLEARN,))
def load_digits(split: str, seed: int, layout: str = "rows") -> Dataset:
  """Digits as a sequence.

  Args:
    split: "train", "validation" or "test".
    seed: seeds the stratified split.
    layout: ``"rows"`` -> inputs [N, 8, 8] (8 steps of a row of 8 pixels);
      ``"pixels"`` -> [N, 64, 1] (64 steps of one pixel); ``"flat"`` -> [N, 64].

  Returns:
    A classification `Dataset`, float32 inputs in [0, 1], int32 targets [N].
  """
  check_choice("layout", layout, DIGITS_LAYOUTS)
  x, y = _source("digits")
  x = x / np.float32(16.0)
  shape = {"rows": (-1, 8, 8), "pixels": (-1, 64, 1), "flat": (-1, 64)}[layout]
  return _dataset("digits", split, seed, x.reshape(shape), y)


def _tabular(name: str, split: str, seed: int, layout: str) -> Dataset:
  check_choice("layout", layout, TABULAR_LAYOUTS)
  x, y = _source(name)
  d = x.shape[1]
  shape = {"sequence": (-1, d, 1), "step": (-1, 1, d), "flat": (-1, d)}[layout]
  return _dataset(name, split, seed, x.reshape(shape), y)


_TABULAR_DOC = """Tabular features, raw units.

  Args:
    split: "train", "validation" or "test".
    seed: seeds the stratified split.
    layout: ``"sequence"`` -> inputs [N, D, 1] (the D features as D steps of
      one scalar); ``"step"`` -> [N, 1, D] (one step of D features);
      ``"flat"`` -> [N, D] (for an MLP).

  Returns:
    A classification `Dataset`, float32 inputs, int32 targets [N].
  """


@register("iris", "classification", "scikit-learn iris: 150 x 4 features, 3 classes",
          (SKLEARN,))
def load_iris(split: str, seed: int, layout: str = "sequence") -> Dataset:
  return _tabular("iris", split, seed, layout)


@register("wine", "classification", "scikit-learn wine: 178 x 13 features, 3 classes",
          (SKLEARN,))
def load_wine(split: str, seed: int, layout: str = "sequence") -> Dataset:
  return _tabular("wine", split, seed, layout)


@register("breast_cancer", "classification",
          "scikit-learn breast cancer (Wisconsin): 569 x 30 features, 2 classes", (SKLEARN,))
def load_breast_cancer(split: str, seed: int, layout: str = "sequence") -> Dataset:
  return _tabular("breast_cancer", split, seed, layout)


for _fn in (load_iris, load_wine, load_breast_cancer):
  _fn.__doc__ = _TABULAR_DOC
