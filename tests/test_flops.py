"""The analytic FLOP counts (`lstmx.flops`) against XLA's cost analysis of the
compiled forward + backward, within 5 %."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import lstmx
from lstmx import flops
from lstmx.compile_stats import compile_stats
from lstmx.models import ModelConfig, build

TOLERANCE = 0.05


def xla_flops(fn, *args) -> float:
  return compile_stats(jax.jit(fn).lower(*args).compile())["flops"]


def test_lstm_matches_xla_on_an_unrolled_step_loop():
  B, T, D, H, O = 16, 6, 32, 256, 8
  rng = np.random.default_rng(0)
  params = lstmx.init_lstm(jax.random.key(0), D, H)[0][0]
  head = jnp.asarray(rng.standard_normal((H, O)) / np.sqrt(H), jnp.float32)
  x = jnp.asarray(rng.standard_normal((B, T, D)), jnp.float32)
  weights = jnp.asarray(rng.standard_normal((B, T, O)), jnp.float32)

  def loss(params, head, x):
    carry = (jnp.zeros((B, H), jnp.float32), jnp.zeros((B, H), jnp.float32))
    ys = []
    for t in range(T):  # a Python loop: XLA sees (and counts) every step
      carry, h = lstmx.lstm_step(params, carry, x[:, t])
      ys.append(h @ head)
    return jnp.sum(weights * jnp.stack(ys, axis=1))

  got = xla_flops(jax.grad(loss, argnums=(0, 1, 2)), params, head, x)
  want = flops.lstm_flops(B, T, D, H, O=O)
  assert got == pytest.approx(want, rel=TOLERANCE)
  # The forward alone is a third of it.
  assert xla_flops(loss, params, head, x) == pytest.approx(want / 3, rel=TOLERANCE)


@pytest.mark.parametrize("attention", ["naive", "fused"])
def test_transformer_matches_xla(attention):
  B, T, D, d, O, layers = 8, 32, 4, 128, 3, 1
  cfg = ModelConfig(kind="transformer", hidden_size=d, num_heads=2, num_layers=layers,
                    attention=attention)
  graphdef, params = nnx.split(build(cfg, D, O, seed=0, max_length=T), nnx.Param)
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.standard_normal((B, T, D)), jnp.float32)
  weights = jnp.asarray(rng.standard_normal((B, T, O)), jnp.float32)

  def loss(params, x):
    return jnp.sum(weights * nnx.merge(graphdef, params)(x))

  got = xla_flops(jax.grad(loss, argnums=(0, 1)), params, x)
  want = flops.transformer_flops(B, T, d, num_layers=layers, D=D, O=O)
  assert got == pytest.approx(want, rel=TOLERANCE)
  if attention == "fused":
    return
  # The T^2 term is what grows with T: doubling T more than doubles the count.
  x2 = jnp.concatenate([x, x], axis=1)
  w2 = jnp.concatenate([weights, weights], axis=1)
  got2 = xla_flops(jax.grad(lambda p, x: jnp.sum(w2 * nnx.merge(graphdef, p)(x)),
                            argnums=(0, 1)), params, x2)
  assert got2 == pytest.approx(flops.transformer_flops(B, 2 * T, d, num_layers=layers, D=D,
                                                       O=O), rel=TOLERANCE)


def test_formulas_and_errors():
  assert flops.lstm_flops(2, 3, 5, 7, train=False) == 2 * 2 * 3 * (5 + 7) * 4 * 7
  assert flops.transformer_flops(2, 3, 8, train=False) == 24 * 2 * 3 * 64 + 4 * 2 * 9 * 8
  assert flops.lstm_flops(1, 1, 1, 1, num_layers=2) == 3 * (2 * 2 * 4 + 2 * 2 * 4)
  with pytest.raises(ValueError, match=r"H: expected a positive int; got 0"):
    flops.lstm_flops(1, 1, 1, 0)


def test_compute_experiment_reports_memory_as_measured_ratios():
  import importlib.util
  import os

  import pandas as pd
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "experiments", "compute.py")
  spec = importlib.util.spec_from_file_location("compute", path)
  compute = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(compute)
  cfg = ModelConfig(kind="transformer", hidden_size=16, num_heads=2)
  assert compute.analytic_flops(cfg, 4, 8) == flops.transformer_flops(4, 8, 16, D=2, O=1)
  peak = {"lstm_scan": {8: 1.0, 64: 8.0}, "lstm_scan_remat32": {8: 1.0, 64: 2.0},
          "transformer": {8: 2.0, 64: 40.0}, "transformer_naive": {8: 2.0, 64: 50.0}}
  rows = [{"meta.model": m, "meta.length": t, "meta.hidden": 32, "meta.batch": 4,
           "train.seed": s, "status": "completed", "analysis.step_time": 1e-3 * t,
           "analysis.peak_bytes": 2**20 * v * (1 + 0.01 * s)}
          for m, by_t in peak.items() for t, v in by_t.items() for s in range(2)]
  lines = compute.findings(pd.DataFrame(rows))
  ratios = [line for line in lines if line.startswith("Peak memory, measured ratios")]
  assert len(ratios) == 1 and "lstm_scan_remat32 / lstm_scan 1.00x at T=8, 0.25x at T=64" \
      in ratios[0] and "transformer_naive / transformer 1.00x at T=8, 1.25x at T=64" in ratios[0]
  assert any("lstm_scan 8.00x (T=8 to 64" in line for line in lines)
  assert not any("Peak memory grows as T^" in line for line in lines)
