"""`Dataset`: one split of a dataset as numpy arrays, and the split rules.

Kinds and their arrays (N examples, T steps, D features, W window, K horizon):

  * ``"classification"``: ``inputs`` [N, T, D] (or [N, D] with
    ``layout="flat"``) float32, ``targets`` [N] int32 in [0, num_classes).
  * ``"forecasting"``: ``inputs`` [N, W, D] float32 (the past `W` values),
    ``targets`` [N, K, D] float32 (the next `K` values); ``index`` is the time
    step of each example's first target.
  * ``"lm"``: ``inputs`` [N] int32, one token stream (the next token is the
    target; cut it with `lstmx.data.batchify` and `tbptt_batches`);
    ``targets`` and ``index`` are None; ``vocab`` maps ids to tokens.

Split rules shared by every loader, deterministic given `seed` (``load``'s):

  * No official split (sklearn sets, MNIST-10k): stratified per class,
    70% train, 15% validation, 15% test (`FRACTIONS`).
  * Official train/test split (Fashion-MNIST, MNIST IDX, UCR): test is the
    official test set; validation is a stratified `VALIDATION_FRACTION` of
    the official train set (1/12: 5000 of MNIST's 60000; 1/5 for the tiny
    UCR train sets), train the rest.
  * Series and text streams: chronological/contiguous, 70/15/15 for series
    (targets of different splits never overlap), 90/5/5 for Shakespeare; PTB
    and WikiText-2 use their own three files.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

SPLITS: tuple[str, ...] = ("train", "validation", "test")
KINDS: tuple[str, ...] = ("classification", "forecasting", "lm")
FRACTIONS: tuple[float, float, float] = (0.70, 0.15, 0.15)
VALIDATION_FRACTION = 1.0 / 12.0


class MissingDependencyError(ImportError):
  """An optional package that a dataset needs is not installed."""


class DataNotFoundError(FileNotFoundError):
  """Files that a dataset reads are not on disk (fetch them first)."""


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """One split of a dataset. See the module docstring for each kind's arrays.

  Attributes:
    name: registry name, e.g. ``"digits"``.
    split: one of `SPLITS`.
    kind: one of `KINDS`.
    inputs: [N, ...] model inputs (token stream [N] for ``"lm"``).
    targets: [N, ...] targets, or None for ``"lm"``.
    index: [N] int64 position of each example in the source (row of the
      source table; time step of the first target for forecasting); None for
      ``"lm"``.
    mask: optional [N, T] bool, True at valid steps of padded sequences.
    num_classes: classes for ``"classification"``, vocabulary size for
      ``"lm"``, None otherwise.
    vocab: the `lstmx.data.Vocab` of an ``"lm"`` dataset.
  """

  name: str
  split: str
  kind: str
  inputs: np.ndarray
  targets: np.ndarray | None
  index: np.ndarray | None
  mask: np.ndarray | None = None
  num_classes: int | None = None
  vocab: Any = None

  def __post_init__(self):
    check_choice("split", self.split, SPLITS)
    check_choice("kind", self.kind, KINDS)
    n = len(self.inputs)
    for field in ("targets", "index", "mask"):
      value = getattr(self, field)
      if value is not None and len(value) != n:
        raise ValueError(f"{field}: expected {n} rows like inputs; got shape "
                         f"{tuple(value.shape)}")

  def __len__(self) -> int:
    return len(self.inputs)

  @property
  def is_stream(self) -> bool:
    return self.kind == "lm"

  def select(self, rows: np.ndarray) -> "Dataset":
    """The examples at `rows` (ints or a bool mask), as a new `Dataset`."""
    if self.is_stream:
      raise ValueError(f"select: expected an example dataset; got kind={self.kind!r} "
                       "(a token stream: slice it, or use lstmx.data.shard)")
    rows = np.asarray(rows)
    pick = lambda a: None if a is None else a[rows]  # noqa: E731
    return dataclasses.replace(self, inputs=self.inputs[rows], targets=pick(self.targets),
                               index=pick(self.index), mask=pick(self.mask))

  def replace(self, **changes) -> "Dataset":
    return dataclasses.replace(self, **changes)


def check_choice(name: str, value, choices: Sequence) -> None:
  """Raises ``ValueError("name: expected one of ...; got ...")``."""
  if value not in choices:
    raise ValueError(f"{name}: expected one of {tuple(choices)}; got {name}={value!r}")


def allocate(total: int, fractions: Sequence[float]) -> np.ndarray:
  """Splits `total` into integer counts proportional to `fractions`.

  Largest-remainder rounding: the counts sum to `total` exactly; ties go to
  the earlier part.
  """
  fractions = np.asarray(fractions, np.float64)
  exact = total * fractions / fractions.sum()
  counts = np.floor(exact).astype(np.int64)
  order = np.argsort(-(exact - counts), kind="stable")
  counts[order[: total - counts.sum()]] += 1
  return counts


def stratified_split(labels: np.ndarray, fractions: Sequence[float], seed: int
                     ) -> tuple[np.ndarray, ...]:
  """Disjoint row indices, one array per fraction, stratified by label.

  Args:
    labels: [N] class labels.
    fractions: one fraction per part, e.g. `FRACTIONS`.
    seed: the permutation within each class comes from
      ``np.random.default_rng(seed)``, classes in sorted order.

  Returns:
    One sorted int64 array per part; together they partition ``range(N)``.
  """
  rng = np.random.default_rng(seed)
  parts: list[list[np.ndarray]] = [[] for _ in fractions]
  for c in np.unique(labels):
    rows = rng.permutation(np.flatnonzero(labels == c))
    bounds = np.cumsum(allocate(len(rows), fractions))[:-1]
    for part, chunk in zip(parts, np.split(rows, bounds)):
      part.append(chunk)
  return tuple(np.sort(np.concatenate(p)).astype(np.int64) for p in parts)


def split_rows(labels: np.ndarray, split: str, seed: int) -> np.ndarray:
  """Rows of `split` for a dataset without an official split (`FRACTIONS`)."""
  return stratified_split(labels, FRACTIONS, seed)[SPLITS.index(split)]


def train_validation_rows(labels: np.ndarray, split: str, seed: int) -> np.ndarray:
  """Rows of the official train set that form `split` ("train"/"validation")."""
  train, validation = stratified_split(
      labels, (1.0 - VALIDATION_FRACTION, VALIDATION_FRACTION), seed)
  return train if split == "train" else validation


def contiguous_bounds(total: int, fractions: Sequence[float], split: str
                      ) -> tuple[int, int]:
  """[start, stop) of `split` when a stream is cut in order by `fractions`."""
  edges = np.concatenate([[0], np.cumsum(allocate(total, fractions))])
  k = SPLITS.index(split)
  return int(edges[k]), int(edges[k + 1])


def class_ids(labels: np.ndarray) -> tuple[np.ndarray, tuple]:
  """Maps arbitrary labels (strings, floats) to int32 ids by sorted value.

  Numeric strings sort numerically ("2" < "10").
  """
  labels = np.asarray(labels)
  classes = np.unique(labels)
  try:
    classes = np.array(sorted(classes, key=float))
  except (TypeError, ValueError):
    pass
  lookup = {c: i for i, c in enumerate(classes.tolist())}
  ids = np.array([lookup[c] for c in labels.tolist()], np.int32)
  return ids, tuple(classes.tolist())
