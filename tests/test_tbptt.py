"""TBPTT with carried state (lstmx.train.tbptt, lstmx.tasks.language): the carried run
equals one long run on the concatenated stream (values, and gradients within a
window against a plain Python-loop reference), windows and resets follow the
batchified stream, and the stateful evaluation counts every prediction once."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from lstmx import data, models, tasks
from lstmx.config import ModelConfig
from lstmx.kernels import lstm_step
from lstmx.regularization import Regularization
from lstmx.tasks.base import cross_entropy
from lstmx.tasks.language import eval_windows
from lstmx.train import tbptt
from lstmx.train.step import init_state, make_train_step

V, E, H, L, B, T, K = 11, 5, 6, 2, 3, 4, 3  # vocab, embedding, hidden, layers, rows, window


def _model(reg=Regularization()):
  cfg = ModelConfig(hidden_size=H, num_layers=L, embedding_size=E, regularization=reg)
  return models.build(cfg, V, V, seed=0)


def _reference(m, ids, state):
  """A plain Python loop of `lstm_step` per step and layer: (logits [B, n, V], state)."""
  x = jnp.take(m.embed[...], ids, axis=0)
  h, c = list(state[0]), list(state[1])
  outs = []
  for t in range(ids.shape[1]):
    inp = x[:, t]
    for layer in range(L):
      (h[layer], c[layer]), inp = lstm_step(m.lstm.params[layer][0], (h[layer], c[layer]), inp)
    outs.append(inp)
  return m.head(jnp.stack(outs, axis=1)), (jnp.stack(h), jnp.stack(c))


def _ids(seed=0, n=K * T):
  return jnp.asarray(np.random.default_rng(seed).integers(0, V, (B, n)), jnp.int32)


def test_carried_windows_equal_one_long_run_values():
  with jax.default_matmul_precision("highest"):
    m, ids = _model(), _ids()
    long_out, long_state = _reference(m, ids, m.zero_state(B))
    carry, outs, fresh = m.zero_state(B), [], []
    for k in range(K):
      out, carry, pen = m.stream(ids[:, k * T:(k + 1) * T], carry)
      outs.append(out)
      fresh.append(m.stream(ids[:, k * T:(k + 1) * T], m.zero_state(B))[0])
      assert float(pen) == 0.0
    np.testing.assert_allclose(jnp.concatenate(outs, 1), long_out, rtol=1e-5, atol=1e-6)
    for a, b in zip(carry, long_state):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # The control: a fresh state per window is a different model of the stream.
    assert not np.allclose(jnp.concatenate(fresh, 1), long_out, atol=1e-4)
    np.testing.assert_allclose(m(ids), long_out, rtol=1e-5, atol=1e-6)  # __call__ too


@pytest.mark.parametrize("k", [0, 2])
def test_window_gradient_equals_truncated_reference(k):
  """d(loss of window k)/d(params): the TBPTT step (state carried from windows < k,
  gradients stopped at the window start) equals the reference run over the whole
  stream whose state at k*T is held constant."""
  task = tasks.make("copy")  # only its loss is used: mean cross-entropy over a full mask
  with jax.default_matmul_precision("highest"):
    m, ids = _model(), _ids(1, K * T + 1)
    graphdef, params, rest = nnx.split(m, nnx.Param, ...)
    modeldef = type("Def", (), {"merge": lambda self, p: nnx.merge(graphdef, p, rest)})()
    carry = m.zero_state(B)
    for j in range(k):
      carry = m.stream(ids[:, j * T:(j + 1) * T], carry)[1]
    batch = {"inputs": ids[:, k * T:(k + 1) * T], "targets": ids[:, k * T + 1:(k + 1) * T + 1],
             "mask": jnp.ones((B, T), jnp.float32), "reset": jnp.asarray(k == 0)}
    (_, (loss, _)), grads = jax.value_and_grad(
        lambda p: tbptt.stream_loss(modeldef, task, p, carry, batch, None), has_aux=True)(params)

    def reference(p):
      mm = nnx.merge(graphdef, p, rest)
      state = mm.zero_state(B)
      if k:
        state = jax.lax.stop_gradient(_reference(mm, ids[:, :k * T], state)[1])
      out, _ = _reference(mm, ids[:, k * T:(k + 1) * T], state)
      return jnp.mean(cross_entropy(out, batch["targets"]))

    ref_loss, ref_grads = jax.value_and_grad(reference)(params)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
      np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-6)
    if k:  # the control: a reset state gives other gradients
      reset = dict(batch, reset=jnp.asarray(True))
      g0 = jax.grad(lambda p: tbptt.stream_loss(modeldef, task, p, carry, reset, None)[0])(
          params)
      assert not all(np.allclose(a, b, atol=1e-5)
                     for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(ref_grads)))


@pytest.mark.parametrize("rows", [1, 3, 4])
def test_eval_windows_predict_every_token_once_in_stream_order(rows):
  n = 103
  w = eval_windows(np.arange(n, dtype=np.int32), rows, 7)
  assert w["inputs"].shape == w["targets"].shape == w["mask"].shape
  valid = w["mask"] > 0
  targets, inputs = w["targets"][valid], w["inputs"][valid]
  assert sorted(targets.tolist()) == list(range(1, n))  # every token but the first, once
  np.testing.assert_array_equal(targets, inputs + 1)
  # Along each row, windows continue each other: the carried state sees the stream.
  per_row = w["inputs"].transpose(1, 0, 2).reshape(rows, -1)
  row_valid = valid.transpose(1, 0, 2).reshape(rows, -1)
  for r in range(rows):
    seq = per_row[r][row_valid[r]]
    np.testing.assert_array_equal(np.diff(seq), 1)
    assert row_valid[r][:len(seq)].all()  # padding only at the end


PTB = {"ptb.train.txt": " a b c d e f g h \n" * 20, "ptb.valid.txt": " a c e g \n b d \n",
       "ptb.test.txt": " h g f e \n"}


@pytest.fixture
def ptb(tmp_path):
  for name, text in PTB.items():
    (tmp_path / name).write_text(text)
  return str(tmp_path)


def test_train_windows_follow_tbptt_batches_and_reset_each_epoch(ptb):
  task = tasks.make("stream_lm", dataset="ptb", path=ptb, seq_len=5)
  stream = data.batchify(task.tokens("train"), 4)
  expected = list(data.tbptt_batches(stream, 5, drop_remainder=True))
  K = task.windows_per_epoch(4)
  assert K == len(expected) > 1
  for step in range(2 * K):
    batch = task.train_window(jnp.int32(step), 4)
    x, y = expected[step % K]
    np.testing.assert_array_equal(batch["inputs"], x)
    np.testing.assert_array_equal(batch["targets"], y)
    assert bool(batch["reset"]) == (step % K == 0)


def test_train_step_carries_state_and_resets_it(ptb):
  task = tasks.make("stream_lm", dataset="ptb", path=ptb, seq_len=5)
  model = models.build(ModelConfig(hidden_size=H, num_layers=L, embedding_size=E,
                                   regularization=Regularization(output_dropout=0.2)),
                       task.input_size, task.output_size, seed=0)
  tx = optax.sgd(0.0)  # parameters fixed: only the carry moves
  modeldef, state = init_state(model, tx, 0, tbptt.initial_carry(model, 4))
  step = jax.jit(make_train_step(modeldef, task, tx))
  s1, m1 = step(state, task.train_window(jnp.int32(0), 4))
  assert not np.allclose(s1.carry[0], 0.0)  # the window's final state is kept
  s2, m2 = step(s1, task.train_window(jnp.int32(1), 4))
  fresh = step(dataclasses.replace(s1, carry=state.carry), task.train_window(jnp.int32(1), 4))
  assert float(m2["loss"]) != pytest.approx(float(fresh[1]["loss"]), rel=1e-6)
  K = task.windows_per_epoch(4)  # an epoch's first window starts from zero again
  s_reset = step(s2, task.train_window(jnp.int32(K), 4))[1]
  s_zero = step(dataclasses.replace(s2, carry=state.carry), task.train_window(jnp.int32(K), 4))[1]
  assert float(s_reset["loss"]) == pytest.approx(float(s_zero["loss"]), rel=1e-6)


def test_stream_evaluator_is_exact_and_rows_lose_only_row_starts(ptb):
  with jax.default_matmul_precision("highest"):
    task1 = tasks.make("stream_lm", dataset="ptb", path=ptb, seq_len=3, eval_rows=1)
    model = models.build(ModelConfig(hidden_size=H, num_layers=L, embedding_size=E),
                         task1.input_size, task1.output_size, seed=0)
    modeldef, state = init_state(model, optax.sgd(0.1), 0)
    got = tbptt.stream_evaluator(modeldef, task1)(state.params, "validation")
    tokens = jnp.asarray(task1.tokens("validation"))[None]
    out, _ = _reference(model, tokens[:, :-1], model.zero_state(1))
    want = float(jnp.mean(cross_entropy(out, tokens[:, 1:])))
    assert got["loss"] == pytest.approx(want, rel=1e-5)
    assert got["perplexity"] == pytest.approx(np.exp(want), rel=1e-5)
    assert got["examples"] == tokens.shape[1] - 1
    task3 = tasks.make("stream_lm", dataset="ptb", path=ptb, seq_len=3, eval_rows=3)
    got3 = tbptt.stream_evaluator(modeldef, task3)(state.params, "validation")
    assert got3["examples"] == got["examples"]
    assert got3["loss"] != got["loss"]  # rows start from zero states
