"""Univariate forecasting series bundled with pmdarima and statsmodels.

  * ``sunspots``: monthly mean sunspot numbers, 1749-1983, 2820 steps
    (pmdarima ``load_sunspots``); ~11-year (132-step) cycle.
  * ``taylor``: half-hourly electricity demand of England and Wales, June to
    August 2000, 4032 steps, in MW (pmdarima ``load_taylor``); daily
    (48-step) and weekly (336-step) seasonality: long lags.
  * ``co2``: weekly atmospheric CO2 at Mauna Loa, 1958-2001, 2284 steps, in
    ppm (statsmodels ``co2``). Its 59 missing weeks are filled by linear
    interpolation in time (all are interior; see `raw_series`).

Splits are chronological: the targets of train, validation and test lie in
the first 70%, next 15% and last 15% of the steps. Each example is a window
of the past `window` values and the next `horizon` values
(`lstmx.data.forecast_windows`); validation and test inputs may look back
into the preceding split (the history a forecaster has), their targets
never overlap. `seed` is not used: the split is fixed. Values are in raw
units; normalize with `lstmx.data.normalize` (train statistics).
"""

from __future__ import annotations

import functools

import numpy as np

from lstmx.data.dataset import FRACTIONS, Dataset, check_choice, contiguous_bounds
from lstmx.data.registry import register, require
from lstmx.data.windows import forecast_windows

PMDARIMA = "pmdarima==2.1.1"
STATSMODELS = "statsmodels==0.15.0"
SERIES = ("sunspots", "taylor", "co2")


@functools.lru_cache(maxsize=None)
def _series(name: str) -> np.ndarray:
  if name == "co2":
    co2 = require("statsmodels.datasets.co2", STATSMODELS, name)
    values = co2.load_pandas().data["co2"]
    # Weekly series with 59 interior gaps: linear interpolation in time.
    values = values.interpolate(method="linear", limit_area="inside").to_numpy()
  else:
    datasets = require("pmdarima.datasets", PMDARIMA, name)
    values = getattr(datasets, f"load_{name}")()
  values = np.asarray(values, np.float32)
  if np.isnan(values).any():
    raise ValueError(f"series {name!r}: expected no missing values after filling; got "
                     f"{int(np.isnan(values).sum())}")
  values.flags.writeable = False
  return values


def raw_series(name: str) -> np.ndarray:
  """The whole series `name` ("sunspots", "taylor" or "co2"), [T] float32."""
  check_choice("name", name, SERIES)
  return _series(name).copy()


def _load(name: str, split: str, window: int, horizon: int, stride: int) -> Dataset:
  values = _series(name)
  start, stop = contiguous_bounds(len(values), FRACTIONS, split)
  inputs, targets, t0 = forecast_windows(values, window, horizon, start=start, stop=stop,
                                         stride=stride)
  return Dataset(name=name, split=split, kind="forecasting", inputs=inputs,
                 targets=targets, index=t0)


_DOC = """{what}: inputs [N, window, 1], targets [N, horizon, 1], float32.

  Args:
    split: "train", "validation" or "test" (chronological 70/15/15).
    seed: unused (the split is fixed).
    window: past steps per input (default {window}: {why}).
    horizon: future steps per target.
    stride: steps between windows.
  """


@register("sunspots", "forecasting", "monthly sunspot numbers 1749-1983 (2820 steps), "
          "via pmdarima", (PMDARIMA,))
def load_sunspots(split: str, seed: int, window: int = 132, horizon: int = 1,
                  stride: int = 1) -> Dataset:
  del seed
  return _load("sunspots", split, window, horizon, stride)


@register("taylor", "forecasting", "half-hourly electricity demand, England and Wales, "
          "summer 2000 (4032 steps), via pmdarima", (PMDARIMA,))
def load_taylor(split: str, seed: int, window: int = 336, horizon: int = 1,
                stride: int = 1) -> Dataset:
  del seed
  return _load("taylor", split, window, horizon, stride)


@register("co2", "forecasting", "weekly Mauna Loa CO2 1958-2001 (2284 steps, gaps "
          "interpolated), via statsmodels", (STATSMODELS,))
def load_co2(split: str, seed: int, window: int = 104, horizon: int = 1,
             stride: int = 1) -> Dataset:
  del seed
  return _load("co2", split, window, horizon, stride)


load_sunspots.__doc__ = _DOC.format(what="Monthly sunspots", window=132,
                                    why="one ~11-year cycle")
load_taylor.__doc__ = _DOC.format(what="Half-hourly electricity demand", window=336,
                                  why="one week")
load_co2.__doc__ = _DOC.format(what="Weekly CO2", window=104, why="two years")
