"""lstmx.kernels beyond the contract suite: the registry and its lazy entries, the typed
options, the dispatcher's answers through `unsupported`, and `nn.LSTM.resolved_backend`."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

import lstmx
from lstmx.kernels import BACKENDS, KernelBackend, KernelOptions, LayerMasks, select

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_import_lstmx_does_not_import_pallas_or_rnn():
  code = ("import sys, lstmx\n"
          "loaded = [m for m in ('jax.experimental.pallas', 'jax.experimental.rnn') "
          "if m in sys.modules]\n"
          "assert not loaded, loaded\n"
          "lstmx.lstm_layer_pallas\n"
          "assert 'jax.experimental.pallas' in sys.modules\n"
          "assert 'jax.experimental.rnn' not in sys.modules\n"
          "lstmx.lstm_layer_cudnn\n"
          "assert 'jax.experimental.rnn' in sys.modules\n")
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
  assert out.returncode == 0, out.stderr


def test_registry_holds_every_backend_and_the_protocol():
  # As a set: lazy entries move ahead once imported, so the order depends on test order.
  names = lstmx.backends.names()
  assert names[0] == "auto" and len(set(names)) == len(names)
  assert set(names) == {"auto", "scan", "reference", "hidden_parallel", "pallas", "cudnn",
                        "pallas_gpu", "deer", "block_deer", "quasi_deer"}
  for name in BACKENDS.names():
    backend = BACKENDS.get(name)
    assert isinstance(backend, KernelBackend) and backend.name == name


def test_options_are_hashable_and_validate_remat_every():
  assert hash(KernelOptions(unroll=2)) == hash(KernelOptions(unroll=2))
  for bad in (0, -2, 2.5, True):
    with pytest.raises(ValueError, match="remat_every must be None or a positive int"):
      KernelOptions(remat_every=bad)


@pytest.mark.parametrize("name", ["pallas", "hidden_parallel", "cudnn"])
def test_remat_every_on_a_backend_without_memory_modes_raises_naming_it(name):
  params = lstmx.init_lstm(jax.random.key(0), 3, 4)
  with pytest.raises(ValueError, match=rf"backend='{name}' .*remat_every"):
    select(name, KernelOptions(remat_every=4), LayerMasks(), dtype=jnp.float32,
           platform="cuda")
  if name == "pallas":
    with pytest.raises(ValueError, match=r"backend='pallas' cannot run this call: remat_every"):
      lstmx.lstm(params, jnp.ones((2, 5, 3)), backend="pallas", remat_every=2)


def test_layer_masks_is_lstmx_layer_masks():
  assert lstmx.LayerMasks is LayerMasks
  assert lstmx.regularization.LayerMasks is LayerMasks


@pytest.mark.parametrize("reg,training,want_cuda", [
    (None, False, "cudnn"),
    (lstmx.Regularization(recurrent_dropout=0.2), True, "scan"),
    (lstmx.Regularization(recurrent_dropout=0.2), False, "cudnn"),  # no mask in evaluation
    (lstmx.Regularization(zoneout_c=0.1), False, "scan"),  # zoneout's expectation
    (lstmx.Regularization(weight_drop=0.3), True, "cudnn"),  # acts outside the kernel
])
def test_nn_lstm_reports_its_resolved_backend(monkeypatch, reg, training, want_cuda):
  from lstmx.kernels import dispatch
  layer = lstmx.nn.LSTM(3, 8, regularization=reg, rngs=nnx.Rngs(0, dropout=1))
  assert layer.resolved_backend(training=training) == "scan"  # this CPU
  monkeypatch.setattr(dispatch, "current_platform", lambda: "cuda")
  assert layer.resolved_backend(training=training) == want_cuda
  named = lstmx.nn.LSTM(3, 8, backend="reference", rngs=nnx.Rngs(0))
  assert named.resolved_backend() == "reference"
