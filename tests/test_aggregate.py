"""lstmx.lab.aggregate: the per-configuration summary over seeds (centre, std, and the
interval each metric's kind gets), seed counts for findings, summary.csv from the report, and every
experiment's figures and findings on synthetic multi-seed tables."""

import glob
import importlib.util
import math
import os
import re
import textwrap

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from lstmx.lab import aggregate, report, runner, stats
from lstmx.lab.experiment import Experiment, Preset
from lstmx.lab.findings import Finding, render

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = sorted(p for p in glob.glob(os.path.join(ROOT, "experiments", "*.py"))
                     if "smoke" not in p)


def _table():
  """Two configurations (lr 0.1, 0.2) x three seeds, plus a failed, a diverged and a
  pending row of lr 0.1."""
  rows = []
  for lr, losses in ((0.1, [1.0, 2.0, 4.0]), (0.2, [3.0, 3.0, 3.0])):
    for seed, loss in enumerate(losses):
      rows.append({"trial": f"{lr}-{seed}", "optimizer.lr": lr, "meta.model": "lstm",
                   "train.seed": seed, "status": "completed", "wall_time": 10.0 + seed,
                   "final.validation.loss": loss, "best.metric": "validation.loss",
                   "best.value": loss - 0.5, "task.name": "copy", "task.solved": loss < 2.5,
                   "error": None})
  rows.append({"trial": "f", "optimizer.lr": 0.1, "meta.model": "lstm", "train.seed": 3,
               "status": "failed", "error": "ValueError: boom"})
  rows.append({"trial": "d", "optimizer.lr": 0.1, "meta.model": "lstm", "train.seed": 4,
               "status": "diverged", "task.solved": False, "task.name": "copy",
               "wall_time": 5.0, "best.value": 9.0, "best.metric": "validation.loss"})
  rows.append({"trial": "p", "optimizer.lr": 0.1, "meta.model": "lstm", "train.seed": 5,
               "status": "pending"})
  return pd.DataFrame(rows)


def test_interval_is_students_t():
  v = np.array([1.0, 2.0, 4.0])
  mean, std, low, high = aggregate.interval(v)
  assert mean == pytest.approx(7 / 3) and std == pytest.approx(np.std(v, ddof=1))
  ref = scipy.stats.t.interval(0.95, df=2, loc=v.mean(), scale=scipy.stats.sem(v))
  assert (low, high) == pytest.approx(ref)
  # By hand: t(0.975, 2) = 4.3027, std = 1.5275, sqrt(3) = 1.7321.
  assert high - mean == pytest.approx(4.3027 * 1.5275 / 1.7321, rel=1e-4)
  assert aggregate.t_quantile(0.975, 4) == pytest.approx(2.7764, rel=1e-4)
  one = aggregate.interval([5.0, np.nan])
  assert one[0] == 5.0 and all(math.isnan(x) for x in one[1:])
  assert all(math.isnan(x) for x in aggregate.interval([]))
  assert aggregate.interval([2.0, 2.0])[2:] == (2.0, 2.0)


def test_summarize_groups_configurations_over_seeds():
  summary = aggregate.summarize(_table())
  assert aggregate.summary_keys(summary) == ["optimizer.lr", "meta.model"]  # no train.seed
  assert len(summary) == 2
  a, b = (summary[summary["optimizer.lr"] == lr].iloc[0] for lr in (0.1, 0.2))
  # lr 0.1: three completed seeds and a diverged one count; failed and pending do not.
  assert (a["n"], a["n_diverged"], a["n_failed"], a["n_pending"]) == (4, 1, 1, 1)
  assert a["seeds"] == "0 1 2 4" and b["seeds"] == "0 1 2"
  # The diverged run has no final metrics: the loss rests on 3 seeds, `.n` says so.
  assert a["final.validation.loss.mean"] == pytest.approx(7 / 3)
  assert a["final.validation.loss.n"] == 3 and b["final.validation.loss.n"] == 3
  # A loss is >= 0: the percentile bootstrap interval of its mean, not Student's t.
  ref = stats.bounded_interval([1.0, 2.0, 4.0], 0.0, np.inf)
  assert (a["final.validation.loss.ci_low"], a["final.validation.loss.ci_high"]) == \
      pytest.approx((ref.low, ref.high))
  assert a["final.validation.loss.method"] == "percentile bootstrap"
  assert a["final.validation.loss.std"] == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1))
  # best.value (its range follows best.metric) has all 4 counted rows: no `.n` column,
  # and Student's t.
  values = [0.5, 1.5, 3.5, 9.0]
  assert a["best.value.mean"] == pytest.approx(np.mean(values))
  assert (a["best.value.ci_low"], a["best.value.ci_high"]) == pytest.approx(
      scipy.stats.t.interval(0.95, df=3, loc=np.mean(values), scale=scipy.stats.sem(values)))
  assert a["best.value.method"] == "Student t" and "best.value.n" not in summary
  # A boolean's mean is the fraction of seeds: 2 of the 4 counted runs solved, with the
  # exact interval.
  assert a["task.solved.mean"] == pytest.approx(0.5)
  ci = scipy.stats.binomtest(2, 4).proportion_ci(method="exact")
  assert (a["task.solved.ci_low"], a["task.solved.ci_high"]) == pytest.approx((ci.low, ci.high))
  assert b["final.validation.loss.std"] == 0 and b["final.validation.loss.ci_low"] == 3.0
  assert "best.metric.mean" not in summary  # text is not a metric
  # Wall time: the median with min and max (seeds 0, 1, 2 and the diverged run's 5 s).
  assert set(f"wall_time.{s}" for s in aggregate.STATS) <= set(summary.columns)
  assert (a["wall_time.median"], a["wall_time.ci_low"], a["wall_time.ci_high"]) == \
      (10.5, 5.0, 12.0)
  assert a["wall_time.mean"] == pytest.approx(38 / 4)


def test_summarize_one_seed_gives_nan_interval_and_reads_csv_back(tmp_path):
  table = _table()
  one = table[table["train.seed"] == 0]
  summary = aggregate.summarize(one)
  assert (summary["n"] == 1).all()
  assert summary["final.validation.loss.std"].isna().all()
  assert summary["final.validation.loss.ci_low"].isna().all()
  assert summary["final.validation.loss.ci_high"].isna().all()
  path = tmp_path / "results.csv"
  table.to_csv(path, index=False)
  back = aggregate.summarize(pd.read_csv(path))  # booleans with NaN come back as text
  pd.testing.assert_frame_equal(back, aggregate.summarize(table), check_dtype=False)


def test_summarize_without_a_seed_column_and_with_dict_overrides():
  rows = [{"trial": str(i), "task.params": {"dataset": "x", "train_size": 10 * (i % 2)},
           "status": "completed", "final.test.accuracy": 0.5 + 0.1 * i} for i in range(4)]
  summary = aggregate.summarize(pd.DataFrame(rows))
  assert list(summary["n"]) == [2, 2] and "seeds" not in summary
  assert list(summary["final.test.accuracy.mean"]) == pytest.approx([0.6, 0.7])


def test_summarize_rejects_unknown_or_text_metrics():
  with pytest.raises(ValueError, match=r"metrics: expected columns .* \['nope'\]"):
    aggregate.summarize(_table(), metrics=["nope"])
  with pytest.raises(ValueError, match=r"metrics: expected a numeric column; got 'best.metric'"):
    aggregate.summarize(_table(), metrics=["best.metric"])
  with pytest.raises(ValueError, match=r"keys: expected columns .* \['model.kind'\]"):
    aggregate.summarize(_table(), keys=["model.kind"])


def test_agree_counts_seeds():
  table = _table()
  # lr 0.1: solved in seeds 0 and 1, not in 2, not in the diverged run; the failed and
  # pending rows do not count.
  assert aggregate.agree(table, {"optimizer.lr": 0.1}, "task.solved") == (2, 4)
  assert aggregate.agree(table, {"optimizer.lr": 0.2},
                         lambda r: r["final.validation.loss"] > 2.5) == (3, 3)
  assert aggregate.agree(table, {"optimizer.lr": 0.3}, "task.solved") == (0, 0)
  assert aggregate.agree(table, {}, "task.solved") == (2, 7)
  # Paired by seed (the diverged seed 4 has no partner): lr 0.1 below lr 0.2 in 2/3.
  assert aggregate.agree_paired(table, {"optimizer.lr": 0.1}, {"optimizer.lr": 0.2},
                                "final.validation.loss") == (2, 3)
  assert aggregate.agree_paired(table, {"optimizer.lr": 0.1}, {"optimizer.lr": 0.2},
                                "final.validation.loss", np.greater) == (1, 3)
  assert aggregate.seeds_phrase(2, 3) == "2/3 seeds" and aggregate.seeds_phrase(1, 1) == \
      "1/1 seed"
  row = aggregate.summarize(table).iloc[1]
  assert aggregate.mean_ci_text(row, "final.validation.loss", ".1f") == \
      "3.0 [3.0, 3.0] (percentile bootstrap)"
  assert aggregate.mean_ci_text(row, "final.validation.loss", ".1f", method=False) == \
      "3.0 [3.0, 3.0]"
  assert aggregate.mean_ci_text(row, "wall_time", ".1f") == "11.0 [10.0, 12.0] (median, min-max)"
  one = aggregate.summarize(table[table["train.seed"] == 0]).iloc[0]
  assert aggregate.mean_ci_text(one, "final.validation.loss", ".1f") == "1.0"


def test_report_writes_summary_csv_and_table(tmp_path):
  table = _table()
  exp = Experiment(name="fake")
  report.write(exp, str(tmp_path), table)
  summary = pd.read_csv(tmp_path / "summary.csv")
  assert len(summary) == 2 and list(summary["n"]) == [4, 3]
  text = (tmp_path / "report.md").read_text()
  assert "## Summary over seeds" in text and report.INTERVAL_NOTE in text
  assert "Student t" not in text  # a loss and a rate here: bootstrap and Clopper-Pearson
  assert "| final.validation.loss (percentile bootstrap) |" in text
  assert "task.solved (Clopper-Pearson exact)" in text
  # meta.model (one value) and task.name (one value: an implied key) in a line, not columns
  assert "| optimizer.lr | n | n_diverged | n_failed | n_pending |" in text
  assert "The same in every row: meta.model = lstm." in text
  assert "3 [3, 3]" in text  # lr 0.2's loss, mean [interval]
  results_part = text.split("## Results")[1]
  assert "train.seed" in results_part  # the per-seed table keeps seeds
  assert "nan" not in text and "| task.name |" not in results_part


def test_report_tables_leave_out_blank_constant_and_implied_columns():
  rows = [{"trial": f"t{i}{s}", "meta.model": m, "meta.length": t, "task.params.length": t,
           "model.kind": "lstm", "model.init": init, "model.chrono_max_length": cml,
           "model.num_layers": None, "train.seed": s, "status": "completed", "steps": 100,
           "final.validation.loss": 0.1 * i + 0.01 * s, "final.validation.examples": 512.0}
          for i, (m, t, init, cml) in enumerate([("lstm", 50, "forget_bias", None),
                                                  ("lstm_chrono", 50, "chrono", 49.0),
                                                  ("lstm", 100, "forget_bias", None)])
          for s in range(2)]
  results = pd.DataFrame(rows)
  keys = aggregate.config_keys(results)
  assert report.implied_keys(results, keys) == ["task.params.length", "model.kind",
                                                "model.init", "model.chrono_max_length",
                                                "model.num_layers"]
  assert report.implied_keys(results, ["model.kind"]) == []  # no labels: none implied
  table, line = report.tidy(results, keep=("trial",))
  assert "model.num_layers" not in table and "model.kind" not in table and "steps" not in table
  assert line == ("The same in every row: model.kind = lstm, status = completed, steps = 100, "
                  "final.validation.examples = 512.")
  summary = aggregate.summarize(results)
  shown = report.summary_table(summary, ["final.validation.loss"])
  column = "final.validation.loss (percentile bootstrap)"  # the method, once per column
  assert list(shown.columns) == ["meta.model", "meta.length", "n", column]
  assert shown[column].iloc[1] == aggregate.mean_ci_text(
      summary.iloc[1], "final.validation.loss", ".4g", method=False)
  assert " [" in shown[column].iloc[1]  # mean [lo, hi]
  assert report.markdown_table(pd.DataFrame({"x": [float("nan"), 1.5]})).endswith("|  |\n| 1.5 |")


def test_plot_mean_draws_bands_and_bars_and_skips_missing():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  summary = aggregate.summarize(_table())
  fig, (a, b) = plt.subplots(1, 2)
  line = report.plot_mean(a, summary, "optimizer.lr", "final.validation.loss", label="x")
  assert list(line.get_ydata()) == pytest.approx([7 / 3, 3.0])
  assert len(a.collections) == 1  # the band
  b.set_yscale("log")
  report.plot_mean(b, summary, [0, 1], "final.validation.loss", style="bars")
  assert report.plot_mean(b, summary, [0, 1], "final.nope") is None
  one = aggregate.summarize(_table().query("`train.seed` == 0"))
  report.plot_mean(b, one, "optimizer.lr", "final.validation.loss")  # n=1: no band
  with pytest.raises(ValueError, match="style: expected 'band' or 'bars'; got 'dots'"):
    report.plot_mean(a, summary, "optimizer.lr", "final.validation.loss", style="dots")
  with pytest.raises(ValueError, match="x: expected 2 positions"):
    report.plot_mean(a, summary, [0], "final.validation.loss")
  line = report.plot_curves(a, [([0, 1, 2], [1.0, 2.0, 3.0]), ([0, 1, 2, 3], [3.0, 4.0, 5.0, 6.0])])
  assert list(line.get_xdata()) == [0, 1, 2] and list(line.get_ydata()) == [2.0, 3.0, 4.0]
  assert report.plot_curves(a, []) is None
  plt.close(fig)


# --- every experiment's figures and findings on synthetic multi-seed tables ---------------

def _load(path):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _synthetic(module, preset: str, seeds: int, drop: tuple = ()) -> pd.DataFrame:
  """A results table of `preset`'s sweep x `seeds` seeds with plausible random metrics
  (and a failed trial), as the runner would write it."""
  rng = np.random.default_rng(0)
  rows = []
  for i, ov in enumerate(module.presets()[preset].sweep):
    for seed in range(seeds):
      loss = float(rng.uniform(0.2, 1.2))
      row = {"trial": f"t{i}s{seed}", **ov, "train.seed": seed, "status": "completed",
             "steps": 100, "wall_time": float(rng.uniform(1, 10)), "compile_time": 1.0,
             "param_count": 1000 + i, "error": None,
             "final.train.loss": loss - 0.1, "final.validation.loss": loss,
             "final.validation.loss_over_baseline": loss, "final.test.loss": loss,
             "final.test.accuracy": float(rng.uniform(0.5, 1.0)),
             "best.value": loss - 0.05, "best.step": 50, "at_best.step": 50,
             "at_best.validation.loss": loss - 0.05, "at_best.train.loss": loss - 0.02,
             "at_best.test.perplexity": float(np.exp(loss - 0.04)),
             "at_best.validation.perplexity": float(np.exp(loss - 0.05)),
             "task.name": ov.get("task.name", "x"), "task.solved": bool(loss < 0.5),
             "task.chance_accuracy": 0.1, "task.baseline_loss": 1.0,
             "analysis.step_time": float(rng.uniform(1e-3, 2e-3)) * (1 + i),
             "analysis.compile_time": float(rng.uniform(0.5, 1.0)),
             "analysis.peak_bytes": 1e6 * (1 + i), "analysis.tokens_per_s": 1e5 / (1 + i)}
      for n in (1, 2, 4, 8):
        row[f"analysis.tokens_per_s_dev{n}"] = 1e5 * n ** 0.5 * float(rng.uniform(0.9, 1.1))
      rows.append({k: v for k, v in row.items() if k not in drop})
  rows[0] = {"trial": rows[0]["trial"], **module.presets()[preset].sweep[0], "train.seed": 0,
             "status": "failed", "error": "RuntimeError: synthetic"}
  return pd.DataFrame(rows)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=os.path.basename)
@pytest.mark.parametrize("seeds,drop", [(3, ()), (1, ()),
                                        (2, ("task.solved", "final.test.accuracy",
                                             "final.validation.loss_over_baseline",
                                             "analysis.peak_bytes", "best.value"))],
                         ids=["3seeds", "1seed", "missing_metrics"])
def test_experiment_figures_and_findings_on_synthetic_seeds(path, seeds, drop, tmp_path):
  import matplotlib
  matplotlib.use("Agg")
  module = _load(path)
  preset = "quick"
  results = _synthetic(module, preset, seeds, drop)
  figures = module.figures(results, str(tmp_path / "figures"))
  findings = module.findings(results)
  for _, stem in figures:
    assert (tmp_path / "figures" / f"{stem}.png").exists()
  assert all(isinstance(f, (str, Finding)) for f in findings)
  findings = [f if isinstance(f, str) else render(f) for f in findings]  # records render
  if seeds == 3 and not drop:
    assert figures and findings
    # seed counts, "k/3 seeds" (or k/2 where the comparison involves the failed trial)
    assert any(re.search(r"\d/[23] seeds", f) for f in findings), findings


@pytest.mark.parametrize("path", EXPERIMENTS, ids=os.path.basename)
def test_every_preset_declares_seeds_and_no_sweep_sets_a_seed(path):
  presets = _load(path).presets()
  assert presets["quick"].seeds >= 3 and presets["full"].seeds >= 3
  assert 1 <= presets["tiny"].seeds <= 2
  for name, p in presets.items():
    assert not any(aggregate.SEED_KEY in ov for ov in p.sweep), name


MULTI_SEED = textwrap.dedent('''
    """A two-configuration, two-seed experiment for the aggregate's end-to-end test."""
    import sys
    sys.path.insert(0, {experiments!r})
    import smoke
    from lstmx.config import override
    from lstmx.lab import Preset
    NAME = "multi_seed"
    def presets():
      base = override(smoke.base(), ["train.steps=4", "train.eval_every=2",
                                     "train.log_every=2", "train.checkpoint_every=2",
                                     "train.eval_batches=1"])
      sweep = [{{"meta.model": m, "model.hidden_size": h}} for m, h in (("lstm", 8), ("wide", 12))]
      return {{"tiny": Preset(base, sweep, seeds=2)}}
    ''')


def test_a_multi_seed_sweep_runs_through_the_aggregate(tmp_path):
  """The runner crosses the sweep with the preset's two seeds; its table gives
  summary.csv with one row per configuration and n = 2."""
  script = tmp_path / "multi_seed.py"
  script.write_text(MULTI_SEED.format(experiments=os.path.join(ROOT, "experiments")))
  out = tmp_path / "out"
  results = runner.run(_load(str(script)), "tiny", str(out), progress=False,
                       cores_per_trial="all")  # in this process
  assert len(results) == 4 and (results["status"] == "completed").all()
  summary = pd.read_csv(out / "summary.csv")
  assert list(summary["meta.model"]) == ["lstm", "wide"] and list(summary["n"]) == [2, 2]
  assert list(summary["seeds"]) == ["0 1", "0 1"]
  for _, r in summary.iterrows():
    losses = results[results["meta.model"] == r["meta.model"]]["final.validation.loss"]
    e = stats.bounded_interval(losses, 0.0, np.inf)
    assert r["final.validation.loss.mean"] == pytest.approx(e.value)
    assert (r["final.validation.loss.ci_low"], r["final.validation.loss.ci_high"]) == \
        pytest.approx((e.low, e.high))
    assert 0 <= e.low < e.value < e.high
  assert "## Summary over seeds" in (out / "report.md").read_text()


def test_lstmx_report_rewrites_summary_csv(tmp_path, capsys):
  from lstmx.lab import cli
  from lstmx.train.rundir import write_json
  _table().to_csv(tmp_path / "results.csv", index=False)
  write_json(str(tmp_path / "experiment.json"),
             {"experiment": os.path.join(ROOT, "experiments", "smoke.py"), "name": "smoke"})
  (tmp_path / "summary.csv").write_text("stale")
  cli.main(["report", str(tmp_path)])
  summary = pd.read_csv(tmp_path / "summary.csv")
  assert list(summary["n"]) == [4, 3] and list(summary["n_failed"]) == [1, 0]
  assert "report:" in capsys.readouterr().out
