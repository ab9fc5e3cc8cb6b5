"""Iterate averaging and NT-ASGD (Merity et al. 2017): the optax transform, the
trigger, and the training engine's use of the average."""

import dataclasses
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from lstmx import optim
from lstmx.config import OptimizerConfig, override
from lstmx.train import Checkpoints, init_state, train_and_evaluate
from lstmx.train.loop import evaluate
from lstmx.train.restore import build, load_trained
from lstmx.train.step import ModelDef, make_eval_step

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))
import smoke  # noqa: E402


def _sgd_iterates(tx, params, grads_seq):
  state, out = tx.init(params), []
  for g in grads_seq:
    updates, state = tx.update(g, state, params)
    params = optax.apply_updates(params, updates)
    out.append(params)
  return out, state


def _grads(n):
  return [{"w": jnp.asarray(np.random.default_rng(i).normal(size=(3, 2)), jnp.float32)}
          for i in range(n)]


def test_always_averages_every_iterate():
  tx = optax.chain(optax.sgd(0.1), optim.averaging(active=True))
  iterates, state = _sgd_iterates(tx, {"w": jnp.ones((3, 2))}, _grads(7))
  want = np.mean([np.asarray(p["w"]) for p in iterates], axis=0)
  np.testing.assert_allclose(optim.eval_params(None, state)["w"], want, rtol=1e-6)
  assert int(optim._averaging_state(state).count) == 7


def test_inactive_follows_params_and_switch_starts_at_next_iterate():
  tx = optax.chain(optax.sgd(0.1), optim.averaging())
  params = {"w": jnp.ones((3, 2))}
  grads = _grads(9)
  first, state = _sgd_iterates(tx, params, grads[:4])
  assert not optim.averaging_active(state)
  np.testing.assert_array_equal(optim.eval_params(first[-1], state)["w"], first[-1]["w"])
  np.testing.assert_array_equal(optim._averaging_state(state).average["w"], first[-1]["w"])
  state = optim.start_averaging(state)
  assert optim.averaging_active(state)
  p = first[-1]
  later = []
  for g in grads[4:]:
    updates, state = tx.update(g, state, p)
    p = optax.apply_updates(p, updates)
    later.append(np.asarray(p["w"]))
  np.testing.assert_allclose(optim.eval_params(p, state)["w"], np.mean(later, axis=0), rtol=1e-6)
  # The optimizer itself is untouched by averaging: same iterates as plain SGD.
  plain, _ = _sgd_iterates(optax.sgd(0.1), params, grads)
  np.testing.assert_array_equal(p["w"], plain[-1]["w"])


def test_start_averaging_without_averaging_is_a_no_op():
  state = optax.adam(1e-3).init({"w": jnp.ones(2)})
  assert optim.start_averaging(state) is not None
  assert not optim.averaging_active(state)
  assert optim.eval_params("p", state) == "p"


@pytest.mark.parametrize("history,nonmono,fired", [
    ([5, 4, 3], 2, False),            # too short: needs more than nonmono earlier values
    ([5, 4, 3, 3.5], 2, False),       # 3.5 is not worse than min([5])
    ([5, 4, 3, 2, 4.5], 2, True),     # 4.5 > min([5, 4])
    ([5, 4, 3, 2, 3.9], 2, False),
    ([1, 2], 0, True),                # nonmono 0: any value worse than the best so far
])
def test_nt_trigger_matches_awd_rule(history, nonmono, fired):
  assert optim.nt_triggered(history, nonmono) is fired
  # The "max" mode is the mirror image.
  assert optim.nt_triggered([-h for h in history], nonmono, "max") is fired


def test_bad_averaging_config_raises():
  with pytest.raises(ValueError, match=r"optimizer.averaging: expected one of .*got 'polyak'"):
    optim.build(OptimizerConfig(averaging="polyak"), 10)
  with pytest.raises(ValueError, match=r"optimizer.nonmono: expected an int >= 0; got -1"):
    optim.build(OptimizerConfig(averaging="nt", nonmono=-1), 10)


def _nt_config(steps):
  cfg = override(smoke.base(), ["optimizer.name=sgd", "optimizer.momentum=0.0",
                                "optimizer.lr=0.5", "optimizer.averaging=nt",
                                "optimizer.nonmono=1", f"train.steps={steps}",
                                "train.eval_every=5", "train.checkpoint_every=5"])
  return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, progress=False))


def test_nt_asgd_run_triggers_evaluates_average_and_resumes(tmp_path):
  cfg = _nt_config(60)
  summary = train_and_evaluate(cfg, str(tmp_path / "full"))
  start = summary["averaging"]["start_step"]
  assert summary["averaging"]["mode"] == "nt" and start is not None and start < 60, summary
  # The final metrics are those of the averaged parameters.
  task, model = load_trained(cfg, str(tmp_path / "full"))
  ck = Checkpoints(str(tmp_path / "full"), 2)
  _, target = init_state(build(cfg)[1], optim.build(cfg.optimizer, 60), cfg.train.seed)
  state, meta = ck.restore_latest(target)
  ck.close()
  s = optim._averaging_state(state.opt_state)
  assert bool(s.active) and int(s.count) == 60 - start
  assert meta["averaging_step"] == start
  leaves = jax.tree.leaves
  assert any(not np.array_equal(a, b) for a, b in zip(leaves(s.average), leaves(state.params)))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  ev = evaluate(jax.jit(make_eval_step(ModelDef(graphdef, rest), task)), params, task,
                "validation", cfg.train.batch_size,
                cfg.train.eval_batches * cfg.train.batch_size)
  assert ev["loss"] == pytest.approx(summary["final"]["validation"]["loss"], rel=1e-6)

  # Stopping at a checkpoint after the trigger and extending resumes the
  # average, its count and the trigger history exactly.
  half = _nt_config(start + 5)
  train_and_evaluate(half, str(tmp_path / "split"))
  resumed = train_and_evaluate(cfg, str(tmp_path / "split"), force=True)
  assert resumed["averaging"] == summary["averaging"]
  assert resumed["final"] == summary["final"]


def test_nt_asgd_under_data_parallel_sharding(tmp_path):
  """Switching averaging on keeps the state's shardings (the compiled step
  would reject it otherwise)."""
  assert jax.device_count() == 8
  cfg = override(_nt_config(60), ["sharding.preset=data_parallel"])
  summary = train_and_evaluate(cfg, str(tmp_path))
  assert summary["status"] == "completed"
  assert summary["averaging"]["start_step"] is not None
