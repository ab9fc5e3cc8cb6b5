"""Parallel trials (issue 15): `--workers` runs a sweep's trials in worker processes with
the same results as one after another; the workers' threads and cores; seeds; the
progress counts; a SIGKILLed runner takes its workers with it and a rerun resumes; one
runner per output directory; bad input is one line naming the option."""

import dataclasses
import fcntl
import glob
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from lstmx.config import Config
from lstmx.lab import cli, command, local_pool, lock, runner, sweep
from lstmx.lab.experiment import Experiment, Preset, load
from lstmx.lab.pool import SerialPool
from lstmx.lab.progress import SweepProgress, duration

from helpers import cli_error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

EXPERIMENT = textwrap.dedent('''
    """A tiny experiment for the workers' tests."""
    import sys
    sys.path.insert(0, {experiments!r})
    import smoke
    from lstmx.config import override
    from lstmx.lab import Preset, main
    NAME = {name!r}
    def presets():
      base = override(smoke.base(), ["train.steps={steps}", "train.checkpoint_every=5",
                                     "train.eval_every=10", "train.log_every=5",
                                     "train.eval_batches=1", "train.batch_size=8",
                                     "model.hidden_size=8"])
      sweep = [{{"optimizer.lr": lr}} for lr in (1e-2, 3e-3)]
      tiny = Preset(base, sweep, seeds=2)
      return {{"tiny": tiny, "quick": Preset(base, sweep), "full": Preset(base, sweep)}}
    if __name__ == "__main__":
      main(sys.modules[__name__])
    ''')

METRICS = ["final.validation.loss", "final.test.loss", "final.train.loss"]


def _write(tmp_path, name="tinyw", steps=10):
  path = tmp_path / f"{name}.py"
  path.write_text(EXPERIMENT.format(experiments=os.path.join(ROOT, "experiments"), name=name,
                                    steps=steps))
  return str(path)


def _env():
  return dict(os.environ, XLA_FLAGS="", PYTHONPATH=ROOT)


# --- same results, in worker processes ---------------------------------------------------

def test_workers_give_the_same_results_as_one_process(tmp_path):
  exp = load(_write(tmp_path))
  serial = runner.run(exp, "tiny", str(tmp_path / "one"), progress=False, report=False,
                      workers=1)
  parallel = runner.run(exp, "tiny", str(tmp_path / "two"), progress=False, report=False,
                        workers=2)
  assert len(serial) == 4 and (serial["status"] == "completed").all()
  assert list(serial["trial"]) == list(parallel["trial"])  # the sweep's order
  assert sorted(serial["train.seed"]) == [0, 0, 1, 1]
  # The same configs and seeds, and the same bits: every trial ran in a worker pinned to
  # one core (cores_per_trial=1), the one-worker sweep's included.
  pd.testing.assert_frame_equal(serial[["trial", "status", "steps"] + METRICS],
                                parallel[["trial", "status", "steps"] + METRICS],
                                check_exact=True)
  assert sorted(os.listdir(tmp_path / "one" / "trials")) == sorted(
      os.listdir(tmp_path / "two" / "trials"))
  meta = json.loads((tmp_path / "two" / "experiment.json").read_text())
  assert meta["seeds"] == 2 and len(meta["trials"]) == 4
  assert meta["sweep"]["cores_per_trial"] == 1 and meta["sweep"]["workers"] == 2
  assert meta["sweep"]["jaxlib"] and "processor" in meta["sweep"]


def test_local_pool_fails_the_trial_of_a_worker_that_dies(tmp_path):
  """A worker killed mid-trial fails that trial (a rerun retries it) and is replaced."""
  path = tmp_path / "killer.py"
  path.write_text(open(_write(tmp_path, name="killer_base")).read().replace(
      "NAME = ", "import os, signal\n"
      "def analyze(config, workdir):\n"
      "  if config.train.seed == 1:\n"
      "    os.kill(os.getpid(), signal.SIGKILL)\n"
      "  return {}\n"
      "NAME = "))
  exp = load(str(path))
  from lstmx.lab import sweep as sweeps
  from lstmx.lab.pool import TrialSpec
  p = exp.presets()["tiny"]
  specs = [TrialSpec.make(str(seed), exp, sweeps.apply(p.base, {"train.seed": seed}),
                          str(tmp_path / f"t{seed}")) for seed in (1, 2, 3)]
  specs.append(dataclasses.replace(specs[1], trial="bad", workdir=str(tmp_path / "bad"),
                                   experiment=str(tmp_path / "missing.py")))
  pool = local_pool.LocalPool(local_pool.cpu_slots(1, cores=[0]))
  try:
    out = {spec.trial: summary for spec, summary in pool.run(specs)}
  finally:
    pool.close()
  assert out["1"]["status"] == "failed" and "died (exit code -9)" in out["1"]["error"]
  assert json.loads((tmp_path / "t1" / "failure.json").read_text())["status"] == "failed"
  assert out["2"]["status"] == out["3"]["status"] == "completed"
  assert out["bad"]["status"] == "failed" and "FileNotFoundError" in out["bad"]["error"]
  assert "missing.py" in json.loads((tmp_path / "bad" / "failure.json").read_text())["error"]


# --- threads and cores --------------------------------------------------------------------

def test_cpu_slots_pin_each_worker_to_its_cores_and_keep_the_users_xla_flags():
  slots = local_pool.cpu_slots(2, 2, cores=[0, 1, 2, 3], xla_flags="--xla_dump_to=/x")
  assert [s.cores for s in slots] == [(0, 1), (2, 3)]
  assert slots[0].env["OMP_NUM_THREADS"] == "2" and "XLA_FLAGS" not in slots[0].env
  one = local_pool.cpu_slots(4, 1, cores=[0, 1, 2, 3], xla_flags="--xla_dump_to=/x")
  assert [s.cores for s in one] == [(0,), (1,), (2,), (3,)]
  assert one[3].env["XLA_FLAGS"] == "--xla_dump_to=/x --xla_cpu_multi_thread_eigen=false"
  assert one[0].env["OPENBLAS_NUM_THREADS"] == one[0].env["MKL_NUM_THREADS"] == "1"
  over = local_pool.cpu_slots(3, 1, cores=[5, 7], xla_flags="")  # more workers: shared
  assert [s.cores for s in over] == [(5,), (7,), (5,)]
  assert over[0].env["XLA_FLAGS"] == "--xla_cpu_multi_thread_eigen=false"
  assert [s.cores for s in local_pool.cpu_slots(1, 1, cores=[0, 1])] == [(0,)]  # serial too
  assert [s.cores for s in local_pool.cpu_slots(2, 2, cores=[0, 1, 2])] == [(0, 1), (2, 0)]
  assert [s.cores for s in local_pool.cpu_slots(1, 1, cores=[0, 1], first=1)] == [(1,)]
  with pytest.raises(ValueError, match=r"cores_per_trial: expected at most 2 .*got 3"):
    local_pool.cpu_slots(1, 3, cores=[0, 1])


def test_gpu_slots_and_worker_count():
  slots = local_pool.gpu_slots(2, ["0", "3"])
  assert [s.env for s in slots] == [{"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "3"}]
  shared = local_pool.gpu_slots(3, ["0", "1"])
  assert shared[2].env == {"CUDA_VISIBLE_DEVICES": "0", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
  assert local_pool.worker_count("auto", 10, cores=4, gpus=0) == 4
  assert local_pool.worker_count("auto", 3, cores=4, gpus=0) == 3  # at most the pending
  assert local_pool.worker_count("auto", 10, cores=16, gpus=2) == 2  # one per GPU
  assert local_pool.worker_count(8, 5, cores=2, gpus=0) == 5
  assert local_pool.worker_count(2, 0) == 1
  assert local_pool.worker_count("auto", 10, 2, cores=4, gpus=0) == 2  # 2 cores per trial
  assert local_pool.worker_count("auto", 10, 4, cores=2, gpus=0) == 1


def test_gpu_devices_follow_cuda_visible_devices(monkeypatch):
  monkeypatch.setattr(local_pool.importlib.util, "find_spec", lambda name: object())
  monkeypatch.setenv("JAX_PLATFORMS", "")
  monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
  assert local_pool.gpu_devices() == ["2", "5"]
  monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
  assert local_pool.gpu_devices() == []
  monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  assert local_pool.gpu_devices() == []


def test_a_worker_starts_with_its_slots_threads_and_cores(tmp_path):
  """What a spawned worker sees before it imports anything, and the runner is restored."""
  import multiprocessing as mp
  before = (dict(os.environ), os.sched_getaffinity(0))
  slot = local_pool.Slot((0,), {"OMP_NUM_THREADS": "1", "XLA_FLAGS": "--a --b"})
  ctx = mp.get_context("spawn")
  out = str(tmp_path / "seen.json")
  with local_pool._inherited(slot):  # noqa: SLF001
    proc = ctx.Process(target=_report_env, args=(out,))
    proc.start()
  proc.join(120)
  seen = json.loads(open(out).read())
  assert seen == {"omp": "1", "xla": "--a --b", "cores": [0]}
  assert (dict(os.environ), os.sched_getaffinity(0)) == before


def _report_env(path):
  with open(path, "w") as f:
    json.dump({"omp": os.environ.get("OMP_NUM_THREADS"), "xla": os.environ.get("XLA_FLAGS"),
               "cores": sorted(os.sched_getaffinity(0))}, f)


# --- seeds ---------------------------------------------------------------------------------

def test_seeds_cross_the_sweep_and_override_the_preset(tmp_path):
  from lstmx.config import override
  sys.path.insert(0, os.path.join(ROOT, "experiments"))
  import smoke
  base = override(smoke.base(), ["train.steps=2", "train.eval_every=2", "train.log_every=1",
                                 "train.checkpoint_every=2", "train.eval_batches=1",
                                 "train.batch_size=4", "model.hidden_size=4", "train.seed=7"])
  preset = Preset(base, [{"optimizer.lr": 0.01}, {"optimizer.lr": 0.001}], seeds=2)
  trials = runner.expand(preset, base, 3)
  assert [ov for _, ov in trials[:3]] == [{"optimizer.lr": 0.01, "train.seed": s}
                                          for s in (7, 8, 9)]
  assert list(trials[0][1]) == ["optimizer.lr", "train.seed"]  # the seed column last
  # The base seed's trial keeps the id it had before seeds (old output directories resume).
  assert trials[0][0] == sweep.trial_id({"optimizer.lr": 0.01})
  assert trials[1][0] == sweep.trial_id({"optimizer.lr": 0.01, "train.seed": 8})
  assert len({t for t, _ in trials}) == 6
  exp = Experiment(name="seeds", presets=lambda: {"tiny": preset})
  results = runner.run(exp, "tiny", str(tmp_path / "a"), progress=False, report=False)
  assert list(results["train.seed"]) == [7, 8, 7, 8]  # the preset's 2 seeds
  more = runner.run(exp, "tiny", str(tmp_path / "a"), progress=False, report=False,
                    seeds=3)
  assert list(more["train.seed"]) == [7, 8, 9, 7, 8, 9]
  assert set(results["trial"]) < set(more["trial"])  # the first two seeds kept their ids
  assert json.loads((tmp_path / "a" / "experiment.json").read_text())["seeds"] == 3
  own = Preset(base, [{"train.seed": 3}, {"train.seed": 4}])
  assert runner.expand(own, base, 1) == [(sweep.trial_id({"train.seed": s}), {"train.seed": s})
                                         for s in (3, 4)]
  with pytest.raises(ValueError, match=r"seeds: the sweep sets train.seed itself .*expected "
                                       r"seeds=1 for it, got 2"):
    runner.expand(own, base, 2)


def test_seeds_start_seed_by_seed_and_share_the_sweeps_compiled_programs(tmp_path):
  """Every configuration's first seed starts before any second seed; the trials of two
  learning rates share one training program, and a new seed adds no program to the
  sweep's compilation cache (the seed and the rate are data, not constants); the
  process's own cache setting is back after the run."""
  import jax
  from lstmx.config import override
  sys.path.insert(0, os.path.join(ROOT, "experiments"))
  import smoke
  base = override(smoke.base(), ["train.steps=2", "train.eval_every=2", "train.log_every=1",
                                 "train.checkpoint_every=2", "train.eval_batches=1",
                                 "train.batch_size=4", "model.hidden_size=4"])
  preset = Preset(base, [{"optimizer.lr": 0.01}, {"optimizer.lr": 0.001}], seeds=1)
  exp = Experiment(name="cache", presets=lambda: {"tiny": preset})
  order = []

  class Spy(SerialPool):
    def run(self, specs):
      specs = list(specs)
      order.extend((s.config["optimizer"]["lr"], s.config["train"]["seed"], s.compile_cache)
                   for s in specs)
      return super().run(specs)

  out = str(tmp_path / "a")
  cache = os.path.join(out, ".cache", "jax")
  runner.run(exp, "tiny", out, progress=False, report=False, pool=Spy(exp))
  programs = lambda: {f.split("-")[0] for f in os.listdir(cache)}  # noqa: E731
  first = set(os.listdir(cache))
  assert {"jit_call", "jit_eval_step"} <= programs()  # the training chunk, the evaluation
  # the learning rate is an argument of the step: one training program for both rates
  assert len([f for f in first if f.startswith("jit_call-")]) == 1, sorted(first)
  order.clear()
  runner.run(exp, "tiny", out, progress=False, report=False, pool=Spy(exp), seeds=3)
  assert [(lr, seed) for lr, seed, _ in order] == [(0.01, 1), (0.001, 1), (0.01, 2),
                                                   (0.001, 2)]
  assert {c for _, _, c in order} == {cache}
  assert set(os.listdir(cache)) == first  # the new seeds compiled nothing new
  assert jax.config.jax_compilation_cache_dir is None
  order.clear()
  runner.run(exp, "tiny", str(tmp_path / "b"), progress=False, report=False,
             pool=Spy(exp), compile_cache=False)
  assert {c for _, _, c in order} == {None} and not os.path.exists(tmp_path / "b" / ".cache")


def test_results_table_flattens_at_best():
  row = runner.result_row("t", {"a": 1}, {
      "status": "completed", "final": {"test": {"loss": 0.5}},
      "at_best": {"step": 40, "validation": {"loss": 0.3}, "test": {"accuracy": 0.9}}})
  assert row["final.test.loss"] == 0.5 and row["at_best.step"] == 40
  assert row["at_best.validation.loss"] == 0.3 and row["at_best.test.accuracy"] == 0.9
  assert "at_best.step" not in runner.result_row("t", {}, {"status": "x", "at_best": None})


# --- progress ------------------------------------------------------------------------------

def test_progress_counts_and_time_left():
  now = [100.0]
  stream = io.StringIO()
  bar = SweepProgress(total=6, finished=["completed", "failed"], desc="x", stream=stream,
                      clock=lambda: now[0])
  bar.started(2)
  assert "running 2, done 2/6 (failed 1, diverged 0), ? left" in stream.getvalue()
  now[0] = 110.0
  bar.update("diverged", 2)
  assert bar.counts == {"done": 3, "failed": 1, "diverged": 1}
  assert bar.eta() == pytest.approx(30.0)  # 10 s a trial, 3 to go
  assert stream.getvalue().splitlines()[-1] == (
      "x: running 2, done 3/6 (failed 1, diverged 1), 30s left")
  assert duration(3725) == "1h02m" and duration(185) == "3m05s" and duration(None) == "?"
  quiet = io.StringIO()
  SweepProgress(total=1, enabled=False, stream=quiet).update("completed", 0)
  assert quiet.getvalue() == ""


def test_progress_on_a_terminal_is_a_bar_with_the_counts():
  class Terminal(io.StringIO):
    def isatty(self):
      return True

  stream = Terminal()
  bar = SweepProgress(total=3, finished=["completed"], desc="x", stream=stream)
  bar.started(2)
  bar.update("failed", 1)
  bar.close()
  text = stream.getvalue()
  assert "2/3" in text and "running 1, done 2/3 (failed 1, diverged 0)" in text
  assert "\n" not in text.rstrip("\n")  # one bar redrawn, not a line per trial


# --- a SIGKILLed runner -------------------------------------------------------------------

def _children(pid):
  kids = []
  for task in glob.glob(f"/proc/{pid}/task/*/children"):
    kids += [int(k) for k in open(task).read().split()]
  return kids


def _gone(pid):
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie no one reaped
  except FileNotFoundError:
    return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigkilled_runner_takes_its_workers_and_a_rerun_resumes(tmp_path):
  script = _write(tmp_path, name="killw", steps=60)
  out = tmp_path / "out"
  cmd = [sys.executable, script, "--preset", "tiny", "--out", str(out), "--workers", "2"]
  victim = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  while time.time() < deadline and victim.poll() is None:
    if len(glob.glob(str(out / "trials" / "*" / "metrics.jsonl"))) >= 2:
      break
    time.sleep(0.05)
  assert victim.poll() is None, "the sweep finished before it could be killed"
  workers = _children(victim.pid)  # the workers (and multiprocessing's resource tracker)
  assert len(workers) >= 2
  victim.send_signal(signal.SIGKILL)
  victim.wait()
  deadline = time.time() + 5
  while time.time() < deadline and not all(_gone(w) for w in workers):
    time.sleep(0.1)
  assert all(_gone(w) for w in workers), "a worker outlived its runner"
  done = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
  assert done.returncode == 0, done.stderr[-3000:]
  results = pd.read_csv(out / "results.csv")
  assert len(results) == 4 and results["trial"].is_unique
  assert (results["status"] == "completed").all() and (results["steps"] == 60).all()
  for trial in results["trial"]:  # each step logged once: no two generations wrote a trial
    steps = [json.loads(line)["step"] for line in open(out / "trials" / trial / "metrics.jsonl")
             if '"train"' in line]
    assert steps == sorted(set(steps)), trial


def _middle(path, pdeathsig):
  import multiprocessing as mp
  child = mp.get_context("spawn").Process(target=_grandchild, args=(os.getpid(), pdeathsig))
  child.start()
  with open(path, "w") as f:
    f.write(str(child.pid))
  time.sleep(600)


def _grandchild(parent, pdeathsig):
  local_pool.die_with_parent(parent, pdeathsig)
  time.sleep(600)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("pdeathsig", [True, False])  # False: the watchdog thread alone
def test_a_worker_dies_with_its_parent(tmp_path, pdeathsig):
  import multiprocessing as mp
  path = tmp_path / "pid"
  middle = mp.get_context("spawn").Process(target=_middle, args=(str(path), pdeathsig))
  middle.start()
  deadline = time.time() + 120
  while time.time() < deadline and not (path.exists() and path.read_text()):
    time.sleep(0.05)
  child = int(path.read_text())
  time.sleep(0.5)
  assert not _gone(child)
  middle.kill()
  middle.join()
  deadline = time.time() + 5
  while time.time() < deadline and not _gone(child):
    time.sleep(0.05)
  assert _gone(child), "the worker outlived its parent"


# --- one runner per output directory ------------------------------------------------------

def test_second_runner_on_an_output_directory_is_refused(tmp_path):
  exp = Experiment(name="locked", presets=lambda: {"tiny": Preset(Config(), [{}])})
  fd = os.open(tmp_path / ".lock", os.O_RDWR | os.O_CREAT)
  fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  os.write(fd, b"4242\n")
  try:
    with pytest.raises(ValueError, match=r"--out '.*': another runner \(pid 4242\) is running "
                                         r"a sweep there; expected one runner"):
      runner.run(exp, "tiny", str(tmp_path), progress=False)
    with pytest.raises(ValueError, match="pid 4242"), lock.hold(str(tmp_path)):
      pass
  finally:
    os.close(fd)
  assert os.listdir(tmp_path) == [".lock"]  # nothing written
  with lock.hold(str(tmp_path)):  # released with its holder: a stale file does not block
    assert lock.holder(str(tmp_path)) == str(os.getpid())


def test_second_runner_command_line_is_one_line(tmp_path):
  script = _write(tmp_path)
  out = tmp_path / "out"
  out.mkdir()
  fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT)
  fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  os.write(fd, b"777\n")
  try:
    done = subprocess.run([sys.executable, script, "--preset", "tiny", "--out", str(out)],
                          env=_env(), capture_output=True, text=True)
  finally:
    os.close(fd)
  assert done.returncode == 1  # a conflict, not a usage error
  assert done.stderr.strip().splitlines() == [
      f"tinyw: --out {str(out)!r}: another runner (pid 777) is running a sweep there; expected "
      "one runner per output directory: wait for it to finish, or use another --out"]


# --- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--workers", "0"], "--workers: expected a positive integer or 'auto'; got '0'"),
    (["--workers", "-2"], "--workers: expected a positive integer or 'auto'; got '-2'"),
    (["--workers", "two"], "--workers: expected a positive integer or 'auto'; got 'two'"),
    (["--workers", "1.5"], "--workers: expected a positive integer or 'auto'; got '1.5'"),
    (["--seeds", "0"], "--seeds: expected a positive integer; got '0'"),
    (["--seeds", "-3"], "--seeds: expected a positive integer; got '-3'"),
    (["--cpus-per-trial", "2"], "--cpus-per-trial: expected only with --ray"),
    (["--ray", "--workers", "2"], "--workers and --ray: expected one of them"),
    (["--cores-per-trial", "0"], "--cores-per-trial: expected a positive integer or 'all'; "
                                 "got '0'"),
    (["--cores-per-trial", "3"], "--cores-per-trial: expected at most 2 "),
    (["--trials-per-device", "2", "--ray"], "--trials-per-device: expected 1 with --ray"),
])
def test_bad_sweep_options_are_one_line_naming_the_option(tmp_path, capsys, args, message):
  script = _write(tmp_path)
  out = tmp_path / "out"
  error = cli_error(capsys, ["train", script, "--preset", "tiny", "--out", str(out)] + args)
  assert error.startswith(f"lstmx: {message}"), error
  with pytest.raises(SystemExit) as e:  # an experiment file's own command line
    command.main(load(script), ["--preset", "tiny", "--out", str(out)] + args)
  assert e.value.code == 2 and capsys.readouterr().err.startswith(f"tinyw: {message}")
  assert not out.exists()  # nothing written


def test_bad_workers_and_seeds_in_run(tmp_path):
  exp = Experiment(name="e", presets=lambda: {"tiny": Preset(Config(), [{}], seeds=0)})
  with pytest.raises(ValueError, match=r"^workers: expected a positive integer or 'auto'; "
                                       r"got 0$"):
    runner.run(exp, "tiny", str(tmp_path), workers=0)
  with pytest.raises(ValueError, match=r"^seeds: expected a positive integer; got -1$"):
    runner.run(exp, "tiny", str(tmp_path), seeds=-1)
  with pytest.raises(ValueError, match=r"^e.tiny: Preset.seeds: expected a positive integer; "
                                       r"got 0$"):
    runner.run(exp, "tiny", str(tmp_path))
  assert os.listdir(tmp_path) == []


def test_options_of_one_config_are_refused(tmp_path, capsys):
  assert "--workers, --seeds: expected only with --preset" in cli_error(
      capsys, ["train", os.path.join(ROOT, "experiments", "smoke.py"), "--workdir",
               str(tmp_path / "w"), "--workers", "2", "--seeds", "2"])


def test_an_output_directory_of_another_experiment_is_refused(tmp_path):
  sys.path.insert(0, os.path.join(ROOT, "experiments"))
  import smoke
  from lstmx.config import override
  base = override(smoke.base(), ["train.steps=2", "train.eval_every=2", "train.log_every=1",
                                 "train.checkpoint_every=2", "train.eval_batches=1",
                                 "train.batch_size=4", "model.hidden_size=4"])
  presets = lambda: {"tiny": Preset(base, [{}]), "quick": Preset(base, [{}])}  # noqa: E731
  runner.run(Experiment(name="first", presets=presets), "tiny", str(tmp_path), progress=False,
             report=False)
  before = {p: open(p, "rb").read() for p in glob.glob(str(tmp_path / "**"), recursive=True)
            if os.path.isfile(p)}
  with pytest.raises(ValueError, match=r"--out '.*' holds the trials of experiment 'first' "
                                       r"preset 'tiny'; expected .* of 'second' preset 'tiny'"):
    runner.run(Experiment(name="second", presets=presets), "tiny", str(tmp_path),
               force=True)
  with pytest.raises(ValueError, match=r"experiment 'first' preset 'tiny'; expected .* of "
                                       r"'first' preset 'quick'"):
    runner.run(Experiment(name="first", presets=presets), "quick", str(tmp_path))
  after = {p: open(p, "rb").read() for p in glob.glob(str(tmp_path / "**"), recursive=True)
           if os.path.isfile(p)}
  assert before == after


def test_ray_errors_are_one_line(tmp_path, monkeypatch, capsys):
  import types
  fake = types.ModuleType("lstmx.lab.ray_pool")

  class RayPool:
    def __init__(self, address=None, **kwargs):
      raise ValueError(f"cannot reach a Ray cluster at {address!r}")

  fake.RayPool = RayPool
  monkeypatch.setitem(sys.modules, "lstmx.lab.ray_pool", fake)
  script = _write(tmp_path)
  with pytest.raises(SystemExit) as e:
    cli.main(["train", script, "--preset", "tiny", "--out", str(tmp_path / "o"), "--ray",
              "10.0.0.1:6379"])
  assert e.value.code == 2 and capsys.readouterr().err == (
      "lstmx: --ray: cannot reach a Ray cluster at '10.0.0.1:6379'\n")


def test_make_pool(tmp_path, monkeypatch):
  """Every CPU trial runs in a worker pinned to its cores, the one-worker sweep's too; this
  process only where it has exactly a worker's cores, or the experiment has no file."""
  monkeypatch.setattr(local_pool, "gpu_devices", lambda: [])
  monkeypatch.setattr(local_pool, "cpu_cores", lambda: [0, 1])
  opts = runner.SweepOptions
  inline = Experiment(name="inline")
  seen = []
  monkeypatch.setattr(runner, "warn", seen.append)
  assert isinstance(runner.make_pool(inline, opts(workers="auto"), 5), SerialPool)
  assert "no file" in seen[0] and "on its 2 cores" in seen[0]
  exp = load(_write(tmp_path))

  def cores(pool):
    assert isinstance(pool, local_pool.LocalPool)
    pool.close()
    return [s.cores for s in pool.slots]

  assert cores(runner.make_pool(exp, opts(workers=1), 5)) in ([(0,)], [(1,)])  # serial too
  assert len(cores(runner.make_pool(exp, opts(workers=3), 1))) == 1  # one pending trial
  assert cores(runner.make_pool(exp, opts(workers="auto"), 5)) == [(0,), (1,)]
  assert cores(runner.make_pool(exp, opts(workers=2), 5)) == [(0,), (1,)]
  assert isinstance(runner.make_pool(exp, opts(cores_per_trial="all"), 5), SerialPool)
  assert isinstance(runner.make_pool(exp, opts(workers="auto", cores_per_trial=2), 5),
                    SerialPool)  # one worker with every core: this process computes the same
  with pytest.raises(ValueError, match=r"cores_per_trial: expected at most 2 .*got 4"):
    runner.make_pool(exp, opts(cores_per_trial=4), 5)
  # A timed experiment: every core, auto is one trial at a time, an explicit count is kept.
  timed = dataclasses.replace(exp, timed=True)
  assert isinstance(runner.make_pool(timed, opts(workers="auto"), 5), SerialPool)
  assert cores(runner.make_pool(timed, opts(workers=2), 5)) == [(0, 1), (0, 1)]
  assert len(cores(runner.make_pool(timed, opts(workers="auto", cores_per_trial=1), 5))) == 1
  import types
  module = types.ModuleType("m")
  module.presets, module.TIMED = dict, True
  assert Experiment.from_module(module).timed and not exp.timed
  fake = types.ModuleType("lstmx.lab.ray_pool")
  fake.RayPool = lambda **kw: kw
  monkeypatch.setitem(sys.modules, "lstmx.lab.ray_pool", fake)
  assert runner.make_pool(exp, opts(ray=True, cpus_per_trial=2), 5) == {
      "address": None, "cpus_per_trial": 2}
  assert runner.make_pool(exp, opts(ray="h:1"), 5) == {"address": "h:1"}
  assert runner.make_pool(exp, opts(ray="h:1", cores_per_trial=4), 5) == {
      "address": "h:1", "cpus_per_trial": 4}


def test_a_rows_columns_do_not_depend_on_where_its_summary_came_from():
  fresh = {"status": "completed", "final": {"train": {"loss": 1.0}, "test": {"loss": 2.0}},
           "best": {"value": 1.0, "metric": "loss"}, "analysis": {"z": 1, "a": 2}}
  on_disk = json.loads(json.dumps(fresh, sort_keys=True))
  assert list(runner.result_row("t", {}, fresh)) == list(runner.result_row("t", {}, on_disk))


# --- loud failures -------------------------------------------------------------------------

def _failing(tmp_path, name="loud"):
  """An experiment file whose second configuration fails in training (an unknown task
  parameter), beside one that trains."""
  path = tmp_path / f"{name}.py"
  path.write_text(open(_write(tmp_path, name=f"{name}_base", steps=4)).read().replace(
      'sweep = [{"optimizer.lr": lr} for lr in (1e-2, 3e-3)]',
      'sweep = [{"optimizer.lr": 1e-2}, {"task.params.bogus": 1}]').replace(
      f"NAME = '{name}_base'", f"NAME = '{name}'"))
  return str(path)


def test_a_failed_trial_is_printed_as_it_happens_and_the_sweep_exits_1(tmp_path, capsys):
  script = _failing(tmp_path)
  args = ["--preset", "quick", "--out", str(tmp_path / "o"), "--cores-per-trial", "all"]
  with pytest.raises(SystemExit) as e:
    command.main(load(script), args)
  err = capsys.readouterr().err
  assert e.value.code == 1
  failed = [line for line in err.splitlines() if "failed: " in line and "trial " in line]
  assert len(failed) == 1 and "unknown parameter(s) ['bogus']" in failed[0]
  assert "failure.json" in failed[0]
  assert err.strip().splitlines()[-1].startswith("loud: 1 of 2 trials failed")
  results = pd.read_csv(tmp_path / "o" / "results.csv")  # the results are written first
  assert sorted(results["status"]) == ["completed", "failed"]
  command.main(load(script), args + ["--allow-failures"])  # exits 0: no SystemExit
  assert "1 of 2 trials failed" not in capsys.readouterr().err


NEEDS_DATA = textwrap.dedent('''
    """Classifies the digits (the [data] extra's scikit-learn)."""
    from lstmx.config import Config, TaskConfig, TrainConfig
    from lstmx.lab import Preset
    NAME = "needsdata"
    def presets():
      base = Config(task=TaskConfig(name="classify", params={"dataset": "digits"}),
                    train=TrainConfig(steps=2))
      return {"quick": Preset(base, [{"optimizer.lr": 1e-2}, {"optimizer.lr": 1e-3}])}
    ''')


def test_a_missing_package_stops_the_sweep_before_any_trial(tmp_path, capsys, monkeypatch):
  from lstmx.data import registry
  from lstmx.data.dataset import MissingDependencyError

  def missing(*args, **kwargs):
    raise MissingDependencyError("dataset 'digits' needs the optional package "
                                 "'scikit-learn==1.9.1', which is not installed; install it "
                                 "with `pip install -e '.[data]'`")

  entries = registry.DATASETS._entries  # noqa: SLF001
  monkeypatch.setitem(entries, "digits", dataclasses.replace(entries["digits"], loader=missing))
  script = tmp_path / "needsdata.py"
  script.write_text(NEEDS_DATA)
  out = tmp_path / "o"
  with pytest.raises(SystemExit) as e:
    command.main(load(str(script)), ["--out", str(out), "--cores-per-trial", "all"])
  err = capsys.readouterr().err.strip().splitlines()
  assert e.value.code == 1 and len(err) == 1, err
  assert err[0].startswith("needsdata: task 'classify' (needsdata/")
  assert "pip install -e '.[data]'" in err[0] and "no trial was started" in err[0]
  assert not (out / "trials").exists()
