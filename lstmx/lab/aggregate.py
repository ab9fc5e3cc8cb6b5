"""Seeds and confidence intervals: a results table (one row per trial and seed)
summarized per configuration, and seed counts for findings.

A configuration is a results row's override columns (dotted keys such as
``model.hidden_size``, ``meta.model``, ``task.params.delay``) without
``train.seed``. `summarize` gives one row per configuration:

* the configuration's key columns;
* ``n``: its rows that count, those whose run finished (status ``completed``,
  ``early_stopped`` or ``diverged``); ``n_diverged`` (of those, diverged),
  ``n_failed`` (crashed trials, not counted in ``n``), ``n_pending`` (not run
  yet, or any other status); ``seeds``: the counted rows' ``train.seed`` values;
* per reported metric ``m`` (numeric columns under ``final.``, ``at_best.``,
  ``best.``, ``analysis.``, the task's ``task.baseline_loss``,
  ``task.chance_accuracy``, ``task.order_free_accuracy`` and ``task.order_free_loss``
  (the copy tasks' order-free floor), ``task.solved`` and ``task.solved_test`` (the
  task's rule on the final validation / test metrics; booleans: the mean is the
  fraction of seeds), and the costs ``steps``, ``wall_time``, ...), over the counted
  rows where ``m`` is finite, summarized as its kind says
  (`lstmx.lab.quantities.kind_of`: rate, bounded, censored, timing, unbounded):
  ``m.mean`` (NaN for a censored kind), ``m.std`` (sample, ddof=1; NaN for censored),
  the 95 % interval ``m.ci_low``, ``m.ci_high`` (timing: min and max), ``m.method``
  (the interval's method: ``Clopper-Pearson exact``, ``percentile bootstrap``,
  ``Student t``, ``median, min-max``, ``Kaplan-Meier median``), ``m.median`` where the
  kind's centre is the median (timing, censored; `center` picks the centre), and for
  a censored kind ``m.n_censored`` and ``m.censored`` (the median is only known to be
  >= ``m.median``). Where the finite values are fewer than ``n`` for some
  configuration (a diverged run has no ``final`` metrics), ``m.n`` gives the count.

A column whose values leave its kind's range (a rule of `quantities.RULES` that does
not fit this table) is summarized as unbounded, and its ``m.method`` says so. One value
gives no interval (NaN; a rate's Clopper-Pearson interval exists for one seed), equal
values a zero-width one, none a NaN centre. Bootstrap intervals come from a fixed seed
(`lstmx.lab.stats.SEED`): the same table gives the same summary. docs/statistics.md
says why each kind gets its treatment.

    >>> table = summarize(results)          # results.csv as a DataFrame
    >>> k, n = agree(results, {"meta.model": "lstm"}, "task.solved")
    >>> f"solved in {seeds_phrase(k, n)}"   # 'solved in 3/3 seeds'
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from lstmx.lab import quantities

SEED_KEY = "train.seed"
COUNTED = ("completed", "early_stopped", "diverged")  # runs that finished
METRIC_PREFIXES = ("final.", "at_best.", "best.", "analysis.")
TASK_METRICS = ("task.baseline_loss", "task.chance_accuracy", "task.order_free_accuracy",
                "task.order_free_loss", "task.solved", "task.solved_test")
COST_METRICS = ("steps", "wall_time", "compile_time", "step_memory_bytes", "peak_rss_bytes",
                "param_count")
STATS = ("mean", "std", "ci_low", "ci_high")
CONFIDENCE = 0.95
# Summary-derived columns that are never configuration keys (`task.name` is one only
# where every row has it, i.e. where the sweep sets it).
# ``task.solved_step`` is censored (a run that never solved has none): not a default
# metric; ``summarize(results, metrics=["task.solved_step"])`` gives its Kaplan-Meier
# median, censored at each unsolved run's ``steps``.
_NOT_KEYS = (*TASK_METRICS, "task.solved_rule", "task.solved_step")

Predicate = Callable[[pd.DataFrame], Any] | str


def t_quantile(p: float, df: float) -> float:
  """The `p` quantile of Student's t with `df` degrees of freedom (scipy, a
  dependency of jax)."""
  from scipy.special import stdtrit
  return float(stdtrit(df, p))


def interval(values, confidence: float = CONFIDENCE) -> tuple[float, float, float, float]:
  """(mean, std, low, high) of the finite `values`: std with ddof=1 and the Student
  t interval of the mean; std and interval NaN for fewer than two values, all NaN
  for none. Only for unbounded, roughly normal quantities: `summarize` and
  `lstmx.lab.quantities.describe` give each kind its own interval."""
  v = np.asarray(values, dtype=float).ravel()
  v = v[np.isfinite(v)]
  if len(v) == 0:
    return math.nan, math.nan, math.nan, math.nan
  mean = float(v.mean())
  if len(v) == 1:
    return mean, math.nan, math.nan, math.nan
  std = float(v.std(ddof=1))
  half = t_quantile(0.5 + confidence / 2, len(v) - 1) * std / math.sqrt(len(v))
  return mean, std, mean - half, mean + half


def interval_along(values, axis: int = 0, confidence: float = CONFIDENCE):
  """`interval` along `axis` of an array (e.g. ``[seeds, steps]`` curves): arrays
  (mean, std, low, high), each of the array's shape without `axis`."""
  v = np.moveaxis(np.asarray(values, dtype=float), axis, -1)
  out = np.apply_along_axis(lambda r: np.array(interval(r, confidence)), -1, v)
  return tuple(np.moveaxis(out, -1, 0))


def _as_numeric(column: pd.Series) -> pd.Series | None:
  """The column as floats (booleans as 0/1, also read back from CSV as text); None
  if it holds anything else."""
  if pd.api.types.is_bool_dtype(column):
    return column.astype(float)
  if pd.api.types.is_numeric_dtype(column):
    return column.astype(float)
  mapped = column.map(lambda v: {True: 1.0, False: 0.0, "True": 1.0, "False": 0.0}.get(v, v)
                      if isinstance(v, (bool, str, np.bool_)) else v)
  try:
    return pd.to_numeric(mapped, errors="raise").astype(float)
  except (ValueError, TypeError):
    return None


def config_keys(results: pd.DataFrame) -> list[str]:
  """The columns that name a configuration: the dotted override columns, without
  ``train.seed`` and the summary's metric columns."""
  keys = []
  for c in results.columns:
    if "." not in c or c == SEED_KEY or c.startswith(METRIC_PREFIXES) or c in _NOT_KEYS:
      continue
    if c == "task.name" and results[c].isna().any():
      continue  # the task's name from the summaries, not an override
    keys.append(c)
  return keys


def metric_columns(results: pd.DataFrame, keys: Sequence[str] = ()) -> list[str]:
  """The numeric reported metrics of `results`, in table order."""
  out = []
  for c in results.columns:
    if c in keys or not (c.startswith(METRIC_PREFIXES) or c in TASK_METRICS
                         or c in COST_METRICS):
      continue
    values = _as_numeric(results[c])
    if values is not None and values.notna().any():
      out.append(c)
  return out


def _hashable(v):
  if isinstance(v, (dict, list, tuple, set)):
    return str(v)  # as results.csv writes it
  return v


def counted(results: pd.DataFrame) -> pd.DataFrame:
  """The rows that count: finished runs (`COUNTED`); all rows if there is no status."""
  if "status" not in results:
    return results
  return results[results["status"].isin(COUNTED)]


def summarize(results: pd.DataFrame, metrics: Sequence[str] | None = None,
              keys: Sequence[str] | None = None,
              confidence: float = CONFIDENCE) -> pd.DataFrame:
  """One row per configuration of `results` (see the module docstring for columns).

  Args:
    results: one row per trial and seed, as the runner writes ``results.csv``.
    metrics: the columns to summarize; default every numeric reported metric.
    keys: the configuration columns; default `config_keys` (``train.seed`` is
      never one).
    confidence: of the interval.

  Returns:
    The summary, configurations in the order they first appear in `results`.
  """
  keys = [k for k in (config_keys(results) if keys is None else keys) if k != SEED_KEY]
  missing = [k for k in keys if k not in results]
  if missing:
    raise ValueError(f"keys: expected columns of the results table; got {missing}")
  metrics = metric_columns(results, keys) if metrics is None else list(metrics)
  missing = [m for m in metrics if m not in results]
  if missing:
    raise ValueError(f"metrics: expected columns of the results table; got {missing}")
  table = results.copy()
  for k in keys:
    table[k] = table[k].map(_hashable)
  numeric = {}
  for m in metrics:
    values = _as_numeric(table[m])
    if values is None:
      raise ValueError(f"metrics: expected a numeric column; got {m!r} holding "
                       f"{table[m].dropna().iloc[:3].tolist()}")
    numeric[m] = values.to_numpy()
  status = table["status"] if "status" in table else pd.Series("completed", table.index)
  rows, uses = [], []
  groups = table.groupby(keys, sort=False, dropna=False) if keys else [((), table)]
  for values, g in groups:
    values = values if isinstance(values, tuple) else (values,)
    st = status[g.index]
    use = g.index[st.isin(COUNTED)]
    row = dict(zip(keys, values))
    row.update(n=len(use), n_diverged=int((st == "diverged").sum()),
               n_failed=int((st == "failed").sum()),
               n_pending=int((~st.isin((*COUNTED, "failed"))).sum()))
    if SEED_KEY in g:
      row["seeds"] = " ".join(str(_plain(s)) for s in g.loc[use, SEED_KEY])
    rows.append(row)
    uses.append(table.index.get_indexer(use))
  short = set()
  for m in metrics:
    for row, d in zip(rows, _described(table, numeric[m], m, uses, confidence)):
      row.update({f"{m}.mean": d.mean, f"{m}.std": d.std, f"{m}.ci_low": d.low,
                  f"{m}.ci_high": d.high, f"{m}.n": d.n, f"{m}.method": d.method})
      if d.kind in ("timing", "censored"):
        row[f"{m}.median"] = d.median
      if d.kind == "censored":
        row.update({f"{m}.n_censored": d.n_censored, f"{m}.censored": d.censored})
      if d.n < row["n"]:
        short.add(m)
  out = pd.DataFrame(rows)
  drop = [f"{m}.n" for m in metrics if m not in short]
  return out.drop(columns=drop) if len(out) else out


def _described(table: pd.DataFrame, values: np.ndarray, metric: str,
               uses: list[np.ndarray], confidence: float) -> list[quantities.Described]:
  """`metric`'s `values` (the whole column) described per configuration (`uses`: the
  counted rows' positions) as its kind says; a column outside its kind's range (a
  registry rule that does not fit this table) is described as unbounded, which its
  ``.method`` then says."""
  kind = quantities.kind_of(metric)
  counted_rows = np.concatenate(uses) if uses else np.array([], int)
  if not quantities.fits(values[counted_rows], kind):
    kind = quantities.UNBOUNDED
  budgets = None
  if kind.budget is not None:
    if kind.budget not in table:
      raise ValueError(f"metrics: {metric!r} is censored at its run's {kind.budget!r}, "
                       f"which the results table lacks")
    column = _as_numeric(table[kind.budget]).to_numpy()
    budgets = [column[u] for u in uses]
  return quantities.describe_groups([values[u] for u in uses], kind, budgets, confidence)


def _plain(v):
  """A seed as an int where it is one (read back from CSV as a float)."""
  if isinstance(v, float) and v.is_integer():
    return int(v)
  return v


def summary_keys(summary: pd.DataFrame) -> list[str]:
  """The configuration columns of a summary (those before ``n``)."""
  if "n" not in summary:
    raise ValueError(f"summary: expected a summarize() table with column 'n'; got columns "
                     f"{list(summary.columns)[:8]}")
  return list(summary.columns[:summary.columns.get_loc("n")])


def metric_count(summary: pd.DataFrame, metric: str) -> pd.Series:
  """Per configuration, how many seeds `metric`'s statistics rest on."""
  return summary[f"{metric}.n"] if f"{metric}.n" in summary else summary["n"]


def select(results: pd.DataFrame, group: Mapping[str, Any]) -> pd.DataFrame:
  """The rows of `results` (or a summary) whose columns equal `group`'s values."""
  mask = pd.Series(True, index=results.index)
  for k, v in group.items():
    if k not in results:
      raise ValueError(f"group: expected columns of the table; got {k!r}")
    mask &= results[k].map(_hashable) == _hashable(v)
  return results[mask]


def _truth(rows: pd.DataFrame, predicate: Predicate) -> np.ndarray:
  if isinstance(predicate, str):
    values = _as_numeric(rows[predicate])
    if values is None:
      raise ValueError(f"predicate: expected a boolean or numeric column; got {predicate!r}")
    return values.fillna(0.0).to_numpy() > 0
  return np.asarray(predicate(rows), dtype=bool).reshape(len(rows))


def agree(results: pd.DataFrame, group: Mapping[str, Any], predicate: Predicate
          ) -> tuple[int, int]:
  """(k, n): of the `n` counted seeds of the configuration `group` (``{column:
  value}``; ``{}`` for all rows), `k` satisfy `predicate`.

  Args:
    results: the results table, one row per trial and seed.
    group: column values selecting the configuration.
    predicate: a boolean column's name (``"task.solved"``; a missing value counts
      as false), or a function of the rows giving one boolean per row, e.g.
      ``lambda r: r["final.validation.loss_over_baseline"] < 1``.
  """
  rows = counted(select(results, group))
  if not len(rows):
    return 0, 0
  return int(_truth(rows, predicate).sum()), len(rows)


def agree_paired(results: pd.DataFrame, a: Mapping[str, Any], b: Mapping[str, Any],
                 metric: str, compare: Callable[[np.ndarray, np.ndarray], np.ndarray]
                 = np.less) -> tuple[int, int]:
  """(k, n): over the `n` seeds both configurations `a` and `b` finished with a
  finite `metric`, in how many `compare(a's value, b's value)` holds (default:
  a's is below b's). Seeds are matched by ``train.seed`` (by position without it).
  """
  ra, rb = counted(select(results, a)), counted(select(results, b))
  va, vb = _as_numeric(ra[metric]), _as_numeric(rb[metric])
  if SEED_KEY in results:
    va.index, vb.index = ra[SEED_KEY].to_numpy(), rb[SEED_KEY].to_numpy()
    va, vb = va[~va.index.duplicated()], vb[~vb.index.duplicated()]
    both = va.index.intersection(vb.index)
    x, y = va[both].to_numpy(), vb[both].to_numpy()
  else:
    k = min(len(va), len(vb))
    x, y = va.to_numpy()[:k], vb.to_numpy()[:k]
  ok = np.isfinite(x) & np.isfinite(y)
  return int(np.asarray(compare(x[ok], y[ok])).sum()), int(ok.sum())


def seeds_phrase(k: int, n: int) -> str:
  """``"3/3 seeds"``, ``"1/1 seed"``."""
  return f"{k}/{n} seed{'' if n == 1 else 's'}"


def center(summary, metric: str):
  """`metric`'s centre in `summary` (a summarize() table or one row): its ``.median``
  where its kind's centre is the median (timing, censored), else its ``.mean``."""
  name = f"{metric}.median"
  return summary[name] if name in summary else summary[f"{metric}.mean"]


def center_interval(summary_row: Mapping[str, Any], metric: str
                    ) -> tuple[float, float, float]:
  """(centre, low, high) of `metric` in one summary row; low and high NaN where there is
  no interval."""
  return (float(center(summary_row, metric)), float(summary_row[f"{metric}.ci_low"]),
          float(summary_row[f"{metric}.ci_high"]))


def mean_ci_text(summary_row: Mapping[str, Any], metric: str, fmt: str = ".3f",
                 method: bool = True) -> str:
  """`metric`'s centre and 95 % interval as its kind gives them (`summarize`), naming the
  method where there is an interval (unless `method` is False: a table that names it
  in its header):

  * ``"0.965 [0.951, 0.979] (percentile bootstrap)"``: a mean and its interval;
  * ``"1.2 [1.1, 1.5] (median, min-max)"``: a timing's median and range;
  * ``"42 (Kaplan-Meier median; censored in 1/3 seeds)"``, ``">= 151 (Kaplan-Meier
    median; censored in 3/3 seeds)"``: a censored count;
  * ``"0.965"``: one seed (no interval).
  """
  c, low, high = center_interval(summary_row, metric)
  name = summary_row.get(f"{metric}.method", "Student t")
  if f"{metric}.n_censored" in summary_row:
    k = int(summary_row[f"{metric}.n_censored"])
    n = int(summary_row.get(f"{metric}.n", summary_row.get("n", k)))
    text = (">= " if bool(summary_row[f"{metric}.censored"]) else "") + format(c, fmt)
    return text + (f" ({name}; censored in {seeds_phrase(k, n)})" if method else "")
  text = format(c, fmt)
  if np.isfinite(low) and np.isfinite(high):
    text += f" [{format(low, fmt)}, {format(high, fmt)}]" + (f" ({name})" if method else "")
  return text
