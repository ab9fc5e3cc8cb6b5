"""Reliability, round three (issue 30): one writer per run directory, no result under
another run's settings, a full disk (or no permission, or no memory) in one line."""

import errno
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from lstmx.config import override
from lstmx.lab import cli, runner
from lstmx.lab.experiment import Experiment, Preset
from lstmx.train import lock, train_and_evaluate
from lstmx.train.rundir import read_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, "experiments", "smoke.py")
sys.path.insert(0, os.path.join(ROOT, "experiments"))
import smoke  # noqa: E402

TINY = ["train.steps=10", "train.checkpoint_every=5", "train.eval_every=5",
        "train.log_every=5", "train.eval_batches=1", "train.batch_size=8",
        "model.hidden_size=8", "train.progress=false"]


def _tiny(*sets):
  return override(smoke.base(), TINY + list(sets))


def _experiment(n: int = 2) -> Experiment:
  sweep = [{"train.seed": s} for s in range(n)]
  return Experiment(name="fake", presets=lambda: {"tiny": Preset(_tiny(), sweep)})


def _rows(workdir) -> list[tuple[int, str]]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [(r["step"], r["split"]) for r in map(json.loads, f)]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  """A finished tiny run (its directory, summary): copied by the tests that change it."""
  workdir = str(tmp_path_factory.mktemp("finished") / "run")
  return workdir, train_and_evaluate(_tiny(), workdir)


def _copy(src, tmp_path) -> str:
  import shutil
  return shutil.copytree(src, str(tmp_path / "run"))


# --- one writer per run directory -------------------------------------------------------

def _held(workdir, pid=b"4242\n"):
  """Holds `workdir`'s lock as another process would (its pid written in it)."""
  import fcntl
  os.makedirs(workdir, exist_ok=True)
  fd = os.open(os.path.join(workdir, ".lock"), os.O_RDWR | os.O_CREAT)
  fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  os.write(fd, pid)
  return fd


def test_second_run_on_a_workdir_is_refused_naming_the_holder(tmp_path):
  """Before: two runs on one workdir both exited 0 with every row of metrics.jsonl twice."""
  workdir = str(tmp_path / "run")
  fd = _held(workdir)
  try:
    with pytest.raises(lock.Held, match=r"--workdir '.*run': another run \(pid 4242\) is "
                                        r"training there; expected one run per run directory"):
      train_and_evaluate(_tiny(), workdir)
  finally:
    os.close(fd)
  assert os.listdir(workdir) == [".lock"]  # nothing written, config.json included


def test_second_run_waits_with_wait_and_each_step_is_logged_once(finished, tmp_path, capfd):
  src, summary = finished
  workdir = _copy(src, tmp_path)
  os.remove(os.path.join(workdir, "summary.json"))  # the waiting run rebuilds it
  fd = _held(workdir)
  threading.Timer(0.5, os.close, [fd]).start()
  t0 = time.perf_counter()
  again = train_and_evaluate(_tiny(), workdir, wait=True)
  assert time.perf_counter() - t0 >= 0.5
  assert "waiting for pid 4242" in capfd.readouterr().err
  assert again["final"] == summary["final"]
  assert _rows(workdir) == _rows(src) and len(set(_rows(src))) == len(_rows(src))
  assert lock.holder(workdir) == str(os.getpid())  # the last holder's pid stays, unlocked


def test_two_simultaneous_command_lines_one_refused(tmp_path):
  """Two `lstmx train` on one workdir started together: one trains, the other is refused
  at once (exit 1, one line naming the holder's pid); every step is logged once."""
  workdir = str(tmp_path / "run")
  cmd = [sys.executable, "-m", "lstmx", "train", SMOKE, "--workdir", workdir,
         *[a for s in TINY for a in ("--set", s)]]
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env) for _ in range(2)]
  outs = [p.communicate(timeout=300) for p in procs]
  codes = sorted(p.returncode for p in procs)
  assert codes == [0, 1], outs
  err = next(e for p, (_, e) in zip(procs, outs) if p.returncode == 1).strip()
  assert err.startswith("lstmx: --workdir") and "another run (pid " in err, err
  assert "\n" not in err
  rows = _rows(workdir)
  assert len(rows) == len(set(rows)) and max(s for s, _ in rows) == 10


def test_resumed_run_truncates_what_it_rewrites(finished, tmp_path):
  """A log holding rows past the checkpoint a run resumes from (a kill after them) has
  them replaced, never doubled."""
  src, summary = finished
  workdir = _copy(src, tmp_path)
  os.remove(os.path.join(workdir, "summary.json"))
  import shutil
  shutil.rmtree(os.path.join(workdir, "checkpoints", "latest", "10"))
  again = train_and_evaluate(_tiny(), workdir)
  assert again["final"] == summary["final"]
  assert _rows(workdir) == _rows(src)


# --- no result under another run's settings ----------------------------------------------

@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_results_of_unknown_settings_are_refused_then_retrained_with_force(
    finished, tmp_path, damage, capfd):
  """Before: with config.json deleted, `--set optimizer.lr=0.5` returned the old lr=1e-2
  summary and wrote lr=0.5 into config.json."""
  src, summary = finished
  workdir = _copy(src, tmp_path)
  path = os.path.join(workdir, "config.json")
  if damage == "delete":
    os.remove(path)
  else:
    with open(path, "r+") as f:
      f.truncate(7)
  new = _tiny("optimizer.lr=0.5")
  with pytest.raises(ValueError, match=r"config.json: expected the settings of the results .*"
                                       r"unknown.*force=True \(--force\)"):
    train_and_evaluate(new, workdir)
  assert os.path.exists(path) == (damage != "delete")  # untouched
  assert read_json(os.path.join(workdir, "summary.json")) == summary  # untouched
  if damage != "delete":
    return  # retraining: as for a deleted one
  forced = train_and_evaluate(new, workdir, force=True)
  assert "unknown; retraining from scratch" in capfd.readouterr().err
  fresh = train_and_evaluate(new, str(tmp_path / "fresh"))
  assert forced["final"] == fresh["final"] != summary["final"]
  assert read_json(path)["optimizer"]["lr"] == 0.5
  assert _rows(workdir) == _rows(str(tmp_path / "fresh"))


def test_command_line_refuses_unknown_settings_in_one_line(finished, tmp_path):
  src, _ = finished
  workdir = _copy(src, tmp_path)
  os.remove(os.path.join(workdir, "config.json"))
  with pytest.raises(SystemExit) as e:
    cli.main(["train", SMOKE, "--workdir", workdir, "--set", "optimizer.lr=0.5"] +
             [a for s in TINY for a in ("--set", s)])
  message = str(e.value)
  assert message.startswith(f"lstmx: {os.path.join(workdir, 'config.json')}: expected")
  assert "--force" in message and "\n" not in message


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("sweep") / "out")
  return out, runner.run(_experiment(), "tiny", out, progress=False, make_report=False)


def test_sweep_trial_of_unknown_settings_refused_then_retrained_with_force(
    finished_sweep, tmp_path):
  """Before: `--force --set optimizer.lr=0.1` retrained the other trials, but the one
  without config.json kept its old result under the new settings, its row completed."""
  import shutil
  src, first = finished_sweep
  out = shutil.copytree(src, str(tmp_path / "out"))
  tid = first["trial"][0]
  path = os.path.join(out, "trials", tid, "config.json")
  os.remove(path)
  with pytest.raises(ValueError, match=rf"{tid} differs at .*config.json \(missing or "
                                       r"unreadable: the trial's settings are unknown\)"):
    runner.run(_experiment(), "tiny", out, progress=False, make_report=False)
  assert not os.path.exists(path)
  forced = runner.run(_experiment(), "tiny", out, ["optimizer.lr=0.1"], progress=False,
                      make_report=False, force=True)
  assert (forced["final.validation.loss"] != first["final.validation.loss"]).all()
  assert (forced["status"] == "completed").all()
  assert read_json(path)["optimizer"]["lr"] == 0.1
