"""Flax NNX wrappers under nnx.jit, nnx.grad and nnx.vmap, and compile hygiene."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import lstmx


class Classifier(nnx.Module):
  """A user's own module holding an lstmx LSTM."""

  def __init__(self, rngs):
    self.lstm = lstmx.nn.LSTM(3, 8, num_layers=2, bidirectional=True, rngs=rngs)
    self.head = nnx.Linear(16, 2, rngs=rngs)

  def __call__(self, x, lens):
    _, (h, _) = self.lstm(x, seq_lengths=lens)
    return self.head(jnp.concatenate([h[-2], h[-1]], axis=-1))


def _batch(seed=0):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.standard_normal((6, 9, 3)), jnp.float32)
  lens = jnp.asarray(rng.integers(1, 10, size=6), jnp.int32)
  labels = jnp.asarray(rng.integers(0, 2, size=6), jnp.int32)
  return x, lens, labels


def test_module_matches_functional_core():
  layer = lstmx.nn.LSTM(3, 5, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0))
  x, lens, _ = _batch()
  y, (h, c) = layer(x, seq_lengths=lens)
  y2, (h2, c2) = lstmx.lstm(layer.params, x, seq_lengths=lens)
  np.testing.assert_array_equal(y, y2)
  assert y.shape == (6, 9, 10) and h.shape == (4, 6, 5)
  assert lstmx.param_count(nnx.state(layer, nnx.Param)) == lstmx.param_count(layer.params)


def test_train_step_under_nnx_jit_and_grad_without_recompiling():
  model = Classifier(nnx.Rngs(0))
  opt = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
  traces = []

  @nnx.jit
  def step(model, opt, x, lens, labels):
    traces.append(1)

    def loss_fn(model):
      logits = model(x, lens)
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    loss, grads = nnx.value_and_grad(loss_fn)(model)
    opt.update(model, grads)
    return loss

  x, lens, labels = _batch()
  # optax's adam mixes a Python float with its int32 step count, which strict
  # promotion (tests/conftest.py) rejects; lstmx itself runs under strict.
  with jax.numpy_dtype_promotion("standard"):
    losses = [float(step(model, opt, x, lens, labels)) for _ in range(30)]
  assert len(traces) == 1, "the jitted step retraced"
  assert losses[-1] < 0.5 * losses[0]


def test_jax_jit_does_not_recompile():
  params = lstmx.init_lstm(jax.random.key(0), 3, 4)
  x, lens, _ = _batch()
  f = jax.jit(jax.grad(lambda p, x: jnp.sum(lstmx.lstm(p, x, seq_lengths=lens)[0])))
  f(params, x)
  f(params, x + 1.0)
  assert f._cache_size() == 1


def test_nnx_vmap_over_ensemble_members():
  @nnx.split_rngs(splits=3)
  @nnx.vmap(in_axes=0, out_axes=0)
  def make(rngs):
    return lstmx.nn.LSTM(3, 4, rngs=rngs)
  ensemble = make(nnx.Rngs(0))
  x, lens, _ = _batch()

  @nnx.vmap(in_axes=(0, None), out_axes=0)
  def run(m, x):
    return m(x, seq_lengths=lens)[0]
  ys = run(ensemble, x)
  assert ys.shape == (3, 6, 9, 4)
  member = jax.tree.map(lambda a: a[1], ensemble.params)
  np.testing.assert_allclose(ys[1], lstmx.lstm(member, x, seq_lengths=lens)[0],
                             rtol=1e-6, atol=1e-6)


def test_jax_vmap_of_functional_core():
  params = lstmx.init_lstm(jax.random.key(0), 3, 4)
  xs = jax.random.normal(jax.random.key(1), (5, 2, 7, 3))
  g = jax.vmap(jax.grad(lambda x: jnp.sum(lstmx.lstm(params, x)[0] ** 2)))(xs)
  g1 = jax.grad(lambda x: jnp.sum(lstmx.lstm(params, x)[0] ** 2))(xs[2])
  np.testing.assert_allclose(g[2], g1, rtol=1e-5, atol=1e-6)


def test_cell_steps_and_carry():
  cell = lstmx.nn.LSTMCell(3, 4, rngs=nnx.Rngs(0))
  carry = cell.initialize_carry(2)
  (h, c), y = cell(carry, jnp.ones((2, 3)))
  assert h.shape == c.shape == y.shape == (2, 4)
  np.testing.assert_array_equal(h, y)
