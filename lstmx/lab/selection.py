"""Learning rates chosen on validation data: one row per configuration and seed from a
sweep that trained each at a grid of rates (`choose`).

For each configuration (the results' configuration keys without the grid key, e.g.
``optimizer.lr``) and seed, the chosen row is the best by, in order:

1. solved on validation (``task.solved``, the task's rule on the final validation
   metrics) before not solved;
2. fewer steps to solve (``task.solved_step``, the first validation evaluation that
   met the rule; a run never solved counts as censored at its steps);
3. the lower final validation loss (``final.validation.loss``);
4. the smaller grid value (a deterministic tie-break).

Only those validation columns decide (`CRITERIA`); test metrics never do. The chosen
rows keep every column, plus ``selected_from`` (how many grid values that seed's
configuration trained at and finished) and ``selected_by`` (the grid key).

    >>> chosen = choose(results, "optimizer.lr")  # one row per (configuration, seed)
"""

from __future__ import annotations

import math

import pandas as pd

from lstmx.lab import aggregate

CRITERIA = ("task.solved", "task.solved_step", "final.validation.loss")


def _rank(row: pd.Series, key: str) -> tuple:
  """The sort key of one finished row (smaller is better)."""
  solved = bool(row.get("task.solved", False) == 1)  # True or 1; NaN (missing) is not
  step = row.get("task.solved_step", math.nan)
  step = float(step) if solved and pd.notna(step) else math.inf
  loss = row.get("final.validation.loss", math.nan)
  loss = float(loss) if pd.notna(loss) else math.inf
  return (not solved, step, loss, float(row[key]))


def choose(results: pd.DataFrame, key: str = "optimizer.lr") -> pd.DataFrame:
  """One row per configuration and seed of `results` (a sweep's results table): the
  best over the values of `key` by validation data only (module docstring). Rows of
  runs that did not finish (`aggregate.counted`) are never chosen."""
  if key not in results:
    raise ValueError(f"key: expected a column of the results table (a swept setting such "
                     f"as 'optimizer.lr'); got {key!r}")
  rows = aggregate.counted(results)
  if not len(rows):
    return rows.assign(selected_from=[], selected_by=[])
  group = [k for k in aggregate.config_keys(rows) if k != key] + [aggregate.SEED_KEY]
  group = [k for k in dict.fromkeys(group) if k in rows]
  chosen = []
  for _, g in rows.groupby(group, dropna=False, sort=False):
    best = min(g.index, key=lambda i: _rank(g.loc[i], key))
    chosen.append(g.loc[[best]].assign(selected_from=len(g), selected_by=key))
  return pd.concat(chosen).reset_index(drop=True)


def chosen(results: pd.DataFrame, key: str = "optimizer.lr") -> pd.DataFrame:
  """`choose` where the sweep trained more than one value of `key`, else the finished
  rows as they are (`aggregate.counted`)."""
  if key in results and results[key].nunique() > 1:
    return choose(results, key)
  return aggregate.counted(results)
