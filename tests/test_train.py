"""The training engine end to end: run directory, resume (including after SIGKILL),
divergence, early stopping, config checks, compile hygiene."""

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import optax
import pytest

from lstmx import models, optim, tasks
from lstmx.config import Config, TrainConfig, override
from lstmx.train import Checkpoints, init_state, make_train_step, train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))
import smoke  # noqa: E402


def _quiet(cfg: Config, **train) -> Config:
  return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, progress=False, **train))


def _final_params(cfg: Config, workdir: str):
  task = tasks.make(cfg.task.name, **cfg.task.params)
  model = models.build(cfg.model, task.input_size, task.output_size, seed=cfg.train.seed)
  _, target = init_state(model, optim.build(cfg.optimizer, cfg.train.steps), cfg.train.seed)
  ck = Checkpoints(workdir, 2)
  state, meta = ck.restore_latest(target)
  ck.close()
  return state, meta


def test_smoke_run_writes_run_directory(tmp_path):
  cfg = _quiet(smoke.base())
  summary = train_and_evaluate(cfg, str(tmp_path))
  assert summary["status"] == "completed" and summary["steps"] == 60
  for name in ("config.json", "metrics.jsonl", "summary.json"):
    assert (tmp_path / name).exists()
  rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  train = [r for r in rows if r["split"] == "train"]
  assert [r["step"] for r in train] == [10, 20, 30, 40, 50, 60]
  assert train[-1]["loss"] < train[0]["loss"]
  assert {r["split"] for r in rows} == {"train", "validation"}
  assert summary["param_count"] > 0 and summary["compile_time"] > 0
  assert summary["step_memory_bytes"] > 0
  assert set(summary["final"]) == {"train", "validation", "test"}
  # Rerunning a finished run returns its summary without training again.
  assert train_and_evaluate(cfg, str(tmp_path))["wall_time"] == summary["wall_time"]


@pytest.mark.parametrize("stop", [False, True])
def test_solved_step_is_the_first_solved_evaluation_and_can_end_the_run(tmp_path, monkeypatch,
                                                                        stop):
  """The first validation evaluation whose metrics meet the task's rule is the run's
  solved step (here the rule holds from accuracy 0.25, met at some evaluation but not at
  the first); with train.stop_when_solved the run ends there, early_stopped."""
  from lstmx.tasks.memory import Copy
  seen = []

  def solved(self, metrics):
    seen.append(float(metrics["accuracy"]))
    return len(seen) >= 2  # the second evaluation (step 20) is the first "solved" one

  monkeypatch.setattr(Copy, "solved", solved)
  cfg = override(_quiet(smoke.base()), ["train.eval_every=10", "train.steps=40",
                                        f"train.stop_when_solved={stop}"])
  summary = train_and_evaluate(cfg, str(tmp_path))
  assert summary["task"]["solved_step"] == 20
  if stop:
    assert summary["status"] == "early_stopped" and summary["steps"] == 20
    assert summary["stop_reason"] == ("solved at step 20, held for 1 evaluation(s) to step 20 "
                                      "(train.stop_when_solved)")
  else:
    assert summary["status"] == "completed" and summary["steps"] == 40


def test_a_solved_streak_stops_only_after_the_rule_held_that_often(tmp_path, monkeypatch):
  """solved_streak=2: an evaluation that breaks the streak restarts it; the solved step
  stays the first solved evaluation."""
  from lstmx.tasks.memory import Copy
  pattern = iter([False, True, False, True, True, True, True])
  monkeypatch.setattr(Copy, "solved", lambda self, metrics: next(pattern))
  cfg = override(_quiet(smoke.base()), ["train.eval_every=10", "train.steps=70",
                                        "train.stop_when_solved=true", "train.solved_streak=2"])
  summary = train_and_evaluate(cfg, str(tmp_path))
  assert summary["task"]["solved_step"] == 20 and summary["steps"] == 50
  assert summary["stop_reason"].startswith("solved at step 20, held for 2 evaluation(s) to "
                                           "step 50")


def test_resume_equals_uninterrupted(tmp_path):
  cfg = _quiet(smoke.base(), steps=30, checkpoint_every=10)
  train_and_evaluate(cfg, str(tmp_path / "full"))
  # A run stopped at step 20 (its latest checkpoint), then resumed to 30.
  train_and_evaluate(override(cfg, ["train.steps=20"]), str(tmp_path / "part"))
  train_and_evaluate(cfg, str(tmp_path / "part"), force=True)
  a, _ = _final_params(cfg, str(tmp_path / "full"))
  b, _ = _final_params(cfg, str(tmp_path / "part"))
  jax.tree.map(np.testing.assert_array_equal, a.params, b.params)
  jax.tree.map(np.testing.assert_array_equal, a.opt_state, b.opt_state)


def test_sigkill_at_random_step_then_resume_is_bitwise_equal(tmp_path):
  sets = ["--set", "train.steps=80", "--set", "train.checkpoint_every=3",
          "--set", "train.progress=false"]
  cmd = [sys.executable, "-m", "lstmx", "train", os.path.join(ROOT, "experiments/smoke.py")]
  env = dict(os.environ, XLA_FLAGS="")
  subprocess.run(cmd + ["--workdir", str(tmp_path / "full")] + sets, check=True, env=env,
                 capture_output=True)
  victim = subprocess.Popen(cmd + ["--workdir", str(tmp_path / "killed")] + sets, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  latest = tmp_path / "killed" / "checkpoints" / "latest"
  target = random.Random(os.getpid()).randint(6, 60)
  deadline = time.time() + 120
  while time.time() < deadline:
    done = [int(p) for p in os.listdir(latest) if p.isdigit()] if latest.exists() else []
    if done and max(done) >= target or victim.poll() is not None:
      break
    time.sleep(0.01)
  victim.send_signal(signal.SIGKILL)
  victim.wait()
  subprocess.run(cmd + ["--workdir", str(tmp_path / "killed")] + sets, check=True, env=env,
                 capture_output=True)
  cfg = override(smoke.base(), ["train.steps=80", "train.checkpoint_every=3"])
  a, meta_a = _final_params(cfg, str(tmp_path / "full"))
  b, meta_b = _final_params(cfg, str(tmp_path / "killed"))
  assert int(a.step) == int(b.step) == 80
  jax.tree.map(np.testing.assert_array_equal, a.params, b.params)
  assert meta_a["best_step"] == meta_b["best_step"]
  steps = [json.loads(line)["step"] for line in open(tmp_path / "killed" / "metrics.jsonl")
           if '"train"' in line]
  assert steps == sorted(set(steps)), "resumed log repeats or loses steps"


def test_divergence_is_recorded_not_raised(tmp_path):
  cfg = override(_quiet(smoke.base()), ["optimizer.lr=inf", "optimizer.clip_norm=none",
                                        "optimizer.name=sgd"])
  summary = train_and_evaluate(cfg, str(tmp_path))
  assert summary["status"] == "diverged"
  assert "non-finite" in summary["stop_reason"] and summary["steps"] < 60


def test_early_stopping_restores_best(tmp_path):
  cfg = override(_quiet(smoke.base()), ["optimizer.lr=1e-12", "train.patience=2",
                                        "train.eval_every=5", "train.min_delta=1.0"])
  summary = train_and_evaluate(cfg, str(tmp_path))
  assert summary["status"] == "early_stopped"
  assert summary["steps"] == 15 and summary["best"]["step"] == 5
  assert "no loss improvement" in summary["stop_reason"]


def test_resume_with_different_config_is_refused(tmp_path):
  cfg = _quiet(smoke.base(), steps=10)
  train_and_evaluate(cfg, str(tmp_path))
  with pytest.raises(ValueError, match=r"different config \(differs at \['optimizer.lr'\]\)"):
    train_and_evaluate(override(cfg, ["optimizer.lr=0.5"]), str(tmp_path))


def test_train_step_compiles_once():
  cfg = smoke.base()
  task = tasks.make(cfg.task.name, **cfg.task.params)
  model = models.build(cfg.model, task.input_size, task.output_size, seed=0)
  tx = optim.build(cfg.optimizer, 10)
  graphdef, state = init_state(model, tx, 0)
  step = jax.jit(make_train_step(graphdef, task, tx))
  for i in range(3):
    state, _ = step(state, task.sample(jax.random.key(i), 8))
  assert step._cache_size() == 1


@pytest.mark.parametrize("settings", [
    ["optimizer.name=adam"],
    ["optimizer.name=adamw", "optimizer.weight_decay=0.1", "optimizer.schedule=cosine",
     "optimizer.warmup_steps=2"],
    ["optimizer.name=sgd", "optimizer.momentum=0.9", "optimizer.schedule=step",
     "optimizer.step_every=2", "optimizer.step_factor=0.5"],
    ["optimizer.name=rmsprop", "optimizer.weight_decay=0.01"],
])
def test_a_traced_learning_rate_gives_the_constant_rates_bits(settings):
  """The step takes the learning rate as an argument (one program for a grid of rates);
  its updates are those of the rate compiled in as a constant (bit for bit with Adam,
  the default; XLA may fold a constant rate into the constants beside it, which moved
  one element by one ulp with RMSprop and weight decay), and another rate gives other
  updates."""
  cfg = override(Config(), ["optimizer.lr=0.003", "optimizer.clip_norm=1.0"] + settings)
  params = {"w": jax.random.normal(jax.random.key(0), (5, 3)), "b": jax.numpy.ones((3,))}
  grads = [jax.tree.map(lambda p, i=i: jax.random.normal(jax.random.key(i), p.shape), params)
           for i in range(1, 6)]

  def run(lr):
    tx = optim.build(cfg.optimizer, 10, lr)
    p, state = params, optim.build(cfg.optimizer, 10).init(params)
    for g in grads:
      with jax.numpy_dtype_promotion("standard"):  # as in the train step: optax's scalars
        updates, state = tx.update(g, state, p)
      p = optax.apply_updates(p, updates)
    return p

  constant = jax.jit(lambda: run(None))()
  traced = jax.jit(run)(jax.numpy.asarray(0.003))
  other = jax.jit(run)(jax.numpy.asarray(0.001))
  for a, b, c in zip(jax.tree.leaves(constant), jax.tree.leaves(traced), jax.tree.leaves(other)):
    if settings == ["optimizer.name=adam"]:
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=0)
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_weight_decay_mask_skips_biases():
  cfg = smoke.base()
  task = tasks.make(cfg.task.name, **cfg.task.params)
  model = models.build(cfg.model, task.input_size, task.output_size, seed=0)
  _, state = init_state(model, optim.build(cfg.optimizer, 10), 0)
  mask = optim.decay_mask(state.params, cfg.optimizer.decay_patterns)
  flat = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_leaves_with_path(mask)}
  assert any(v for k, v in flat.items() if "w_hh" in k)
  assert not any(v for k, v in flat.items() if "bias" in k or "'b_" in k)


def test_bad_overrides_raise():
  with pytest.raises(ValueError, match=r"unknown key 'lrr'"):
    override(Config(), ["optimizer.lrr=1"])
  with pytest.raises(ValueError, match=r"train.steps: expected a value of type int; got '1.5'"):
    override(Config(), ["train.steps=1.5"])
  with pytest.raises(ValueError, match=r"optimizer.name: expected one of"):
    optim.build(override(Config(), ["optimizer.name=lion"]).optimizer, 10)
  assert override(Config(), ["train.patience=3"]).train == TrainConfig(patience=3)


def test_regularized_run_uses_masks_in_training_only(tmp_path):
  sets = ["model.regularization.recurrent_dropout=0.3", "model.regularization.zoneout_c=0.2",
          "model.regularization.output_dropout=0.3", "model.regularization.ar=0.5",
          "model.regularization.tar=0.5", "train.steps=20"]
  plain = train_and_evaluate(override(_quiet(smoke.base()), ["train.steps=20"]),
                             str(tmp_path / "plain"))
  reg = train_and_evaluate(override(_quiet(smoke.base()), sets), str(tmp_path / "reg"))
  assert reg["status"] == "completed"
  assert reg["final"]["train"]["loss"] != plain["final"]["train"]["loss"]
  cfg = override(smoke.base(), sets)
  assert cfg.model.regularization.recurrent_dropout == 0.3
  # Evaluation is deterministic: evaluating the trained model twice agrees.
  from lstmx.train.restore import load_trained
  task, model = load_trained(cfg, str(tmp_path / "reg"))
  batch = task.sample(jax.random.key(0), 4)
  np.testing.assert_array_equal(model(batch["inputs"], batch["lengths"]),
                                model(batch["inputs"], batch["lengths"]))
