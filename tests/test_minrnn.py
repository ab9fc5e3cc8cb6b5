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
  w = jax.random.normal(jax.random.key(2), (B, T, 2), jnp.float64)

  def loss(p, x, parallel):
    y = nnx.merge(graphdef, p)(x, lengths, parallel=parallel)
    return jnp.sum(w * y), y

  (_, y_par), g_par = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, x, True)
  (_, y_seq), g_seq = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, x, False)
  np.testing.assert_allclose(y_par, y_seq, rtol=1e-9, atol=1e-10)
  for a, b in zip(jax.tree.leaves(g_par), jax.tree.leaves(g_seq)):
    assert np.all(np.isfinite(a))
    np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
  # Padded steps: the head's bias only (the state output is zero), no gradient to x.
  assert np.all(np.asarray(g_par[1])[1, 123:] == 0.0)


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
