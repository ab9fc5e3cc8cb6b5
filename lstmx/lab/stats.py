"""Statistics that fit each quantity, as records: every function returns a frozen
dataclass of numbers (estimate, interval and its method, test and p-value, n), and
English is rendered from them in one place (`lstmx.lab.findings.render`).

Each treatment is scipy's, not hand-written (docs/statistics.md, "Which quantity gets
which treatment"):

* `rate(k, n)`: k of n seeds solved, with the exact Clopper-Pearson interval
  (``scipy.stats.binomtest(k, n).proportion_ci(method="exact")``);
* `contrast(k_a, n_a, k_b, n_b)`: two arms' solve rates compared by Fisher's exact
  test (``scipy.stats.fisher_exact``, two-sided);
* `bounded_interval(values, lo, hi)`: a bounded or bimodal metric's mean with a
  percentile bootstrap interval (``scipy.stats.bootstrap``), inside ``[lo, hi]``,
  and the per-seed points; `bootstrap_mean_rows(data)` the same intervals for many
  configurations in one call (`lstmx.lab.quantities`, for summaries);
* `t_interval(values)`: an unbounded, roughly normal quantity's mean with Student's
  t interval (``scipy.stats.ttest_1samp(...).confidence_interval``);
* `censored_median(values, cap)`: counts capped by a budget (steps to solve), the
  Kaplan-Meier median (``scipy.stats.ecdf`` of ``scipy.stats.CensoredData``),
  censored (">= cap") when more than half the runs hit the cap; never a mean;
* `sign_test(a, b)`: paired seeds, "a below b in k of n seeds" with the sign test's
  p-value (``scipy.stats.binomtest(k, n, 0.5)``);
* `ratio(a, b)`: the ratio of two positive quantities' means (a cost) with a
  percentile bootstrap interval;
* `iqm`, `probability_of_improvement`: aggregates across tasks or lengths as rliable
  computes them (Agarwal et al. 2021), in `lstmx.lab.across_tasks`.

    >>> rate(3, 5)                    # RateEstimate(k=3, n=5, value=0.6, low=0.147, ...)
    >>> contrast(0, 3, 3, 3).p_value  # 0.1
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Callable, Sequence

import numpy as np
import scipy.stats

CONFIDENCE = 0.95
N_RESAMPLES = 9999
SEED = 0  # bootstrap intervals are reproducible: the same table gives the same report

_NO_SPREAD = "no interval: all values equal"
_ONE_VALUE = "no interval: one value"
_NO_VALUE = "no values"


@dataclasses.dataclass(frozen=True)
class Estimate:
  """A point estimate (its ``statistic``: the mean, the IQM, ...) with its interval
  (``low``, ``high`` None where there is none, ``note`` then says why), the
  interval's method, the values' count ``n`` and range (``lo``, ``hi``; None for
  unbounded), and the per-seed values ``points``."""
  value: float | None
  low: float | None
  high: float | None
  method: str
  n: int
  confidence: float = CONFIDENCE
  lo: float | None = None
  hi: float | None = None
  points: tuple[float, ...] = ()
  note: str | None = None
  statistic: str = "mean"


@dataclasses.dataclass(frozen=True)
class RateEstimate:
  """``k`` of ``n`` seeds (solved), the rate ``k / n`` and its exact interval."""
  k: int
  n: int
  value: float
  low: float
  high: float
  method: str = "Clopper-Pearson exact"
  confidence: float = CONFIDENCE


@dataclasses.dataclass(frozen=True)
class Contrast:
  """Two arms' rates, ``a`` against ``b``, by a test of equal rates: its p-value and
  the sample odds ratio ``(k_a (n_b - k_b)) / ((n_a - k_a) k_b)``."""
  a: RateEstimate
  b: RateEstimate
  p_value: float
  odds_ratio: float
  test: str = "Fisher exact, two-sided"


@dataclasses.dataclass(frozen=True)
class CensoredMedian:
  """The median of values capped at ``cap``: ``value`` is the Kaplan-Meier median, or
  ``cap`` with ``censored`` True when more than half the values hit the cap (the
  median is then only known to be >= cap). ``n_censored`` of ``n`` hit the cap."""
  value: float | None
  censored: bool
  cap: float
  n: int
  n_censored: int
  method: str = "Kaplan-Meier median"
  points: tuple[float, ...] = ()


@dataclasses.dataclass(frozen=True)
class SignTest:
  """Paired seeds: ``a`` below ``b`` in ``k_less``, above in ``k_greater``, equal in
  ``ties`` of ``n``; ``p_value`` of the two-sided sign test over the untied pairs."""
  k_less: int
  k_greater: int
  ties: int
  n: int
  p_value: float
  test: str = "sign test (binomial, two-sided)"


@dataclasses.dataclass(frozen=True)
class Ratio:
  """``value = mean(a) / mean(b)`` of two positive quantities with its interval
  (None where there is none, ``note`` says why); ``n_a``, ``n_b`` values each."""
  value: float
  low: float | None
  high: float | None
  method: str
  n_a: int
  n_b: int
  confidence: float = CONFIDENCE
  note: str | None = None


def _finite(values) -> np.ndarray:
  v = np.asarray(values, dtype=float).ravel()
  return v[np.isfinite(v)]


def _seeded() -> dict:
  """scipy's bootstrap seed keyword: ``rng`` from scipy 1.15, ``random_state`` before."""
  params = inspect.signature(scipy.stats.bootstrap).parameters
  key = "rng" if "rng" in params else "random_state"
  return {key: np.random.default_rng(SEED)}


def percentile_bootstrap(samples: Sequence[np.ndarray], statistic: Callable,
                confidence: float) -> tuple[float, float]:
  """(low, high): the percentile bootstrap interval of `statistic` (vectorized: it
  takes one array per sample and ``axis=-1``) over independent resamples of each of
  `samples` (for several samples, one per task, a stratified bootstrap), with
  ``N_RESAMPLES`` resamples from a fixed seed."""
  res = scipy.stats.bootstrap(tuple(samples), statistic, method="percentile",
                              confidence_level=confidence, n_resamples=N_RESAMPLES,
                              vectorized=True, axis=-1, **_seeded())
  return float(res.confidence_interval.low), float(res.confidence_interval.high)


def bootstrap_mean_rows(data, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
  """(low, high), one per row of `data` ``[m, k]`` (m configurations, k finite values
  each): the percentile bootstrap interval of each row's mean in one scipy call, fast
  for a summary table. scipy draws one set of resample indices for all rows, so each
  row's interval is the one `bounded_interval` gives for that row alone."""
  data = np.asarray(data, dtype=float)
  if data.ndim != 2 or data.shape[1] < 2:
    raise ValueError(f"data: expected [m, k >= 2] values; got shape {data.shape}")
  res = scipy.stats.bootstrap((data,), lambda x, axis: np.mean(x, axis=axis),
                              method="percentile", confidence_level=confidence,
                              n_resamples=N_RESAMPLES, vectorized=True, axis=-1,
                              **_seeded())
  return (np.asarray(res.confidence_interval.low, float),
          np.asarray(res.confidence_interval.high, float))


def rate(k: int, n: int, confidence: float = CONFIDENCE) -> RateEstimate:
  """`k` of `n` seeds, with the Clopper-Pearson (exact) interval of the rate:
  ``[B(a/2; k, n-k+1), B(1-a/2; k+1, n-k)]`` for the beta quantiles ``B``."""
  if not (isinstance(n, (int, np.integer)) and n >= 1):
    raise ValueError(f"n: expected an integer >= 1; got {n!r}")
  if not (isinstance(k, (int, np.integer)) and 0 <= k <= n):
    raise ValueError(f"k: expected an integer in [0, n={n}]; got {k!r}")
  ci = scipy.stats.binomtest(int(k), int(n)).proportion_ci(confidence, method="exact")
  return RateEstimate(int(k), int(n), k / n, float(ci.low), float(ci.high),
                      confidence=confidence)


def contrast(k_a: int, n_a: int, k_b: int, n_b: int,
             confidence: float = CONFIDENCE) -> Contrast:
  """Arm a solved `k_a` of `n_a`, arm b `k_b` of `n_b`: both rates and Fisher's exact
  test of ``[[k_a, n_a - k_a], [k_b, n_b - k_b]]`` (two-sided)."""
  a, b = rate(k_a, n_a, confidence), rate(k_b, n_b, confidence)
  res = scipy.stats.fisher_exact([[k_a, n_a - k_a], [k_b, n_b - k_b]])
  return Contrast(a, b, float(res.pvalue), float(res.statistic))


def bounded_interval(values, lo: float, hi: float,
                     confidence: float = CONFIDENCE) -> Estimate:
  """The mean of values in ``[lo, hi]`` (accuracies, solve fractions, bimodal 0/1
  outcomes) with a percentile bootstrap interval, which stays inside the values'
  range and so inside ``[lo, hi]``; the per-seed values are kept as ``points``.

  One value, or all equal, gives no interval (``note`` says which).

  Raises:
    ValueError: a finite value outside ``[lo, hi]``.
  """
  if not lo < hi:
    raise ValueError(f"lo, hi: expected lo < hi; got {lo}, {hi}")
  v = _finite(values)
  if ((v < lo) | (v > hi)).any():
    raise ValueError(f"values: expected values in [{lo}, {hi}]; got "
                     f"{v[(v < lo) | (v > hi)].tolist()}")
  common = dict(method="percentile bootstrap", n=len(v), confidence=confidence,
                lo=float(lo), hi=float(hi), points=tuple(float(x) for x in v))
  if len(v) == 0:
    return Estimate(None, None, None, note=_NO_VALUE, **common)
  mean = float(v.mean())
  if len(v) == 1 or (v == v[0]).all():
    return Estimate(mean, None, None, note=_ONE_VALUE if len(v) == 1 else _NO_SPREAD,
                    **common)
  low, high = percentile_bootstrap([v], lambda x, axis: np.mean(x, axis=axis), confidence)
  return Estimate(mean, float(max(lo, low)), float(min(hi, high)), **common)


def t_interval(values, confidence: float = CONFIDENCE) -> Estimate:
  """The mean of an unbounded, roughly normal quantity (a loss, a log-ratio) with
  Student's t interval ``mean +- t(1-a/2; n-1) s / sqrt(n)``; none for one value."""
  v = _finite(values)
  common = dict(method="Student t", n=len(v), confidence=confidence,
                points=tuple(float(x) for x in v))
  if len(v) == 0:
    return Estimate(None, None, None, note=_NO_VALUE, **common)
  if len(v) == 1 or (v == v[0]).all():
    return Estimate(float(v.mean()), None, None,
                    note=_ONE_VALUE if len(v) == 1 else _NO_SPREAD, **common)
  ci = scipy.stats.ttest_1samp(v, 0.0).confidence_interval(confidence)
  return Estimate(float(v.mean()), float(ci.low), float(ci.high), **common)


def censored_median(values, cap: float, censored=None) -> CensoredMedian:
  """The median of counts capped at `cap` (steps to solve within a budget of `cap`),
  never their mean.

  A value is censored where `censored` (a boolean array like `values`) says so,
  by default where it is ``>= cap`` (the run did not finish in the budget). The
  median is the Kaplan-Meier one: the first time the survival function
  ``S(t) = P(value > t)`` falls to 1/2 or below; where it stays above 1/2 (more
  than half the runs censored) the median is reported as censored, ``>= cap``.
  """
  v = np.asarray(values, dtype=float).ravel()
  if np.isnan(v).any():
    raise ValueError(f"values: expected numbers (a censored run counts as cap); got {v}")
  cens = v >= cap if censored is None else np.asarray(censored, dtype=bool).ravel()
  if cens.shape != v.shape:
    raise ValueError(f"censored: expected shape {v.shape}; got {cens.shape}")
  points = tuple(float(x) for x in v)
  n, n_cens = len(v), int(cens.sum())
  if n == 0:
    return CensoredMedian(None, False, cap, 0, 0, points=points)
  if n_cens == n:
    return CensoredMedian(float(cap), True, cap, n, n_cens, points=points)
  sf = scipy.stats.ecdf(scipy.stats.CensoredData(uncensored=v[~cens], right=v[cens])).sf
  below = np.flatnonzero(sf.probabilities <= 0.5 + 1e-12)
  if len(below) == 0:
    return CensoredMedian(float(cap), True, cap, n, n_cens, points=points)
  return CensoredMedian(float(sf.quantiles[below[0]]), False, cap, n, n_cens,
                        points=points)


def sign_test(a, b) -> SignTest:
  """Paired values (``a[i]``, ``b[i]`` from seed ``i``): in how many seeds a is below
  b, above, equal, and the two-sided sign test p-value over the untied pairs
  (``binomtest(k_less, k_less + k_greater, 0.5)``; 1 when all are tied)."""
  a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
  if a.shape != b.shape:
    raise ValueError(f"a, b: expected paired values of one length; got {len(a)}, {len(b)}")
  keep = np.isfinite(a) & np.isfinite(b)
  a, b = a[keep], b[keep]
  less, greater = int((a < b).sum()), int((a > b).sum())
  p = 1.0 if less + greater == 0 else float(
      scipy.stats.binomtest(less, less + greater, 0.5).pvalue)
  return SignTest(less, greater, len(a) - less - greater, len(a), p)


def ratio(a, b, confidence: float = CONFIDENCE) -> Ratio:
  """``mean(a) / mean(b)`` of two positive quantities (times, memory) with the
  percentile bootstrap interval, a and b resampled independently; no interval when
  either has one value or no spread."""
  a, b = _finite(a), _finite(b)
  if len(a) == 0 or len(b) == 0 or (a <= 0).any() or (b <= 0).any():
    raise ValueError(f"a, b: expected positive values; got {a.tolist()}, {b.tolist()}")
  value = float(a.mean() / b.mean())
  flat = [len(x) == 1 or (x == x[0]).all() for x in (a, b)]
  if all(flat) or len(a) == 1 or len(b) == 1:
    note = _ONE_VALUE if len(a) == 1 or len(b) == 1 else _NO_SPREAD
    return Ratio(value, None, None, "percentile bootstrap", len(a), len(b), confidence,
                 note)
  low, high = percentile_bootstrap(
      [a, b], lambda x, y, axis: np.mean(x, axis) / np.mean(y, axis), confidence)
  return Ratio(value, low, high, "percentile bootstrap", len(a), len(b), confidence)
