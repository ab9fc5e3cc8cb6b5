"""Steps to solve as a censored (Kaplan-Meier) curve: lstmx.lab.solve_curves."""

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from lstmx.lab import solve_curves  # noqa: E402


def _rows():
  return pd.DataFrame({
      "status": ["completed", "early_stopped", "completed", "completed", "diverged", "failed"],
      "steps": [1000, 300, 1000, 1000, 400, 50],
      "task.solved_step": [100.0, 300.0, 200.0, math.nan, math.nan, 10.0],
  })


def test_solved_trials_give_their_step_the_others_are_censored_where_they_stopped():
  times, solved = solve_curves.steps_to_solve(_rows())
  np.testing.assert_array_equal(times, [100, 300, 200, 1000, 400])  # the failed row drops
  np.testing.assert_array_equal(solved, [True, True, True, False, False])


def test_the_curve_is_kaplan_meier_with_censoring():
  times, solved = solve_curves.steps_to_solve(_rows())
  curve = solve_curves.solved_fraction(times, solved)
  # five at risk: solves at 100, 200, 300 (1/5 each), then one censored at 400 and one at
  # 1000: F = 1 - (4/5)(3/4)(2/3) = 0.6 from step 300 on.
  np.testing.assert_allclose(curve.cdf.evaluate([99, 100, 250, 300, 999, 1000]),
                             [0.0, 0.2, 0.4, 0.6, 0.6, 0.6])
  # censoring matters: a run censored at 150 leaves 3 at risk at step 200
  c = solve_curves.solved_fraction([100, 150, 200, 1000], [True, False, True, False])
  np.testing.assert_allclose(c.cdf.evaluate([1000]), [1 - (3 / 4) * (1 / 2)])
  band = curve.cdf.confidence_interval(0.95, method="log-log")
  assert np.all(band.low.evaluate([100, 300]) >= 0) and np.all(band.high.evaluate([300]) <= 1)


def test_plot_draws_one_curve_with_the_seed_count_and_mismatched_input_raises():
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots()
  solve_curves.plot_solved_fraction(ax, _rows(), label="lstm", budget=1000)
  assert ax.get_legend_handles_labels()[1] == ["lstm (3/5 seeds)"]
  plt.close(fig)
  with pytest.raises(ValueError, match=r"solved: expected shape \(2,\)"):
    solve_curves.solved_fraction([1, 2], [True])
  with pytest.raises(ValueError, match="rows: expected a 'steps' column"):
    solve_curves.steps_to_solve(pd.DataFrame({"status": ["completed"]}))
