"""RNN invariants (scan == loop of steps, masked final carry, time-major == batch-major,
unroll, reverse == flip-scan-flip) on the fast path, in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import lstmx
from helpers import assert_trees_close, random_problem

TOL = dict(rtol=1e-12, atol=1e-12)


def test_scan_equals_loop_of_cells(x64):
  cell = lstmx.nn.LSTMCell(4, 6, init="torch", param_dtype=jnp.float64, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (3, 20, 4), jnp.float64)
  carry = cell.initialize_carry(3)
  ys = []
  for t in range(x.shape[1]):
    carry, y = cell(carry, x[:, t])
    ys.append(y)
  y_scan, (h, c) = lstmx.lstm(cell.params, x)
  assert_trees_close((y_scan, h[0], c[0]), (jnp.stack(ys, 1), carry[0], carry[1]), **TOL)


def test_reverse_equals_flip_scan_flip_with_lengths(x64):
  params, x, _, _ = random_problem(2, 4, 15, 3, 5, bidirectional=True, with_state=False)
  lens = jnp.array([15, 8, 1, 11])
  y, (h, c) = lstmx.lstm(params, x, seq_lengths=lens)
  H = 5
  # Reverse each sequence's valid part by hand, run the reverse weights forward.
  idx = np.array([[n - 1 - t if t < n else t for t in range(15)] for n in np.asarray(lens)])
  x_flip = jnp.take_along_axis(x, jnp.asarray(idx)[:, :, None], axis=1)
  y_b, (h_b, c_b) = lstmx.lstm(params[0][1], x_flip, seq_lengths=lens)
  y_b = jnp.take_along_axis(y_b, jnp.asarray(idx)[:, :, None], axis=1)
  assert_trees_close((y[..., H:], h[1], c[1]), (y_b, h_b[0], c_b[0]), **TOL)


def test_final_state_is_at_last_valid_step(x64):
  params, x, _, _ = random_problem(3, 3, 12, 3, 4, with_state=False)
  lens = [12, 6, 2]
  _, (h, c) = lstmx.lstm(params, x, seq_lengths=jnp.array(lens))
  for b, n in enumerate(lens):
    y_b, (h_b, c_b) = lstmx.lstm(params, x[b:b + 1, :n])
    assert_trees_close((h[0, b], c[0, b]), (h_b[0, 0], c_b[0, 0]), **TOL)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_content_does_not_matter(x64, bidirectional):
  params, x, _, _ = random_problem(4, 3, 10, 3, 4, num_layers=2, bidirectional=bidirectional)
  lens = jnp.array([10, 4, 7])
  pad = jnp.arange(10)[None, :, None] >= lens[:, None, None]
  x2 = jnp.where(pad, 1e3, x)

  def f(x):
    y, (h, c) = lstmx.lstm(params, x, seq_lengths=lens)
    return jnp.sum(y * y) + jnp.sum(h) + jnp.sum(c), (y, h, c)
  (_, a), ga = jax.value_and_grad(f, has_aux=True)(x)
  (_, b), gb = jax.value_and_grad(f, has_aux=True)(x2)
  assert_trees_close(a, b, **TOL)
  assert_trees_close(jnp.where(pad, 0.0, ga), gb, **TOL)
  assert np.all(np.asarray(gb)[np.asarray(jnp.broadcast_to(pad, gb.shape))] == 0.0)


def test_time_major_equals_batch_major(x64):
  params, x, lens, state = random_problem(5, 3, 9, 3, 4, num_layers=2, bidirectional=True,
                                          masked=True)
  y, hc = lstmx.lstm(params, x, seq_lengths=lens, initial_state=state)
  y_t, hc_t = lstmx.lstm(params, jnp.swapaxes(x, 0, 1), seq_lengths=lens,
                         initial_state=state, time_major=True)
  assert_trees_close((y, hc), (jnp.swapaxes(y_t, 0, 1), hc_t), **TOL)


@pytest.mark.parametrize("unroll", [2, 5, 16])
def test_unroll_does_not_change_results(x64, unroll):
  params, x, lens, state = random_problem(6, 2, 13, 3, 4, masked=True)

  def f(params, unroll):
    y, (h, c) = lstmx.lstm(params, x, seq_lengths=lens, initial_state=state, unroll=unroll)
    return jnp.sum(jnp.sin(y)) + jnp.sum(h * c)
  assert_trees_close(jax.value_and_grad(f)(params, unroll), jax.value_and_grad(f)(params, 1),
                     **TOL)


def test_batch_rows_are_independent(x64):
  params, x, lens, _ = random_problem(7, 4, 8, 3, 4, masked=True, with_state=False)
  y, (h, c) = lstmx.lstm(params, x, seq_lengths=lens)
  y1, (h1, c1) = lstmx.lstm(params, x[1:2], seq_lengths=lens[1:2])
  assert_trees_close((y[1:2], h[:, 1:2], c[:, 1:2]), (y1, h1, c1), **TOL)
