"""experiments/long_dependency.py: chrono's T_max rule, the decay fit, and the
findings (a)-(c) computed from a results table (no training: fast)."""

import math
import os
import sys

import numpy as np
import pandas as pd
import pytest

import lstmx.tasks as tasks
from lstmx.analysis import decay_rate
from lstmx.lab.experiment import load

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LD = load(os.path.join(ROOT, "experiments", "long_dependency.py"))


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
  assert len({ov["meta.pairs"] for ov in cap}) > 1  # the hidden-size axis is full's
  full = [ov for ov in LD.presets()["full"].sweep if ov["meta.sweep"] == "capacity"]
  assert len({ov["model.hidden_size"] for ov in full}) > 1
  # every arm of quick at a grid of >= 3 learning rates with its budget in the table
  arms = {}
  for ov in sweep:
    arms.setdefault(tuple(sorted((k, v) for k, v in ov.items() if k != "optimizer.lr")),
                    set()).add(ov["optimizer.lr"])
  assert all(len(lrs) >= 3 for lrs in arms.values()) and all("train.steps" in ov for ov in sweep)
  assert LD.presets()["quick"].seeds >= 5


def test_decay_rate_fits_an_exponential_and_skips_underflow():
  d = np.arange(200)
  norms = 3e-2 * np.exp(-0.07 * d)[::-1]  # t = 0..199, the loss at t = 199
  rate, r2 = decay_rate(norms, 199)
  assert rate == pytest.approx(0.07, rel=1e-6) and r2 == pytest.approx(1.0)
  norms[:50] = 0.0  # underflowed far from the loss
  assert decay_rate(norms, 199)[0] == pytest.approx(0.07, rel=1e-6)
  # a start before the end: the steps after it are not fitted
  tail = np.concatenate([norms, np.full(10, 5.0)])
  assert decay_rate(tail, 199)[0] == pytest.approx(0.07, rel=1e-6)
  assert math.isnan(decay_rate(np.zeros(5), 4)[0])


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
            "steps": 500 if solved else 1000, "task.solved_step": 500 if solved else None,
            "analysis.grad_decay_init": decays[model][seed] if length == 400 else 0.1,
            "analysis.grad_fit_r2_init": 0.9})
  return pd.DataFrame(rows)


def _render(results):
  from lstmx.lab.findings import checked
  return checked(LD.findings(results), LD.controls(results))


def test_findings_are_records_with_controls_and_fisher_tests():
  results = _results(
      lstm_solved={50: [True, True, True], 400: [False, False, False]},
      chrono_solved={50: [True] * 3, 400: [True, True, True]},
      lstm_loss={50: [0.01, 0.02, 0.3], 400: [0.9, 0.95, 0.6]},
      decays={"lstm": [0.07, 0.06, 0.11], "lstm_chrono": [0.005, 0.005, 0.02]})
  (control,) = LD.controls(results)
  assert control.name == "adding: lstm at T=50" and control.passed
  lines, records = _render(results)
  stop = [f for f in records if f.kind == "stops"]
  assert [f.subject["model"] for f in stop] == ["lstm"]  # chrono solves throughout
  assert stop[0].statistic.p_value == pytest.approx(0.1)  # Fisher: 3/3 against 0/3
  text = "\n".join(lines)
  assert "model lstm, solved at T 50, not from T 400: solved: T=50 in 3/3 seeds, T=400 in " \
         "0/3 seeds (Fisher exact, two-sided, p = 0.1)" in text
  assert "learning rates" not in text  # no grid in this table: one rate, none named
  assert "task adding, T 400: solved: lstm_chrono in 3/3 seeds, lstm in 0/3 seeds" in text
  # the ratio says its direction: the default's gradient decays faster (higher rate)
  assert "lstm has 8x higher gradient decay rate than lstm_chrono [4" in text
  assert "gru" not in text  # a configuration with no finished seed says nothing
  head = LD.headline_of(results, [("t", "loss_vs_length")],
                                                        lines, records)
  assert head["figure"] == "loss_vs_length" and head["where"] == {"meta.sweep": "length"}
  assert head["finding"].startswith("task adding, model lstm, solved at T 50, not from T 400")


def test_a_failed_control_withholds_the_families_findings():
  results = _results(  # the control (the default LSTM at T=50) solves 2/3 < 3 needed
      lstm_solved={50: [True, True, False], 400: [False, False, False]},
      chrono_solved={50: [True] * 3, 400: [True, True, False]},
      lstm_loss={50: [0.01, 0.02, 0.3], 400: [0.9, 0.95, 0.6]},
      decays={"lstm": [0.07, 0.06, 0.11], "lstm_chrono": [0.005, 0.005, 0.02]})
  assert not LD.controls(results)[0].passed
  lines, records = _render(results)
  solved = [f for f in records if f.quantity == "solved"]
  assert solved and all(f.withheld_reason == "control failed" for f in solved)
  assert all(f.statistic is None for f in solved)
  assert "withheld: the control adding: lstm at T=50 solved 2/3 seeds, fewer than the 3" \
      in "\n".join(lines)
