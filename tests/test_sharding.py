"""Sharding on 8 fake CPU devices and training across two processes on localhost."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from lstmx import models, optim, sharding, tasks
from lstmx.config import override
from lstmx.train import init_state, make_train_step, train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))
import smoke  # noqa: E402

needs_8 = pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (fake) CPU devices")


def _losses(workdir):
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  return np.array([r["loss"] for r in rows])


def test_rules_spec_and_collision():
  rules = sharding.ShardingRules((("batch", "data"), ("gates", "data")))
  assert rules.spec(("batch", None)) == P("data", None)
  with pytest.raises(ValueError, match="use one mesh axis twice"):
    rules.spec(("batch", "gates"))
  with pytest.raises(ValueError, match="sharding.preset: expected one of"):
    sharding.preset("pipeline")


@needs_8
def test_shardings_survive_a_step():
  cfg = smoke.base()
  task = tasks.make(cfg.task.name, **cfg.task.params)
  tx = optim.build(cfg.optimizer, 10)
  rules, mesh = sharding.data_parallel(), sharding.make_mesh()
  build = lambda: init_state(models.build(cfg.model, task.input_size, task.output_size,  # noqa
                                          seed=0), tx, 0)
  graphdef, _ = build()
  state = sharding.create_sharded(lambda: build()[1], rules, mesh)
  batch = sharding.place_batch(jax.device_get(task.sample(jax.random.key(0), 16)), rules, mesh)
  assert batch["inputs"].sharding.spec == P("data", None, None)
  assert len(batch["inputs"].sharding.device_set) == 8
  before = jax.tree.map(lambda x: x.sharding, state)
  new, _ = jax.jit(make_train_step(graphdef, task, tx))(state, batch)
  after = jax.tree.map(lambda x: x.sharding, new)
  for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
    assert isinstance(b, NamedSharding) and a.is_equivalent_to(b, 2)


@needs_8
def test_data_parallel_matches_single_device(tmp_path):
  cfg = override(smoke.base(), ["train.progress=false", "train.steps=30"])
  train_and_evaluate(cfg, str(tmp_path / "one"))
  train_and_evaluate(override(cfg, ["sharding.preset=data_parallel"]), str(tmp_path / "dp"))
  np.testing.assert_allclose(_losses(tmp_path / "dp"), _losses(tmp_path / "one"),
                             rtol=1e-4, atol=1e-5)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_match_single_process(tmp_path):
  base = [sys.executable, "-m", "lstmx", "train", os.path.join(ROOT, "experiments/smoke.py"),
          "--set", "train.progress=false", "--set", "train.steps=30"]
  env = dict(os.environ, XLA_FLAGS="")
  subprocess.run(base + ["--workdir", str(tmp_path / "single")], env=env, check=True,
                 capture_output=True)
  port = _free_port()
  procs = [subprocess.Popen(base + ["--workdir", str(tmp_path / "multi"),
                                    "--set", "sharding.preset=data_parallel",
                                    "--coordinator", f"127.0.0.1:{port}",
                                    "--num-processes", "2", "--process-id", str(i)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
           for i in range(2)]
  outs = [p.communicate(timeout=300)[0].decode() for p in procs]
  assert all(p.returncode == 0 for p in procs), outs
  summary = json.load(open(tmp_path / "multi" / "summary.json"))
  assert len(summary["devices"]) == 2
  np.testing.assert_allclose(_losses(tmp_path / "multi"), _losses(tmp_path / "single"),
                             rtol=1e-4, atol=1e-5)
