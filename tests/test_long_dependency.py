"""experiments/long_dependency.py: chrono's T_max rule, the decay fit, and the
findings (a)-(c) computed from a results table (no training: fast)."""

import math
import os
import sys

import numpy as np
import pandas as pd
import pytest

import lstmx.tasks as tasks
from lstmx.lab.experiment import load

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LD = load(os.path.join(ROOT, "experiments", "long_dependency.py"))
MOD = sys.modules[LD.findings.__module__]  # the loaded file, for its helpers


@pytest.mark.parametrize("preset", ["tiny", "quick", "full"])
def test_chrono_tmax_is_the_tasks_longest_dependency(preset):
  chrono = [ov for ov in LD.presets()[preset].sweep if ov["meta.model"] == "lstm_chrono"]
  assert chrono
  for ov in chrono:
    params = {k[len("task.params."):]: v for k, v in ov.items() if k.startswith("task.params.")}
    task = tasks.make(ov["task.name"], **params)
    assert ov["model.chrono_max_length"] == max(task.longest_dependency, 3)
    if ov["task.name"] == "copy":  # Tallec & Ollivier: delay + S
      assert ov["model.chrono_max_length"] == params["delay"] + task.num_symbols


def test_quick_preset_has_the_papers_copy_and_a_two_layer_transformer():
  sweep = LD.presets()["quick"].sweep
  copy = [ov for ov in sweep if ov["task.name"] == "copy"]
  assert copy and all("task.params.num_symbols" not in ov for ov in copy)  # S=10, K=8
  assert all(ov["model.num_layers"] == 2 for ov in sweep if ov["meta.model"] == "transformer")
  cap = [ov for ov in sweep if ov["meta.sweep"] == "capacity"]
  assert len({ov["meta.pairs"] for ov in cap}) > 1 and len({ov["model.hidden_size"]
                                                          for ov in cap}) > 1


def test_decay_rate_fits_an_exponential_and_skips_underflow():
  d = np.arange(200)
  norms = 3e-2 * np.exp(-0.07 * d)[::-1]  # t = 0..199, the loss at t = 199
  rate, r2 = MOD.decay_rate(norms, 199)
  assert rate == pytest.approx(0.07, rel=1e-6) and r2 == pytest.approx(1.0)
  norms[:50] = 0.0  # underflowed far from the loss
  assert MOD.decay_rate(norms, 199)[0] == pytest.approx(0.07, rel=1e-6)
  # a start before the end: the steps after it are not fitted
  tail = np.concatenate([norms, np.full(10, 5.0)])
  assert MOD.decay_rate(tail, 199)[0] == pytest.approx(0.07, rel=1e-6)
  assert math.isnan(MOD.decay_rate(np.zeros(5), 4)[0])


def _results(lstm_solved, chrono_solved, lstm_loss, decays):
  rows = []
  rows.append({"trial": "pending", "status": "pending", "meta.sweep": "length",
               "meta.model": "gru", "meta.length": 50, "task.name": "adding",
               "model.hidden_size": 64, "task.params.length": 50, "train.seed": 0})
  for seed in range(3):
    for length in (50, 400):
      for model in ("lstm", "lstm_chrono"):
        solved = (lstm_solved if model == "lstm" else chrono_solved)[length][seed]
        loss = lstm_loss[length][seed] if model == "lstm" else 0.01
        rows.append({
            "trial": f"{model}{length}s{seed}", "status": "completed", "meta.sweep": "length",
            "meta.model": model, "meta.length": length, "task.name": "adding",
            "model.hidden_size": 64, "task.params.length": length, "train.seed": seed,
            "final.validation.loss_over_baseline": loss, "task.solved": solved,
            "analysis.grad_decay_init": decays[model][seed] if length == 400 else 0.1,
            "analysis.grad_fit_r2_init": 0.9})
  return pd.DataFrame(rows)


def test_findings_state_a_b_c_with_seed_counts():
  results = _results(
      lstm_solved={50: [True, True, False], 400: [False, False, False]},
      chrono_solved={50: [True] * 3, 400: [True, True, False]},
      lstm_loss={50: [0.01, 0.02, 0.3], 400: [0.9, 0.95, 0.6]},
      decays={"lstm": [0.07, 0.06, 0.11], "lstm_chrono": [0.005, 0.005, 0.02]})
  lines = LD.findings(results)
  text = "\n".join(lines)
  # (a) the default LSTM does not solve adding at T=400 where chrono does
  assert ("adding: at T = 400 the default-init LSTM does not solve the task (in 3/3 seeds; "
          "loss / baseline 0.82 [") in text
  assert "above the one-value plateau 0.5 in 3/3 seeds) while chrono init solves it (in " \
         "2/3 seeds)" in text
  # (b) the length beyond which it stops solving
  assert "the default-init LSTM solves T = 50 (in 2/3 seeds) and stops solving from T = 400" \
         in text
  # (c) the decay rates, 10x slower in the seeds where it holds (0.11 < 10 x 0.02)
  assert "default-init LSTM rate 0.0800 [" in text and "at least 10x slower in 2/3 seeds" in text
  # no (a) at T=50, where the default LSTM solves in most seeds
  assert "at T = 50 the default-init" not in text
  assert "gru" not in text  # a configuration with no finished seed says nothing
  # The cross-experiment page's headline: (b) then the longest (a), on adding's curves.
  head = LD.headline(results)
  assert head["figure"] == "loss_vs_length" and head["where"]["task.name"] == "adding"
  assert head["finding"].startswith("adding: the default-init LSTM solves T = 50")
  assert head["finding"].endswith("while chrono init solves it (in 2/3 seeds).")


def test_findings_say_nothing_unearned():
  results = _results(
      lstm_solved={50: [False] * 3, 400: [True] * 3},
      chrono_solved={50: [False] * 3, 400: [False] * 3},
      lstm_loss={50: [0.9] * 3, 400: [0.01] * 3},
      decays={"lstm": [0.01] * 3, "lstm_chrono": [0.01] * 3})
  text = "\n".join(LD.findings(results))
  assert "does not solve" not in text and "stops solving" not in text
  assert "at least 10x slower in 0/3 seeds" in text
