"""Steps to solve: the fraction of seeds that met the task's solved rule by each step,
with censoring, as a Kaplan-Meier curve (scipy.stats.ecdf on `scipy.stats.CensoredData`).

Each finished trial contributes its ``task.solved_step`` (the first validation
evaluation that met the rule, `lstmx.train.hooks.Evaluate`) where it solved, and its
``steps`` as a right-censored time where it did not (it ran that far without solving;
a diverged or early-stopped run is censored where it stopped). The curve is

    F(s) = 1 - prod_{t_i <= s} (1 - d_i / n_i)

over the distinct solve steps t_i (d_i solving at t_i of the n_i still unsolved and
uncensored before it): with every trial run to the same budget it is simply the
fraction solved by step s. Its pointwise 95 % interval is scipy's log-log one, inside
[0, 1].

    >>> times, solved = steps_to_solve(rows)   # rows: results of one configuration
    >>> curve = solved_fraction(times, solved)  # scipy ECDFResult
    >>> plot_solved_fraction(ax, rows, label="lstm T=200")
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.stats

from lstmx.lab import aggregate

CONFIDENCE = 0.95


def steps_to_solve(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
  """(times, solved) of the finished `rows` (`aggregate.counted`): a solved trial's
  ``task.solved_step``, an unsolved one's ``steps`` (censored there)."""
  rows = aggregate.counted(rows)
  if "steps" not in rows:
    raise ValueError(f"rows: expected a 'steps' column (a results table); got columns "
                     f"{list(rows.columns)}")
  step = (pd.to_numeric(rows["task.solved_step"], errors="coerce") if "task.solved_step"
          in rows else pd.Series(np.nan, index=rows.index))
  solved = step.notna().to_numpy()
  times = np.where(solved, step.to_numpy(float), pd.to_numeric(rows["steps"]).to_numpy(float))
  return times, solved


def solved_fraction(times, solved):
  """The Kaplan-Meier estimate of the fraction solved by each step (scipy's
  `ECDFResult`; ``.cdf.evaluate(s)``, ``.cdf.confidence_interval()``), or None for no
  trials."""
  times, solved = np.asarray(times, float), np.asarray(solved, bool)
  if times.shape != solved.shape:
    raise ValueError(f"solved: expected shape {times.shape} like times; got {solved.shape}")
  if not len(times):
    return None
  return scipy.stats.ecdf(scipy.stats.CensoredData(uncensored=times[solved],
                                                   right=times[~solved]))


def plot_solved_fraction(ax, rows: pd.DataFrame, *, label: str, budget: float | None = None,
                         **plot_kw) -> None:
  """Draws the fraction of `rows`' seeds solved against steps on `ax`: a step curve from
  (0, 0) to `budget` (default: the longest run) with its 95 % band, and the seed count
  in the label."""
  times, solved = steps_to_solve(rows)
  curve = solved_fraction(times, solved)
  if curve is None:
    return
  end = float(budget if budget is not None else times.max())
  xs = np.concatenate([[0.0], np.sort(np.unique(times)), [end]])
  xs = xs[xs <= end]
  ys = curve.cdf.evaluate(xs)
  n = len(times)
  line, = ax.step(xs, ys, where="post",
                  label=f"{label} ({int(solved.sum())}/{n} seed{'s' if n != 1 else ''})",
                  **plot_kw)
  if solved.any() and n > 1:
    with warnings.catch_warnings():  # "undefined at some observations": masked below
      warnings.simplefilter("ignore", RuntimeWarning)
      band = curve.cdf.confidence_interval(CONFIDENCE, method="log-log")
    lo, hi = band.low.evaluate(xs), band.high.evaluate(xs)
    ok = np.isfinite(lo) & np.isfinite(hi)  # undefined where all or none have solved
    ax.fill_between(xs, np.where(ok, lo, ys), np.where(ok, hi, ys), where=ok, step="post",
                    alpha=0.15, color=line.get_color(), linewidth=0)
  ax.set_ylim(0, 1.02)


def plot_arms(ax, rows: pd.DataFrame, along: str, *, arm: str = "meta.model",
              also: tuple[str, ...] = (), colors: dict | None = None,
              names: dict | None = None) -> None:
  """One `plot_solved_fraction` curve per (arm, `along` value, `also` values) of
  `rows`: a colour per arm (`colors`), a line style per `along` value, each to the
  rows' budget (``train.steps``, else the longest run); `names` shows the keys and arms
  in the labels (``{"meta.length": "T", "lstm_chrono": "LSTM, chrono init"}``)."""
  colors, names = colors or {}, names or {}
  styles = dict(zip(sorted(set(rows[along])), ("-", "--", ":", "-.") * 4))
  steps = rows["train.steps"] if "train.steps" in rows else rows["steps"]
  budget = float(pd.to_numeric(steps, errors="coerce").max())
  for key, g in rows.groupby([arm, along, *also], sort=True):
    label = " ".join([names.get(str(key[0]), str(key[0]))] + [f"{names.get(k, k)}={v:g}" for k, v in
                                      zip((along, *also), key[1:])])
    plot_solved_fraction(ax, g, label=label, color=colors.get(key[0]), ls=styles[key[1]],
                         budget=budget)
