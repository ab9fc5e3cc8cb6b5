"""One registry helper for every plug-in kind: backends, models, tasks, datasets.

A `Registry` maps names to entries. An entry is registered directly, with the
decorator form, or lazily as ``"module:attribute"`` so that an optional
dependency (Pallas, cuDNN) is imported only when its entry is first asked for.
An unknown name raises a ValueError that names the option, the expected names
and the name given.

    >>> MODELS = Registry("model.kind")
    >>> @MODELS.register("mlp")
    ... def build_mlp(cfg): ...
    >>> MODELS.get("mlp") is build_mlp
    True
    >>> MODELS.get("mpl")
    Traceback (most recent call last):
    ValueError: model.kind: expected one of ('mlp',); got 'mpl'

This module imports nothing from lstmx: every layer may use it.
"""

from __future__ import annotations

import importlib
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
  """Names -> entries of one kind.

  Args:
    option: the name of the option that selects an entry (e.g. ``"model.kind"``,
      ``"backend"``); error messages start with it.
  """

  def __init__(self, option: str):
    self.option = option
    self._entries: dict[str, T] = {}
    self._lazy: dict[str, str] = {}

  def register(self, name: str, entry: T | None = None) -> T | Callable[[T], T]:
    """Registers `entry` under `name`; without `entry`, a decorator that does.

    Raises:
      ValueError: `name` is already registered.
    """
    if entry is None:
      def wrap(e: T) -> T:
        self.register(name, e)
        return e
      return wrap
    self._check_new(name)
    self._entries[name] = entry
    return entry

  def register_lazy(self, name: str, target: str) -> None:
    """Registers ``"package.module:attribute"``, imported on the first `get`."""
    if ":" not in target:
      raise ValueError(f"target: expected 'module:attribute'; got {target!r}")
    self._check_new(name)
    self._lazy[name] = target

  def _check_new(self, name: str) -> None:
    if not isinstance(name, str) or not name:
      raise ValueError(f"{self.option}: expected a non-empty name; got {name!r}")
    if name in self._entries or name in self._lazy:
      raise ValueError(f"{self.option}: expected a new name; got {name!r}, already registered")

  def get(self, name: str) -> T:
    """The entry of `name`, importing a lazy one; ValueError for an unknown name."""
    if name in self._entries:
      return self._entries[name]
    if name in self._lazy:
      module, attr = self._lazy.pop(name).split(":")
      entry = getattr(importlib.import_module(module), attr)
      self._entries.setdefault(name, entry)  # importing may have registered it already
      return self._entries[name]
    raise ValueError(f"{self.option}: expected one of {self.names()}; got {name!r}")

  def names(self) -> tuple[str, ...]:
    """Every registered name: the imported entries first, then the lazy ones."""
    return tuple(self._entries) + tuple(n for n in self._lazy if n not in self._entries)

  def __contains__(self, name: object) -> bool:
    return name in self._entries or name in self._lazy

  def __iter__(self) -> Iterator[str]:
    return iter(self.names())

  def __len__(self) -> int:
    return len(self.names())

  def __repr__(self) -> str:
    return f"Registry({self.option!r}, {list(self.names())})"
