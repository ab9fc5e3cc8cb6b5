"""Checks specific to single experiments beyond the generic ones of
``test_experiment.py``: matched parameter counts (non_sequential, compute) and
the compute experiment's measuring and fitting helpers."""

import collections
import importlib.util
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstmx import models, tasks
from lstmx.lab import sweep
from lstmx.config import ModelConfig
from lstmx.tasks.datasets import resolve_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name):
  path = os.path.join(ROOT, "experiments", f"{name}.py")
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope="module")
def non_sequential():
  return _load("non_sequential")


@pytest.fixture(scope="module")
def compute():
  return _load("compute")


@pytest.mark.parametrize("preset", ["tiny", "quick"])
def test_non_sequential_param_counts_match_per_dataset(non_sequential, preset):
  """Counted from the built configs and the real tasks, not the experiment's own numbers."""
  p = non_sequential.presets()[preset]
  counts = collections.defaultdict(dict)
  for ov in p.sweep:
    cfg = sweep.apply(p.base, ov)
    key = (ov["meta.dataset"], ov["meta.model"])
    if key[1] in counts[key[0]]:
      continue
    task = tasks.make(cfg.task.name, **resolve_params(cfg.task.params, 0))
    counts[key[0]][key[1]] = models.param_count(cfg.model, task.input_size,
                                                task.output_size, task.length)
  assert counts
  for dataset, by_model in counts.items():
    if preset == "quick":
      expected = (non_sequential.IMAGE_MODELS if dataset in non_sequential.IMAGES
                  else non_sequential.TABLE_MODELS)
      assert set(by_model) == set(expected) & set(non_sequential.QUICK_MODELS), dataset
    spread = max(by_model.values()) / min(by_model.values()) - 1
    assert spread <= 0.10, (dataset, by_model)


def test_non_sequential_shapes_agree_with_the_tasks(non_sequential):
  for dataset in [*non_sequential.IMAGES, *non_sequential.TABLES]:
    if dataset in non_sequential.FETCHED:
      continue  # needs scripts/fetch_data.py
    layouts = ("rows", "pixels") if dataset in non_sequential.IMAGES else ("sequence",)
    for layout in layouts:
      ov = non_sequential.task_overrides(dataset, layout)
      task = tasks.make(ov["task.name"], dataset=dataset, layout=layout)
      assert non_sequential.shape(dataset, layout) == (task.length, task.input_size,
                                                      task.output_size)


def test_non_sequential_quick_has_seeds_and_no_fetched_data(non_sequential):
  presets = non_sequential.presets()
  for name in ("tiny", "quick"):
    assert not {ov["meta.dataset"] for ov in presets[name].sweep} & set(non_sequential.FETCHED)
  # Seeds come from the preset (the runner crosses the sweep with them), not the sweep.
  trials = collections.Counter((ov["meta.dataset"], ov["meta.model"])
                               for ov in presets["quick"].sweep)
  assert set(trials.values()) == {1} and presets["quick"].seeds >= 3
  assert not any("train.seed" in ov for p in presets.values() for ov in p.sweep)
  assert {ov["meta.dataset"] for ov in presets["full"].sweep} >= set(non_sequential.FETCHED)


def test_compute_transformer_matches_the_lstm(compute):
  hiddens = {ov["meta.hidden"] for p in compute.presets().values() for ov in p.sweep}
  for h in sorted(hiddens):
    lstm = models.param_count(ModelConfig(hidden_size=h), 2, 1)
    tr = models.param_count(ModelConfig(kind="transformer", num_heads=compute.TRANSFORMER.num_heads,
                                        hidden_size=compute.transformer_width(h)), 2, 1)
    assert abs(tr - lstm) / lstm <= 0.10, (h, lstm, tr)


def test_compute_device_trials_divide_the_batch(compute):
  for p in compute.presets().values():
    for ov in p.sweep:
      if ov.get("sharding.preset") == "data_parallel":
        assert ov["train.batch_size"] % max(compute.DEVICE_COUNTS) == 0


def test_compute_slope_and_crossover(compute):
  T = np.array([8, 32, 128, 512])
  assert compute.slope(T, 3e-6 * T ** 2) == pytest.approx(2.0)
  assert math.isnan(compute.slope([8], [1.0]))
  lstm, transformer = 1e-3 * T, 1e-5 * T ** 2  # equal at T = 100
  assert compute.crossover(T, lstm, transformer) == pytest.approx(100, rel=1e-6)
  assert compute.crossover(T, lstm, 2 * lstm) is None  # always slower: no crossover
  assert compute.crossover(T, lstm, 0.5 * lstm) is None  # always faster


def test_compute_measure_reports_time_compile_and_memory(compute):
  def step(state, batch):
    state = state + jnp.sum(batch["x"] ** 2)
    return state, {"loss": state}
  out = compute.measure(jax.jit(step, donate_argnums=0), jnp.zeros(()),
                        {"x": jnp.ones((64, 64))}, budget_s=0.05)
  assert out["compile_time"] > 0 and out["step_time"] > 0 and out["calls"] >= 3
  assert out["step_time_min"] <= out["step_time"]
  if "peak_bytes" in out:  # memory analysis exists on CPU and GPU
    assert out["argument_bytes"] >= 64 * 64 * 4 and out["peak_bytes"] > 0
