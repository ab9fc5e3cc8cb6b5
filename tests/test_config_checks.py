"""Validation at the boundary (issue 18): every config field is checked where the
config is built, task parameters against their data, the monitored metric against
the task, and each error reaches the command line as one line naming the option;
plus the divergence rule (a loss far above the initial loss ends the run) and
hypothesis fuzzing of `lstmx.config.override`."""

import dataclasses
import json
import os
import subprocess
import sys

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstmx import tasks
from lstmx.config import (Config, ModelConfig, OptimizerConfig, TaskConfig, TrainConfig,
                          from_dict, override, set_path, to_dict)
from lstmx.lab import cli
from lstmx.train import train_and_evaluate
from lstmx.train.hooks import Diverge, Every
from lstmx.train.record import RunRecord
from lstmx.train.step import TrainState

from helpers import cli_error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, "experiments", "smoke.py")

# (--set assignment, the error's start): each was accepted, or crashed later, before.
BAD_SETS = [
    ("train.eval_every=0", "train.eval_every: expected an int >= 1; got 0"),
    ("train.log_every=0", "train.log_every: expected an int >= 1; got 0"),
    ("train.checkpoint_every=0", "train.checkpoint_every: expected an int >= 1; got 0"),
    ("train.eval_batches=0", "train.eval_batches: expected an int >= 1; got 0"),
    ("train.steps=-5", "train.steps: expected an int >= 1; got -5"),
    ("train.batch_size=-1", "train.batch_size: expected an int >= 1; got -1"),
    ("train.monitor_mode=maxx", "train.monitor_mode: expected one of ('min', 'max'); got 'maxx'"),
    ("optimizer.lr=-1", "optimizer.lr: expected a float > 0.0; got -1.0"),
    ("optimizer.lr=0", "optimizer.lr: expected a float > 0.0; got 0.0"),
    ("optimizer.lr=nan", "optimizer.lr: expected a float > 0.0; got nan"),
    ("optimizer.name=lion", "optimizer.name: expected one of"),
    ("optimizer.schedule=linear", "optimizer.schedule: expected one of"),
    ("optimizer.averaging=sometimes", "optimizer.averaging: expected one of"),
    ("optimizer.b1=1.5", "optimizer.b1: expected a finite float >= 0.0 and <= 1.0; got 1.5"),
    ("model.compute_dtype=bogus", "model.compute_dtype: expected a floating dtype name"),
    ("model.compute_dtype=int8", "model.compute_dtype: expected a floating dtype name"),
    ("model.compute_dtype=int32", "model.compute_dtype: expected a floating dtype name"),
    ("model.compute_dtype=bool", "model.compute_dtype: expected a floating dtype name"),
    ("model.hidden_size=0", "model.hidden_size: expected an int >= 1; got 0"),
    ("model.hidden_size=True", "--set model.hidden_size: expected a value of type int; got 'True'"),
    ("model.init=glorot", "model.init: expected one of"),
    ("model.backend=fast", "model.backend: expected one of"),
    ("model.chrono_max_length=100x", "--set model.chrono_max_length: expected a value of type int"),
    ("task.name=bogus", "task.name: expected one of"),
    ("sharding.preset=everything", "sharding.preset: expected one of"),
    ("train.diverge_factor=0.5", "train.diverge_factor: expected a finite float > 1.0 or None"),
    ("train.diverge_patience=-1", "train.diverge_patience: expected an int >= 0; got -1"),
]


@pytest.mark.parametrize("assignment,message", BAD_SETS)
def test_bad_override_is_refused_naming_the_key(assignment, message):
  with pytest.raises(ValueError) as e:
    override(Config(), [assignment])
  assert str(e.value).startswith(message), str(e.value)


@pytest.mark.parametrize("assignment,hint", [
    ("trian.steps=3", "train"), ("optimizer.nme=sgd", "name"),
    ("model.hiden_size=3", "hidden_size"), ("model.kind=lstn", "lstm"),
    ("optimizer.name=adm", "adam"), ("task.name=cpy", "copy"),
    ("train.monitor_mode=mx", "max"), ("sharding.preset=data_paralel", "data_parallel"),
])
def test_a_near_miss_key_or_name_says_did_you_mean(assignment, hint):
  with pytest.raises(ValueError) as e:
    override(Config(), [assignment])
  assert str(e.value).endswith(f" (did you mean {hint!r}?)"), str(e.value)
  with pytest.raises(ValueError) as e:  # nothing close: no guess
    override(Config(), ["optimizer.zzzz=1"])
  assert "did you mean" not in str(e.value)


def test_direct_construction_is_checked_too():
  with pytest.raises(ValueError, match=r"model.hidden_size: expected an int >= 1; got True"):
    ModelConfig(hidden_size=True)
  with pytest.raises(ValueError, match=r"model.chrono_max_length: expected an int >= 3 or None; "
                     r"got '100' \(str\)"):
    ModelConfig(chrono_max_length="100")
  with pytest.raises(ValueError, match=r"model.compute_dtype: .*got 'int8'"):
    ModelConfig(kind="gru", compute_dtype="int8")
  with pytest.raises(ValueError, match=r"train.progress: expected a bool"):
    TrainConfig(progress="False")
  with pytest.raises(ValueError, match=r"model.num_heads: expected an int >= 1; got 0"):
    ModelConfig(kind="transformer", num_heads=0)
  with pytest.raises(ValueError, match=r"model.activation: expected one of"):
    ModelConfig(kind="tcn", activation="swish")
  with pytest.raises(ValueError, match=r"model.image_shape: expected \(H, W, C\)"):
    ModelConfig(kind="cnn2d", image_shape=(8, 8))
  with pytest.raises(ValueError, match=r"model.image_shape\[2\]: expected an int >= 1; got 0"):
    ModelConfig(kind="cnn2d", image_shape=(8, 8, 0))


def test_numpy_scalars_are_accepted_as_python_numbers():
  opt = OptimizerConfig(lr=np.float32(0.1), warmup_steps=np.int64(3))
  assert opt.lr == 0.1 and type(opt.lr) is float
  assert opt.warmup_steps == 3 and type(opt.warmup_steps) is int
  model = ModelConfig(hidden_size=np.int64(8), num_layers=np.int32(2))
  assert (model.hidden_size, model.num_layers) == (8, 2) and type(model.hidden_size) is int
  train = TrainConfig(steps=np.int64(10), min_delta=np.float64(0.5), progress=np.bool_(False))
  assert (train.steps, train.min_delta, train.progress) == (10, 0.5, False)
  json.dumps(to_dict(Config(optimizer=opt, model=model, train=train)))  # plain JSON types
  assert OptimizerConfig(lr=1).lr == 1.0 and type(OptimizerConfig(lr=1).lr) is float
  assert tasks.make("copy", delay=np.int64(5)).delay == 5


def test_numpy_sweep_values_are_accepted_as_python_numbers():
  cfg = Config()
  for key, value, want in [("optimizer.lr", np.float32(0.1), 0.1), ("train.steps", np.int64(8), 8),
                           ("optimizer.lr", np.int64(1), 1.0), ("train.progress", np.bool_(False),
                                                                 False)]:
    got = set_path(cfg, key, value)
    section, name = key.split(".")
    assert getattr(getattr(got, section), name) == want
    assert type(getattr(getattr(got, section), name)) is type(want)
  with pytest.raises(ValueError, match=r"sweep key 'train.steps': expected int; got 1.5"):
    set_path(cfg, "train.steps", 1.5)


def test_valid_configs_and_round_trip_still_work():
  cfg = override(Config(), ["model.kind=cnn2d", "model.image_shape=(8,8,1)",
                            "model.compute_dtype=bfloat16", "train.diverge_factor=none",
                            "optimizer.clip_norm=none", "optimizer.lr=inf"])
  assert cfg.model.image_shape == (8, 8, 1) and cfg.train.diverge_factor is None
  assert from_dict(Config, json.loads(json.dumps(to_dict(cfg)))) == cfg


def test_unclosed_tuple_is_a_clear_error_naming_the_key():
  with pytest.raises(ValueError, match=r"--set model.image_shape: expected a tuple such as "
                     r"\(8, 8, 1\) or 8,8,1; got '\(8,8'"):
    override(Config(), ["model.kind=cnn2d", "model.image_shape=(8,8"])


def test_char_lm_seq_len_is_checked_against_every_split():
  for bad in (0, -3):
    with pytest.raises(ValueError, match=rf"char_lm.seq_len: expected an int >= 1; got {bad}"):
      tasks.make("char_lm", seq_len=bad)
  with pytest.raises(ValueError, match=r"char_lm.seq_len: expected an int in \[1, \d+\] \(the "
                     r"'shakespeare' validation split has \d+ characters\); got 300000"):
    tasks.make("char_lm", seq_len=300000)
  with pytest.raises(ValueError, match=r"char_lm.seq_len: expected an int >= 1; got '5'"):
    tasks.make("char_lm", seq_len="5")


def test_char_lm_draws_every_window_including_the_last():
  from lstmx.tasks.datasets import _stream
  tokens = _stream("shakespeare", "train", 50)[0]
  task = tasks.make("char_lm", seq_len=48, train_size=50)  # train_size > seq_len + 1
  batch = task.sample(jax.random.key(0), 64)
  windows = np.lib.stride_tricks.sliding_window_view(tokens, 48)
  starts = {int(np.flatnonzero((windows == np.asarray(row)).all(1))[0])
            for row in batch["targets"]}
  assert starts == {1, 2}  # targets start one after the window; the last window is drawn too
  assert len(set(np.asarray(batch["targets"][0]).tolist())) > 1  # not one repeated token


def test_monitor_must_be_a_metric_of_the_task(tmp_path):
  cfg = override(Config(), ["train.monitor=bogus", "train.steps=2"])
  with pytest.raises(ValueError, match=r"train.monitor: expected a metric task 'copy' reports, "
                     r"one of \(.*'loss'.*\); got 'bogus'"):
    train_and_evaluate(cfg, str(tmp_path))
  assert tasks.make("adding").metric_names() == ("loss", "loss_over_baseline", "within_0.04")


@pytest.mark.parametrize("assignment,message", [
    ("train.eval_every=0", "train.eval_every: expected an int >= 1; got 0"),
    ("train.monitor=bogus", "train.monitor: expected a metric task 'copy' reports"),
    ("model.image_shape=(8,8", "--set model.image_shape: 'image_shape' is not a field"),
    ("model.compute_dtype=bogus", "model.compute_dtype: expected a floating dtype name"),
])
def test_cli_errors_are_one_line_naming_the_option(tmp_path, capsys, assignment, message):
  error = cli_error(capsys, ["train", SMOKE, "--workdir", str(tmp_path), "--set", assignment])
  assert error.startswith(f"lstmx: {message}"), error


def test_cli_error_has_no_traceback(tmp_path):
  env = dict(os.environ, PYTHONPATH=ROOT)
  out = subprocess.run([sys.executable, "-m", "lstmx", "train", SMOKE, "--workdir",
                        str(tmp_path), "--set", "train.batch_size=-1"],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
  assert out.returncode == 2  # a usage error, as argparse's
  assert out.stderr.strip() == "lstmx: train.batch_size: expected an int >= 1; got -1"


def _state(value: float) -> TrainState:
  return TrainState(step=jnp.zeros((), jnp.int32), params={"w": jnp.full((2,), value)},
                    opt_state={"m": jnp.full((2,), value)}, key=jnp.zeros((2,), jnp.uint32))


def test_diverge_needs_patience_consecutive_windows_and_keeps_the_last_good_state():
  hook = Diverge(Every(2, 20), factor=10.0, patience=2)
  record = RunRecord()
  losses = [1.0, 2.0, 30.0, 30.0, 1.0, 1.0, 30.0, 40.0, 50.0, 60.0]
  for step, loss in enumerate(losses, start=1):
    state, record = hook(step, _state(float(step)), record, {"loss": loss})
    if not record.running:
      break
  # windows (mean): 1.5 | 30 (1 bad) | 1 (reset) | 35 (1) | 55 (2 -> stop at step 10)
  assert step == 10 and record.status == "diverged" and record.initial_loss == 1.0
  assert "above 10 x the initial loss 1 (> 10) in 2 consecutive log windows" in record.stop_reason
  assert "keeps the parameters of step 6" in record.stop_reason
  assert float(state.params["w"][0]) == 6.0 and float(state.opt_state["m"][0]) == 6.0


def test_diverge_before_any_good_window_keeps_the_sessions_start():
  hook = Diverge(Every(2, 10), factor=10.0, patience=1, start=(0, _state(-1.0)))
  record = RunRecord()
  for step, loss in enumerate([1.0, 50.0], start=1):
    state, record = hook(step, _state(float(step)), record, {"loss": loss})
  assert record.status == "diverged" and "keeps the parameters of step 0" in record.stop_reason
  assert float(state.params["w"][0]) == -1.0
  # A session resumed mid-streak has no good start to go back to.
  hook = Diverge(Every(1, 10), factor=10.0, patience=2, start=(5, _state(-1.0)))
  state, record = hook(6, _state(6.0), RunRecord(initial_loss=1.0, diverge_windows=1),
                       {"loss": 50.0})
  assert record.status == "diverged" and "current parameters" in record.stop_reason
  assert float(state.params["w"][0]) == 6.0


def test_diverge_resumes_with_its_reference_and_count():
  hook = Diverge(Every(1, 5), factor=10.0, patience=2)
  record = RunRecord(initial_loss=1.0, diverge_windows=1)  # from a checkpoint
  _, record = hook(4, _state(4.0), record, {"loss": 20.0})
  assert record.status == "diverged" and record.initial_loss == 1.0
  assert RunRecord.from_json(json.loads(json.dumps(RunRecord(initial_loss=2.0).to_json()))) \
      == RunRecord(initial_loss=2.0)


@pytest.mark.parametrize("lr,status", [("1e6", "diverged"), ("1e-2", "completed")])
def test_huge_lr_on_smoke_is_diverged_with_the_rule(tmp_path, lr, status):
  sys.path.insert(0, os.path.join(ROOT, "experiments"))
  import smoke
  cfg = override(smoke.base(), [f"optimizer.lr={lr}", "train.progress=false"])
  summary = train_and_evaluate(cfg, str(tmp_path))
  assert summary["status"] == status, summary["stop_reason"]
  rule = summary["divergence"]
  assert rule["factor"] == 10.0 and rule["patience"] == 3 and rule["reference"] == "initial_loss"
  assert "above 10 x the initial loss" in rule["rule"] and rule["initial_loss"] > 0
  if status == "diverged":
    assert "above 10 x the initial loss" in summary["stop_reason"] and summary["steps"] < 60
    assert summary["final"] == {}
    # The last checkpoint holds the last good parameters: here the initial ones.
    assert "keeps the parameters of step 0" in summary["stop_reason"]
    from lstmx import models, optim
    from lstmx.train import Checkpoints, init_state
    task = tasks.make(cfg.task.name, **cfg.task.params)
    model = models.build(cfg.model, task.input_size, task.output_size, seed=cfg.train.seed)
    _, init = init_state(model, optim.build(cfg.optimizer, cfg.train.steps), cfg.train.seed)
    ckpts = Checkpoints(str(tmp_path), 2)
    last, meta = ckpts.restore_latest(init)
    ckpts.close()
    assert meta["status"] == "diverged" and int(last.step) == summary["steps"]
    for a, b in zip(jax.tree.leaves(last.params), jax.tree.leaves(init.params)):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _round_trips(cfg: Config) -> bool:
  """Whether `cfg` rebuilds from its JSON (re-running every check) to the same JSON
  (task parameters are JSON values: a tuple comes back a list)."""
  data = json.loads(json.dumps(to_dict(cfg)))
  return json.loads(json.dumps(to_dict(from_dict(Config, data)))) == data


KEYS = ["train.steps", "train.batch_size", "train.eval_every", "train.log_every",
        "train.monitor_mode", "train.progress", "train.min_delta", "train.diverge_factor",
        "optimizer.lr", "optimizer.name", "optimizer.b1", "optimizer.clip_norm",
        "optimizer.decay_patterns", "model.hidden_size", "model.kind", "model.compute_dtype",
        "model.image_shape", "model.num_heads", "model.chrono_max_length", "model.bogus",
        "task.name", "task.params.delay", "sharding.preset", "name", "train", "train.x.y"]
VALUES = st.one_of(
    st.integers(-3, 100).map(str), st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["none", "true", "False", "(8,8", "(8,8,1)", "8,8,1", "()", "[1]", "min",
                     "maxx", "adam", "cnn2d", "transformer", "bfloat16", "int8", "copy", "",
                     "1e-3", "0x10", "{}", "(" * 50]),
    st.text(max_size=8))


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(st.lists(st.tuples(st.sampled_from(KEYS), VALUES), min_size=1, max_size=4))
def test_fuzzed_overrides_give_a_valid_config_or_an_error_naming_the_key(items):
  assignments = [f"{k}={v}" for k, v in items]
  try:
    cfg = override(Config(), assignments)
  except (ValueError, TypeError) as e:
    assert any(k in str(e) for k, _ in items), (assignments, str(e))
    return
  # A valid config: rebuilding each part re-runs its checks, and it round-trips.
  assert _round_trips(cfg)
  assert cfg.train.steps >= 1 and cfg.optimizer.lr > 0
  assert cfg.model.compute_dtype in (None, "bfloat16", "float16", "float32", "float64")


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(st.sampled_from(["train.steps", "model.hidden_size", "optimizer.lr",
                                   "train.progress", "optimizer.name", "model.image_shape"]),
                  st.one_of(st.integers(-5, 5), st.floats(), st.booleans(), st.text(max_size=4),
                            st.none(), st.tuples(st.integers(-1, 3)),
                            st.sampled_from([np.int64(4), np.float32(0.5), np.bool_(True)])))
def test_fuzzed_sweep_values_give_a_valid_config_or_an_error_naming_the_key(key, value):
  try:
    cfg = set_path(Config(), key, value)
  except (ValueError, TypeError) as e:
    assert key in str(e) or key.split(".")[-1] in str(e), (key, value, str(e))
    return
  assert _round_trips(cfg)
