"""lstmx.lab.stats, across_tasks and findings: each statistic against scipy on known
cases, findings rendered from records (a ratio's direction, singular counts), a failed
control withholding its findings, picking by fields, and report.json round trips."""

import dataclasses
import importlib.util
import json

import numpy as np
import pytest
import scipy.stats

from lstmx.lab import across_tasks, stats
from lstmx.lab.findings import (CONTROL_FAILED, CONTROL_MISSING, Control, Finding, from_json,
                                pick, render, to_json, withhold)


# --- statistics ----------------------------------------------------------------------

@pytest.mark.parametrize("k, n", [(0, 5), (5, 5), (3, 5), (1, 1)])
def test_rate_is_clopper_pearson(k, n):
  r = stats.rate(k, n)
  ci = scipy.stats.binomtest(k, n).proportion_ci(method="exact")
  assert (r.k, r.n, r.value) == (k, n, k / n)
  assert (r.low, r.high) == pytest.approx((ci.low, ci.high))
  # the beta-quantile definition, independently of binomtest
  low = 0.0 if k == 0 else scipy.stats.beta.ppf(0.025, k, n - k + 1)
  high = 1.0 if k == n else scipy.stats.beta.ppf(0.975, k + 1, n - k)
  assert (r.low, r.high) == pytest.approx((low, high))
  assert 0 <= r.low <= r.value <= r.high <= 1


@pytest.mark.parametrize("k, n", [(6, 5), (-1, 5), (1, 0), (0.5, 2)])
def test_rate_rejects_bad_counts(k, n):
  with pytest.raises(ValueError, match="expected"):
    stats.rate(k, n)


def test_contrast_is_fisher_exact():
  c = stats.contrast(0, 3, 3, 3)
  assert c.p_value == pytest.approx(0.1)
  assert (c.a.k, c.a.n, c.b.k, c.b.n) == (0, 3, 3, 3)
  c = stats.contrast(4, 5, 1, 6)
  res = scipy.stats.fisher_exact([[4, 1], [1, 5]])
  assert (c.p_value, c.odds_ratio) == pytest.approx((res.pvalue, res.statistic))


@pytest.mark.parametrize("values", [[0.99, 1.0, 1.0, 0.98, 1.0], [0, 0, 1, 1, 1],
                                    [0.0, 1.0]])
def test_bounded_interval_stays_in_range(values):
  e = stats.bounded_interval(values, 0.0, 1.0)
  assert e.value == pytest.approx(np.mean(values))
  assert 0.0 <= e.low <= e.value <= e.high <= 1.0
  assert e.points == tuple(float(v) for v in values)
  assert e.method == "percentile bootstrap" and e.n == len(values)
  res = scipy.stats.bootstrap((np.asarray(values, float),), np.mean, method="percentile",
                              n_resamples=stats.N_RESAMPLES, **stats._seeded())
  assert (e.low, e.high) == pytest.approx((res.confidence_interval.low,
                                           res.confidence_interval.high))


@pytest.mark.parametrize("values, note", [([0.7], "one value"), ([1, 1, 1], "all values equal"),
                                          ([], "no values")])
def test_bounded_interval_degenerate_cases_say_so(values, note):
  e = stats.bounded_interval(values, 0, 1)
  assert e.low is None and e.high is None and note in e.note


def test_bounded_interval_rejects_values_outside_range():
  with pytest.raises(ValueError, match=r"values: expected values in \[0, 1\]"):
    stats.bounded_interval([0.5, 1.2], 0, 1)


def test_t_interval_is_student_t():
  v = [1.0, 2.0, 4.0]
  e = stats.t_interval(v)
  half = scipy.stats.t.ppf(0.975, 2) * np.std(v, ddof=1) / np.sqrt(3)
  assert (e.low, e.high) == pytest.approx((np.mean(v) - half, np.mean(v) + half))
  assert e.method == "Student t" and e.lo is None
  assert stats.t_interval([2.0]).low is None


def test_censored_median():
  m = stats.censored_median([10, 20, 100, 100, 100], cap=100)  # 3 of 5 censored
  assert m.censored and m.value == 100 and (m.n, m.n_censored) == (5, 3)
  m = stats.censored_median([10, 20, 30, 100, 100], cap=100)  # 2 of 5
  assert not m.censored and m.value == 30 == np.median([10, 20, 30, 100, 100])
  assert stats.censored_median([100, 100], cap=100).censored
  m = stats.censored_median([10, 40, 20], cap=100)  # none censored: the plain median
  assert not m.censored and m.value == 20
  # explicit censoring below the cap: Kaplan-Meier, as scipy.stats.ecdf has it
  m = stats.censored_median([5, 8, 8, 12], cap=100, censored=[False, True, False, False])
  sf = scipy.stats.ecdf(scipy.stats.CensoredData(uncensored=[5, 8, 12], right=[8])).sf
  assert m.value == sf.quantiles[np.flatnonzero(sf.probabilities <= 0.5)[0]]


def test_sign_test_is_binomial():
  t = stats.sign_test([1, 2, 3, 4, 5], [2, 3, 4, 5, 6])
  assert (t.k_less, t.k_greater, t.ties, t.n) == (5, 0, 0, 5)
  assert t.p_value == pytest.approx(scipy.stats.binomtest(5, 5, 0.5).pvalue) == 0.0625
  t = stats.sign_test([1, 3, 3, np.nan], [2, 2, 3, 1])
  assert (t.k_less, t.k_greater, t.ties, t.n) == (1, 1, 1, 3) and t.p_value == 1.0
  with pytest.raises(ValueError, match="a, b: expected paired values"):
    stats.sign_test([1, 2], [1])


def test_ratio():
  r = stats.ratio([3.2, 3.3, 3.1], [1.0, 1.05, 0.95])
  assert r.value == pytest.approx(3.2) and r.low < 3.2 < r.high
  assert stats.ratio([2.0], [1.0]).low is None
  with pytest.raises(ValueError, match="expected positive values"):
    stats.ratio([1.0], [0.0])


# --- across tasks --------------------------------------------------------------------

def test_iqm_and_probability_of_improvement():
  e = across_tasks.iqm([[1, 2, 3, 4], [5, 6, 7, 8]])
  assert e.value == scipy.stats.trim_mean(np.arange(1, 9), 0.25) == 4.5
  assert e.low <= 4.5 <= e.high and e.statistic == "IQM"
  p = across_tasks.probability_of_improvement([[1, 2]], [[0, 1]])
  assert p.value == pytest.approx(0.875)  # pairs 1>0, 1=1, 2>0, 2>1
  p = across_tasks.probability_of_improvement([[5, 6], [9, 9, 8]], [[1, 2], [0, 1]])
  assert p.value == 1.0 and 0 <= p.low <= p.high <= 1
  with pytest.raises(ValueError, match="x, y: expected the same tasks"):
    across_tasks.probability_of_improvement([[1]], [[1], [2]])


@pytest.mark.skipif(importlib.util.find_spec("rliable") is None,
                    reason="rliable is optional (docs/statistics.md)")
def test_across_tasks_match_rliable():
  from rliable import metrics
  rng = np.random.default_rng(0)
  x, y = rng.uniform(size=(5, 3)), rng.uniform(size=(5, 3))  # runs x tasks, rliable's
  assert across_tasks.iqm(x.T).value == pytest.approx(metrics.aggregate_iqm(x))
  assert across_tasks.probability_of_improvement(x.T, y.T).value == pytest.approx(
      metrics.probability_of_improvement(x, y))


# --- findings ------------------------------------------------------------------------

CONTROL = Control("attention", {"meta.model": "attention"}, "Arora et al. 2023 (Zoology)",
                  seeds=5, solved=5, required=4)


def _findings():
  return [
      Finding("solved-copy-100", "solve_rate", "solved", stats.rate(3, 5),
              subject={"task": "copy", "model": "lstm", "length": 100},
              seeds_agreeing=3, seeds=5, budget={"steps": 2000, "lr": [1e-3, 3e-3]},
              control="attention"),
      Finding("chrono-copy", "chrono_vs_default", "solved", stats.contrast(0, 3, 3, 3),
              subject={"task": "copy"}, arms=("default", "chrono"), control="attention"),
      Finding("speed-1000", "speed", "wall_time", stats.ratio([3.2, 3.3, 3.1], [1, 1.05, 0.95]),
              subject={"length": 1000}, arms=("lstm", "attention")),
      Finding("steps", "steps_to_solve", "steps_to_solve",
              stats.censored_median([10, 20, 100, 100, 100], cap=100), subject={"task": "add"}),
  ]


def test_render_ratio_direction_comes_from_the_value():
  slow = Finding("r", "speed", "wall_time", stats.ratio([3.2, 3.3, 3.1], [1, 1.05, 0.95]),
                 arms=("lstm", "attention"))
  fast = dataclasses.replace(slow, statistic=stats.ratio([1, 1.05, 0.95], [3.2, 3.3, 3.1]))
  assert "lstm is 3.2x slower than attention" in render(slow)
  assert "lstm is 3.2x faster than attention" in render(fast)
  low, high = fast.statistic.low, fast.statistic.high
  assert f"[{1 / high:.3g}, {1 / low:.3g}]" in render(fast)  # the interval of the factor
  loss = Finding("l", "loss", "validation loss", stats.ratio([1.0], [2.0]), arms=("a", "b"))
  assert "a has 2x lower validation loss than b" in render(loss)


def test_render_statistics_and_counts():
  fs = withhold(_findings(), [CONTROL])
  text = [render(f) for f in fs]
  assert text[0].startswith("task copy, model lstm, length 100: solved in 3/5 seeds")
  assert "95 % Clopper-Pearson exact" in text[0] and "lr 0.001, 0.003" in text[0]
  assert "control attention passed (5/5 seeds)" in text[0]
  assert "default in 0/3 seeds, chrono in 3/3 seeds" in text[1] and "p = 0.1" in text[1]
  assert "median steps_to_solve >= 100" in text[3] and "3/5 runs" in text[3]
  one = Finding("one", "solve_rate", "solved", stats.rate(1, 1), seeds_agreeing=1, seeds=1)
  assert "1/1 seed," in render(one) and "holds in" not in render(one)  # the rate says it
  one = Finding("one", "cost", "wall_time", stats.ratio([2.0], [1.0]), arms=("a", "b"),
                seeds_agreeing=1, seeds=1)
  assert "a is 2x slower than b" in render(one) and "holds in 1/1 seed." in render(one)
  assert "1 value" in render(Finding("b", "acc", "accuracy", stats.bounded_interval([1], 0, 1)))
  assert "no interval: one value" in render(
      Finding("b", "acc", "accuracy", stats.bounded_interval([1], 0, 1)))
  # A sign test states the direction of the most seeds, and none where they balance.
  sign = Finding("s", "vs", "test accuracy", stats.sign_test([1, 2, 3], [0, 1, 4]),
                 arms=("a", "b"))
  assert "a has higher test accuracy than b in 2/3 seeds (0 tied;" in render(sign)
  tied = Finding("s", "vs", "validation loss", stats.sign_test([1, 2], [1, 2]), arms=("a", "b"))
  assert ": a and b: validation loss higher in 0, lower in 0 of 2 seeds (2 tied;" in render(tied)


def test_failed_control_withholds_its_findings():
  failed = dataclasses.replace(CONTROL, solved=2)
  fs = withhold(_findings(), [failed])
  held = pick(fs, withheld_reason=CONTROL_FAILED)
  assert [f.id for f in held] == ["solved-copy-100", "chrono-copy"]
  assert all(f.statistic is None and f.seeds is None and f.control_passed is False
             for f in held)
  assert render(held[0]) == ("task copy, model lstm, length 100: solved withheld: the "
                             "control attention solved 2/5 seeds, fewer than the 4 it "
                             "needs (Arora et al. 2023 (Zoology)).")
  kept = pick(fs, withheld_reason=None)
  assert [f.id for f in kept] == ["speed-1000", "steps"]  # depend on no control
  missing = withhold(_findings(), [])
  assert pick(missing, withheld_reason=CONTROL_MISSING)[0].id == "solved-copy-100"
  assert "the control attention was not run" in render(missing[0])


def test_pick_by_fields():
  fs = _findings()
  assert [f.id for f in pick(fs, task="copy")] == ["solved-copy-100", "chrono-copy"]
  assert [f.id for f in pick(fs, kind="speed", length=1000)] == ["speed-1000"]
  assert pick(fs, task="copy", length=200) == []


def test_records_round_trip_through_json():
  fs = withhold(_findings(), [CONTROL])
  fs.append(Finding("inf", "odds", "solved", stats.contrast(3, 3, 0, 3)))  # odds ratio inf
  data = json.loads(json.dumps(to_json(fs, [CONTROL]), allow_nan=False))
  assert data["findings"][0]["statistic"]["type"] == "RateEstimate"
  back, controls = from_json(data)
  assert back == fs and controls == [CONTROL]


def test_records_validate():
  with pytest.raises(ValueError, match="seeds_agreeing, seeds: expected"):
    Finding("x", "k", "q", None, seeds_agreeing=4, seeds=3)
  with pytest.raises(ValueError, match="required: expected"):
    Control("c", {}, "", seeds=3, solved=1, required=4)
