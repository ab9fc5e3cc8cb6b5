"""Shared test helpers: random problems and a loss that touches every output."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np

import lstmx


def random_problem(seed, B, T, D, H, *, num_layers=1, bidirectional=False,
                   masked=False, with_state=True, dtype=jnp.float64):
  rng = np.random.default_rng(seed)
  params = lstmx.init_lstm(jax.random.key(seed), D, H, num_layers=num_layers,
                           bidirectional=bidirectional, init="torch", dtype=dtype)
  # Non-trivial biases so every gate is exercised.
  params = jax.tree.map(lambda a: a + jnp.asarray(0.1 * rng.standard_normal(a.shape), dtype),
                        params)
  x = jnp.asarray(rng.standard_normal((B, T, D)), dtype)
  lens = jnp.asarray(rng.integers(1, T + 1, size=B), jnp.int32) if masked else None
  state = None
  if with_state:
    n = num_layers * (2 if bidirectional else 1)
    state = tuple(jnp.asarray(0.5 * rng.standard_normal((n, B, H)), dtype) for _ in range(2))
  return params, x, lens, state


def weighted_loss(seed, y_shape, h_shape):
  """A loss with random weights on y, h_n and c_n, so every cotangent is non-trivial."""
  rng = np.random.default_rng(seed + 1000)
  wy = rng.standard_normal(y_shape)
  wh = rng.standard_normal(h_shape)
  wc = rng.standard_normal(h_shape)

  def loss(y, h, c):
    return (jnp.sum(jnp.asarray(wy, y.dtype) * y) + jnp.sum(jnp.asarray(wh, h.dtype) * h)
            + jnp.sum(jnp.asarray(wc, c.dtype) * c))
  return loss


def value_and_grads(params, x, lens, state, backend, *, seed=0, **kw):
  """Outputs and gradients w.r.t. params, x and the initial state."""
  y0, (h0, _) = jax.eval_shape(lambda: lstmx.lstm(params, x, seq_lengths=lens,  # shapes only
                                                  initial_state=state, backend="reference",
                                                  **kw))
  loss = weighted_loss(seed, y0.shape, h0.shape)

  def f(params, x, state):
    y, (h, c) = lstmx.lstm(params, x, seq_lengths=lens, initial_state=state,
                           backend=backend, **kw)
    return loss(y, h, c), (y, h, c)

  (_, out), grads = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True))(
      params, x, state)
  return out, grads


def assert_trees_close(a, b, rtol, atol):
  """Same tree structure and every leaf close, compared in float64; a failure
  names the leaf's path (chex)."""
  to64 = lambda t: jax.tree.map(lambda u: np.asarray(u, np.float64), t)  # noqa: E731
  chex.assert_trees_all_close(to64(a), to64(b), rtol=rtol, atol=atol)


def layer_value_and_grads(layer, p, xs, h0, c0, w):
  """`jnp.sum(w * ys) + jnp.sum(h * c)` of a kernel layer (`KernelBackend.layer`) and its
  gradients in (params, xs, h0, c0), jitted, at the highest matmul precision."""
  from lstmx.kernels import KernelOptions, LayerMasks

  def loss(p, xs, h0, c0):
    ys, (h, c) = layer(p, xs, None, h0, c0, LayerMasks(), KernelOptions())
    return jnp.sum(w * ys) + jnp.sum(h * c)

  with jax.default_matmul_precision("highest"):
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3)))(p, xs, h0, c0)


def cli_error(capsys, argv, code=2) -> str:
  """The one stderr line of ``lstmx ARGV``, which must exit with `code` (2: a usage
  error; 1: a failed run) and print nothing else on stderr."""
  import pytest

  from lstmx.lab import cli
  capsys.readouterr()
  with pytest.raises(SystemExit) as e:
    cli.main(argv)
  assert e.value.code == code, e.value
  err = capsys.readouterr().err
  assert err.endswith("\n") and err.count("\n") == 1, err
  return err.strip()
