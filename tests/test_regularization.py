"""Regularization: config checks, rate 0 == none, train/eval modes, mask statistics and
time structure, the paper equations (loop oracles), gradients against the reference,
AWD-LSTM's weight drop, zoneout's limit, AR/TAR, embedding dropout, and the NNX wrapper."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import lstmx
from helpers import assert_trees_close, random_problem

FULL = lstmx.Regularization(input_dropout=0.2, layer_dropout=0.3, output_dropout=0.25,
                            recurrent_dropout=0.3, weight_drop=0.4, zoneout_h=0.2,
                            zoneout_c=0.3)
RATES = ("input_dropout", "layer_dropout", "output_dropout", "recurrent_dropout",
         "weight_drop", "zoneout_h", "zoneout_c")
TOL = dict(rtol=1e-9, atol=1e-10)


@functools.partial(jax.jit, static_argnames=("reg", "backend", "deterministic"))
def _jit_run(params, x, lens, state, key, reg, backend, deterministic):
  def f(params, x, state):
    y, (h, c) = lstmx.lstm(params, x, seq_lengths=lens, initial_state=state, backend=backend,
                           regularization=reg, key=key, deterministic=deterministic)
    return jnp.sum(jnp.sin(y)) + jnp.sum(h * c) + jnp.sum(jnp.cos(c)), (y, h, c)
  (_, out), grads = jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True)(params, x, state)
  return out, grads


def _run(params, x, lens, state, reg=None, *, backend="scan", key=0, deterministic=False):
  """Outputs and gradients (w.r.t. params, x, state) of a loss touching y, h_n and c_n."""
  k = None if key is None else jax.random.key(key)
  return _jit_run(params, x, lens, state, k, reg, backend, deterministic)


_draw = jax.jit(lstmx.draw_masks, static_argnames=("reg", "T", "B", "deterministic"))


def _equal(a, b):
  jax.tree.map(lambda u, v: np.testing.assert_array_equal(np.asarray(u), np.asarray(v)), a, b)


# --- configuration and modes -------------------------------------------------------------


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(input_dropout=1.5), r"^Regularization.input_dropout: expected a rate in \[0, 1\); got 1.5$"),
    (dict(weight_drop=1.0), r"Regularization.weight_drop: expected a rate in \[0, 1\); got 1.0"),
    (dict(recurrent_dropout=-0.1), r"recurrent_dropout: expected a rate in \[0, 1\); got -0.1"),
    (dict(zoneout_c=1.5), r"Regularization.zoneout_c: expected a rate in \[0, 1\]; got 1.5"),
    (dict(layer_dropout="0.1"), r"layer_dropout: expected a rate in \[0, 1\); got '0.1'"),
    (dict(ar=-1.0), r"Regularization.ar: expected a finite weight >= 0; got -1.0"),
])
def test_config_rejects_bad_values(kwargs, pattern):
  with pytest.raises(ValueError, match=pattern):
    lstmx.Regularization(**kwargs)


def test_config_is_frozen_off_by_default_and_mode_is_explicit():
  reg = lstmx.Regularization(zoneout_h=1.0)  # zoneout allows rate 1
  with pytest.raises(dataclasses.FrozenInstanceError):
    reg.zoneout_h = 0.5
  assert not lstmx.Regularization().needs_mode and reg.needs_mode
  params, x, _, _ = random_problem(0, 2, 4, 3, 4, dtype=jnp.float32)
  with pytest.raises(ValueError, match=r"deterministic: regularization is active"):
    lstmx.lstm(params, x, regularization=FULL, key=jax.random.key(0))
  with pytest.raises(ValueError, match=r"key: training mode .* needs a PRNG key"):
    lstmx.lstm(params, x, regularization=FULL, deterministic=False)
  with pytest.raises(TypeError, match=r"regularization: expected lstmx.Regularization"):
    lstmx.lstm(params, x, regularization={"input_dropout": 0.1}, deterministic=False)


def test_rate_zero_is_bit_identical_to_none(x64):
  problem = random_problem(1, 3, 6, 3, 4, num_layers=2, masked=True)
  none = _run(*problem)
  _equal(_run(*problem, lstmx.Regularization()), none)
  _equal(_run(*problem, lstmx.Regularization(variational=True, ar=1.0), deterministic=True),
         none)
  # Dropouts are the identity in evaluation.
  _equal(_run(*problem, FULL, deterministic=True),
         _run(*problem, lstmx.Regularization(zoneout_h=0.2, zoneout_c=0.3), deterministic=True))


@pytest.mark.parametrize("name", RATES)
def test_each_rate_zero_draws_no_mask_and_keeps_the_others(name):
  """A zero rate gives None (the kernels' unregularized code path) and leaves every other
  regularizer's masks unchanged, so each regularizer at rate 0 is exactly absent."""
  params = lstmx.init_lstm(jax.random.key(0), 3, 4, num_layers=2, bidirectional=True)
  full = _draw(FULL, jax.random.key(1), params, 5, 2, deterministic=False)
  without = _draw(dataclasses.replace(FULL, **{name: 0.0}), jax.random.key(1), params, 5, 2,
                  deterministic=False)
  kept = dict(jax.tree_util.tree_flatten_with_path(without)[0])
  removed = []
  for path, leaf in jax.tree_util.tree_flatten_with_path(full)[0]:
    if path in kept:
      np.testing.assert_array_equal(kept[path], leaf)
    else:
      removed.append(jax.tree_util.keystr(path))
  field, count = {"input_dropout": ("input", 1), "layer_dropout": ("between", 1),
                  "output_dropout": ("output", 1), "recurrent_dropout": ("recurrent", 4),
                  "weight_drop": ("weight", 4), "zoneout_h": ("zoneout_h", 4),
                  "zoneout_c": ("zoneout_c", 4)}[name]
  assert len(removed) == count and all(r.split(".")[-1].startswith(field) for r in removed)


def test_neutral_masks_in_the_kernels(x64):
  params, x, lens, state = random_problem(11, 3, 6, 3, 4, masked=True)
  xs, mask = jnp.swapaxes(x, 0, 1), lstmx.lengths_to_mask(lens, 6)
  neutral = dict(recurrent_mask=jnp.ones((3, 4)), zoneout_h=jnp.zeros((6, 3, 4)),
                 zoneout_c=jnp.zeros(()))
  for layer in (lstmx.lstm_layer_scan, lstmx.lstm_layer_reference):
    def f(p, **kw):
      ys, (h, c) = layer(p, xs, mask, state[0][0], state[1][0], **kw)
      return jnp.sum(jnp.sin(ys)) + jnp.sum(h * c), (ys, h, c)
    run = jax.jit(jax.value_and_grad(f, has_aux=True))
    plain, masked = run(params[0][0]), run(params[0][0], **neutral)
    _equal(masked[0], plain[0])
    assert_trees_close(masked, plain, rtol=1e-13, atol=1e-14)


def test_evaluation_is_deterministic_and_is_zoneouts_expectation(x64):
  params, x, lens, state = random_problem(2, 3, 7, 3, 4, masked=True)
  reg = dataclasses.replace(FULL, variational=True)
  outs = [_run(params, x, lens, state, reg, key=k, deterministic=True) for k in (0, 1, None)]
  _equal(outs[0], outs[1])
  _equal(outs[0], outs[2])
  # The paper's evaluation rule, step by step: h_t = z h_{t-1} + (1 - z) h_new (also c).
  p = params[0][0]
  h, c = state[0][0], state[1][0]
  ys = []
  for t in range(x.shape[1]):
    (h_new, c_new), _ = lstmx.lstm_step(p, (h, c), x[:, t])
    valid = (t < lens)[:, None]
    h = jnp.where(valid, 0.2 * h + 0.8 * h_new, h)
    c = jnp.where(valid, 0.3 * c + 0.7 * c_new, c)
    ys.append(jnp.where(valid, h, 0.0))
  y, h_n, c_n = outs[0][0]
  assert_trees_close((y, h_n[0], c_n[0]), (jnp.stack(ys, 1), h, c), rtol=1e-12, atol=1e-12)


def test_training_reproduces_from_key_and_changes_with_it(x64):
  problem = random_problem(3, 3, 6, 3, 4, num_layers=2, masked=True)
  a, b, other = (_run(*problem, FULL, key=k) for k in (5, 5, 6))
  _equal(a, b)
  assert not np.allclose(a[0][0], other[0][0])
  assert not np.allclose(a[1][0][0][0].w_hh, other[1][0][0][0].w_hh)


# --- masks: keep rates and structure over time -------------------------------------------


def _keep_fraction_ok(mask, keep, scale=None):
  m = np.asarray(mask)
  kept = m != 0
  if scale is not None:
    np.testing.assert_array_equal(m[kept], scale)
  n = m.size
  sigma = np.sqrt(keep * (1 - keep) / n)
  assert abs(kept.mean() - keep) < 5 * sigma, (kept.mean(), keep, n)


def test_keep_rates_within_binomial_tolerance():
  params = lstmx.init_lstm(jax.random.key(0), 8, 16, num_layers=2, bidirectional=True)
  T, B = 40, 64
  masks = _draw(FULL, jax.random.key(1), params, T, B, deterministic=False)
  scale = lambda rate: np.float32(1.0 / (1.0 - rate))  # noqa: E731
  _keep_fraction_ok(masks.input, 0.8, scale(0.2))
  _keep_fraction_ok(masks.between[0], 0.7, scale(0.3))
  _keep_fraction_ok(masks.output, 0.75, scale(0.25))
  layers = [m for layer in masks.layers for m in layer]
  _keep_fraction_ok(jnp.stack([m.recurrent for m in layers]), 0.7, scale(0.3))
  _keep_fraction_ok(jnp.stack([m.weight for m in layers]), 0.6, scale(0.4))
  # zoneout weights are 1 where the unit keeps its previous value
  _keep_fraction_ok(jnp.stack([m.zoneout_h for m in layers]), 0.2, 1.0)
  _keep_fraction_ok(jnp.stack([m.zoneout_c for m in layers]), 0.3, 1.0)
  # layer-directions draw independent masks
  assert not np.array_equal(layers[0].recurrent, layers[1].recurrent)


@pytest.mark.parametrize("variational", [False, True])
def test_mask_shapes_over_time(variational):
  params = lstmx.init_lstm(jax.random.key(0), 5, 6, num_layers=2)
  T, B = 9, 32
  reg = dataclasses.replace(FULL, variational=variational)
  masks = _draw(reg, jax.random.key(1), params, T, B, deterministic=False)
  steps = 1 if variational else T
  assert masks.input.shape == (steps, B, 5)
  assert masks.between[0].shape == masks.output.shape == (steps, B, 6)
  for m in masks.layers[0]:
    assert m.recurrent.shape == (B, 6)        # one per sequence, fixed over time
    assert m.weight.shape == (6, 24)          # one per forward pass, shared by the batch
    assert m.zoneout_h.shape == (T, B, 6)     # fresh per step
    assert not np.array_equal(m.zoneout_h[0], m.zoneout_h[1])
  if not variational:
    assert not np.array_equal(masks.input[0], masks.input[1])


@pytest.mark.parametrize("variational", [False, True])
def test_dropped_units_are_constant_over_time_iff_variational(variational):
  params, x, _, _ = random_problem(4, 16, 8, 5, 6, with_state=False, dtype=jnp.float32)
  reg = lstmx.Regularization(input_dropout=0.5, output_dropout=0.5, variational=variational)

  def f(x):
    y, _ = lstmx.lstm(params, x, regularization=reg, key=jax.random.key(2), deterministic=False)
    return jnp.sum(y), y
  dx, y = jax.grad(f, has_aux=True)(x)
  # A dropped input feature gets no gradient at any step; a dropped output unit is 0.
  for zeros in (np.asarray(dx) == 0, np.asarray(y) == 0):
    assert 0.3 < zeros.mean() < 0.7
    same = all(np.array_equal(zeros[:, 0], zeros[:, t]) for t in range(1, zeros.shape[1]))
    assert same == variational


# --- the kernels: semantics, gradients, limits ---------------------------------------------


def test_recurrent_dropout_and_zoneout_follow_the_paper_equations(x64):
  """Training mode against a plain loop of the equations with the drawn masks."""
  params, x, lens, state = random_problem(5, 4, 8, 3, 5, masked=True)
  reg = lstmx.Regularization(recurrent_dropout=0.4, zoneout_h=0.3, zoneout_c=0.5)
  key = jax.random.key(7)
  B, T = x.shape[:2]
  m = _draw(reg, key, params, T, B, deterministic=False).layers[0][0]
  p = params[0][0]
  h, c = state[0][0], state[1][0]
  ys = []
  for t in range(T):
    (h_new, c_new), _ = lstmx.lstm_step(p, (m.recurrent * h, c), x[:, t])
    valid = (t < lens)[:, None]
    h = jnp.where(valid, m.zoneout_h[t] * h + (1 - m.zoneout_h[t]) * h_new, h)
    c = jnp.where(valid, m.zoneout_c[t] * c + (1 - m.zoneout_c[t]) * c_new, c)
    ys.append(jnp.where(valid, h, 0.0))
  for backend in ("scan", "reference"):
    y, (h_n, c_n) = lstmx.lstm(params, x, seq_lengths=lens, initial_state=state,
                               backend=backend, regularization=reg, key=key,
                               deterministic=False)
    assert_trees_close((y, h_n[0], c_n[0]), (jnp.stack(ys, 1), h, c), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("deterministic", [False, True])
def test_gradients_match_reference_under_fixed_masks(x64, deterministic):
  problem = random_problem(6, 3, 9, 3, 4, num_layers=2, bidirectional=True, masked=True)
  reg = dataclasses.replace(FULL, variational=deterministic)
  got = _run(*problem, reg, deterministic=deterministic)
  ref = _run(*problem, reg, backend="reference", deterministic=deterministic)
  assert_trees_close(got, ref, **TOL)


def test_regularized_path_keeps_the_custom_backward():
  params, x, lens, _ = random_problem(0, 2, 5, 3, 4, num_layers=2, bidirectional=True,
                                      masked=True, with_state=False, dtype=jnp.float32)
  for deterministic in (False, True):
    jaxpr = str(jax.make_jaxpr(lambda p, x: lstmx.lstm(
        p, x, seq_lengths=lens, regularization=FULL, key=jax.random.key(0),
        deterministic=deterministic)[0])(params, x))
    assert jaxpr.count("custom_vjp_call") == 4  # one per layer-direction


@pytest.mark.parametrize("deterministic", [False, True])
def test_zoneout_rate_one_freezes_the_state(x64, deterministic):
  params, x, lens, state = random_problem(8, 3, 6, 3, 4, masked=True)
  reg = lstmx.Regularization(zoneout_h=1.0, zoneout_c=1.0, recurrent_dropout=0.5)
  (y, h, c), (dparams, _, (dh0, dc0)) = _run(params, x, lens, state, reg,
                                              deterministic=deterministic)
  _equal((h, c), state)
  valid = lstmx.lengths_to_mask(lens, 6).T[..., None]
  _equal(y, jnp.where(valid, state[0][0][:, None], 0.0))
  _equal(dparams, jax.tree.map(jnp.zeros_like, dparams))  # nothing reaches the gates
  np.testing.assert_allclose(dc0, -jnp.sin(state[1]) + state[0], rtol=1e-12)


def test_weight_drop_is_awd_weight_drop_on_the_same_mask(x64):
  params, x, lens, state = random_problem(9, 3, 7, 3, 4, masked=True)
  reg = lstmx.Regularization(weight_drop=0.5)
  mask = _draw(reg, jax.random.key(0), params, 7, 3,
                          deterministic=False).layers[0][0].weight
  # AWD's WeightDrop: w_hh = F.dropout(raw_w_hh) (= raw * bernoulli / keep) before the RNN.
  dropped = ((dataclasses.replace(params[0][0], w_hh=params[0][0].w_hh * mask),),)
  got, (g_params, g_x, g_state) = _run(params, x, lens, state, reg)
  want, (w_params, w_x, w_state) = _run(dropped, x, lens, state)
  _equal(got, want)
  _equal((g_x, g_state), (w_x, w_state))
  _equal(g_params[0][0].w_hh, w_params[0][0].w_hh * mask)

  torch = pytest.importorskip("torch")
  module = torch.nn.LSTM(3, 4, batch_first=True).double()
  module.load_state_dict(lstmx.to_torch(params))
  raw = module.weight_hh_l0
  weights = dict(module.named_parameters())
  weights["weight_hh_l0"] = raw * torch.tensor(np.asarray(mask).T)
  packed = torch.nn.utils.rnn.pack_padded_sequence(
      torch.tensor(np.asarray(x)), torch.tensor(np.asarray(lens)), batch_first=True,
      enforce_sorted=False)
  out, (h, c) = torch.func.functional_call(
      module, weights, (packed, tuple(torch.tensor(np.asarray(s)) for s in state)))
  y, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=7)
  (torch.sin(y).sum() + (h * c).sum() + torch.cos(c).sum()).backward()
  np.testing.assert_allclose(got[0], y.detach().numpy(), rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(g_params[0][0].w_hh.T, raw.grad.numpy(), rtol=1e-10, atol=1e-12)


# --- penalties and embedding dropout ------------------------------------------------------


def test_ar_and_tar_penalties():
  rng = np.random.default_rng(0)
  y = jnp.asarray(rng.standard_normal((3, 6, 4)), jnp.float32)
  np.testing.assert_allclose(lstmx.ar_penalty(y), np.mean(np.square(y)), rtol=1e-6)
  np.testing.assert_allclose(lstmx.tar_penalty(y), np.mean(np.square(y[:, 1:] - y[:, :-1])),
                             rtol=1e-6)
  lens = [6, 2, 1]
  mask = jnp.arange(6)[None, :] < jnp.asarray(lens)[:, None]
  valid = np.concatenate([np.asarray(y[b, :n]) for b, n in enumerate(lens)])
  diffs = np.concatenate([np.diff(np.asarray(y[b, :n]), axis=0) for b, n in enumerate(lens)])
  np.testing.assert_allclose(lstmx.ar_penalty(y, mask), np.mean(valid ** 2), rtol=1e-6)
  np.testing.assert_allclose(lstmx.tar_penalty(y, mask), np.mean(diffs ** 2), rtol=1e-6)
  np.testing.assert_allclose(
      lstmx.tar_penalty(jnp.swapaxes(y, 0, 1), mask.T, time_major=True),
      np.mean(diffs ** 2), rtol=1e-6)
  assert float(lstmx.tar_penalty(y[:, :1])) == 0.0


def test_lstm_returns_ar_on_dropped_and_tar_on_raw_outputs():
  params, x, lens, _ = random_problem(10, 3, 6, 3, 4, masked=True, with_state=False,
                                      dtype=jnp.float32)
  reg = lstmx.Regularization(output_dropout=0.5, recurrent_dropout=0.2, ar=2.0, tar=3.0)
  key = jax.random.key(1)
  y, _, pen = lstmx.lstm(params, x, seq_lengths=lens, regularization=reg, key=key,
                         deterministic=False, return_penalties=True)
  # Masks come from per-regularizer sub-keys: without output dropout, the same key
  # gives the same recurrent masks, i.e. the raw output.
  raw, _ = lstmx.lstm(params, x, seq_lengths=lens, key=key, deterministic=False,
                      regularization=dataclasses.replace(reg, output_dropout=0.0))
  assert np.any((np.asarray(y) == 0) & (np.asarray(raw) != 0))
  mask = jnp.arange(6)[None, :] < lens[:, None]
  np.testing.assert_allclose(pen["ar"], lstmx.ar_penalty(y, mask), rtol=1e-6)
  np.testing.assert_allclose(pen["tar"], lstmx.tar_penalty(raw, mask), rtol=1e-6)
  np.testing.assert_allclose(pen["loss"], 2.0 * pen["ar"] + 3.0 * pen["tar"], rtol=1e-6)


def test_embedding_dropout_drops_whole_rows():
  V, E = 2000, 3
  emb = jax.random.normal(jax.random.key(0), (V, E)) + 5.0
  ids = jnp.concatenate([jnp.arange(V), jnp.arange(V)])[None, :]  # every word twice
  out = lstmx.embedding_dropout(emb, ids, 0.3, jax.random.key(1), deterministic=False)
  assert out.shape == (1, 2 * V, E)
  rows = np.asarray(out[0, :V])
  np.testing.assert_array_equal(rows, np.asarray(out[0, V:]))  # one mask per row and call
  dropped = np.all(rows == 0, axis=1)
  np.testing.assert_allclose(rows[~dropped], np.asarray(emb)[~dropped] / 0.7, rtol=1e-6)
  assert np.all(np.all(rows != 0, axis=1) | dropped)
  _keep_fraction_ok(~dropped, 0.7)
  _equal(lstmx.embedding_dropout(emb, ids, 0.3, deterministic=True), emb[ids])
  _equal(lstmx.embedding_dropout(emb, ids, 0.0), emb[ids])
  with pytest.raises(ValueError, match=r"embedding_dropout: rate: expected a rate in \[0, 1\)"):
    lstmx.embedding_dropout(emb, ids, 1.0, deterministic=False)
  with pytest.raises(ValueError, match=r"pass deterministic=True"):
    lstmx.embedding_dropout(emb, ids, 0.3)


# --- the NNX wrapper ----------------------------------------------------------------------


def test_nnx_lstm_modes_and_streams():
  reg = lstmx.Regularization(recurrent_dropout=0.3, zoneout_c=0.2, output_dropout=0.2)
  layer = lstmx.nn.LSTM(3, 5, regularization=reg, rngs=nnx.Rngs(0, dropout=1))
  x = jax.random.normal(jax.random.key(2), (4, 6, 3))
  with pytest.raises(ValueError, match=r"deterministic"):
    layer(x)
  layer.eval()
  y_eval, _ = layer(x)
  _equal(y_eval, lstmx.lstm(layer.params, x, regularization=reg, deterministic=True)[0])
  _equal(nnx.view(layer, deterministic=True)(x)[0], y_eval)
  layer.train()
  y1, y2 = layer(x)[0], layer(x)[0]  # the 'dropout' stream advances
  assert not np.allclose(y1, y2)
  key = jax.random.key(3)
  _equal(layer(x, rngs=key)[0], lstmx.lstm(layer.params, x, regularization=reg, key=key,
                                           deterministic=False)[0])
  _equal(layer(x, deterministic=True)[0], y_eval)

  traces = []

  @nnx.jit
  def forward(layer, x):
    traces.append(1)
    return layer(x)[0]
  a, b = forward(layer, x), forward(layer, x)
  assert len(traces) == 1 and not np.allclose(a, b)


def test_reaches_kernel_names_the_in_scan_regularizers():
  assert not lstmx.Regularization().reaches_kernel
  assert not lstmx.Regularization(input_dropout=0.5, output_dropout=0.5, layer_dropout=0.2,
                                  weight_drop=0.5).reaches_kernel
  for name in ("recurrent_dropout", "zoneout_h", "zoneout_c"):
    assert lstmx.Regularization(**{name: 0.1}).reaches_kernel, name
