"""Learning rates chosen on validation data (lstmx.lab.selection.choose)."""

import math

import pandas as pd
import pytest

from lstmx.lab import selection


def _results():
  rows = []
  for seed in (0, 1):
    for lr, solved, step, loss, test in (
        (1e-3, False, math.nan, 0.9, 0.1),   # the best test loss: must never decide
        (3e-3, True, 400.0, 0.2, 0.8),
        (1e-2, True, 200.0, 0.3, 0.9),       # solved sooner: chosen
    ):
      rows.append({"trial": f"t{seed}{lr}", "status": "completed", "train.seed": seed,
                   "meta.model": "lstm", "optimizer.lr": lr, "task.solved": solved,
                   "task.solved_step": step, "final.validation.loss": loss,
                   "final.test.loss": test})
  rows.append({"trial": "crashed", "status": "failed", "train.seed": 0, "meta.model": "lstm",
               "optimizer.lr": 3e-2, "task.solved": True, "task.solved_step": 10.0,
               "final.validation.loss": 0.0, "final.test.loss": 0.0})
  return pd.DataFrame(rows)


def test_each_seed_gets_the_rate_that_solves_soonest_on_validation():
  chosen = selection.choose(_results(), "optimizer.lr")
  assert list(chosen["train.seed"]) == [0, 1]
  assert list(chosen["optimizer.lr"]) == [1e-2, 1e-2]
  assert list(chosen["selected_from"]) == [3, 3]  # the failed trial is never a candidate
  assert set(chosen["selected_by"]) == {"optimizer.lr"}


def test_unsolved_rates_are_ranked_by_validation_loss_and_test_never_decides():
  results = _results()
  results["task.solved"] = False
  results["task.solved_step"] = math.nan
  chosen = selection.choose(results, "optimizer.lr")
  assert list(chosen["optimizer.lr"]) == [3e-3, 3e-3]  # lowest validation loss
  results["final.test.loss"] = -results["final.test.loss"]  # any test column: no effect
  assert list(selection.choose(results, "optimizer.lr")["optimizer.lr"]) == [3e-3, 3e-3]


def test_a_missing_key_is_a_clear_error():
  with pytest.raises(ValueError, match=r"key: expected a column .* got 'optimizer.rate'"):
    selection.choose(_results(), "optimizer.rate")
