"""Field checks for the frozen config dataclasses, run in their ``__post_init__``.

Each check takes the field's dotted name (``model.hidden_size``) and its value,
raises a ValueError (a wrong value or type, as `lstmx.config.set_path` does) that names the
field with what it expected and what it got, and returns the value as the plain
Python type: numpy scalars (``np.int64(8)``, ``np.float32(0.1)``) are accepted
where a Python number is, and an int where a float is. `normalize` writes the
returned values back into a frozen dataclass.

    >>> as_int("model.hidden_size", np.int64(8), low=1)
    8
    >>> as_int("model.hidden_size", True, low=1)
    ValueError: model.hidden_size: expected an int >= 1; got True (bool)
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from lstmx.checks import as_real, is_int, is_real

FLOAT_DTYPES = ("bfloat16", "float16", "float32", "float64")


def _got(value) -> str:
  return f"{value!r} ({type(value).__name__})"


def as_int(name: str, value, *, low: int | None = None, high: int | None = None,
           optional: bool = False) -> int | None:
  """`value` as an int in [low, high] (None allowed iff `optional`)."""
  if value is None and optional:
    return None
  want = "an int" + (f" >= {low}" if low is not None else "") + (
      f" <= {high}" if high is not None else "") + (" or None" if optional else "")
  if not is_int(value):
    raise ValueError(f"{name}: expected {want}; got {_got(value)}")
  value = int(value)
  if (low is not None and value < low) or (high is not None and value > high):
    raise ValueError(f"{name}: expected {want}; got {value}")
  return value


def as_float(name: str, value, *, low: float | None = None, above: float | None = None,
             high: float | None = None, optional: bool = False,
             finite: bool = True) -> float | None:
  """`value` as a float >= low (> above, <= high), finite unless ``finite=False`` (then
  only NaN is refused); an int is accepted."""
  if value is None and optional:
    return None
  bounds = ([f">= {low}"] if low is not None else []) + (
      [f"> {above}"] if above is not None else []) + ([f"<= {high}"] if high is not None else [])
  want = ("a finite float" if finite else "a float") + (
      " " + " and ".join(bounds) if bounds else "") + (" or None" if optional else "")
  if not is_real(value):  # NumPy and JAX scalars count
    raise ValueError(f"{name}: expected {want}; got {_got(value)}")
  value = as_real(value)  # np.float32(0.1) -> 0.1, the number it prints as
  bad = not math.isfinite(value) if finite else math.isnan(value)
  if (bad or (low is not None and value < low)
      or (above is not None and value <= above) or (high is not None and value > high)):
    raise ValueError(f"{name}: expected {want}; got {value}")
  return value


def as_bool(name: str, value) -> bool:
  """`value` as a bool (a numpy bool is accepted; strings and ints are not)."""
  if not isinstance(value, (bool, np.bool_)):
    raise ValueError(f"{name}: expected a bool (true or false); got {_got(value)}")
  return bool(value)


def as_str(name: str, value) -> str:
  if not isinstance(value, str):
    raise ValueError(f"{name}: expected a str; got {_got(value)}")
  return value


def as_choice(name: str, value, choices: Sequence[str]) -> str:
  """`value`, one of `choices`."""
  if not isinstance(value, str) or value not in choices:
    raise ValueError(f"{name}: expected one of {tuple(choices)}; got {value!r}")
  return value


def as_float_dtype(name: str, value, *, optional: bool = True) -> str | None:
  """A floating dtype's name (`FLOAT_DTYPES`), or None."""
  if value is None and optional:
    return None
  if not isinstance(value, str) or value not in FLOAT_DTYPES:
    raise ValueError(f"{name}: expected a floating dtype name, one of {FLOAT_DTYPES}"
                     f"{' or None' if optional else ''}; got {value!r}")
  return value


def normalize(obj, **values: Any) -> None:
  """Sets the checked `values` on frozen dataclass `obj` (inside its ``__post_init__``)."""
  for key, value in values.items():
    object.__setattr__(obj, key, value)
