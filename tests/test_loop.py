"""The loop's host-sync policy end to end (issue 15): steps dispatched ahead,
`train.steps_per_call`, a non-finite step found at its step."""

import dataclasses
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstmx.config import TrainConfig, override
from lstmx.train import train_and_evaluate
from lstmx.train.step import TrainState, make_train_chunk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import smoke  # noqa: E402
from test_train import _final_params  # noqa: E402


def _cfg(*sets):
  return override(smoke.base(), ["train.progress=false", *sets])


def test_steps_per_call_gives_the_same_run_as_single_steps(tmp_path):
  """25 steps: k=10 runs two 10-step scans and 5 single steps (the remainder)."""
  cfg = _cfg("train.steps=25")
  runs = {}
  for k in (1, 10):
    summary = train_and_evaluate(override(cfg, [f"train.steps_per_call={k}"]),
                                 str(tmp_path / str(k)))
    state, meta = _final_params(cfg, str(tmp_path / str(k)))
    rows = [json.loads(line) for line in open(tmp_path / str(k) / "metrics.jsonl")]
    runs[k] = (summary, state, meta, [(r["step"], r["split"], r["loss"]) for r in rows])
  (s1, a, m1, rows1), (s10, b, m10, rows10) = runs[1], runs[10]
  assert int(a.step) == int(b.step) == 25 and s10["steps"] == 25
  jax.tree.map(np.testing.assert_array_equal, a.params, b.params)
  jax.tree.map(np.testing.assert_array_equal, a.opt_state, b.opt_state)
  assert rows1 == rows10 and s1["final"] == s10["final"] and m1["best_step"] == m10["best_step"]


def test_steps_per_call_must_divide_the_cadences():
  assert TrainConfig(steps_per_call=5, log_every=10, eval_every=20,
                     checkpoint_every=10).steps_per_call == 5
  with pytest.raises(ValueError, match=r"train.steps_per_call: expected a divisor of "
                                       r"train.eval_every \(25\); got 10"):
    TrainConfig(steps_per_call=10, log_every=10, eval_every=25, checkpoint_every=10)
  with pytest.raises(ValueError, match=r"train.steps_per_call: expected an int >= 1; got 0"):
    TrainConfig(steps_per_call=0)


def test_steps_per_call_is_refused_under_sharding(tmp_path):
  cfg = _cfg("train.steps=20", "train.steps_per_call=10", "sharding.preset=data_parallel")
  with pytest.raises(ValueError, match=r"train.steps_per_call: expected 1 with "
                                       r"sharding.preset='data_parallel'.*got 10"):
    train_and_evaluate(cfg, str(tmp_path))


def test_chunk_freezes_the_state_after_a_non_finite_step():
  """A 6-step chunk whose third step is not finite returns the state after step 3
  (the last finite parameters, step counter 3) and ok False."""
  def train_step(state, batch):
    bad = state.step == 2
    loss = jnp.where(bad, jnp.nan, batch)
    params = jnp.where(bad, state.params, state.params + batch)  # keeps a bad step's state
    return (dataclasses.replace(state, step=state.step + 1, params=params),
            {"loss": loss, "finite": jnp.isfinite(loss).astype(jnp.float32)})

  chunk = jax.jit(make_train_chunk(train_step, lambda key: jnp.float32(1.0),
                                   jax.random.key(0), 6))
  start = TrainState(step=jnp.int32(0), params=jnp.float32(0.0), opt_state=(),
                     key=jax.random.key_data(jax.random.key(0)))
  state, ok, metrics = chunk(start, jnp.asarray(True))
  assert int(state.step) == 3 and float(state.params) == 2.0 and not bool(ok)
  assert metrics["finite"].tolist() == [1, 1, 0, 1, 1, 1]  # after it: computed, ignored


@pytest.mark.parametrize("k", [1, 10])
def test_non_finite_step_inside_a_log_window_is_recorded_at_its_step(tmp_path, k):
  """lr=inf: step 1 is finite, step 2 is not; the log window is 10 steps, so the loop
  learns it at step 10 and still records step 2 and keeps the state of step 2."""
  cfg = _cfg("optimizer.lr=inf", "optimizer.clip_norm=none", "optimizer.name=sgd",
             f"train.steps_per_call={k}")
  summary = train_and_evaluate(cfg, str(tmp_path))
  assert summary["status"] == "diverged" and summary["steps"] == 2
  assert summary["stop_reason"] == "non-finite loss or gradient at step 2"
  rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  assert [(r["step"], r["split"]) for r in rows] == [(2, "train")]
  state, meta = _final_params(cfg, str(tmp_path))
  assert int(state.step) == 2 and meta["status"] == "diverged"


def test_at_best_reports_the_best_validation_checkpoint(tmp_path):
  """monitor_mode=max on the loss picks the worst evaluation, so the best checkpoint
  (step 20 of 60) is not the final one; at_best holds its train, validation and test
  metrics, its validation those logged at that step; a rebuilt summary has it too."""
  cfg = _cfg("train.monitor_mode=max")
  summary = train_and_evaluate(cfg, str(tmp_path))
  rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  validation = {r["step"]: r for r in rows if r["split"] == "validation"}
  best = max(validation, key=lambda s: validation[s]["loss"])
  at_best = summary["at_best"]
  assert summary["best"]["step"] == at_best["step"] == best != summary["steps"]
  assert set(at_best) == {"step", "train", "validation", "test"}
  for name, value in at_best["validation"].items():
    assert value == pytest.approx(validation[best][name], rel=1e-6, abs=1e-7)
  assert at_best["validation"] != summary["final"]["validation"]
  assert at_best["test"] != summary["final"]["test"]
  os.remove(tmp_path / "summary.json")
  rebuilt = train_and_evaluate(cfg, str(tmp_path))
  assert rebuilt["rebuilt_from_checkpoint"] == 60 and rebuilt["at_best"] == at_best


def test_at_best_after_early_stopping_is_the_final_and_none_without_evaluation(tmp_path):
  cfg = _cfg("optimizer.lr=1e-12", "train.patience=2", "train.eval_every=5",
             "train.min_delta=1.0", "train.log_every=5", "train.checkpoint_every=5")
  summary = train_and_evaluate(cfg, str(tmp_path / "early"))
  assert summary["status"] == "early_stopped"
  assert summary["at_best"] == {"step": 5, **summary["final"]}
  diverged = train_and_evaluate(_cfg("optimizer.lr=inf", "optimizer.clip_norm=none",
                                     "optimizer.name=sgd"), str(tmp_path / "diverged"))
  assert diverged["status"] == "diverged" and diverged["at_best"] is None


def test_tensorboard_event_files_hold_the_logged_rows_and_hparams(tmp_path):
  """Every metrics.jsonl row is a scalar at its step (counts are not); a resumed run's
  new file starts with a purge marker after its checkpoint; hparams, in the same run,
  hold the config and the final metrics, the extended run's replacing the first's."""
  from lstmx.train.tensorboard import COUNTS, read_events, read_scalars
  cfg = _cfg("train.steps=40", "train.checkpoint_every=10")
  train_and_evaluate(override(cfg, ["train.steps=20"]), str(tmp_path))  # stops at 20
  summary = train_and_evaluate(cfg, str(tmp_path), force=True)  # extended to 40
  logdir = tmp_path / "tensorboard"
  assert sorted(p.name for p in logdir.iterdir() if p.is_dir()) == []  # no sub-runs
  files = sorted(p for p in os.listdir(logdir) if p.startswith("events.out.tfevents"))
  assert len(files) == 2
  events = [e for f in files for e in read_events(str(logdir / f))]
  assert [e.step for e in events if e.HasField("session_log")] == [1, 21]
  scalars = read_scalars(str(logdir))
  rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  for row in rows:
    for name, value in row.items():
      if name not in ("step", "split", "wall_time", *COUNTS):
        assert (row["step"], pytest.approx(value, rel=1e-6)) in scalars[f"{row['split']}/{name}"]
  assert "validation/examples" not in scalars and "examples" in rows[-1]
  assert [s for s, _ in scalars["train/loss"]] == [10, 20, 30, 40]
  assert [s for s, _ in scalars["validation/loss"]] == [20, 40]
  assert scalars["final/validation/loss"] == [(40, pytest.approx(
      summary["final"]["validation"]["loss"], rel=1e-6))]  # the first session's is gone
  assert "at_best/test/loss" in scalars and "final/validation/examples" not in scalars
  hparams = [v.metadata.plugin_data.content for e in events for v in e.summary.value
             if v.metadata.plugin_data.plugin_name == "hparams"]
  assert len(hparams) == 3  # experiment, session start and end: the second session's only
  assert any(b"train.steps" in c and b"model.hidden_size" in c for c in hparams)


def test_an_error_mid_run_leaves_finished_checkpoints_and_the_rerun_resumes(tmp_path,
                                                                             monkeypatch):
  """The save at step 10 is asynchronous; an error at step 20 (before the next save)
  still leaves it finished on disk (the loop closes its checkpoints on the way out)."""
  from lstmx.train import loop

  class Failing(loop.Progress):
    def update(self, step, metrics):
      if step == 20:
        raise RuntimeError("boom at 20")

  cfg = _cfg("train.steps=30", "train.checkpoint_every=10")
  monkeypatch.setattr(loop, "Progress", Failing)
  with pytest.raises(RuntimeError, match="boom at 20"):
    train_and_evaluate(cfg, str(tmp_path))
  assert os.listdir(tmp_path / "checkpoints" / "latest") == ["10"]
  monkeypatch.undo()
  summary = train_and_evaluate(cfg, str(tmp_path))
  assert summary["status"] == "completed" and summary["steps"] == 30
  state, _ = _final_params(cfg, str(tmp_path))
  assert int(state.step) == 30
