"""Metric kinds: which centre and 95 % interval a results column gets, by its name.

A results column is a quantity of one kind, and a kind fixes how seeds are summarized
(docs/statistics.md, "Which quantity gets which treatment"); `RULES` is the one list of
which columns are of which kind, `kind_of(column)` reads it:

| kind | centre | interval (``method``) | scipy, via `lstmx.lab.stats` |
|---|---|---|---|
| ``rate`` | fraction k / n | ``Clopper-Pearson exact`` | ``stats.rate`` |
| ``bounded`` | mean | ``percentile bootstrap`` in [lo, hi] | ``stats.bootstrap_mean_rows`` |
| ``censored`` | Kaplan-Meier median (">= cap") | none | ``stats.censored_median`` |
| ``timing`` | median | ``median, min-max`` (the spread, not an interval) | numpy |
| ``unbounded`` | mean | ``Student t`` | ``stats.t_interval`` |

Why: a t interval of a bounded quantity leaves its range (accuracies above 1, a loss
ratio band below 0), a mean of capped counts is a number of the budget, and timings
are skewed by outliers (a slow first call), so their median and range say more.

    >>> kind_of("final.test.accuracy")          # Kind(name='bounded', lo=0.0, hi=1.0, ...)
    >>> describe([0.9, 1.0, 1.0], kind_of("final.test.accuracy")).high   # <= 1
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import math
from typing import Sequence

import numpy as np
import scipy.stats

from lstmx.lab import stats

KIND_NAMES = ("rate", "bounded", "censored", "timing", "unbounded")
METHODS = {"rate": "Clopper-Pearson exact", "bounded": "percentile bootstrap",
           "censored": "Kaplan-Meier median", "timing": "median, min-max",
           "unbounded": "Student t"}
NOTES = {  # how a figure or a report says what it draws
    "rate": "fraction of seeds with its 95 % Clopper-Pearson interval",
    "bounded": "mean over seeds with its 95 % percentile bootstrap interval",
    "censored": "Kaplan-Meier median over seeds (no interval)",
    "timing": "median over seeds with their min-max range",
    "unbounded": "mean over seeds with its 95 % Student t interval"}
# experiments/parallel_time.py records a Newton solve not within MAX_SWEEPS = 150 sweeps as
# MAX_SWEEPS + 1: the count is then known only to be >= 151 (tests/test_quantities.py
# checks the two agree).
NEWTON_CAP = 151


@dataclasses.dataclass(frozen=True)
class Kind:
  """A kind of quantity: its `name` (one of `KIND_NAMES`), its range ``[lo, hi]``, and
  for ``censored`` how a value is known to be censored: at or above `cap` (a count
  capped by a budget), or missing with the row's `budget` column giving the steps it
  ran (steps to solve: a run that never solved has none)."""
  name: str
  lo: float = -math.inf
  hi: float = math.inf
  cap: float | None = None
  budget: str | None = None

  def __post_init__(self):
    if self.name not in KIND_NAMES:
      raise ValueError(f"name: expected one of {KIND_NAMES}; got {self.name!r}")
    if not self.lo < self.hi:
      raise ValueError(f"lo, hi: expected lo < hi; got {self.lo}, {self.hi}")
    if (self.name == "censored") != (self.cap is not None or self.budget is not None):
      raise ValueError(f"cap, budget: a censored kind needs one, no other kind has one; got "
                       f"{self.name!r} with cap={self.cap}, budget={self.budget!r}")

  @property
  def method(self) -> str:
    """The interval's method, as ``summary.csv``'s ``<m>.method`` writes it."""
    return METHODS[self.name]

  @property
  def center(self) -> str:
    """``"median"`` (timing, censored) or ``"mean"``."""
    return "median" if self.name in ("timing", "censored") else "mean"

  @property
  def note(self) -> str:
    """What a figure of this kind draws, for its caption."""
    return NOTES[self.name]


RATE = Kind("rate", 0.0, 1.0)
FRACTION = Kind("bounded", 0.0, 1.0)
NONNEGATIVE = Kind("bounded", 0.0, math.inf)
TIMING = Kind("timing", 0.0, math.inf)
UNBOUNDED = Kind("unbounded")
NEWTON_SWEEPS = Kind("censored", 0.0, math.inf, cap=NEWTON_CAP)
STEPS_TO_SOLVE = Kind("censored", 0.0, math.inf, budget="steps")


@dataclasses.dataclass(frozen=True)
class Rule:
  """Columns matching `pattern` (``fnmatch``, case-sensitive) are of `kind`, because `why`."""
  pattern: str
  kind: Kind
  why: str


# The one list of which column is which kind: the first matching rule wins, and a column
# no rule matches is UNBOUNDED.
RULES = (
    Rule("task.solved_step", STEPS_TO_SOLVE,
         "steps to solve: a run that never solved has none, censored at the steps it ran"),
    Rule("*solved*", RATE, "a boolean per seed (task.solved, task.solved_test)"),
    Rule("analysis.newton.*", NEWTON_SWEEPS,
         f"Newton sweeps, {NEWTON_CAP} = not within the cap (experiments/parallel_time.py)"),
    Rule("*accuracy*", FRACTION, "a fraction of examples"),
    Rule("*within_*", FRACTION, "a fraction of examples within a tolerance"),
    Rule("*fraction*", FRACTION, "a fraction"),
    Rule("*_time", TIMING, "a wall-clock time (wall_time, compile_time, step_time)"),
    Rule("*_time_*", TIMING, "a wall-clock time (step_time_dev8, step_time_min)"),
    Rule("analysis.time.*", TIMING, "a forward wall time (experiments/parallel_time.py)"),
    Rule("*_bytes", TIMING, "memory: measured once per seed, skewed"),
    Rule("*tokens_per_s*", TIMING, "throughput: a time's reciprocal"),
    Rule("*flops*", TIMING, "FLOP counts and FLOP/s of a compiled step"),
    Rule("analysis.calls", TIMING, "how many calls a timing took"),
    Rule("param_count", TIMING, "a cost of the configuration (one value over seeds)"),
    Rule("*loss*", NONNEGATIVE,
         "cross-entropy and squared losses and their ratios to a baseline are >= 0"),
    Rule("*perplexity*", NONNEGATIVE, "exp of a loss, >= 1"),
    Rule("steps", NONNEGATIVE, "steps run"),
    Rule("*.step", NONNEGATIVE, "a step number (best.step, at_best.step)"),
    Rule("*.examples", NONNEGATIVE, "the size of an evaluation set"),
    Rule("best.value", UNBOUNDED, "the monitored metric's best: its range follows best.metric"),
    Rule("analysis.grad_*", UNBOUNDED, "gradient decay rates and R^2 of their fit: signed"),
)


def kind_of(column: str) -> Kind:
  """The kind of the results column `column` by the first of `RULES` it matches;
  `UNBOUNDED` where none does."""
  for rule in RULES:
    if fnmatch.fnmatchcase(column, rule.pattern):
      return rule.kind
  return UNBOUNDED


def fits(values, kind: Kind) -> bool:
  """Whether the finite `values` (a column, all configurations) can be of `kind`: a
  rate's are 0 or 1, a bounded or censored kind's inside ``[lo, hi]`` (and at most
  its cap: a larger count means the cap is not the one that produced it)."""
  v = np.asarray(values, dtype=float).ravel()
  v = v[np.isfinite(v)]
  if kind.name == "rate":
    return bool(np.isin(v, (0.0, 1.0)).all())
  if kind.name in ("bounded", "censored"):
    inside = (v >= kind.lo) & (v <= (kind.hi if kind.cap is None else kind.cap))
    return bool(inside.all())
  return True


@dataclasses.dataclass(frozen=True)
class Described:
  """One metric of one configuration over its seeds, as its kind summarizes it.

  ``center`` is what a table prints and a figure draws: the mean (rate, bounded,
  unbounded) or the median (timing, censored). ``mean`` is NaN for a censored kind (a
  mean of capped counts is the budget's), ``median`` NaN for a mean kind. ``low``,
  ``high`` are the 95 % interval (timing: min and max), NaN where there is none (one
  value; a censored kind); ``std`` the sample standard deviation (NaN for one value or
  a censored kind). ``n`` values; for a censored kind ``n_censored`` of them did not
  finish, and ``censored`` says the median is only known to be >= ``center``.
  """
  kind: str
  method: str
  center: float
  mean: float
  median: float
  std: float
  low: float
  high: float
  n: int
  n_censored: int = 0
  censored: bool = False


_NAN = math.nan


@functools.lru_cache(maxsize=4096)
def _rate(k: int, n: int, confidence: float) -> tuple[float, float]:
  r = stats.rate(k, n, confidence)
  return r.low, r.high


def _std(v: np.ndarray) -> float:
  return float(v.std(ddof=1)) if len(v) > 1 else _NAN


def _censored(values, budgets, kind: Kind) -> Described:
  v = np.asarray(values, dtype=float).ravel()
  if kind.budget is not None:  # missing: did not finish within the row's budget
    b = np.asarray(budgets, dtype=float).ravel()
    missing = ~np.isfinite(v)
    v, cens = np.where(missing, b, v), missing
    keep = np.isfinite(v)
    v, cens = v[keep], cens[keep]
    cap = float(v[cens].max()) if cens.any() else (float(v.max()) if len(v) else _NAN)
  else:
    v = v[np.isfinite(v)]
    cens, cap = v >= kind.cap, float(kind.cap)
  if not len(v):
    return Described(kind.name, kind.method, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, 0)
  m = stats.censored_median(v, cap, censored=cens)
  return Described(kind.name, kind.method, m.value, _NAN, m.value, _NAN, _NAN, _NAN, m.n,
                   m.n_censored, m.censored)


def describe(values, kind: Kind, budgets=None,
             confidence: float = stats.CONFIDENCE) -> Described:
  """`values` (one configuration's seeds; NaN = missing) summarized as `kind` says.

  Args:
    values: one value per seed.
    kind: the quantity's kind (`kind_of`).
    budgets: for a censored kind with a ``budget`` column, that column's values, one
      per seed: where a value is missing, the run did not finish within its budget.
    confidence: of the interval (not of timing's min-max).

  Raises:
    ValueError: values outside the kind's range (`fits`), or a budget kind without
      budgets.
  """
  return describe_groups([values], kind, None if budgets is None else [budgets],
                         confidence)[0]


def describe_groups(groups: Sequence, kind: Kind, budgets: Sequence | None = None,
                    confidence: float = stats.CONFIDENCE) -> list[Described]:
  """`describe` of each of `groups` (one array of seed values per configuration), with
  the bounded kind's bootstraps batched (one scipy call per number of values), so a
  summary of hundreds of configurations takes well under a second per metric."""
  groups = [np.asarray(g, dtype=float).ravel() for g in groups]
  if kind.name == "censored":
    if kind.budget is not None and budgets is None:
      raise ValueError(f"budgets: a censored kind with budget {kind.budget!r} needs its "
                       "values, one per seed")
    return [_censored(g, None if budgets is None else budgets[i], kind)
            for i, g in enumerate(groups)]
  finite = [g[np.isfinite(g)] for g in groups]
  bad = [v for v in finite if not fits(v, kind)]
  if bad:
    raise ValueError(f"values: expected values of a {kind.name} kind in [{kind.lo}, "
                     f"{kind.hi}]; got {bad[0].tolist()}")
  out: list[Described | None] = [None] * len(groups)
  batch: dict[int, list[int]] = {}  # bounded: rows to bootstrap, by their count
  for i, v in enumerate(finite):
    n = len(v)
    if n == 0:
      out[i] = Described(kind.name, kind.method, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, 0)
      continue
    mean, median, std = float(v.mean()), float(np.median(v)), _std(v)
    if kind.name == "timing":
      low, high = (float(v.min()), float(v.max())) if n > 1 else (_NAN, _NAN)
      out[i] = Described(kind.name, kind.method, median, mean, median, std, low, high, n)
      continue
    if kind.name == "rate":
      low, high = _rate(int(v.sum()), n, confidence)
    elif n == 1:
      low, high = _NAN, _NAN
    elif (v == v[0]).all():  # every resample's mean, and t's zero-width interval
      low, high = mean, mean
    elif kind.name == "bounded":
      batch.setdefault(n, []).append(i)
      low, high = _NAN, _NAN  # filled below
    else:  # = stats.t_interval, without its warning for nearly equal values
      low, high = (float(x) for x in scipy.stats.t.interval(
          confidence, n - 1, loc=mean, scale=std / math.sqrt(n)))
    out[i] = Described(kind.name, kind.method, mean, mean, _NAN, std, low, high, n)
  for n, rows in batch.items():
    low, high = stats.bootstrap_mean_rows(np.stack([finite[i] for i in rows]), confidence)
    for i, lo, hi in zip(rows, low, high):
      out[i] = dataclasses.replace(out[i], low=float(max(kind.lo, lo)),
                                   high=float(min(kind.hi, hi)))
  return out
