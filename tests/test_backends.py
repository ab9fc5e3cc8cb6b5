"""The dispatcher's choices and the cuDNN backend on a CPU.

* `resolve`: ``auto`` picks cudnn only on CUDA for eligible calls, else scan;
  an explicit ``cudnn`` elsewhere or for an ineligible call raises, naming the
  argument; ``pallas`` is only chosen by name.
* The cuDNN weight converter against ``jax.experimental.rnn.lstm_ref`` (pure JAX).
* The cuDNN layer's plumbing (layout, reverse by flipping the valid part,
  masking, gradients through the packing) with ``rnn.lstm`` swapped for
  ``lstm_ref`` and the platform faked as CUDA.
* The real cuDNN call, skipped without an NVIDIA GPU.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import rnn

import lstmx
from lstmx import backends
from lstmx.kernels import cudnn, dispatch
from lstmx.backends import Backend, resolve
from helpers import assert_trees_close, random_problem, value_and_grads

F32 = jnp.float32
ON_CUDA = backends.current_platform() == "cuda"


@pytest.mark.parametrize("platform,facts,want", [
    ("cpu", dict(dtype=F32), Backend.SCAN),
    ("tpu", dict(dtype=F32), Backend.SCAN),
    ("rocm", dict(dtype=F32), Backend.SCAN),
    ("cuda", dict(dtype=F32), Backend.CUDNN),
    ("cuda", dict(dtype=F32, precision=jax.lax.Precision.HIGHEST), Backend.CUDNN),
    ("cuda", dict(dtype=F32, precision=jax.lax.Precision.HIGH), Backend.CUDNN),
    ("cuda", dict(), Backend.SCAN),  # dtype unknown: never cuDNN
    ("cuda", dict(dtype=jnp.float64), Backend.SCAN),
    ("cuda", dict(dtype=jnp.bfloat16), Backend.SCAN),
    ("cuda", dict(dtype=F32, compute_dtype=jnp.bfloat16), Backend.SCAN),
    ("cuda", dict(dtype=F32, precision=jax.lax.Precision.DEFAULT), Backend.SCAN),
    ("cuda", dict(dtype=F32, regularized=True), Backend.SCAN),
])
def test_auto(platform, facts, want):
  assert resolve("auto", platform=platform, **facts) is want


@pytest.mark.parametrize("platform", ["cpu", "cuda"])
@pytest.mark.parametrize("name,want", [("scan", Backend.SCAN), ("reference", Backend.REFERENCE),
                                       ("pallas", Backend.PALLAS)])
def test_named_backends_are_taken_as_given(platform, name, want):
  assert resolve(name, platform=platform, dtype=F32, regularized=True) is want


def test_auto_never_picks_pallas():
  for platform in ("cpu", "cuda", "rocm", "tpu"):
    for dtype in (F32, jnp.float64, jnp.bfloat16):
      assert resolve("auto", platform=platform, dtype=dtype) is not Backend.PALLAS


@pytest.mark.parametrize("platform,facts,pattern", [
    ("cpu", dict(dtype=F32), r"backend='cudnn' needs an NVIDIA GPU.*platform='cpu'"),
    ("tpu", dict(), r"backend='cudnn' needs an NVIDIA GPU.*platform='tpu'"),
    ("cuda", dict(dtype=jnp.float64), r"backend='cudnn'.*dtype: cuDNN runs float32"),
    ("cuda", dict(dtype=F32, compute_dtype=jnp.bfloat16), r"compute_dtype"),
    ("cuda", dict(dtype=F32, regularized=True), r"regularization: recurrent dropout"),
    ("cuda", dict(dtype=F32, precision=jax.lax.Precision.DEFAULT), r"precision"),
])
def test_explicit_cudnn_rejects_ineligible_calls(platform, facts, pattern):
  with pytest.raises(ValueError, match=pattern):
    resolve("cudnn", platform=platform, **facts)


@pytest.mark.skipif(ON_CUDA, reason="this machine has an NVIDIA GPU")
def test_lstm_with_cudnn_on_cpu_raises_naming_the_argument():
  params = lstmx.init_lstm(jax.random.key(0), 3, 4)
  with pytest.raises(ValueError, match=r"backend='cudnn' needs an NVIDIA GPU"):
    lstmx.lstm(params, jnp.ones((2, 5, 3)), backend="cudnn")


def test_cudnn_layer_rejects_regularization():
  p = lstmx.init_lstm(jax.random.key(0), 3, 4)[0][0]
  xs, h = jnp.ones((5, 2, 3)), jnp.zeros((2, 4))
  with pytest.raises(NotImplementedError, match=r"backend='cudnn'.*regularization"):
    cudnn.lstm_layer_cudnn(p, xs, None, h, h, recurrent_mask=jnp.ones((2, 4)))


# ---------------------------------------------------------------- weight converter


@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True), (3, False)])
def test_cudnn_weights_match_lstm_ref(x64, num_layers, bidirectional):
  D, H = 3, 5
  params, x, lens, state = random_problem(num_layers, 4, 9, D, H, num_layers=num_layers,
                                          bidirectional=bidirectional, masked=True)
  w = cudnn.to_cudnn_weights(params)
  assert w.shape == (rnn.get_num_params_in_lstm(D, H, num_layers, bidirectional),)
  got = rnn.lstm_ref(x, *state, *rnn.unpack_lstm_weights(w, D, H, num_layers, bidirectional),
                     lens, D, H, num_layers, 0.0, bidirectional)
  y, (h, c) = lstmx.lstm(params, x, seq_lengths=lens, initial_state=state, backend="reference")
  assert_trees_close(got, (y, h, c), rtol=1e-12, atol=1e-12)


def test_from_cudnn_weights_sums_the_two_biases(x64):
  D, H, L = 3, 4, 2
  w = rnn.init_lstm_weight(jax.random.key(1), D, H, L, True).astype(jnp.float64)
  params = cudnn.from_cudnn_weights(w, D, H, L, True)
  x = jax.random.normal(jax.random.key(2), (2, 6, D), jnp.float64)
  h0 = c0 = jnp.zeros((2 * L, 2, H), jnp.float64)
  lens = jnp.array([6, 4], jnp.int32)
  got = rnn.lstm_ref(x, h0, c0, *rnn.unpack_lstm_weights(w, D, H, L, True), lens, D, H, L,
                     0.0, True)
  y, (h, c) = lstmx.lstm(params, x, seq_lengths=lens, backend="reference")
  assert_trees_close(got, (y, h, c), rtol=1e-12, atol=1e-12)
  back = cudnn.from_cudnn_weights(cudnn.to_cudnn_weights(params), D, H, L, True)
  assert_trees_close(back, params, rtol=0, atol=0)


# ---------------------------------------------------------------- the layer, faked CUDA


def _lstm_via_ref(x, h0, c0, w, lengths, D, H, L, dropout, bidirectional, precision=None):
  """``rnn.lstm``'s signature, computed by ``rnn.lstm_ref`` (differentiable on CPU)."""
  del precision
  return rnn.lstm_ref(x, h0, c0, *rnn.unpack_lstm_weights(w, D, H, L, bidirectional),
                      lengths, D, H, L, dropout, bidirectional)


@pytest.fixture
def fake_cuda(monkeypatch):
  calls = []

  def lstm(*args):
    calls.append(args[0].shape)
    return _lstm_via_ref(*args)
  monkeypatch.setattr(dispatch, "current_platform", lambda: "cuda")
  monkeypatch.setattr(cudnn, "_cudnn_lstm", lstm)
  return calls


@pytest.mark.parametrize("backend,masked", [("cudnn", True), ("auto", False)])
def test_cudnn_layer_matches_reference(fake_cuda, backend, masked):
  problem = random_problem(4, 3, 11, 4, 6, num_layers=2, bidirectional=True, masked=masked,
                           dtype=F32)
  with jax.default_matmul_precision("highest"):
    ref = value_and_grads(*problem, "reference")
    got = value_and_grads(*problem, backend)
  assert fake_cuda, "the cuDNN layer was not called"
  assert_trees_close(got, ref, rtol=2e-5, atol=2e-5)


def test_auto_on_cuda_falls_back_to_scan_under_recurrent_regularization(fake_cuda):
  params, x, lens, _ = random_problem(1, 2, 5, 3, 4, masked=True, dtype=F32)
  reg = lstmx.Regularization(recurrent_dropout=0.3)
  y, _ = lstmx.lstm(params, x, seq_lengths=lens, regularization=reg, key=jax.random.key(0),
                    deterministic=False)
  want, _ = lstmx.lstm(params, x, seq_lengths=lens, regularization=reg, key=jax.random.key(0),
                       deterministic=False, backend="scan")
  assert not fake_cuda
  np.testing.assert_array_equal(np.asarray(y), np.asarray(want))
  # Weight drop acts on w_hh outside the kernel: still eligible.
  lstmx.lstm(params, x, seq_lengths=lens, regularization=lstmx.Regularization(weight_drop=0.3),
             key=jax.random.key(0), deterministic=False)
  assert fake_cuda


def test_explicit_cudnn_with_float64_on_cuda_raises(fake_cuda):
  with jax.enable_x64(True):
    params, x, _, _ = random_problem(1, 2, 5, 3, 4)
    with pytest.raises(ValueError, match=r"dtype: cuDNN runs float32"):
      lstmx.lstm(params, x, backend="cudnn")


# ---------------------------------------------------------------- the real thing


@pytest.mark.skipif(not ON_CUDA, reason="needs an NVIDIA GPU (cuDNN)")
@pytest.mark.parametrize("masked", [False, True])
def test_real_cudnn_matches_scan(masked):
  problem = random_problem(4, 3, 17, 4, 8, num_layers=2, bidirectional=True, masked=masked,
                           dtype=F32)
  with jax.default_matmul_precision("highest"):
    ref = value_and_grads(*problem, "scan")
    got = value_and_grads(*problem, "cudnn")
  assert_trees_close(got, ref, rtol=1e-4, atol=1e-4)
