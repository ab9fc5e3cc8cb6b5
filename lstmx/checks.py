"""Scalar checks shared by the public API: numpy scalars count as Python numbers.

``np.int64(8)`` is an int and ``np.float32(0.1)`` a float wherever lstmx takes a
Python number; bools (Python or numpy) are neither. Every failed check raises
one line naming the argument, with what was expected and what was got.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

_BOOLS = (bool, np.bool_)


def is_int(value) -> bool:
  """A Python or numpy integer, not a bool."""
  return isinstance(value, (int, np.integer)) and not isinstance(value, _BOOLS)


def is_real(value) -> bool:
  """A Python or numpy int or float, not a bool."""
  return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, _BOOLS)


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
