"""The training loop's hooks and run record on their own: cadence, early
stopping, NT-ASGD's trigger, and the loop's stopping rules (no model needed)."""

import dataclasses

import numpy as np
import pytest

from lstmx.train.hooks import Checkpoint, Every, Evaluate, KeepBest, LogTrain, NTAveraging
from lstmx.train.loop import run_steps
from lstmx.train.progress import Progress, final_table
from lstmx.train.record import RunRecord


class FakeCheckpoints:
  def __init__(self):
    self.latest, self.best = [], []

  def save_latest(self, step, state, meta):
    self.latest.append((step, meta))

  def save_best(self, step, state, meta):
    self.best.append((step, meta))


class FakeLog:
  def __init__(self):
    self.rows = []

  def write(self, step, split, wall_time, metrics):
    self.rows.append((step, split, dict(metrics)))


class FakeProgress:
  def update(self, step, row):
    pass


def _fired(when, last):
  return [s for s in range(1, last + 1) if when(s)]


def test_every_fires_at_multiples_and_at_the_last_step():
  assert _fired(Every(3, 10), 10) == [3, 6, 9, 10]
  assert _fired(Every(5, 10), 10) == [5, 10]
  assert _fired(Every(3, 10, at_last=False), 10) == [3, 6, 9]
  assert _fired(Every(5, 10, at_last=False), 10) == [5]
  assert _fired(Every(1, 4), 4) == [1, 2, 3, 4]


def test_log_train_averages_the_window_since_its_last_row():
  log = FakeLog()
  hook = LogTrain(Every(2, 5), log, FakeProgress(), lambda: 0.0, tokens_per_batch=8)
  for step, loss in enumerate([1.0, 3.0, 5.0, 7.0, 9.0], start=1):
    hook(step, None, RunRecord(), {"loss": loss, "grad_norm": 2 * loss})
  assert [(s, r["loss"], r["grad_norm"]) for s, _, r in log.rows] == [
      (2, 2.0, 4.0), (4, 6.0, 12.0), (5, 9.0, 18.0)]
  assert all(r["tokens_per_s"] > 0 for *_, r in log.rows)


def test_keep_best_saves_improvements_and_stops_after_patience():
  ckpts = FakeCheckpoints()
  hook = KeepBest(ckpts, lambda: 1.5, monitor="loss", mode="min", min_delta=0.1, patience=2)
  record = RunRecord()
  for step, value in [(1, 5.0), (2, 4.0), (3, 3.95), (4, 3.0), (5, 3.0)]:
    _, record = hook(step, value, None, record)
    assert record.running
  assert [s for s, _ in ckpts.best] == [1, 2, 4]
  assert ckpts.best[-1][1]["best_value"] == 3.0 and ckpts.best[-1][1]["wall_time"] == 1.5
  assert (record.best_step, record.evals_since_best) == (4, 1)
  _, record = hook(6, 2.95, None, record)  # within min_delta: not an improvement
  assert record.status == "early_stopped" and record.best_step == 4
  assert "no loss improvement > 0.1 in 2 evaluations (best at step 4)" == record.stop_reason


def test_keep_best_without_patience_never_stops_and_max_mode():
  hook = KeepBest(FakeCheckpoints(), lambda: 0.0, monitor="accuracy", mode="max",
                  min_delta=0.0, patience=0)
  record = RunRecord()
  for step, value in enumerate([0.5, 0.9, 0.1, 0.1, 0.1, 0.1], start=1):
    _, record = hook(step, value, None, record)
  assert record.running and record.best_value == 0.9 and record.evals_since_best == 4


@dataclasses.dataclass(frozen=True)
class FakeState:
  opt_state: object = None
  params: object = None


def test_nt_averaging_collects_history_until_it_fires_then_stops_collecting():
  hook = NTAveraging(nonmono=1)
  state, record = FakeState(), RunRecord()
  for step, value in [(5, 5.0), (10, 4.0), (15, 3.0), (20, 4.5)]:
    state, record = hook(step, value, state, record)
  assert record.averaging_step == 20 and record.val_history == (5.0, 4.0, 3.0, 4.5)
  state, record = hook(25, 9.0, state, record)
  assert record.averaging_step == 20 and record.val_history == (5.0, 4.0, 3.0, 4.5)


def test_evaluate_passes_the_monitored_value_to_its_followers_in_order():
  seen, log = [], FakeLog()

  def follower(name):
    def on_validation(step, value, state, record):
      seen.append((name, step, value))
      return state, record
    return on_validation

  hook = Evaluate(Every(2, 3), lambda params: {"loss": 0.25, "accuracy": 0.5}, log,
                  lambda: 0.0, "accuracy", then=[follower("a"), follower("b")])
  for step in (1, 2, 3):
    hook(step, FakeState(), RunRecord(), {})
  assert seen == [("a", 2, 0.5), ("b", 2, 0.5), ("a", 3, 0.5), ("b", 3, 0.5)]
  assert [(s, split) for s, split, _ in log.rows] == [(2, "validation"), (3, "validation")]


def test_evaluate_prints_each_validation_as_a_line(capsys):
  progress = Progress(total=3, enabled=True)  # not a terminal here: plain lines
  hook = Evaluate(Every(2, 3), lambda params: {"loss": 0.25, "examples": 64.0}, FakeLog(),
                  lambda: 0.0, "loss", progress=progress)
  for step in (1, 2, 3):
    hook(step, FakeState(), RunRecord(), {})
  assert capsys.readouterr().out.splitlines() == [
      "validation step 2/3 loss=0.25", "validation step 3/3 loss=0.25"]  # no count
  Progress(total=3, enabled=False).validation(3, {"loss": 1.0})
  assert capsys.readouterr().out == ""


def test_final_table_is_a_row_per_split_and_a_column_per_metric():
  summary = {"status": "completed", "steps": 200, "stop_reason": "steps",
             "final": {"train": {"loss": 0.12345, "accuracy": 0.95, "examples": 64.0},
                       "validation": {"loss": 0.25, "accuracy": 0.875, "examples": 64.0},
                       "test": {"loss": 0.5}}}
  assert final_table(summary).splitlines() == [
      "completed after 200 steps (steps)",
      "split       loss    accuracy",
      "train       0.1235  0.95",
      "validation  0.25    0.875",
      "test        0.5"]
  assert final_table({"status": "diverged", "steps": 3, "final": None}) == \
      "diverged after 3 steps"


def test_checkpoint_hook_saves_the_record_with_its_wall_time():
  ckpts = FakeCheckpoints()
  hook = Checkpoint(Every(2, 5, at_last=False), ckpts, lambda: 7.0)
  record = RunRecord()
  for step in range(1, 6):
    _, record = hook(step, None, record, {})
  assert [s for s, _ in ckpts.latest] == [2, 4]
  assert record.wall_time == 7.0 and ckpts.latest[0][1] == RunRecord(wall_time=7.0).to_json()


def _fake_advance(losses, k=1, dispatched=None):
  """`run_steps`'s ``advance`` over a list of losses: k steps a call; the state is the
  step count (frozen after a non-finite step, as `guard` does)."""
  def advance(state, ok, step):
    n = min(k, len(losses) - step)
    out = losses[step:step + n]
    finite = [x == x for x in out]
    if dispatched is not None:
      dispatched.append(step)
    for f in finite:
      state, ok = (state + 1 if ok else state), ok and f
    return state, ok, {"loss": np.asarray(out), "finite": np.asarray(finite, np.float32)}
  return advance


def test_run_steps_stops_on_divergence_and_when_a_hook_ends_the_run():
  calls, diverged = [], []

  def hook(step, state, record, metrics):
    calls.append(step)
    if step == 3:
      record = record.stop("early_stopped", "test")
    return state, record

  nan = float("nan")
  _, record, step = run_steps(_fake_advance([1.0, 1.0, nan]), 0, RunRecord(),
                              [hook], start=0, total=5,
                              on_diverged=lambda s, m: diverged.append(s))
  assert (record.status, step, calls, diverged) == ("diverged", 3, [1, 2], [3])
  assert record.stop_reason == "non-finite loss or gradient at step 3"
  calls.clear()
  _, record, step = run_steps(_fake_advance([1.0] * 5), 0, RunRecord(),
                              [hook, hook], start=0, total=5, on_diverged=None)
  assert (record.status, step, calls) == ("early_stopped", 3, [1, 1, 2, 2, 3])
  _, record, step = run_steps(_fake_advance([1.0] * 5), 2, RunRecord(), [],
                              start=2, total=5, on_diverged=None)
  assert record.running and step == 5


def test_run_steps_reads_results_only_at_hook_cadences_and_finds_the_bad_step():
  """Steps are dispatched ahead (k per call); hooks see every step's metrics, in order,
  once the window up to their next cadence step is done; a non-finite step inside a
  window ends the run at that step, with the state frozen there."""
  seen, fired, diverged, dispatched = [], [], [], []

  class Hook:
    when = Every(4, 12)

    def __call__(self, step, state, record, metrics):
      seen.append((step, float(metrics["loss"])))
      if self.when(step):
        fired.append((step, state))
      return state, record

  losses = [float(i) for i in range(12)]
  state, record, step = run_steps(_fake_advance(losses, k=2, dispatched=dispatched), 0,
                                  RunRecord(), [Hook()], start=0, total=12, on_diverged=None)
  assert record.running and step == 12 and state == 12
  assert seen == [(i + 1, float(i)) for i in range(12)]
  assert fired == [(4, 4), (8, 8), (12, 12)] and dispatched == [0, 2, 4, 6, 8, 10]
  seen.clear()
  losses[5] = float("nan")  # step 6, inside the window 5..8
  state, record, step = run_steps(_fake_advance(losses, k=2), 0, RunRecord(), [Hook()],
                                  start=0, total=12,
                                  on_diverged=lambda s, m: diverged.append(s))
  assert (record.status, step, state, diverged) == ("diverged", 6, 6, [6])
  assert [s for s, _ in seen] == [1, 2, 3, 4, 5]


def test_record_round_trips_through_json_and_reads_old_meta_dicts():
  record = RunRecord(best_value=0.5, best_step=10, val_history=(1.0, 0.5), averaging_step=10)
  assert RunRecord.from_json(record.to_json()) == record
  old_meta = {"best_value": None, "best_step": None, "evals_since_best": 0, "wall_time": 0.0,
              "status": "running", "stop_reason": None, "val_history": [],
              "averaging_step": None}
  assert RunRecord.from_json(old_meta) == RunRecord()
  with pytest.raises(ValueError, match=r"unknown fields \['extra'\]"):
    RunRecord.from_json({**old_meta, "extra": 1})
  with pytest.raises(ValueError, match=r"status: expected one of"):
    RunRecord().stop("paused", "no")


def test_the_engine_checks_batch_lengths_on_the_host():
  """Issue 18: under jit the LSTM cannot see its lengths' values; the engine checks the
  first batch's on the host (where they are known) and names the task."""
  import types

  import jax.numpy as jnp
  from lstmx.train.loop import check_batch_lengths
  task = types.SimpleNamespace(name="copy")
  batch = {"inputs": jnp.zeros((3, 5, 2)), "lengths": jnp.asarray([1, 5, 2], jnp.uint8)}
  check_batch_lengths(batch, task)
  check_batch_lengths({"inputs": batch["inputs"], "lengths": None}, task)
  for bad in ([0, 5, 2], [1, 6, 2], [-3, 1, 1]):
    with pytest.raises(ValueError, match=r"task 'copy': its batch lengths: seq_lengths: "
                                         r"expected values in \[1, 5\]"):
      check_batch_lengths({"inputs": batch["inputs"],
                           "lengths": jnp.asarray(bad, jnp.int32)}, task)
