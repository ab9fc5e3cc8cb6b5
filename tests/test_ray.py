"""Sweeps on Ray (lstmx.lab.ray_pool): a two-node local cluster gives the serial runner's
results, a node lost mid-sweep loses and duplicates nothing, and bad input (no Ray, an
unreachable address, bad resource counts) is one clear error.

The cluster runs in a subprocess inside a fresh network namespace (``unshare -rn``,
loopback up), so Ray's traffic stays on 127.0.0.1 (Ray 2.60 advertises the machine's
interface address otherwise); where namespaces or Ray are missing those tests skip.
"""

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

import pytest

from lstmx.lab import ray_pool
from lstmx.lab.ray_pool import RayPool, RayUnavailable, thread_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECK = os.path.join(ROOT, "tests", "ray_cluster_check.py")


# --- without a cluster --------------------------------------------------------------------

def test_thread_env_holds_xla_and_blas_to_the_threads():
  one = thread_env(1)
  assert one["XLA_FLAGS"] == "--xla_cpu_multi_thread_eigen=false"
  assert one["OMP_NUM_THREADS"] == one["MKL_NUM_THREADS"] == one["OPENBLAS_NUM_THREADS"] == "1"
  assert thread_env(1, "${XLA_FLAGS}")["XLA_FLAGS"] == (
      "${XLA_FLAGS} --xla_cpu_multi_thread_eigen=false")
  four = thread_env(4)
  assert four["OMP_NUM_THREADS"] == "4" and "XLA_FLAGS" not in four
  for bad in (0, -1, 1.5, True):
    with pytest.raises(ValueError, match="threads: expected an int >= 1"):
      thread_env(bad)


@pytest.mark.parametrize("kwargs, match", [
    ({"cpus_per_trial": 0}, "cpus_per_trial: expected a number > 0; got 0"),
    ({"cpus_per_trial": "2"}, "cpus_per_trial: expected a number > 0; got '2'"),
    ({"gpus_per_trial": -1}, "gpus_per_trial: expected a number >= 0; got -1"),
    ({"max_retries": -1}, "max_retries: expected an int >= 0; got -1"),
])
def test_bad_resources_are_refused_before_ray_starts(kwargs, match, monkeypatch):
  monkeypatch.setattr(ray_pool, "_import_ray", lambda: pytest.fail("imported ray"))
  with pytest.raises(ValueError, match=match):
    RayPool(**kwargs)


def test_without_ray_the_error_says_how_to_install_it(monkeypatch):
  monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
  with pytest.raises(RayUnavailable, match=r"pip install 'lstmx\[ray\]'") as e:
    RayPool()
  assert isinstance(e.value, ImportError) and isinstance(e.value, ValueError)


def _closed_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.parametrize("address", ["127.0.0.1:{port}", "localhost:{port}"])
def test_unreachable_address_is_a_clear_error(address):
  pytest.importorskip("ray")
  import ray
  address = address.format(port=_closed_port())
  with pytest.raises(ValueError, match=rf"--ray {address}: cannot reach a Ray cluster"):
    RayPool(address=address, connect_timeout=5)
  assert not ray.is_initialized()


def test_malformed_address_is_a_clear_error():
  pytest.importorskip("ray")
  with pytest.raises(ValueError, match="--ray no-port: expected HOST:PORT"):
    RayPool(address="no-port")


# --- a two-node cluster on loopback -------------------------------------------------------

def _namespace_or_skip() -> list[str]:
  """The unshare command that gives a private network namespace here: ``unshare -rn``
  (an unprivileged user namespace), else ``unshare -n`` (root); or the test skips."""
  if shutil.which("unshare") is None or shutil.which("ip") is None:
    pytest.skip("needs unshare and ip (util-linux, iproute2) for a private network namespace")
  errors = []
  for cmd in (["unshare", "-rn"], ["unshare", "-n"]):
    probe = subprocess.run([*cmd, "sh", "-c", "ip link set lo up"], capture_output=True,
                           text=True, timeout=60)
    if probe.returncode == 0:
      return cmd
    errors.append(f"{' '.join(cmd)}: {probe.stderr.strip()}")
  pytest.skip(f"no private network namespace here ({'; '.join(errors)})")


def _cluster_report():
  """Runs tests/ray_cluster_check.py in a fresh network namespace; its report.json."""
  pytest.importorskip("ray")
  unshare = _namespace_or_skip()
  out = tempfile.mkdtemp(prefix="lstmx-ray-")  # short: Ray's socket paths live under it
  env = {**os.environ, **thread_env(1), "RAY_TMPDIR": out,
         "PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}
  cmd = [*unshare, "sh", "-c", 'ip link set lo up && exec "$0" "$1" "$2"',
         sys.executable, CHECK, os.path.join(out, "sweeps")]
  proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, start_new_session=True)
  try:
    log, _ = proc.communicate(timeout=900)
  except subprocess.TimeoutExpired:
    os.killpg(proc.pid, signal.SIGKILL)
    log, _ = proc.communicate()
    pytest.fail(f"tests/ray_cluster_check.py timed out; its output:\n{log[-6000:]}")
  try:
    assert proc.returncode == 0, f"tests/ray_cluster_check.py failed:\n{log[-6000:]}"
    with open(os.path.join(out, "sweeps", "report.json")) as f:
      return json.load(f)
  finally:
    shutil.rmtree(out, ignore_errors=True)


def _same(a: dict, b: dict, key: str) -> bool:
  x, y = a.get(key), b.get(key)
  return x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x)
                    and math.isnan(y))


RESULT_KEYS = ("trial", "model.hidden_size", "status", "stop_reason", "steps", "param_count")


def _assert_same_results(got: list[dict], want: list[dict]) -> None:
  assert [r["trial"] for r in got] == [r["trial"] for r in want]
  for g, w in zip(got, want):
    metrics = [k for k in w if k.startswith(("final.", "best.", "task."))]
    assert metrics and set(metrics) <= set(g)
    for key in (*RESULT_KEYS, *metrics):  # bitwise: the same XLA/BLAS threads everywhere
      assert _same(g, w, key), (w["trial"], key, g.get(key), w.get(key))


def test_cluster_sweep_gives_the_serial_results_and_survives_a_lost_node():
  """One test (one cluster run, also under pytest -n): (a) a two-node sweep's table equals
  the serial runner's; (b) a sweep whose nodes are lost mid-trial finishes each trial
  once, with the same results."""
  report = _cluster_report()
  serial, ray = report["serial"], report["ray"]
  assert len(serial) == 3 and {r["status"] for r in serial} == {"completed"}
  _assert_same_results(ray, serial)
  for row in (*ray, *report["kill"]):  # each worker got its thread settings (runtime_env)
    assert row["analysis.xla_flags"] == (serial[0]["analysis.xla_flags"]
                                         + " --xla_cpu_multi_thread_eigen=false"), row
    assert str(row["analysis.omp_threads"]) == "1"

  serial, kill = serial[:2], report["kill"]  # the node-loss sweep: the first two trials
  assert report["lost"], "no trial was running when the nodes were removed"
  _assert_same_results(kill, serial)  # one row per trial, each completed, same metrics
  trials = [r["trial"] for r in serial]
  assert report["summaries"] == sorted(trials)
  steps = report["metrics_steps"]
  assert sorted(steps) == sorted(trials)
  for trial, logged in steps.items():  # resumed runs log each step once
    assert logged == sorted(set(logged)) and logged[-1] == serial[0]["steps"], (trial, logged)


# --- the pool's bookkeeping, on a stand-in for ray ----------------------------------------

class _Ref:  # an ObjectRef: hashable (a TrialSpec, holding a dict, is not)
  def __init__(self, spec):
    self.spec = spec


class _FakeRay:
  """Enough of ray for RayPool.run: tasks finish last-submitted first; a spec whose
  trial starts with "lost" raises Ray's error (its retries spent)."""

  class exceptions:  # noqa: N801 - mirrors ray.exceptions
    class RayError(Exception):
      pass

  def __init__(self):
    self.options, self.cancelled, self.shutdowns = None, [], 0

  def is_initialized(self):
    return True  # connected by the caller: RayPool neither connects nor disconnects

  def remote(self, **options):
    self.options = options
    return lambda fn: type("Task", (), {"remote": staticmethod(_Ref)})

  def wait(self, pending, num_returns):
    return pending[-num_returns:], pending[:-num_returns]

  def get(self, ref):
    spec = ref.spec
    if spec.trial.startswith("lost"):
      raise self.exceptions.RayError("node died")
    return {"status": "completed", "trial": spec.trial}

  def cancel(self, ref, force):
    self.cancelled.append((ref.spec.trial, force))

  def shutdown(self):
    self.shutdowns += 1


def _specs(tmp_path, names):
  from lstmx.lab.pool import TrialSpec
  return [TrialSpec(n, "", {}, str(tmp_path / n)) for n in names]


def test_pool_pairs_each_spec_with_its_summary_as_tasks_finish(tmp_path, monkeypatch):
  fake = _FakeRay()
  monkeypatch.setattr(ray_pool, "_import_ray", lambda: fake)
  pool = RayPool(cpus_per_trial=2, gpus_per_trial=0.5, max_retries=5)
  assert fake.options["num_cpus"] == 2 and fake.options["num_gpus"] == 0.5
  assert fake.options["max_retries"] == 5 and fake.options["retry_exceptions"] is False
  env = fake.options["runtime_env"]["env_vars"]
  assert env["OMP_NUM_THREADS"] == "2" and env["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.450"
  (tmp_path / "lost").mkdir()
  out = list(pool.run(_specs(tmp_path, ["a", "lost", "c"])))
  assert [s.trial for s, _ in out] == ["c", "lost", "a"]
  assert [m.get("trial") for _, m in out] == ["c", None, "a"]
  assert out[1][1]["status"] == "failed" and "node died" in out[1][1]["error"]
  with open(tmp_path / "lost" / "failure.json") as f:
    assert json.load(f)["status"] == "failed"
  pool.close()
  assert fake.shutdowns == 0 and fake.cancelled == []


def test_closing_the_results_early_cancels_the_rest(tmp_path, monkeypatch):
  fake = _FakeRay()
  monkeypatch.setattr(ray_pool, "_import_ray", lambda: fake)
  results = RayPool().run(_specs(tmp_path, ["a", "b", "c"]))
  assert next(results)[0].trial == "c"
  results.close()  # e.g. the runner interrupted
  assert fake.cancelled == [("a", True), ("b", True)]


def test_close_cancels_what_runs_and_keeps_a_connection_it_did_not_open(tmp_path, monkeypatch):
  fake = _FakeRay()
  monkeypatch.setattr(ray_pool, "_import_ray", lambda: fake)
  pool = RayPool()
  results = pool.run(_specs(tmp_path, ["a", "b"]))
  next(results)
  pool.close()  # e.g. the runner stopped by an error while trials run
  assert fake.cancelled == [("a", True)] and fake.shutdowns == 0


def test_workers_get_absolute_run_directories(tmp_path, monkeypatch):
  fake = _FakeRay()
  monkeypatch.setattr(ray_pool, "_import_ray", lambda: fake)
  monkeypatch.chdir(tmp_path)
  from lstmx.lab.pool import TrialSpec
  spec = TrialSpec("a", "", {}, os.path.join("runs", "a"))
  submitted = []
  monkeypatch.setattr(fake, "get", lambda ref: submitted.append(ref.spec) or {"status": "x"})
  [(back, _)] = list(RayPool().run([spec]))
  assert back is spec and submitted[0].workdir == str(tmp_path / "runs" / "a")
