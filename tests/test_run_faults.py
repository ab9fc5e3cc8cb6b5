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
from lstmx.train import lock, resources, train_and_evaluate
from lstmx.train.rundir import read_json
from helpers import cli_error

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


def test_command_line_refuses_unknown_settings_in_one_line(finished, tmp_path, capsys):
  src, _ = finished
  workdir = _copy(src, tmp_path)
  os.remove(os.path.join(workdir, "config.json"))
  message = cli_error(capsys, ["train", SMOKE, "--workdir", workdir, "--set",
                               "optimizer.lr=0.5"] + [a for s in TINY for a in ("--set", s)])
  assert message.startswith(f"lstmx: {os.path.join(workdir, 'config.json')}: expected")
  assert "--force" in message


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("sweep") / "out")
  return out, runner.run(_experiment(), "tiny", out, progress=False, report=False)


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
    runner.run(_experiment(), "tiny", out, progress=False, report=False)
  assert not os.path.exists(path)
  forced = runner.run(_experiment(), "tiny", out, ["optimizer.lr=0.1"], progress=False,
                      report=False, force=True)
  assert (forced["final.validation.loss"] != first["final.validation.loss"]).all()
  assert (forced["status"] == "completed").all()
  assert read_json(path)["optimizer"]["lr"] == 0.1


# --- a full disk, no permission, no memory: one line ----------------------------------------

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
TENSORSTORE_ENOSPC = ValueError(
    'RESOURCE_EXHAUSTED: Error writing local file "X/checkpoints/latest/5.orbax-checkpoint-tmp'
    '/state": Failed to write 6638 bytes to file 20: No space left on device '
    "[os_error_code='28']")


def test_atomic_write_on_a_full_disk_names_the_file_and_leaves_nothing(tmp_path, monkeypatch):
  from lstmx.train import rundir
  path = str(tmp_path / "summary.json")
  rundir.write_json(path, {"old": 1})

  def full(fd):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a flush or fsync reports it

  monkeypatch.setattr(rundir.os, "fsync", full)
  with pytest.raises(resources.OutOfResource) as e:
    rundir.write_json(path, {"new": 1})
  assert str(e.value) == f"cannot write {path}: No space left on device"
  assert read_json(path) == {"old": 1} and os.listdir(tmp_path) == ["summary.json"]


def test_metrics_row_on_a_full_disk_names_the_log(tmp_path, monkeypatch):
  from lstmx.train import rundir
  log = rundir.MetricsLog(str(tmp_path))
  monkeypatch.setattr(rundir.os, "fsync", lambda fd: (_ for _ in ()).throw(ENOSPC))
  with pytest.raises(resources.OutOfResource, match=r"cannot write .*metrics.jsonl: No space"):
    log.write(5, "train", 0.1, {"loss": 1.0})


@pytest.mark.parametrize("error,errno_", [(ENOSPC, errno.ENOSPC),
                                          (TENSORSTORE_ENOSPC, errno.ENOSPC),
                                          (PermissionError(errno.EACCES, "Permission denied"),
                                           errno.EACCES)])
def test_checkpoint_save_failure_names_the_checkpoint(tmp_path, monkeypatch, error, errno_):
  import jax.numpy as jnp
  from lstmx.train.checkpoint import Checkpoints
  ckpts = Checkpoints(str(tmp_path), keep=2, async_save=False)
  monkeypatch.setattr(type(ckpts.latest), "save", lambda *a, **k: (_ for _ in ()).throw(error))
  with pytest.raises(resources.OutOfResource) as e:
    ckpts.save_latest(5, {"w": jnp.ones(3)}, {})
  assert e.value.errno == errno_
  assert e.value.filename == os.path.join(str(tmp_path), "checkpoints", "latest", "5")
  monkeypatch.undo()
  ckpts.close()


def test_tensorboard_close_on_a_full_disk_names_the_directory_and_closes(tmp_path):
  from lstmx.train.tensorboard import TensorBoard
  tb = TensorBoard(str(tmp_path))
  writer = tb.writer
  file_writer = next(iter(writer.all_writers.values()))
  flush = file_writer.flush
  file_writer.flush = lambda: (_ for _ in ()).throw(ENOSPC)
  with pytest.raises(resources.OutOfResource, match=r"cannot write .*tensorboard: No space"):
    tb.close()
  assert tb.writer is None and file_writer.event_writer._closed  # its exit handler: a no-op
  file_writer.flush = flush
  file_writer.event_writer._closed = False
  writer.close()


@pytest.mark.parametrize("error,expected", [
    (RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 1.0GiB."),
     "W: the device is out of memory (RESOURCE_EXHAUSTED: Out of memory while trying"),
    (MemoryError(), "W: out of host memory"),
    (OSError(errno.EROFS, "Read-only file system", "W/x"), "cannot write W/x: Read-only"),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), "cannot write W: Disk quota exceeded"),
])
def test_resource_errors_recognized(error, expected):
  found = resources.out_of_resource(error, "W")
  assert str(found).startswith(expected)
  assert found.advice


@pytest.mark.parametrize("error", [ValueError("RESOURCE_EXHAUSTED: a quota of some API"),
                                   OSError(errno.ENOENT, "No such file"), KeyError("x")])
def test_other_errors_are_not_resource_errors(error):
  assert resources.out_of_resource(error, "W") is None


def test_run_on_a_full_disk_raises_one_error_and_resumes_exactly(finished, tmp_path,
                                                                 monkeypatch):
  """The disk fills at the checkpoints of step 10 (best, then latest): an OutOfResource
  naming the one written; the rerun, space freed, resumes from step 5 and ends as an
  uninterrupted run."""
  import orbax.checkpoint as ocp
  src, summary = finished
  workdir = str(tmp_path / "run")
  save = ocp.CheckpointManager.save

  def fills_at_10(manager, step, *args, **kwargs):
    if step == 10:
      raise ValueError(str(TENSORSTORE_ENOSPC).replace("latest/5", "latest/10"))
    return save(manager, step, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, "save", fills_at_10)
  with pytest.raises(resources.OutOfResource) as e:
    train_and_evaluate(_tiny(), workdir)
  assert str(e.value) in [f"cannot write {os.path.join(workdir, 'checkpoints', kind, '10')}: "
                          "No space left on device" for kind in ("best", "latest")]
  assert not os.path.exists(os.path.join(workdir, "summary.json"))
  monkeypatch.undo()
  again = train_and_evaluate(_tiny(), workdir)
  assert again["final"] == summary["final"] and _rows(workdir) == _rows(src)


def _raising(error):
  def train(*args, **kwargs):
    raise error
  return train


@pytest.mark.parametrize("verbose", [False, True])
def test_command_line_full_disk_is_one_line_traceback_only_verbose(tmp_path, monkeypatch, capsys,
                                                                   verbose):
  import lstmx.train
  error = resources.OutOfResource(errno.ENOSPC, "No space left on device", "W/checkpoints/x")
  monkeypatch.setattr(lstmx.train, "train_and_evaluate", _raising(error))
  monkeypatch.setenv("LSTMX_VERBOSE", "1" if verbose else "0")
  with pytest.raises(SystemExit) as e:
    cli.main(["train", SMOKE, "--workdir", str(tmp_path / "run")])
  assert e.value.code == 1
  err = capsys.readouterr().err
  last = err.strip().splitlines()[-1]
  assert last == ("lstmx: cannot write W/checkpoints/x: No space left on device; free some "
                  "space and rerun: the run resumes from its last checkpoint")
  assert ("Traceback" in err) == verbose and (len(err.strip().splitlines()) == 1) != verbose


def test_sweep_on_a_full_disk_stops_with_one_line(tmp_path, monkeypatch, capsys):
  """A trial that meets a full disk stops the sweep (every trial would fail alike), in one
  line; the other trials are not marked failed."""
  from lstmx.lab import command, trial
  error = resources.OutOfResource(errno.ENOSPC, "No space left on device", "O/trials/t/x")
  monkeypatch.setattr(trial, "train_and_evaluate", _raising(error))
  monkeypatch.setenv("LSTMX_VERBOSE", "0")
  out = str(tmp_path / "out")
  with pytest.raises(SystemExit) as e:
    command.run_and_print(_experiment(), "tiny", out, prog="lstmx",
                          options=runner.SweepOptions(workers=1))
  assert e.value.code == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert err[-1].startswith("lstmx: cannot write O/trials/t/x: No space left on device;")
  assert not any("Traceback" in line for line in err)
  import pandas as pd
  assert set(pd.read_csv(os.path.join(out, "results.csv"))["status"]) == {"pending"}


def test_worker_full_disk_stops_the_pool_after_its_running_trials(monkeypatch):
  """A full disk in a worker or a Ray task (`pool.execute_or_report`) comes back as a
  summary carrying the error, which the local pool and the Ray pool raise."""
  from lstmx.lab import local_pool, pool

  def full(spec):
    raise resources.OutOfResource(errno.ENOSPC, "No space", "P")

  monkeypatch.setattr(pool, "execute", full)
  reported = pool.execute_or_report(object())
  assert reported["status"] == "failed" and str(pool.out_of_resource(reported)) == (
      "cannot write P: No space")
  summary = {"status": "failed", pool.OUT_OF_RESOURCE: [errno.ENOSPC, "No space", "P"]}
  found = local_pool._out_of_resource(summary)
  assert isinstance(found, resources.OutOfResource) and str(found) == "cannot write P: No space"
  assert local_pool._out_of_resource({"status": "failed"}) is None


def _unshare_tmpfs_works() -> bool:
  try:
    return subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs "
                           "/mnt"], capture_output=True, timeout=20).returncode == 0
  except (OSError, subprocess.SubprocessError):
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _unshare_tmpfs_works(),
                    reason="needs `unshare -rm` to mount a small tmpfs")
def test_full_small_filesystem_one_line_then_resumes_exactly(finished, tmp_path):
  """A real full disk: `lstmx train` on a 200 KiB tmpfs ends in one `lstmx:` line naming
  the checkpoint; with the space grown, the rerun resumes and logs every step once, as an
  uninterrupted run."""
  src, summary = finished
  mnt = tmp_path / "mnt"
  mnt.mkdir()
  sets = " ".join(f"--set {s}" for s in TINY)
  train = (f"PYTHONPATH={ROOT} {sys.executable} -m lstmx train {SMOKE} {sets} "
           f"--workdir {mnt}/run")
  script = (f"mount -t tmpfs -o size=200k tmpfs {mnt} && cd {ROOT} && "
            f"{train} 2>{tmp_path}/err1; echo $? > {tmp_path}/rc1; "
            f"mount -o remount,size=8m {mnt}; {train} >{tmp_path}/out2 2>/dev/null; "
            f"echo $? > {tmp_path}/rc2; cp {mnt}/run/metrics.jsonl {mnt}/run/summary.json "
            f"{tmp_path}/")
  env = {k: v for k, v in os.environ.items() if k != "LSTMX_VERBOSE"}
  subprocess.run(["unshare", "-rm", "sh", "-c", script], env=env, timeout=300, check=True)
  err = (tmp_path / "err1").read_text().strip()
  assert (tmp_path / "rc1").read_text().strip() == "1"
  assert len(err.splitlines()) == 1 and err.startswith(f"lstmx: cannot write {mnt}/run/"), err
  assert "No space left on device" in err
  assert (tmp_path / "rc2").read_text().strip() == "0"
  assert read_json(str(tmp_path / "summary.json"))["final"] == summary["final"]
  assert _rows(tmp_path) == _rows(src)
