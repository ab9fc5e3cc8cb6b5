"""A sweep on a local two-node Ray cluster, for tests/test_ray.py (run there inside a
fresh network namespace, so Ray talks over loopback only):

    unshare -rn sh -c 'ip link set lo up && exec python tests/ray_cluster_check.py OUT'

Writes a small experiment file (three trials) into OUT, then runs its sweep
1. serially in this process (the reference), ``OUT/serial``, while the cluster starts;
2. on a cluster of a CPU-less head and two one-CPU worker nodes, ``OUT/ray``;
3. its first two trials again there, ``OUT/kill``: once a running trial has a
   checkpoint (and no summary), both worker nodes are removed, then a fresh two-CPU
   node added, so the running trials are lost mid-run and their tasks retried there;
and writes ``OUT/report.json``: each results table, the trials lost with their
latest checkpoint step (``lost``), the kill run's metrics steps and summaries.
The caller sets this process's XLA/BLAS threads (`lstmx.lab.ray_pool.thread_env(1)`),
the same as the Ray workers get, so the serial and Ray runs compare bitwise.
"""

import glob
import json
import os
import sys
import threading
import time
import warnings

# Starting Ray's processes after jax: subprocess's fork+exec is safe.
warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)

STEPS = int(os.environ.get("LSTMX_RAY_CHECK_STEPS", "200"))

EXPERIMENT = f'''"""A tiny copy-task sweep for the Ray tests."""
import os

from lstmx.config import Config, ModelConfig, OptimizerConfig, TaskConfig, TrainConfig
from lstmx.lab.experiment import Preset

NAME = "ray_check"


def presets():
  base = Config(
      name="ray_check", model=ModelConfig(hidden_size=8),
      task=TaskConfig(name="copy", params={{"delay": 5, "num_symbols": 3, "num_categories": 4}}),
      optimizer=OptimizerConfig(name="adam", lr=1e-2),
      train=TrainConfig(steps={STEPS}, batch_size=8, log_every=50, eval_every={STEPS},
                        eval_batches=1, checkpoint_every=25, progress=False))
  sweep = [{{"model.hidden_size": h}} for h in (4, 6, 8)]
  return {{"tiny": Preset(base, sweep), "quick": Preset(base, sweep[:2])}}


def analyze(config, workdir):  # the thread settings of the process that trained
  return {{"xla_flags": os.environ.get("XLA_FLAGS", ""),
           "omp_threads": os.environ.get("OMP_NUM_THREADS", "")}}
'''

NODE = {"node_ip_address": "127.0.0.1"}


def _running_with_checkpoint(out: str) -> dict[str, int]:
  """{trial: latest finished checkpoint step} of the trials that have one and no summary."""
  found = {}
  for trial in glob.glob(os.path.join(out, "trials", "*")):
    steps = [int(s) for s in os.listdir(os.path.join(trial, "checkpoints", "latest"))
             if s.isdigit()] if os.path.isdir(os.path.join(trial, "checkpoints", "latest")) else []
    if steps and not os.path.exists(os.path.join(trial, "summary.json")):
      found[os.path.basename(trial)] = max(steps)
  return found


def _metrics_steps(out: str) -> dict[str, list[int]]:
  steps = {}
  for path in glob.glob(os.path.join(out, "trials", "*", "metrics.jsonl")):
    with open(path) as f:
      rows = [json.loads(line) for line in f if line.strip()]
    steps[os.path.basename(os.path.dirname(path))] = [r["step"] for r in rows
                                                       if r.get("split") == "train"]
  return steps


def _table(results) -> list[dict]:
  """The results table as JSON-ready rows (floats exact: json writes repr)."""
  return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
          for row in results.to_dict(orient="records")]


class _Thread:
  """Runs `fn` in a thread; `join` re-raises its exception here."""

  def __init__(self, fn):
    self.done, self.errors = threading.Event(), []

    def target():
      try:
        fn()
      except BaseException as e:  # noqa: BLE001 - re-raised by join
        self.errors.append(e)
      finally:
        self.done.set()

    self.thread = threading.Thread(target=target, daemon=True)
    self.thread.start()

  def join(self, timeout: float = 600) -> None:
    self.thread.join(timeout)
    if self.thread.is_alive():
      raise TimeoutError(f"a sweep still runs after {timeout} s")
    if self.errors:
      raise self.errors[0]


def main(out: str) -> None:
  from ray.cluster_utils import Cluster

  from lstmx.lab import runner
  from lstmx.lab.experiment import load
  from lstmx.lab.ray_pool import RayPool

  os.makedirs(out, exist_ok=True)
  path = os.path.join(out, "ray_check.py")
  with open(path, "w") as f:
    f.write(EXPERIMENT)
  exp = load(path)
  report, t0 = {"times": {}}, time.time()

  def run(name, pool=None, preset="tiny"):
    results = runner.run(exp, preset, os.path.join(out, name), progress=False,
                         report=False, pool=pool)
    report[name] = _table(results)
    report["times"][name] = time.time() - t0

  serial = _Thread(lambda: run("serial"))  # while the cluster starts
  cluster = Cluster(initialize_head=True, head_node_args={
      **NODE, "num_cpus": 0, "include_dashboard": False,
      "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 4}})
  try:
    workers = [cluster.add_node(num_cpus=1, **NODE) for _ in range(2)]
    report["times"]["cluster"] = time.time() - t0
    serial.join()
    run("ray", RayPool(address=cluster.address))

    # The sweep runs in a thread; Cluster.add_node must run in the main thread.
    sweep = _Thread(lambda: run("kill", RayPool(address=cluster.address), preset="quick"))
    kill_dir = os.path.join(out, "kill")
    while not sweep.done.is_set() and not _running_with_checkpoint(kill_dir):
      time.sleep(0.05)
    # Lose every node a trial can run on: a running trial that has a checkpoint is lost.
    killed = _running_with_checkpoint(kill_dir)
    for node in workers:
      cluster.remove_node(node, allow_graceful=False)
    report["lost"] = {t: s for t, s in killed.items()
                      if not os.path.exists(os.path.join(kill_dir, "trials", t, "summary.json"))}
    report["times"]["killed"] = time.time() - t0
    cluster.add_node(num_cpus=2, **NODE)
    sweep.join()
    report["metrics_steps"] = _metrics_steps(os.path.join(out, "kill"))
    report["summaries"] = sorted(
        os.path.basename(os.path.dirname(p))
        for p in glob.glob(os.path.join(out, "kill", "trials", "*", "summary.json")))
  finally:
    cluster.shutdown()
  with open(os.path.join(out, "report.json"), "w") as f:
    json.dump(report, f, indent=1)


if __name__ == "__main__":
  main(sys.argv[1])
