"""The Transformer's attention: naive, fused (jax.nn.dot_product_attention) and a
plain NumPy loop agree, values and gradients, with padding and causal masks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lstmx.models import ModelConfig, build
from lstmx.models.transformer import attend

B, T, N, DH = 3, 7, 2, 4
LENGTHS = np.array([7, 4, 1], np.int32)


def numpy_attention(q, k, v, lengths, causal):
  """One query at a time: softmax over the keys it may see, in float64."""
  q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
  out = np.zeros_like(q)
  for b in range(q.shape[0]):
    n_keys = q.shape[1] if lengths is None else lengths[b]
    for t in range(q.shape[1]):
      keys = np.arange(n_keys)
      if causal:
        keys = keys[keys <= t]
      for n in range(q.shape[2]):
        logits = k[b, keys, n] @ q[b, t, n] / np.sqrt(q.shape[-1])
        w = np.exp(logits - logits.max())
        out[b, t, n] = (w / w.sum()) @ v[b, keys, n]
  return out


def qkv(seed=0):
  rng = np.random.default_rng(seed)
  return tuple(jnp.asarray(rng.standard_normal((B, T, N, DH)), jnp.float32) for _ in range(3))


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("lengths", [None, LENGTHS])
def test_naive_and_fused_match_a_numpy_loop(causal, lengths):
  q, k, v = qkv()
  want = numpy_attention(q, k, v, lengths, causal)
  for kind in ("naive", "fused"):
    with jax.default_matmul_precision("highest"):
      got = attend(q, k, v, None if lengths is None else jnp.asarray(lengths), causal, kind)
    np.testing.assert_allclose(np.asarray(got), want, rtol=2e-5, atol=2e-5, err_msg=kind)


@pytest.mark.parametrize("causal", [True, False])
def test_naive_and_fused_gradients_agree(causal):
  q, k, v = qkv(1)
  w = jnp.asarray(np.random.default_rng(2).standard_normal((B, T, N, DH)), jnp.float32)
  lengths = jnp.asarray(LENGTHS)

  def loss(kind):
    return lambda q, k, v: jnp.sum(w * attend(q, k, v, lengths, causal, kind))

  with jax.default_matmul_precision("highest"):
    naive = jax.grad(loss("naive"), argnums=(0, 1, 2))(q, k, v)
    fused = jax.grad(loss("fused"), argnums=(0, 1, 2))(q, k, v)
  for a, b in zip(naive, fused):
    assert float(jnp.max(jnp.abs(a))) > 1e-3  # non-trivial gradients
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("causal", [True, False])
def test_transformer_model_same_outputs_and_gradients_either_attention(causal):
  x = jnp.asarray(np.random.default_rng(3).standard_normal((B, T, 3)), jnp.float32)
  lengths = jnp.asarray(LENGTHS)
  outs, grads = [], []
  for kind in ("naive", "fused"):
    cfg = ModelConfig(kind="transformer", hidden_size=8, num_heads=2, num_layers=2,
                      causal=causal, attention=kind)
    model = build(cfg, 3, 2, seed=0, max_length=T)
    graphdef, params = nnx.split(model, nnx.Param)

    def loss(params, graphdef=graphdef):
      y = nnx.merge(graphdef, params)(x, lengths)
      valid = (jnp.arange(T)[None, :] < lengths[:, None])[..., None]
      return jnp.sum(jnp.where(valid, y, 0.0) * jnp.cos(y))

    with jax.default_matmul_precision("highest"):
      outs.append(nnx.merge(graphdef, params)(x, lengths))
      grads.append(jax.grad(loss)(params))
  valid = np.arange(T)[None, :] < LENGTHS[:, None]
  np.testing.assert_allclose(np.asarray(outs[0])[valid], np.asarray(outs[1])[valid],
                             rtol=1e-5, atol=1e-5)
  flat = [jax.tree.leaves(g) for g in grads]
  assert len(flat[0]) == len(flat[1]) > 0
  for a, b in zip(*flat):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_bad_attention_is_named():
  with pytest.raises(ValueError, match="model.attention"):
    ModelConfig(kind="transformer", attention="flash")
