"""lstmx.lab.solving: controls, solve rates, stopping points, contrasts and steps to
solve as records, checked against scipy on known tables (no training: fast)."""

import math

import pandas as pd
import pytest
import scipy.stats

from lstmx.lab import findings, solving


def _rows(table):
  """A chosen-rows table from {(task, model, length): [solved per seed]}, with the steps
  to solve (100 per seed index for a solved seed) and a budget of 1000 steps."""
  rows = []
  for (task, model, length), solved in table.items():
    for seed, ok in enumerate(solved):
      rows.append({"trial": f"{task}{model}{length}s{seed}", "status": "completed",
                   "meta.sweep": "length", "task.name": task, "meta.model": model,
                   "meta.length": length, "train.seed": seed, "train.steps": 1000,
                   "optimizer.lr": 1e-2, "steps": 100 * (seed + 1) if ok else 1000,
                   "task.solved": ok, "task.solved_test": ok,
                   "task.solved_step": 100 * (seed + 1) if ok else math.nan})
  return pd.DataFrame(rows)


NAMES = {"task.name": "task", "meta.model": "model", "meta.length": "T"}
KW = dict(control=lambda s: "ctl", budget=lambda s: {"steps": 1000}, names=NAMES)


def test_control_passes_at_four_of_five_and_fails_below():
  rows = _rows({("adding", "lstm", 50): [1, 1, 1, 1, 0], ("copy", "tf", 20): [1, 1, 1, 0, 0]})
  specs = [solving.ControlSpec("a", {"task.name": "adding", "meta.model": "lstm"}, "paper"),
           solving.ControlSpec("c", {"task.name": "copy", "meta.model": "tf"}, "paper"),
           solving.ControlSpec("none", {"task.name": "mqar", "meta.model": "tf"}, "paper")]
  got = {c.name: c for c in solving.controls(rows, specs)}
  assert set(got) == {"a", "c"}  # a spec without rows is not run
  assert (got["a"].solved, got["a"].seeds, got["a"].required, got["a"].passed) == (4, 5, 4, True)
  assert (got["c"].solved, got["c"].required, got["c"].passed) == (3, 4, False)


def test_held_out_rule_counts_not_the_validation_one():
  rows = _rows({("adding", "lstm", 50): [1, 1, 1]})
  rows["task.solved_test"] = [True, False, False]
  assert solving.count_solved(rows) == (1, 3)
  assert solving.count_solved(rows.drop(columns="task.solved_test")) == (3, 3)


def test_solve_rate_is_clopper_pearson():
  rows = _rows({("adding", "lstm", 50): [1, 1, 0, 1, 0]})
  (f,) = solving.solve_rates(rows, ["task.name", "meta.model", "meta.length"], **KW)
  ci = scipy.stats.binomtest(3, 5).proportion_ci(method="exact")
  assert (f.statistic.k, f.statistic.n) == (3, 5)
  assert f.statistic.low == pytest.approx(ci.low) and f.statistic.high == pytest.approx(ci.high)
  assert f.subject == {"task": "adding", "model": "lstm", "T": 50} and f.control == "ctl"


def test_stopping_point_contrasts_the_last_solved_length_with_the_first_unsolved():
  rows = _rows({("adding", "lstm", 50): [1] * 5, ("adding", "lstm", 200): [1, 1, 1, 0, 0],
                ("adding", "lstm", 400): [0] * 5, ("adding", "chrono", 50): [1] * 5,
                ("adding", "chrono", 400): [1, 1, 1, 1, 0], ("copy", "lstm", 20): [0] * 5})
  got = {(f.subject["model"], f.subject["task"]): f
         for f in solving.stopping_points(rows, ["task.name", "meta.model"], "meta.length", **KW)}
  stop = got[("lstm", "adding")]
  assert stop.kind == "stops" and stop.subject["solved at T"] == 200
  assert stop.subject["not from T"] == 400 and stop.arms == ("T=200", "T=400")
  p = scipy.stats.fisher_exact([[3, 2], [0, 5]]).pvalue
  assert stop.statistic.p_value == pytest.approx(p)
  assert (stop.seeds_agreeing, stop.seeds) == (5, 5)  # not solved at 400 in 5/5
  assert got[("chrono", "adding")].kind == "solved_throughout"
  assert got[("chrono", "adding")].subject["longest T"] == 400
  never = got[("lstm", "copy")]
  assert never.kind == "never_solved" and (never.seeds_agreeing, never.seeds) == (5, 5)
  text = findings.render(stop)
  assert "T=200 in 3/5 seeds, T=400 in 0/5 seeds" in text and "p = 0.17" in text


def test_contrast_is_fisher_exact_for_the_two_arms():
  rows = _rows({("adding", "chrono", 400): [1] * 5, ("adding", "lstm", 400): [0] * 5,
                ("adding", "chrono", 50): [1] * 5})  # lstm missing at 50: no contrast
  (f,) = solving.contrasts(rows, ["task.name", "meta.length"], "meta.model", "chrono", "lstm",
                           **KW)
  assert f.subject == {"task": "adding", "T": 400} and f.arms == ("chrono", "lstm")
  assert f.statistic.p_value == pytest.approx(scipy.stats.fisher_exact([[5, 0], [0, 5]]).pvalue)


def test_steps_to_solve_is_a_censored_median():
  rows = _rows({("adding", "lstm", 50): [1, 1, 1, 0, 0], ("adding", "lstm", 400): [1, 0, 0]})
  got = {f.subject["T"]: f.statistic for f in solving.steps_to_solve(
      rows, ["task.name", "meta.model", "meta.length"], cap=lambda s: 1000, **KW)}
  assert got[50].value == 300 and not got[50].censored  # 100, 200, 300, >=1000, >=1000
  assert got[400].censored and got[400].value == 1000 and got[400].n_censored == 2


def test_budget_and_family_controls_come_from_the_table():
  rows = _rows({("adding", "lstm", 200): [1], ("adding", "lstm", 50): [1],
                ("copy", "tf", 20): [1]})
  grid = pd.concat([rows, rows.assign(**{"optimizer.lr": 3e-2})])
  assert solving.budget_of(grid)({"task.name": "adding"}) == {
      "steps": 1000, "learning rates": [1e-2, 3e-2]}
  specs = solving.family_controls(rows, {"adding": ("lstm", "H&S 1997"),
                                         "mqar": ("tf", "Zoology")},
                                  lambda t: ("length", "meta.length"), names=NAMES)
  assert [(s.name, s.where["meta.length"]) for s in specs] == [("adding: lstm at T=50", 50)]
  by = solving.control_by(specs)
  assert by({"task.name": "adding"}) == "adding: lstm at T=50"
  assert by({"task.name": "copy"}) == solving.NO_CONTROL


def test_a_failed_control_withholds_its_findings():
  rows = _rows({("copy", "lstm", 20): [0] * 5, ("copy", "tf", 20): [1, 1, 0, 0, 0]})
  spec = solving.ControlSpec("copy: tf", {"task.name": "copy", "meta.model": "tf"}, "paper")
  fs = solving.solve_rates(rows, ["task.name", "meta.model"], control=lambda s: "copy: tf",
                           budget=lambda s: {}, names=NAMES)
  out = findings.withhold(fs, solving.controls(rows, [spec]))
  assert all(f.statistic is None and f.withheld_reason == findings.CONTROL_FAILED for f in out)
  assert "withheld: the control copy: tf solved 2/5 seeds" in findings.render(out[0])


def test_a_contrast_names_each_arms_budget_where_they_differ():
  rows = _rows({("copy", "tf", 20): [1] * 3, ("copy", "lstm", 20): [0] * 3})
  rows.loc[rows["meta.model"] == "tf", "optimizer.lr"] = 1e-3
  grid = pd.concat([rows, rows.assign(**{"optimizer.lr": rows["optimizer.lr"] * 3})])
  (f,) = solving.contrasts(rows, ["task.name"], "meta.model", "tf", "lstm",
                           control=lambda s: None, budget=solving.budget_of(grid), names=NAMES)
  assert f.budget == {"steps": 1000, "learning rates (tf)": [1e-3, 3e-3],
                      "learning rates (lstm)": [1e-2, 3e-2]}
