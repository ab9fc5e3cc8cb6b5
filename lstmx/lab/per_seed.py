"""Findings of a metric measured once per seed (an accuracy, a loss, a perplexity, a
time), as `lstmx.lab.findings.Finding` records: one configuration's estimate, and two
configurations compared seed by seed.

A configuration is a ``where`` dictionary of column values (``{"meta.dataset":
"digits", "meta.model": "cnn2d"}``); its values are the finite ones of the runs that
count (`aggregate.counted`), one per seed (``train.seed``). Two configurations are
paired by seed: a seed counts where both have a finite value.

* `values(rows, where, metric)`: a configuration's values by seed;
* `estimate`: its values' statistic as a record (`stats.bounded_interval` for a
  bounded metric, `stats.t_interval` for an unbounded, roughly normal one);
* `difference`: a - b of a metric bounded in ``[lo, hi]``, paired by seed: the mean
  of the per-seed differences (the difference of the means over the paired seeds)
  with its percentile bootstrap interval inside ``[lo - hi, hi - lo]``, and the sign
  test;
* `ratio`: a / b of a positive metric: the ratio of the means over the paired seeds
  with its percentile bootstrap interval (`stats.ratio`), and the sign test.

Each paired record counts the seeds where the direction it states holds
(``seeds_agreeing`` of ``seeds``); the sign test's record is kind ``<kind>_sign_test``.

    >>> difference(rows, {"meta.model": "lstm"}, {"meta.model": "mlp"},
    ...            "final.test.accuracy", lo=0, hi=1, kind="lstm_vs_mlp",
    ...            quantity="test accuracy", subject={"dataset": "iris"},
    ...            arms=("lstm", "mlp"))   # [Finding(Estimate), Finding(SignTest)]
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from lstmx.lab import aggregate, stats
from lstmx.lab.findings import Finding
from lstmx.lab.findings import record_id as _id

Where = Mapping[str, Any]
SIGN_TEST = "_sign_test"  # the kind suffix of a paired comparison's sign test


def values(rows: pd.DataFrame, where: Where, metric: str) -> pd.Series:
  """The finite values of `metric` of the configuration `where`, indexed by seed
  (by position where the table has no ``train.seed``; a seed's first run only)."""
  if any(k not in rows for k in where) or metric not in rows:
    return pd.Series(dtype=float)
  picked = aggregate.counted(aggregate.select(rows, where))
  v = pd.to_numeric(picked[metric], errors="coerce").astype(float)
  v.index = (picked[aggregate.SEED_KEY].to_numpy() if aggregate.SEED_KEY in picked
             else np.arange(len(v)))
  v = v[~v.index.duplicated()]
  return v[np.isfinite(v.to_numpy())]


def matched(rows: pd.DataFrame, a: Where, b: Where, metric: str,
            metric_b: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """(a's values, b's values) of the seeds where both are finite, in seed order;
  b's of `metric_b` where given (two columns of one configuration)."""
  va, vb = values(rows, a, metric), values(rows, b, metric_b or metric)
  both = sorted(set(va.index) & set(vb.index))
  return va[both].to_numpy(float), vb[both].to_numpy(float)


def estimate(rows: pd.DataFrame, where: Where, metric: str,
             statistic: Callable[[np.ndarray], stats.Estimate], *, kind: str,
             quantity: str, subject: Mapping[str, Any],
             holds: Callable[[np.ndarray], np.ndarray] | None = None) -> list[Finding]:
  """The configuration's values of `metric` as one record, ``statistic(values)``
  (``lambda v: stats.bounded_interval(v, 0, 1)``); with `holds` (values -> booleans),
  the seeds where it holds. No record without values."""
  v = values(rows, where, metric).to_numpy(float)
  if not len(v):
    return []
  seeds = {} if holds is None else dict(seeds_agreeing=int(np.sum(holds(v))), seeds=len(v))
  return [Finding(_id(kind, subject), kind, quantity, statistic(v), subject=dict(subject),
                  **seeds)]


def sign_finding(va: np.ndarray, vb: np.ndarray, *, kind: str, quantity: str,
                 subject: Mapping[str, Any], arms: tuple[str, str]) -> Finding:
  """The sign test of paired values `va`, `vb` as a record, its seeds agreeing those
  of the direction it states (a above b, or below; as many as either without one)."""
  s = stats.sign_test(va, vb)
  agreeing = max(s.k_greater, s.k_less)
  return Finding(_id(kind, subject), kind, quantity, s, subject=dict(subject),
                 arms=tuple(arms), seeds_agreeing=agreeing, seeds=s.n)


def difference(rows: pd.DataFrame, a: Where, b: Where, metric: str, *, lo: float,
               hi: float, kind: str, quantity: str, subject: Mapping[str, Any],
               arms: tuple[str, str]) -> list[Finding]:
  """a - b of a metric in ``[lo, hi]``, paired by seed: the mean difference (quantity
  ``"<quantity> difference (a - b)"``) with its percentile bootstrap interval, holding
  in the seeds whose difference has the mean's sign, and the sign test. No records
  where no seed has both."""
  va, vb = matched(rows, a, b, metric)
  if not len(va):
    return []
  d = va - vb
  est = stats.bounded_interval(d, lo - hi, hi - lo)
  agreeing = int(np.sum(np.sign(d) == np.sign(est.value)))
  common = dict(subject=dict(subject), arms=tuple(arms))
  return [Finding(_id(kind, subject), kind, f"{quantity} difference ({arms[0]} - {arms[1]})",
                  est, seeds_agreeing=agreeing, seeds=len(d), **common),
          sign_finding(va, vb, kind=kind + SIGN_TEST, quantity=quantity, **common)]


def ratio(rows: pd.DataFrame, a: Where, b: Where, metric: str, *, kind: str,
          quantity: str, subject: Mapping[str, Any], arms: tuple[str, str]
          ) -> list[Finding]:
  """a / b of a positive metric over the seeds where both are positive: the ratio of
  the means with `stats.ratio`'s percentile bootstrap interval (a and b resampled
  independently, not by pair), holding in the seeds on the side it states (a above
  b for a ratio >= 1, else below), and the sign test."""
  va, vb = matched(rows, a, b, metric)
  ok = (va > 0) & (vb > 0)
  va, vb = va[ok], vb[ok]
  if not len(va):
    return []
  r = stats.ratio(va, vb)
  agreeing = int(np.sum(va > vb)) if r.value >= 1 else int(np.sum(va < vb))
  common = dict(subject=dict(subject), arms=tuple(arms))
  return [Finding(_id(kind, subject), kind, quantity, r, seeds_agreeing=agreeing,
                  seeds=len(va), **common),
          sign_finding(va, vb, kind=kind + SIGN_TEST, quantity=quantity, **common)]
