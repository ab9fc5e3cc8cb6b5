"""The hidden-parallel preset: hidden units over a ``model`` mesh axis (8 fake
CPU devices), checked against the reference layer and single-device training."""

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import lstmx
from lstmx import backends, models, optim, sharding, tasks
from lstmx.config import override
from lstmx.train import init_state, make_train_step, train_and_evaluate
from helpers import assert_trees_close, random_problem, value_and_grads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))
import smoke  # noqa: E402

pytestmark = pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (fake) CPU devices")


def _mesh(data, model):
  return Mesh(np.array(jax.devices()[:data * model]).reshape(data, model), ("data", "model"))


@pytest.mark.parametrize("data,model,bidirectional,masked", [
    (1, 8, False, False), (2, 4, True, True), (4, 2, False, True)])
def test_values_and_gradients_match_reference(x64, data, model, bidirectional, masked):
  params, x, lens, state = random_problem(3, 4, 9, 5, 8, num_layers=2,
                                          bidirectional=bidirectional, masked=masked)
  want = value_and_grads(params, x, lens, state, "reference")
  with jax.set_mesh(_mesh(data, model)):
    assert backends.resolve("auto") is backends.Backend.HIDDEN_PARALLEL
    got = value_and_grads(params, x, lens, state, "auto")
  assert_trees_close(got, want, rtol=1e-10, atol=1e-12)


def test_regularized_matches_reference_under_the_same_masks(x64):
  params, x, lens, state = random_problem(5, 4, 7, 3, 8, masked=True)
  reg = lstmx.Regularization(recurrent_dropout=0.3, zoneout_h=0.2, zoneout_c=0.4,
                             weight_drop=0.2, layer_dropout=0.1)
  kw = dict(regularization=reg, key=jax.random.key(7), deterministic=False)
  want = value_and_grads(params, x, lens, state, "reference", **kw)
  with jax.set_mesh(_mesh(2, 4)):
    got = value_and_grads(params, x, lens, state, "hidden_parallel", **kw)
  assert_trees_close(got, want, rtol=1e-10, atol=1e-12)


def test_the_step_all_gathers_h_and_keeps_c_local():
  params, x, _, _ = random_problem(0, 4, 5, 3, 8, dtype=jnp.float32)
  with jax.set_mesh(_mesh(1, 8)):
    jaxpr = str(jax.make_jaxpr(lambda p, x: lstmx.lstm(p, x, backend="auto"))(params, x))
  assert "shard_map" in jaxpr and "all_gather" in jaxpr
  assert backends.resolve("auto") is backends.Backend.SCAN  # no ambient mesh


def test_bad_hidden_parallel_calls_raise():
  params, x, _, _ = random_problem(0, 4, 5, 3, 6, dtype=jnp.float32)
  with jax.set_mesh(_mesh(1, 4)):
    with pytest.raises(ValueError, match=r"hidden size must be divisible by the 'model' "
                                         r"axis size 4; got hidden size 6"):
      lstmx.lstm(params, x, backend="hidden_parallel")
  with pytest.raises(ValueError, match=r"needs a mesh with a 'model' axis"):
    lstmx.lstm(params, x, backend="hidden_parallel")
  with pytest.raises(ValueError, match=r"sharding.model_axis: expected a divisor of the "
                                       r"device count 8; got 3"):
    sharding.make_mesh(model=3)


def test_shardings_survive_a_step():
  cfg = smoke.base()
  task = tasks.make(cfg.task.name, **cfg.task.params)
  tx = optim.build(cfg.optimizer, 10)
  rules, mesh = sharding.hidden_parallel(), sharding.mesh_for("hidden_parallel", 4)
  assert dict(mesh.shape) == {"data": 2, "model": 4}
  build = lambda: init_state(models.build(cfg.model, task.input_size, task.output_size,  # noqa
                                          seed=0), tx, 0)
  graphdef, _ = build()
  with jax.set_mesh(mesh):
    state = sharding.create_sharded(lambda: build()[1], rules, mesh)
    w_hh = [v for p, v in jax.tree_util.tree_leaves_with_path(state.params)
            if "w_hh" in jax.tree_util.keystr(p)][0]
    assert w_hh.sharding.spec == P(None, "model")
    batch = sharding.place_batch(jax.device_get(task.sample(jax.random.key(0), 16)), rules,
                                 mesh)
    before = jax.tree.map(lambda x: x.sharding, state)
    new, _ = jax.jit(make_train_step(graphdef, task, tx))(state, batch)
  after = jax.tree.map(lambda x: x.sharding, new)
  for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
    assert isinstance(b, NamedSharding) and a.is_equivalent_to(b, 2)


def _losses(workdir):
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  return np.array([r["loss"] for r in rows])


@pytest.mark.parametrize("model_axis", [8, 4])
def test_hidden_parallel_training_matches_single_device(tmp_path, model_axis):
  cfg = override(smoke.base(), ["train.progress=false", "train.steps=30"])
  train_and_evaluate(cfg, str(tmp_path / "one"))
  summary = train_and_evaluate(
      override(cfg, ["sharding.preset=hidden_parallel", f"sharding.model_axis={model_axis}"]),
      str(tmp_path / "hp"))
  assert summary["backend"] == "hidden_parallel"
  np.testing.assert_allclose(_losses(tmp_path / "hp"), _losses(tmp_path / "one"),
                             rtol=1e-4, atol=1e-5)
