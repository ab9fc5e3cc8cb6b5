"""experiments/overfitting.py: the presets say what the docs say (quick: Shakespeare
characters, no fetched data, 3 seeds; full: Brown words, every regularizer at
several strengths, the AWD recipe with NT-ASGD), and the findings are computed
from the results table (seed counts, intervals, the test metric at the
best-validation checkpoint)."""

import importlib.util
import pathlib

import pandas as pd
import pytest

from lstmx.config import set_many

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
    # dropout 0.4: lower best validation loss in seeds 0 and 1 only
    rows.append({"meta.regularizer": "dropout", "meta.strength": 0.4, "rise_val": -0.01,
                 "best": [1.8, 1.9, 2.5][seed], "test_ppl": [6.0, 6.5, 7.0][seed]})
    for r in rows[-2:]:
      r.update({"train.seed": seed, "status": "completed", "meta.train_size": 20000,
                "trial": f"t{len(rows)}"})
  df = pd.DataFrame(rows)
  df["at_best.validation.loss"] = df.pop("best")
  df["final.validation.loss"] = df["at_best.validation.loss"] + df.pop("rise_val")
  df["at_best.train.loss"] = 1.5
  df["final.train.loss"] = 1.2
  df["at_best.test.perplexity"] = df.pop("test_ppl")
  df["at_best.step"] = 500
  return df


def test_findings_count_seeds_and_compare_intervals(overfitting):
  lines = overfitting.findings(_results())

  assert "no regularization" in lines[0] and "both in 3/3 seeds" in lines[0], lines[0]
  assert "rose by 0.210" in lines[0]
  drop = [line for line in lines if "dropout 0.4" in line and "best validation" in line][0]
  assert "lower in 2/3 seeds" in drop and "intervals overlap" in drop
  rank = lines[-1]
  assert "lowest test perplexity" in rank and "dropout 0.4" in rank
  assert "not called better" in rank or "intervals separate" in rank
  # Separated test intervals make the ranking call it better.
  df = _results()
  df.loc[df["meta.regularizer"] == "dropout", "at_best.test.perplexity"] = [6.0, 6.01, 6.02]
  assert "better: the intervals separate" in overfitting.findings(df)[-1]
  head = overfitting.headline(_results())["finding"]
  assert head.startswith(lines[0]) and "dropout 0.4: best validation loss" in head
