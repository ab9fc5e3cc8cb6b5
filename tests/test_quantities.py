"""lstmx.lab.quantities: the registry of metric kinds, and each kind's centre and
interval in `aggregate.summarize` against scipy on known cases (Clopper-Pearson,
a bootstrap that stays in range where Student's t leaves it, a Kaplan-Meier median,
a timing's median and range), the figures drawing them, and docs/statistics.md
listing every rule."""

import importlib.util
import math
import os

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from lstmx.lab import aggregate, quantities, report, stats
from lstmx.lab.quantities import kind_of

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("column, kind", [
    ("task.solved", quantities.RATE), ("task.solved_test", quantities.RATE),
    ("task.solved_step", quantities.STEPS_TO_SOLVE),
    ("analysis.newton.long_quasi_deer.final", quantities.NEWTON_SWEEPS),
    ("final.test.accuracy", quantities.FRACTION),
    ("at_best.validation.sequence_accuracy", quantities.FRACTION),
    ("task.chance_accuracy", quantities.FRACTION),
    ("final.validation.within_0.04", quantities.FRACTION),
    ("final.validation.loss", quantities.NONNEGATIVE),
    ("final.validation.loss_over_baseline", quantities.NONNEGATIVE),
    ("task.baseline_loss", quantities.NONNEGATIVE),
    ("at_best.test.perplexity", quantities.NONNEGATIVE),
    ("at_best.step", quantities.NONNEGATIVE), ("steps", quantities.NONNEGATIVE),
    ("wall_time", quantities.TIMING), ("compile_time", quantities.TIMING),
    ("analysis.step_time", quantities.TIMING), ("analysis.step_time_dev8", quantities.TIMING),
    ("analysis.time.quasi_deer.T64.H8", quantities.TIMING),
    ("analysis.peak_bytes", quantities.TIMING), ("step_memory_bytes", quantities.TIMING),
    ("tokens_per_s", quantities.TIMING), ("analysis.gflops_per_s", quantities.TIMING),
    ("param_count", quantities.TIMING),
    ("analysis.grad_decay_trained", quantities.UNBOUNDED),
    ("analysis.grad_fit_r2_init", quantities.UNBOUNDED),
    ("best.value", quantities.UNBOUNDED), ("rise", quantities.UNBOUNDED),
])
def test_registry_maps_columns_to_kinds(column, kind):
  assert kind_of(column) == kind


def test_kinds_validate_and_name_their_method():
  with pytest.raises(ValueError, match="name: expected one of"):
    quantities.Kind("normal")
  with pytest.raises(ValueError, match="a censored kind needs one"):
    quantities.Kind("censored")
  with pytest.raises(ValueError, match="lo < hi"):
    quantities.Kind("bounded", 1.0, 0.0)
  assert quantities.TIMING.center == "median" and quantities.FRACTION.center == "mean"
  assert {quantities.Kind(n, cap=1.0 if n == "censored" else None).method
          for n in quantities.KIND_NAMES} == {
      "Clopper-Pearson exact", "percentile bootstrap", "Kaplan-Meier median",
      "median, min-max", "Student t"}


def test_newton_cap_is_parallel_times():
  path = os.path.join(ROOT, "experiments", "parallel_time.py")
  spec = importlib.util.spec_from_file_location("parallel_time", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  assert quantities.NEWTON_CAP == module.MAX_SWEEPS + 1  # its "not within MAX_SWEEPS"


def _rows(column, groups, **extra):
  """A results table: one configuration per entry of `groups` (``meta.model`` = its
  key), one row per seed value; `extra` columns the same way."""
  rows = []
  for model, values in groups.items():
    for seed, v in enumerate(values):
      row = {"meta.model": model, "train.seed": seed, "status": "completed", column: v}
      row.update({c: vs[model][seed] for c, vs in extra.items()})
      rows.append(row)
  return pd.DataFrame(rows)


def _row(summary, model):
  return summary[summary["meta.model"] == model].iloc[0]


@pytest.mark.parametrize("values", [[True, True, False], [False] * 5, [True]])
def test_rate_is_clopper_pearson(values):
  s = _row(aggregate.summarize(_rows("task.solved", {"a": values})), "a")
  k, n = sum(values), len(values)
  ci = scipy.stats.binomtest(k, n).proportion_ci(method="exact")
  assert s["task.solved.mean"] == pytest.approx(k / n)
  assert (s["task.solved.ci_low"], s["task.solved.ci_high"]) == pytest.approx((ci.low, ci.high))
  assert s["task.solved.method"] == "Clopper-Pearson exact"


def test_bounded_stays_inside_its_range_where_students_t_leaves_it():
  acc, ratio = [0.2, 1.0, 1.0], [0.05, 0.1, 1.5]
  t_acc = aggregate.interval(acc)[2:]
  t_ratio = aggregate.interval(ratio)[2:]
  assert t_acc[1] > 1 and t_ratio[0] < 0  # the reports' accuracy > 1, ratio band < 0
  table = _rows("final.test.accuracy", {"a": acc},
                **{"final.validation.loss_over_baseline": {"a": ratio}})
  s = _row(aggregate.summarize(table), "a")
  for column, values, (lo, hi) in (("final.test.accuracy", acc, (0, 1)),
                                   ("final.validation.loss_over_baseline", ratio, (0, np.inf))):
    e = stats.bounded_interval(values, lo, hi)
    assert s[f"{column}.mean"] == pytest.approx(np.mean(values))
    assert (s[f"{column}.ci_low"], s[f"{column}.ci_high"]) == (e.low, e.high)
    assert lo <= s[f"{column}.ci_low"] < s[f"{column}.mean"] < s[f"{column}.ci_high"] <= hi
    assert s[f"{column}.method"] == "percentile bootstrap"


def test_batched_bootstrap_equals_one_configuration_at_a_time():
  rng = np.random.default_rng(3)
  groups = {f"m{i}": list(rng.uniform(0, 1, 4)) for i in range(6)}
  groups["short"] = [0.3, 0.9]  # another count: another batch
  summary = aggregate.summarize(_rows("final.test.accuracy", groups))
  for model, values in groups.items():
    e = stats.bounded_interval(values, 0.0, 1.0)
    r = _row(summary, model)
    assert (r["final.test.accuracy.ci_low"], r["final.test.accuracy.ci_high"]) == (e.low, e.high)
  again = aggregate.summarize(_rows("final.test.accuracy", groups))
  pd.testing.assert_frame_equal(summary, again)  # a fixed seed: the same report


def test_a_column_outside_its_kinds_range_falls_back_to_students_t():
  table = _rows("final.validation.loss", {"a": [-1.0, 0.5, 2.0]})  # not a loss >= 0
  s = _row(aggregate.summarize(table), "a")
  assert s["final.validation.loss.method"] == "Student t"
  ref = scipy.stats.t.interval(0.95, 2, loc=0.5, scale=scipy.stats.sem([-1.0, 0.5, 2.0]))
  assert (s["final.validation.loss.ci_low"], s["final.validation.loss.ci_high"]) == \
      pytest.approx(ref)


def test_unbounded_is_students_t():
  values = [0.01, 0.03, 0.02, 0.05]
  s = _row(aggregate.summarize(_rows("analysis.grad_decay_init", {"a": values})), "a")
  e = stats.t_interval(values)
  assert (s["analysis.grad_decay_init.ci_low"], s["analysis.grad_decay_init.ci_high"]) == \
      pytest.approx((e.low, e.high))
  assert s["analysis.grad_decay_init.method"] == "Student t"


def test_censored_newton_counts_give_the_kaplan_meier_median_and_no_mean():
  col = "analysis.newton.long_quasi_deer.final"
  groups = {"few": [12.0, 30.0, 151.0], "most": [40.0, 151.0, 151.0]}
  summary = aggregate.summarize(_rows(col, groups))
  few, most = _row(summary, "few"), _row(summary, "most")
  # One of three censored at 151: S drops to 2/3 at 12, to 1/3 at 30, so the median is 30.
  ref = scipy.stats.ecdf(scipy.stats.CensoredData(uncensored=[12.0, 30.0], right=[151.0]))
  assert ref.sf.evaluate(30.0) <= 0.5 < ref.sf.evaluate(29.0)
  assert (few[f"{col}.median"], few[f"{col}.censored"], few[f"{col}.n_censored"]) == \
      (30.0, False, 1)
  assert math.isnan(few[f"{col}.mean"]) and math.isnan(few[f"{col}.ci_low"])
  assert few[f"{col}.method"] == "Kaplan-Meier median"
  # Two of three at the cap: the median is only known to be >= 151.
  assert (most[f"{col}.median"], most[f"{col}.censored"]) == (151.0, True)
  assert aggregate.mean_ci_text(most, col, ".0f") == \
      ">= 151 (Kaplan-Meier median; censored in 2/3 seeds)"
  assert aggregate.mean_ci_text(few, col, ".0f") == \
      "30 (Kaplan-Meier median; censored in 1/3 seeds)"


def test_steps_to_solve_are_censored_at_each_runs_steps():
  table = _rows("task.solved_step", {"a": [100.0, np.nan, 300.0], "b": [np.nan, np.nan, 50.0]},
                steps={"a": [100, 500, 300], "b": [500, 500, 50]})
  summary = aggregate.summarize(table, metrics=["task.solved_step"])
  a, b = _row(summary, "a"), _row(summary, "b")
  m = stats.censored_median([100.0, 500.0, 300.0], 500.0, censored=[False, True, False])
  assert (a["task.solved_step.median"], a["task.solved_step.n_censored"]) == (m.value, 1)
  assert m.value == 300.0
  assert (b["task.solved_step.median"], b["task.solved_step.censored"]) == (500.0, True)
  with pytest.raises(ValueError, match="censored at its run's 'steps'"):
    aggregate.summarize(table.drop(columns="steps"), metrics=["task.solved_step"])


def test_timing_is_the_median_with_min_and_max():
  times = [1.0, 2.0, 10.0]  # one slow seed
  s = _row(aggregate.summarize(_rows("wall_time", {"a": times, "one": [4.0]})), "a")
  assert (s["wall_time.median"], s["wall_time.ci_low"], s["wall_time.ci_high"]) == \
      (2.0, 1.0, 10.0)
  assert s["wall_time.mean"] == pytest.approx(13 / 3) and s["wall_time.method"] == \
      "median, min-max"
  assert aggregate.center(s, "wall_time") == 2.0
  assert aggregate.mean_ci_text(s, "wall_time", ".0f") == "2 [1, 10] (median, min-max)"
  one = _row(aggregate.summarize(_rows("wall_time", {"one": [4.0]})), "one")
  assert math.isnan(one["wall_time.ci_low"]) and aggregate.mean_ci_text(one, "wall_time") == \
      "4.000"


def test_summary_columns_are_the_old_ones_plus_method_and_the_kinds_extras():
  table = _rows("final.test.accuracy", {"a": [0.5, 0.6], "b": [0.7, np.nan]},
                **{"wall_time": {"a": [1.0, 2.0], "b": [1.0, 3.0]},
                   "analysis.newton.deer.final": {"a": [3.0, 151.0], "b": [4.0, 5.0]}})
  summary = aggregate.summarize(table)
  stats_of = lambda m: [f"{m}.{s}" for s in aggregate.STATS]  # noqa: E731
  assert list(summary.columns) == [
      "meta.model", "n", "n_diverged", "n_failed", "n_pending", "seeds",
      *stats_of("final.test.accuracy"), "final.test.accuracy.n", "final.test.accuracy.method",
      *stats_of("wall_time"), "wall_time.method", "wall_time.median",
      *stats_of("analysis.newton.deer.final"), "analysis.newton.deer.final.method",
      "analysis.newton.deer.final.median", "analysis.newton.deer.final.n_censored",
      "analysis.newton.deer.final.censored"]


def test_figures_draw_the_kinds_centre_and_interval():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  table = _rows("final.test.accuracy", {"a": [0.2, 1.0, 1.0], "b": [0.5, 0.6, 0.7]},
                wall_time={"a": [1.0, 2.0, 10.0], "b": [3.0, 3.0, 4.0]})
  summary = aggregate.summarize(table)
  fig, (ax, bx, cx) = plt.subplots(1, 3)
  report.plot_mean(ax, summary, [0, 1], "final.test.accuracy")
  band = ax.collections[0].get_paths()[0].vertices[:, 1]
  assert band.max() <= 1.0  # Student t would reach 1.99
  line = report.plot_mean(bx, summary, [0, 1], "wall_time", style="bars")
  assert list(line.get_ydata()) == [2.0, 3.0]  # medians, not means
  # Loss curves of three seeds: a bootstrap band above 0 where a t band goes below it.
  curves = [([0, 1], [0.01, 1.0]), ([0, 1], [0.02, 1.1]), ([0, 1], [2.0, 1.2])]
  report.plot_curves(cx, curves, kind=quantities.NONNEGATIVE)
  assert cx.collections[0].get_paths()[0].vertices[:, 1].min() >= 0
  assert aggregate.interval([0.01, 0.02, 2.0])[2] < 0
  sweeps = [([0, 1], [10.0, 151.0]), ([0, 1], [12.0, 151.0]), ([0, 1], [11.0, 20.0])]
  line = report.plot_curves(cx, sweeps, kind=quantities.NEWTON_SWEEPS)
  assert list(line.get_ydata()) == [11.0, 151.0]  # Kaplan-Meier medians, no band
  assert len(cx.collections) == 1
  plt.close(fig)


def test_docs_list_every_kind_and_rule():
  text = open(os.path.join(ROOT, "docs", "statistics.md")).read()
  table = text.split("### Which summary each metric gets")[1].split("\n## ")[0]
  for rule in quantities.RULES:
    assert f"`{rule.pattern}`" in table, rule.pattern
  for name in quantities.KIND_NAMES:
    assert f"`{name}`" in table and quantities.METHODS[name] in table, name
