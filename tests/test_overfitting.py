"""experiments/overfitting.py: the presets say what the docs say (quick: Shakespeare
characters, no fetched data, 3 seeds; full: Brown words, every regularizer at
several strengths, the AWD recipe with NT-ASGD), and the findings are records with
the statistic of each quantity, checked against scipy on a known table, and the
headline is the test metric at the best-validation checkpoint."""

import importlib.util
import inspect
import math
import pathlib

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from lstmx.config import set_many
from lstmx.lab import stats
from lstmx.lab.findings import Finding, pick, render

PATH = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "overfitting.py"


@pytest.fixture(scope="module")
def overfitting():
  spec = importlib.util.spec_from_file_location("overfitting_experiment", PATH)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_presets(overfitting):
  presets = overfitting.presets()
  quick, full = presets["quick"], presets["full"]
  assert quick.seeds >= 3 and quick.base.task.params["dataset"] == "shakespeare"
  assert {o["meta.regularizer"] for o in quick.sweep} >= {"none", "dropout"}
  assert full.base.task.params["dataset"] == "brown" and full.base.model.num_layers == 2
  strengths = {(o["meta.regularizer"], o["meta.strength"]) for o in full.sweep}
  for family in ("dropout", "weight_drop", "zoneout", "ar_tar"):
    assert len({s for f, s in strengths if f == family}) >= 3, family
  assert {o["meta.train_size"] for o in full.sweep} == {100_000, 300_000, 0}
  for name, preset in presets.items():  # every trial is a valid config
    for over in preset.sweep:
      cfg = set_many(preset.base, [(k, v) for k, v in over.items() if not k.startswith("meta.")])
      if over["meta.regularizer"] == "awd":
        assert cfg.optimizer.averaging == "nt" and cfg.optimizer.name == "sgd"
        assert cfg.model.regularization.weight_drop == 0.5
      if over["meta.regularizer"] == "dropout":
        r = cfg.model.regularization
        assert r.input_dropout == r.layer_dropout == r.output_dropout == over["meta.strength"]


def _results():
  rows = []
  for seed in range(3):
    # none: validation rose after its best, training fell, in every seed
    rows.append({"meta.regularizer": "none", "meta.strength": 0.0, "rise_val": 0.2 + 0.01 * seed,
                 "best": 2.0 + 0.01 * seed, "test_ppl": 8.0 + 0.1 * seed})
    # dropout 0.4: lower best validation loss in seeds 0 and 1 only; the lowest test ppl
    rows.append({"meta.regularizer": "dropout", "meta.strength": 0.4, "rise_val": -0.01,
                 "best": [1.8, 1.9, 2.5][seed], "test_ppl": [6.0, 6.5, 7.0][seed]})
    # weight drop 0.5: lower best validation loss in every seed (chosen on validation)
    rows.append({"meta.regularizer": "weight_drop", "meta.strength": 0.5, "rise_val": 0.0,
                 "best": [1.95, 1.95, 1.96][seed], "test_ppl": [7.0, 7.5, 8.5][seed]})
    for r in rows[-3:]:
      r.update({"train.seed": seed, "status": "completed", "meta.train_size": 20000,
                "trial": f"t{len(rows)}", "train.steps": 1000})
  df = pd.DataFrame(rows)
  df["at_best.validation.loss"] = df.pop("best")
  df["final.validation.loss"] = df["at_best.validation.loss"] + df.pop("rise_val")
  df["at_best.train.loss"] = 1.5 + 0.05 * df["train.seed"]
  df["final.train.loss"] = 1.2
  df["at_best.test.perplexity"] = df.pop("test_ppl")
  df["at_best.step"] = 500 + 100 * df["train.seed"]
  return df


def _percentile_bootstrap(values):
  """scipy's percentile bootstrap of the mean with lstmx.lab.stats' resamples and seed."""
  key = "rng" if "rng" in inspect.signature(scipy.stats.bootstrap).parameters else "random_state"
  ci = scipy.stats.bootstrap((np.asarray(values),), np.mean, method="percentile",
                             n_resamples=9999, **{key: np.random.default_rng(0)})
  return ci.confidence_interval.low, ci.confidence_interval.high


def _one(out, **fields):
  (f,) = pick([f for f in out if isinstance(f, Finding)], **fields)
  return f


def test_findings_are_records_with_the_statistic_of_each_quantity(overfitting):
  out = overfitting.findings(_results())
  assert all(isinstance(f, Finding) for f in out)
  none = {"train size": 20000, "regularizer": "none"}
  # The unregularized validation loss rose (>= 0: bootstrap bounded below by 0) ...
  rise = _one(out, kind="validation_rise", **none)
  assert isinstance(rise.statistic, stats.Estimate) and rise.statistic.lo == 0.0
  assert rise.statistic.value == pytest.approx(0.21)
  assert (rise.statistic.low, rise.statistic.high) == pytest.approx(
      _percentile_bootstrap([0.2, 0.21, 0.22]))
  assert (rise.seeds_agreeing, rise.seeds) == (3, 3)
  assert render(rise).startswith("train size 20000, regularizer none: validation loss rise "
                                 "after the best checkpoint mean 0.21 [")
  sign = _one(out, kind="validation_rise_sign_test")
  assert (sign.statistic.k_greater, sign.statistic.n) == (3, 3)
  assert render(sign) == (
      "train size 20000, regularizer none: the final model has higher validation loss than "
      "the best-validation checkpoint in 3/3 seeds (0 tied; sign test (binomial, two-sided), "
      "p = 0.25).")
  # ... while the training loss fell (unbounded: Student t, as scipy's).
  drop = _one(out, kind="training_drop")
  ci = scipy.stats.ttest_1samp([0.3, 0.35, 0.4], 0).confidence_interval(0.95)
  assert drop.statistic.method == "Student t" and drop.statistic.value == pytest.approx(0.35)
  assert (drop.statistic.low, drop.statistic.high) == pytest.approx((ci.low, ci.high))
  assert "the final model has lower training loss than the best-validation checkpoint in 3/3" \
      in render(_one(out, kind="training_drop_sign_test"))
  step = _one(out, kind="best_step")
  assert (step.statistic.value, step.statistic.hi) == (600, 1000)
  # Each regularizer against none on the best validation loss, paired by seed.
  dropout = _one(out, kind="regularizer_vs_none", regularizer="dropout", strength=0.4)
  assert dropout.arms == ("dropout 0.4", "none") and dropout.statistic.k_less == 2
  assert dropout.statistic.p_value == pytest.approx(scipy.stats.binomtest(2, 3).pvalue)
  assert render(dropout) == (
      "train size 20000, regularizer dropout, strength 0.4: dropout 0.4 has lower best "
      "validation loss than none in 2/3 seeds (0 tied; sign test (binomial, two-sided), p = 1).")
  wd = _one(out, kind="regularizer_vs_none", regularizer="weight_drop")
  assert (wd.statistic.k_less, wd.seeds_agreeing, wd.seeds) == (3, 3, 3)
  # Each arm's estimate: a loss with Student t, a perplexity (>= 1) bootstrapped.
  best = _one(out, kind="best_validation", **none).statistic
  assert best.method == "Student t" and best.value == pytest.approx(2.01)
  ppl = _one(out, kind="test_perplexity", regularizer="dropout").statistic
  assert (ppl.method, ppl.lo, ppl.value) == ("percentile bootstrap", 1.0, pytest.approx(6.5))
  assert (ppl.low, ppl.high) == pytest.approx(_percentile_bootstrap([6.0, 6.5, 7.0]))
  # The first two by test perplexity: dropout 0.4 then weight drop 0.5.
  rank = _one(out, kind="ranking")
  assert rank.arms == ("dropout 0.4", "weight_drop 0.5")
  assert isinstance(rank.statistic, stats.Ratio)
  assert rank.statistic.value == pytest.approx(6.5 / np.mean([7.0, 7.5, 8.5]))
  assert _one(out, kind="ranking_sign_test").statistic.k_less == 3


def test_headline_is_the_test_metric_of_the_regularizer_chosen_on_validation(overfitting):
  from lstmx.lab import findings
  from lstmx.lab.experiment import Experiment
  e = Experiment.from_module(overfitting)
  out = overfitting.findings(_results())
  chosen = _one(out, kind="chosen_vs_none")  # weight drop: the lowest best validation loss
  assert chosen.quantity == "test perplexity at the best-validation checkpoint"
  assert chosen.arms == ("weight_drop 0.5", "none")
  assert chosen.statistic.value == pytest.approx(np.mean([7.0, 7.5, 8.5]) / 8.1)
  assert (chosen.seeds_agreeing, chosen.seeds) == (2, 3)  # test ppl below none's
  text = render(chosen)
  assert text.startswith(
      "train size 20000, regularizer chosen on validation weight_drop 0.5 (best validation "
      "loss 1.95 vs 2.01 for none, lower in 3/3 seeds): weight_drop 0.5 has 1.06x lower test "
      "perplexity at the best-validation checkpoint than none ["), text
  figures = [("curves", "loss_curves"), ("by strength", "by_strength")]
  sentences, records = findings.checked(out, [])
  head = e.headline_of(_results(), figures, sentences, records)
  assert head["figure"] == "by_strength" and head["finding"] == text
  # Without a regularized run, the unregularized rise.
  df = _results()
  df = df[df["meta.regularizer"] == "none"]
  out = overfitting.findings(df)
  sentences, records = findings.checked(out, [])
  head = e.headline_of(df, figures, sentences, records)
  assert head["finding"] == render(_one(out, kind="validation_rise")), head
  assert not pick(out, kind="ranking")


def test_a_final_evaluation_below_the_best_drops_the_bound_not_the_value(overfitting):
  df = _results()
  first = df.index[df["meta.regularizer"] == "none"][0]
  df.loc[first, "final.validation.loss"] = df.loc[first, "at_best.validation.loss"] - 0.05
  rise = _one(overfitting.findings(df), kind="validation_rise").statistic
  assert rise.lo == -math.inf and rise.value == pytest.approx((-0.05 + 0.21 + 0.22) / 3)
