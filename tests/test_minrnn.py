"""minLSTM / minGRU (`lstmx.models.minrnn`): the log-space parallel scan equals the plain
sequential recurrence (values and gradients, with padding), the stable log-coefficients equal
the paper's gates, and the kinds work from configs (shape, causality, padding, learning and
size matching run with every kind in tests/test_models.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lstmx import models
from lstmx.config import ModelConfig
from lstmx.models import minrnn


@pytest.mark.parametrize("kind", ["minlstm", "mingru"])
def test_log_coefficients_are_the_papers_gates(kind):
  n = 3 if kind == "minlstm" else 2
  k = 3.0 * jax.random.normal(jax.random.key(0), (5, 2, n * 4), jnp.float32)
  log_f, log_v = minrnn.log_coefficients(kind, k)
  if kind == "minlstm":
    f, i, h = jax.nn.sigmoid(k[..., :4]), jax.nn.sigmoid(k[..., 4:8]), minrnn.g(k[..., 8:])
    want_f, want_v = f / (f + i), i / (f + i) * h
  else:
    z, h = jax.nn.sigmoid(k[..., :4]), minrnn.g(k[..., 4:])
    want_f, want_v = 1 - z, z * h
  # (1 - z and f / (f + i) lose digits in float32 that the log forms keep)
  np.testing.assert_allclose(jnp.exp(log_f), want_f, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(jnp.exp(log_v), want_v, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(jnp.exp(minrnn.log_g(k)), minrnn.g(k), rtol=1e-6)


@pytest.mark.parametrize("kind", ["minlstm", "mingru"])
def test_parallel_equals_sequential_values_and_gradients(x64, kind):
  """Whole model, two layers, T = 300 with padding; float64, tight tolerances."""
  B, T, D = 3, 300, 4
  cfg = ModelConfig(kind=kind, hidden_size=6, num_layers=2)
  model = models.build(cfg, D, 2, seed=0)
  graphdef, params = nnx.split(model, nnx.Param)
  params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
  x = jax.random.normal(jax.random.key(1), (B, T, D), jnp.float64)
  lengths = jnp.array([300, 123, 1])  # int64 under x64, as valid_steps' arange
  y_par, g_par = _parallel_equals_sequential(graphdef, params, x, lengths)
  # Padded steps: the head's bias only (the state output is zero), no gradient to x.
  assert np.all(np.asarray(g_par[1])[1, 123:] == 0.0)


def _parallel_equals_sequential(graphdef, params, x, lengths):
  """Checks the parallel and sequential scans give the same outputs and gradients (to
  the parameters and `x`) of a fixed random projection, in float64; returns the
  parallel (outputs, gradients)."""
  w = jax.random.normal(jax.random.key(2), x.shape[:2] + (2,), jnp.float64)

  def loss(p, x, parallel):
    y = nnx.merge(graphdef, p)(x, lengths, parallel=parallel)
    return jnp.sum(w * y), y

  (_, y_par), g_par = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, x, True)
  (_, y_seq), g_seq = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, x, False)
  np.testing.assert_allclose(y_par, y_seq, rtol=1e-9, atol=1e-10)
  for a, b in zip(jax.tree.leaves(g_par), jax.tree.leaves(g_seq)):
    assert np.all(np.isfinite(a))
    np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
  return y_par, g_par


def test_long_sequence_float32_stays_finite_and_close():
  """T = 4096 in float32: the log-space scan neither overflows nor drifts."""
  T, B, H = 4096, 2, 8
  k = jax.random.normal(jax.random.key(3), (T, B, 3 * H), jnp.float32)
  valid = jnp.ones((T, B), bool)
  h = minrnn.min_layer("minlstm", k, valid)
  ref = minrnn.min_layer("minlstm", k, valid, parallel=False)
  assert np.all(np.isfinite(h))
  np.testing.assert_allclose(h, ref, rtol=1e-3, atol=1e-4)


def test_sizes_and_config_errors():
  assert isinstance(ModelConfig(kind="minlstm"), minrnn.MinLSTMConfig)
  assert isinstance(ModelConfig(kind="mingru"), minrnn.MinGRUConfig)
  # minLSTM: 3 (D H + H) per layer; minGRU: 2 (D H + H); head H O + O.
  D, H, O = 4, 8, 3
  assert models.param_count(ModelConfig(kind="minlstm", hidden_size=H), D, O) == \
      3 * (D * H + H) + H * O + O
  assert models.param_count(ModelConfig(kind="mingru", hidden_size=H), D, O) == \
      2 * (D * H + H) + H * O + O
  with pytest.raises(ValueError, match="model.init"):
    ModelConfig(kind="minlstm", init="chrono")


BLOCKS = {  # Feng et al.'s residual block, and the options alone
    "block": dict(residual=True, norm=True, mlp_multiple=2, expansion=2),
    "residual": dict(residual=True),
    "norm_mlp_plain": dict(norm=True, mlp_multiple=3),
}


@pytest.mark.parametrize("kind", ["minlstm", "mingru"])
@pytest.mark.parametrize("block", sorted(BLOCKS))
def test_block_parallel_equals_sequential_values_and_gradients(x64, kind, block):
  """The residual / LayerNorm / MLP / expansion options: log-space scan == sequential
  recurrence in values and gradients (float64), padding included."""
  B, T, D = 3, 40, 4
  cfg = ModelConfig(kind=kind, hidden_size=6, num_layers=3, **BLOCKS[block])
  model = models.build(cfg, D, 2, seed=0)
  graphdef, params = nnx.split(model, nnx.Param)
  params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
  x = jax.random.normal(jax.random.key(1), (B, T, D), jnp.float64)
  lengths = jnp.array([40, 17, 1])
  y_par, g_par = _parallel_equals_sequential(graphdef, params, x, lengths)
  assert np.all(np.asarray(g_par[1])[1, 17:] == 0.0)  # no gradient to padded inputs
  head_bias = np.asarray(nnx.merge(graphdef, params).head.bias[...])
  np.testing.assert_allclose(np.asarray(y_par)[1, 17:], np.broadcast_to(head_bias, (23, 2)))


@pytest.mark.parametrize("kind", ["minlstm", "mingru"])
def test_steps_that_are_not_valid_carry_the_state(x64, kind):
  """A layer run with steps 3..5 invalid equals the layer run on the sequence without
  them, at every later step (f' = 1, v = 0 there: the state passes unchanged)."""
  n = 3 if kind == "minlstm" else 2
  T, B, H = 12, 2, 4
  k = jax.random.normal(jax.random.key(4), (T, B, n * H), jnp.float64)
  valid = jnp.ones((T, B), bool).at[3:6].set(False)
  for parallel in (True, False):
    h = minrnn.min_layer(kind, k, valid, parallel=parallel)
    kept = jnp.concatenate([k[:3], k[6:]])
    ref = minrnn.min_layer(kind, kept, jnp.ones((T - 3, B), bool), parallel=False)
    np.testing.assert_allclose(h[6:], ref[3:], rtol=1e-12)
    np.testing.assert_allclose(h[:3], ref[:3], rtol=1e-12)
    assert np.all(np.asarray(h[3:6]) == 0.0)  # the output is zero where invalid


def test_block_sizes_and_config_errors():
  D, H, O, L = 4, 8, 3, 2
  cfg = ModelConfig(kind="minlstm", hidden_size=H, num_layers=L, residual=True, norm=True,
                    mlp_multiple=4, expansion=2)
  E, M = 2 * H, 4 * H
  per_layer = 2 * H + (H * 3 * E + 3 * E) + (E * H + H) + 2 * H + (H * M + M) + (M * H + H)
  assert models.param_count(cfg, D, O) == (D * H + H) + L * per_layer + 2 * H + H * O + O
  plain = ModelConfig(kind="mingru", hidden_size=H)
  assert (plain.residual, plain.norm, plain.mlp_multiple, plain.expansion) == (False, False, 0, 1)
  for fields, name in ((dict(expansion=2), "model.expansion"),
                       (dict(expansion=0, residual=True), "model.expansion"),
                       (dict(mlp_multiple=-1), "model.mlp_multiple"),
                       (dict(mlp_multiple=1.5), "model.mlp_multiple"),
                       (dict(residual="yes"), "model.residual"),
                       (dict(norm=1), "model.norm")):
    with pytest.raises(ValueError, match=name + ": expected"):
      ModelConfig(kind="minlstm", **fields)
  with pytest.raises(ValueError, match="model.residual"):  # a key the LSTM does not have
    ModelConfig(kind="lstm", residual=True)
