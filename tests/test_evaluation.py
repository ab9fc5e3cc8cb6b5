"""Exact evaluation (lstmx.train.evaluation): every example of a finite split once,
padding masked out, metrics from sums and counts; synthetic tasks on a fixed set
that no seed or batch size changes."""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lstmx import optim, tasks
from lstmx.config import Config, ModelConfig, TaskConfig, override
from lstmx.tasks.base import eval_key
from lstmx.tasks.datasets import _stream
from lstmx.train import train_and_evaluate
from lstmx.train.evaluation import eval_sizes, evaluate
from lstmx.train.hooks import evaluate as hooks_evaluate
from lstmx.train.restore import build, load_trained
from lstmx.train.step import ModelDef, apply_model, init_state, make_eval_step

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))
import smoke  # noqa: E402


def _model(task_name: str, seed: int = 0, **params):
  """(task, jitted eval step, params, modeldef) of a fresh small LSTM."""
  cfg = Config(model=ModelConfig(hidden_size=16), task=TaskConfig(name=task_name, params=params))
  cfg = override(cfg, [f"train.seed={seed}"])
  task, model = build(cfg)
  modeldef, state = init_state(model, optim.build(cfg.optimizer, 10), seed)
  # Larger weights than at init, so predictions vary across examples.
  params = jax.tree.map(lambda a: 3.0 * a, state.params)
  return task, jax.jit(make_eval_step(modeldef, task)), params, modeldef


def _host_rows(batches):
  """The real rows of `eval_batches`' output, concatenated on the host."""
  rows = {}
  for b in batches:
    real = np.asarray(b["mask"]).sum(axis=1) > 0
    for k, v in b.items():
      rows.setdefault(k, []).append(np.asarray(v)[real])
  return {k: np.concatenate(v) for k, v in rows.items()}


def test_wine_test_accuracy_is_exact_over_all_26_examples():
  pytest.importorskip("sklearn")
  task, eval_step, params, modeldef = _model("classify", dataset="wine")
  x, y, _ = task.arrays("test")
  assert len(y) == 26 and task.eval_size("test", 1) == 26
  # By hand: the model over every test example at once, in numpy.
  logits = np.asarray(apply_model(modeldef, params, {
      "inputs": jnp.asarray(x), "lengths": jnp.full((26,), x.shape[1], jnp.int32)}))[:, -1]
  logits = logits.astype(np.float64)
  logp = logits - np.log(np.sum(np.exp(logits - logits.max(1, keepdims=True)), 1,
                                keepdims=True)) - logits.max(1, keepdims=True)
  accuracy = float(np.mean(logits.argmax(1) == y))
  loss = float(-np.mean(logp[np.arange(26), y]))
  assert 0.0 < accuracy < 1.0, "a model that predicts one class tests nothing"
  for batch_size in (4, 5, 13, 26, 64):  # 4 and 5 leave a padded last batch
    m = evaluate(eval_step, params, task, "test", batch_size, examples=1)
    assert m["examples"] == 26.0
    assert m["accuracy"] == pytest.approx(accuracy, abs=1e-12), batch_size
    assert m["sequence_accuracy"] == pytest.approx(accuracy, abs=1e-12)  # real rows only
    assert m["loss"] == pytest.approx(loss, rel=1e-5)
    assert m["loss_over_baseline"] == pytest.approx(loss / task.baseline_loss, rel=1e-5)


def test_padding_rows_are_zero_and_masked():
  pytest.importorskip("sklearn")
  task = tasks.make("classify", dataset="wine")
  batches = list(task.eval_batches("test", 8, 1))
  assert [b["inputs"].shape[0] for b in batches] == [8, 8, 8, 8]
  last = batches[-1]
  assert np.asarray(last["mask"]).sum(axis=1).tolist() == [1.0, 1.0] + [0.0] * 6
  assert not np.asarray(last["inputs"])[2:].any() and not np.asarray(last["targets"])[2:].any()
  assert (np.asarray(last["lengths"]) == task.length).all()
  rows = _host_rows(batches)
  np.testing.assert_array_equal(rows["inputs"], task.arrays("test")[0])
  np.testing.assert_array_equal(rows["targets"][:, -1], task.arrays("test")[1])


def test_char_lm_predicts_every_character_once():
  try:
    task = tasks.make("char_lm", seq_len=64, train_size=2000)
    tokens, vocab = _stream("shakespeare", "train", 2000)
  except Exception as e:  # noqa: BLE001
    pytest.skip(f"shakespeare not available: {e}")
  assert len(tokens) == 2000
  assert task.eval_size("train", 1) == 32  # ceil(1999 / 64)
  batches = list(task.eval_batches("train", 5, 1))  # 32 windows: a padded last batch
  mask = np.concatenate([np.asarray(b["mask"]) for b in batches])
  targets = np.concatenate([np.asarray(b["targets"]) for b in batches])
  inputs = np.concatenate([np.asarray(b["inputs"]) for b in batches]).argmax(-1)
  assert mask.sum() == 1999
  np.testing.assert_array_equal(targets[mask > 0], tokens[1:])
  np.testing.assert_array_equal(inputs[mask > 0], tokens[:-1])
  lengths = np.concatenate([np.asarray(b["lengths"]) for b in batches])
  assert lengths[31] == 1999 - 31 * 64 and (mask.sum(1)[:32] == lengths[:32]).all()

  # Always predicting the commonest character c (logit 1, the rest 0): the accuracy is
  # c's share of the 1999 targets, the loss ln(V - 1 + e) - [target == c].
  c = int(np.bincount(tokens[1:]).argmax())

  def constant(params, batch):
    logits = jnp.zeros((*batch["mask"].shape, vocab)).at[..., c].set(1.0)
    return task.metric_sums(logits, batch)
  m = evaluate(constant, None, task, "train", 5, examples=1)
  share = float(np.mean(tokens[1:] == c))
  assert 0.05 < share < 0.5
  assert m["accuracy"] == pytest.approx(share, abs=1e-12)
  assert m["loss"] == pytest.approx(np.log(vocab - 1 + np.e) - share, rel=1e-6)
  assert m["examples"] == 32.0


def test_forecast_persistence_loss_over_every_window_is_the_baseline():
  pytest.importorskip("pmdarima")
  task = tasks.make("forecast", dataset="sunspots", window=48)

  def persistence(params, batch):
    outputs = jnp.broadcast_to(batch["inputs"][:, -1:, :], batch["inputs"].shape)
    return task.metric_sums(outputs, batch)
  n = task.eval_size("train", 1)
  assert n > 1000 and n % 100
  m = evaluate(persistence, None, task, "train", 100, examples=1)
  assert m["examples"] == float(n)
  assert m["loss"] == pytest.approx(task.baseline_loss, rel=1e-5)
  assert m["loss_over_baseline"] == pytest.approx(1.0, rel=1e-5)


def test_synthetic_set_is_fixed_prefix_closed_and_batch_size_free():
  task = tasks.make("copy", delay=5, num_symbols=3, num_categories=3)
  a = _host_rows(task.eval_batches("validation", 4, 10))
  b = _host_rows(task.eval_batches("validation", 7, 10))
  c = _host_rows(task.eval_batches("validation", 3, 6))
  for k in a:
    assert len(a[k]) == 10
    np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_array_equal(a[k][:6], c[k])
  assert len({a["inputs"][i].tobytes() for i in range(10)}) == 10  # distinct examples
  other = _host_rows(task.eval_batches("test", 4, 10))
  assert not np.array_equal(a["inputs"], other["inputs"])  # each split its own set
  # Example i is the task's own draw from the split's fixed key folded with i.
  first = task.sample(jax.random.fold_in(eval_key("validation"), 0), 1, split="validation")
  np.testing.assert_array_equal(a["inputs"][0], np.asarray(first["inputs"])[0])


def test_synthetic_metrics_do_not_depend_on_batch_size_and_repeat():
  task, eval_step, params, _ = _model("copy", delay=5, num_symbols=3, num_categories=3)
  ref = evaluate(eval_step, params, task, "validation", 10, examples=10)
  assert ref["examples"] == 10.0 and 0.0 < ref["copy_accuracy"] < 1.0
  assert set(ref) == set(task.metric_names()) | {"examples"}  # what train.monitor may name
  for batch_size in (3, 4, 7, 16):  # padded last batches (recall weights zeroed too)
    m = evaluate(eval_step, params, task, "validation", batch_size, examples=10)
    assert m.keys() == ref.keys()
    for k in ref:
      assert m[k] == pytest.approx(ref[k], rel=1e-5, abs=1e-7), (batch_size, k)
  assert evaluate(eval_step, params, task, "validation", 4, examples=10) == evaluate(
      eval_step, params, task, "validation", 4, examples=10)


def test_length_generalization_set_uses_its_split():
  task = tasks.make("parity", train_length=6, test_length=9)
  rows = _host_rows(task.eval_batches("test", 8, 20))
  assert rows["lengths"].min() >= 7 and rows["lengths"].max() <= 9
  assert eval_sizes(task, 20) == {"train": 20, "validation": 20, "test": 20}


def test_bad_sizes_raise():
  task = tasks.make("copy")
  with pytest.raises(ValueError, match=r"evaluation.examples: expected an int >= 1; got 0"):
    list(task.eval_batches("validation", 4, 0))
  with pytest.raises(ValueError, match=r"evaluation.batch_size: expected an int >= 1; got 0"):
    list(task.eval_batches("validation", 0, 4))
  with pytest.raises(ValueError, match=r"split: expected one of"):
    task.eval_size("dev", 4)


def test_runs_with_different_seeds_are_scored_on_the_same_set(tmp_path):
  """The loop's evaluation takes no key: re-evaluating a run's final parameters
  outside the loop (no seed anywhere) gives its summary's metrics, for two seeds."""
  assert hooks_evaluate is evaluate
  for seed in (0, 7):
    cfg = override(smoke.base(), ["train.steps=4", "train.eval_every=2", "train.log_every=2",
                                  "train.progress=false", f"train.seed={seed}"])
    summary = train_and_evaluate(cfg, str(tmp_path / str(seed)))
    size = cfg.train.eval_batches * cfg.train.batch_size
    for split in ("train", "validation", "test"):
      assert summary["final"][split]["examples"] == float(size)
    task, model = load_trained(cfg, str(tmp_path / str(seed)))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    step = jax.jit(make_eval_step(ModelDef(graphdef, rest), task))
    again = evaluate(step, params, task, "validation", 5, examples=size)
    for k, v in summary["final"]["validation"].items():
      assert again[k] == pytest.approx(v, rel=1e-5, abs=1e-7), (seed, k)

