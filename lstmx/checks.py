"""Scalar checks shared by the public API: NumPy and JAX scalars count as Python numbers.

``np.int64(8)`` is an int and ``np.float32(0.1)`` or ``jnp.float32(0.1)`` (a 0-d
array) a float wherever lstmx takes a Python number; bools (Python, NumPy or
JAX) are neither, and neither is a traced value (its number is unknown). Every
failed check raises one line naming the argument, with what was expected and
what was got.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_BOOLS = (bool, np.bool_)


def _zero_d(value) -> np.generic | None:
  """A 0-d NumPy or concrete JAX array's value as a NumPy scalar; None otherwise."""
  if isinstance(value, np.ndarray) and value.ndim == 0:
    return value[()]
  if isinstance(value, jax.Array) and not isinstance(value, jax.core.Tracer) and value.ndim == 0:
    return np.asarray(value)[()]
  return None


def scalar(value):
  """`value`, a 0-d NumPy or JAX array as its NumPy scalar (other values unchanged)."""
  zero_d = _zero_d(value)
  return value if zero_d is None else zero_d


def as_real(value) -> float:
  """A number `is_real` accepts as a Python float; a NumPy float as the number it
  prints as (``np.float32(0.1)`` -> 0.1, not 0.10000000149011612)."""
  value = scalar(value)
  floating = isinstance(value, np.generic) and not isinstance(value, np.integer)
  return float(str(value)) if floating else float(value)


def is_int(value) -> bool:
  """A Python, NumPy or JAX (0-d) integer, not a bool."""
  value = scalar(value)
  return isinstance(value, (int, np.integer)) and not isinstance(value, _BOOLS)


def is_real(value) -> bool:
  """A Python, NumPy or JAX (0-d) int or float (bfloat16 included), not a bool."""
  value = scalar(value)
  if isinstance(value, _BOOLS):
    return False
  return isinstance(value, (int, float, np.integer, np.floating)) or (
      isinstance(value, np.generic) and jnp.issubdtype(value.dtype, jnp.floating))


def check_bool(name: str, value, *, allow_none: bool = False) -> bool | None:
  """`value` as a Python bool (numpy bools accepted), or a TypeError naming `name`."""
  if value is None and allow_none:
    return None
  if not isinstance(value, _BOOLS):
    expected = "True, False or None" if allow_none else "True or False"
    raise TypeError(f"{name}: expected {expected}; got {value!r}")
  return bool(value)


def check_float_dtype(name: str, dtype, *, allow_none: bool = True):
  """`dtype` unchanged if it names a floating dtype (or is None and `allow_none`).

  Integer and bool dtypes compute garbage in an LSTM (the gates are not integers),
  so they are refused rather than cast.
  """
  if dtype is None and allow_none:
    return None
  expected = "None or a floating dtype" if allow_none else "a floating dtype"
  try:
    dt = jnp.dtype(dtype)
  except TypeError:
    raise TypeError(f"{name}: expected {expected} (e.g. jnp.bfloat16); got {dtype!r}") from None
  if not jnp.issubdtype(dt, jnp.floating):
    raise TypeError(f"{name}: expected {expected} (e.g. jnp.bfloat16); got {dt.name}")
  return dtype


def did_you_mean(name, choices) -> str:
  """`` (did you mean 'x'?)`` for the closest of `choices` to `name` (`difflib`); empty
  where none is close. Used by every message that names a choice."""
  import difflib
  close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
  return f" (did you mean {close[0]!r}?)" if close else ""
