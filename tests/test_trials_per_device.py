"""Several trials per device (issue 17, item 6): trials that differ only in seed, learning
rate or initializer train as one vmapped program (`lstmx.train.batched`) with the results
of the same trials trained one by one (up to float32 rounding); a diverged or early
stopped trial is frozen while the others go on; a killed group resumes; the sweep option
``--trials-per-device``."""

import json
import os
import shutil
import sys

import jax
import numpy as np
import pytest

from lstmx.config import override, to_dict
from lstmx.lab import pool as pools
from lstmx.lab import command, runner
from lstmx.lab.experiment import load
from lstmx.lab.pool import TrialGroup, TrialSpec
from lstmx.train import batched, train_and_evaluate
from lstmx.train.batched import NotGroupable, group_key, train_group

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import smoke  # noqa: E402
from test_train import _final_params  # noqa: E402
from test_workers import METRICS, _write  # noqa: E402

# a: reference; b: another seed and rate; c: a rate too small to improve by min_delta, so
# it stops early at its second evaluation; d: an infinite rate, non-finite at step 2.
TRIALS = {"a": ["train.seed=0", "optimizer.lr=0.01"],
          "b": ["train.seed=1", "optimizer.lr=0.03"],
          "c": ["train.seed=0", "optimizer.lr=0.0003"],
          "d": ["train.seed=1", "optimizer.lr=inf"]}
TOL = 1e-5  # float32 rounding of vmapped matmuls; trials differ from each other by > 1e-2


def _configs():
  base = override(smoke.base(), [
      "train.progress=false", "train.steps=40", "train.log_every=5", "train.eval_every=10",
      "train.checkpoint_every=10", "train.eval_batches=1", "train.batch_size=8",
      "model.hidden_size=8", "train.patience=1", "train.min_delta=0.05"])
  return {name: override(base, sets + [f"name={name}"]) for name, sets in TRIALS.items()}


def _rows(workdir):
  return [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]


def _params(config, workdir):
  return jax.tree.leaves(_final_params(config, workdir)[0].params)


def _max_diff(a, b):
  return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  out = tmp_path_factory.mktemp("tpd")
  configs = _configs()
  alone = {n: train_and_evaluate(c, str(out / "alone" / n)) for n, c in configs.items()}
  grouped = dict(zip(configs, train_group(list(configs.values()),
                                          [str(out / "group" / n) for n in configs])))
  return out, configs, alone, grouped


def test_grouped_trials_match_the_same_trials_run_one_by_one(runs):
  out, configs, alone, grouped = runs
  params = {}
  for n, config in configs.items():
    a, g = alone[n], grouped[n]
    assert (g["status"], g["steps"], g["stop_reason"]) == (a["status"], a["steps"],
                                                         a["stop_reason"])
    assert g["trials_per_device"]["trials"] == 4 and "trials_per_device" not in a
    for split, metrics in a["final"].items():
      for key, value in metrics.items():
        assert g["final"][split][key] == pytest.approx(value, rel=1e-4, abs=TOL), (n, key)
    ra, rg = _rows(out / "alone" / n), _rows(out / "group" / n)
    assert [(r["step"], r["split"]) for r in ra] == [(r["step"], r["split"]) for r in rg]
    for x, y in zip(ra, rg):
      if isinstance(x["loss"], str):  # a non-finite loss, logged as its name
        assert y["loss"] == x["loss"]
      else:
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-4, abs=TOL)
    if a["status"] != "diverged":
      params[n] = (_params(config, out / "alone" / n), _params(config, out / "group" / n))
      assert _max_diff(*params[n]) < TOL, n
      assert set(os.listdir(out / "group" / n / "checkpoints")) == set(
          os.listdir(out / "alone" / n / "checkpoints"))
  # The tolerance tells the trials apart: a seed or rate given to the wrong trial fails.
  for n, m in (("a", "b"), ("a", "c"), ("b", "c")):
    assert _max_diff(params[n][0], params[m][1]) > 100 * TOL, (n, m)


def test_a_stopped_trial_is_frozen_while_the_others_go_on(runs):
  _, _, alone, grouped = runs
  assert grouped["d"]["status"] == "diverged" and grouped["d"]["steps"] == 2
  assert grouped["c"]["status"] == "early_stopped" and grouped["c"]["steps"] == 20
  assert grouped["c"]["at_best"]["step"] == 10
  assert grouped["a"]["status"] == grouped["b"]["status"] == "completed"
  assert grouped["a"]["steps"] == grouped["b"]["steps"] == 40
  assert {s["status"] for s in alone.values()} == {"diverged", "early_stopped", "completed"}


def test_a_killed_group_resumes_each_trial_from_its_own_checkpoint(runs, tmp_path,
                                                                   monkeypatch):
  """Killed at step 25 (checkpoints at 20; d had diverged, c not yet stopped). Then b
  resumes alone from the group's checkpoint, and c, its checkpoints lost, starts again
  from 0 in a group of its own beside a (from 20) and d (finished): every result
  equals the uninterrupted group's."""
  out, configs, _, grouped = runs

  class Killed(batched.Progress):
    def update(self, step, metrics):
      if step == 25:
        raise KeyboardInterrupt

  names = ["a", "b", "c", "d"]
  monkeypatch.setattr(batched, "Progress", Killed)
  with pytest.raises(KeyboardInterrupt):
    train_group([configs[n] for n in names], [str(tmp_path / n) for n in names])
  monkeypatch.undo()
  assert max(os.listdir(tmp_path / "a" / "checkpoints" / "latest"), key=int) == "20"
  assert json.load(open(tmp_path / "d" / "summary.json"))["status"] == "diverged"
  shutil.rmtree(tmp_path / "c" / "checkpoints")
  os.remove(tmp_path / "c" / "metrics.jsonl")
  resumed = {"b": train_and_evaluate(configs["b"], str(tmp_path / "b"))}
  resumed.update(zip("acd", train_group([configs[n] for n in "acd"],
                                        [str(tmp_path / n) for n in "acd"])))
  for n in names:
    assert resumed[n]["status"] == grouped[n]["status"]
    assert resumed[n]["steps"] == grouped[n]["steps"]
    if n != "d":
      assert _max_diff(_params(configs[n], tmp_path / n),
                       _params(configs[n], out / "group" / n)) < TOL
  assert resumed["c"]["trials_per_device"]["trials"] == 1  # its own group, from step 0
  assert resumed["a"]["trials_per_device"]["trials"] == 1
  assert "trials_per_device" not in resumed["b"]


def test_only_trials_that_differ_in_values_group():
  configs = _configs()
  key = group_key(configs["a"])
  assert all(group_key(c) == key for c in configs.values())  # seed, rate differ
  assert group_key(override(configs["a"], ["model.init=chrono",
                                           "model.chrono_max_length=16"])) == key
  for sets in (["model.hidden_size=16"], ["train.steps=50"],
               ["model.regularization.input_dropout=0.1"], ["optimizer.weight_decay=0.1"]):
    assert group_key(override(configs["a"], sets)) != key, sets
  seeded = override(configs["a"], ["task.params.data_seed=train.seed"])
  assert group_key(seeded) != group_key(override(seeded, ["train.seed=5"]))
  with pytest.raises(NotGroupable, match="differ beyond"):
    train_group([configs["a"], override(configs["b"], ["model.hidden_size=16"])], ["x", "y"])

  specs = [TrialSpec(t, "", to_dict(override(configs["a"], s)), f"w{t}")
           for t, s in [("1", ["train.seed=1"]), ("2", ["model.hidden_size=16"]),
                        ("3", ["train.seed=2"]), ("4", ["train.seed=3"])]]
  items = pools.group_specs(specs, 2)
  assert [pools.specs_of(i)[0].trial for i in items] == ["1", "2", "4"]
  assert isinstance(items[0], TrialGroup) and items[0].trial == "1+3"
  assert isinstance(items[1], TrialSpec) and isinstance(items[2], TrialSpec)


def test_a_sweep_with_trials_per_device_gives_the_rows_of_one_at_a_time(tmp_path):
  exp = load(_write(tmp_path, steps=10))
  one = runner.run(exp, "tiny", str(tmp_path / "one"), progress=False, report=False,
                   workers=1)
  two = runner.run(exp, "tiny", str(tmp_path / "two"), progress=False, report=False,
                   workers=1, trials_per_device=2)
  assert list(one.columns) == list(two.columns) and list(one["trial"]) == list(two["trial"])
  assert (two["status"] == "completed").all()
  np.testing.assert_allclose(two[METRICS].to_numpy(float), one[METRICS].to_numpy(float),
                             rtol=1e-4)
  summary = json.load(open(tmp_path / "two" / "trials" / two["trial"][0] / "summary.json"))
  assert summary["trials_per_device"]["trials"] == 2


@pytest.mark.parametrize("args, message", [
    (["--trials-per-device", "0"],
     "--trials-per-device: expected a positive integer (1: one trial at a time); got '0'"),
    (["--trials-per-device", "-2"], "--trials-per-device: expected a positive integer"),
    (["--trials-per-device", "two"], "got 'two'"),
    (["--trials-per-device", "2", "--ray"],
     "--trials-per-device: expected 1 with --ray (a Ray task trains one trial); got 2"),
])
def test_bad_trials_per_device_is_one_line_naming_the_option(tmp_path, capsys, args, message):
  script = _write(tmp_path)
  with pytest.raises(SystemExit) as e:
    command.main(load(script), ["--preset", "tiny", "--out", str(tmp_path / "o")] + args)
  err = capsys.readouterr().err
  assert e.value.code == 2 and message in err and err.count("\n") == 1, err
  with pytest.raises(ValueError, match=r"trials_per_device: expected a positive integer"):
    runner.run(load(script), "tiny", str(tmp_path / "p"), trials_per_device=0)


def test_trials_that_cannot_group_train_one_by_one(tmp_path, capsys):
  from lstmx.lab.experiment import Experiment
  from lstmx.lab.trial import run_group
  base = override(_configs()["a"], ["train.steps=5", "train.log_every=5",
                                    "train.eval_every=5", "train.checkpoint_every=5"])
  configs = [base, override(base, ["model.hidden_size=4", "name=e"])]
  summaries = run_group(Experiment(name="x"), configs, [str(tmp_path / "a"),
                                                        str(tmp_path / "e")])
  assert [s["status"] for s in summaries] == ["completed", "completed"]
  assert all("trials_per_device" not in s for s in summaries)
  err = capsys.readouterr().err
  assert "differ beyond" in err and "training them one by one" in err


def test_steps_per_call_advances_the_group_in_chunks(runs, tmp_path):
  """``train.steps_per_call=5``: the group's vmapped program is a 5-step scan, with the
  results of single steps."""
  out, configs, _, grouped = runs
  cfgs = [override(configs[n], ["train.steps_per_call=5"]) for n in "ab"]
  summaries = train_group(cfgs, [str(tmp_path / n) for n in "ab"])
  for n, config, summary in zip("ab", cfgs, summaries):
    assert (summary["status"], summary["steps"]) == (grouped[n]["status"], grouped[n]["steps"])
    assert _max_diff(_params(config, tmp_path / n), _params(config, out / "group" / n)) < TOL
