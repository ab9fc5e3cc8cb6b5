"""The implementations `benchmarks/bench.py` times: lstmx and its peers, one LSTM layer each.

Each builder ``make(B, T, H, mode)`` returns a `benchmarks.case.Case` (see
there for what ``fwd`` and ``train`` run); it raises `Skip` when its package
or device is absent. `PEERS` maps the table's names to the peers' builders.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

import lstmx
from benchmarks.case import Case, Skip, compile_case, random_input
from lstmx.lstm import DEFAULT_UNROLL  # the "lstmx" rows follow the library's default


def lstmx_case(B, T, H, mode, *, unroll=DEFAULT_UNROLL, compute_dtype=None,
               remat_every=None, backend="auto") -> Case:
  """`lstmx.lstm`, one layer; `unroll`, `compute_dtype`, `remat_every`, `backend` as
  there."""
  params = lstmx.init_lstm(jax.random.key(0), H, H)[0][0]

  def f(p, x):
    return lstmx.lstm(p, x, unroll=unroll, compute_dtype=compute_dtype,
                      remat_every=remat_every, backend=backend)[0]
  return compile_case(f, params, random_input(B, T, H), mode=mode)


def flax_nnx_case(B, T, H, mode, dtype=None) -> Case:
  """Flax's `nnx.RNN(OptimizedLSTMCell)`; `dtype` (e.g. bfloat16): its computation dtype,
  the parameters staying float32."""
  from flax import nnx
  rnn = nnx.RNN(nnx.OptimizedLSTMCell(H, H, dtype=dtype, rngs=nnx.Rngs(0)))
  graphdef, params, rest = nnx.split(rnn, nnx.Param, ...)
  zeros = jnp.zeros((B, H))  # an explicit (c, h) carry: no RNG draw inside the trace

  def f(p, x):
    return nnx.merge(graphdef, p, rest)(x, initial_carry=(zeros, zeros))
  return compile_case(f, params, random_input(B, T, H), mode=mode)


def flax_linen_case(B, T, H, mode) -> Case:
  import flax.linen as nn
  model = nn.RNN(nn.OptimizedLSTMCell(H))
  x = random_input(B, T, H)
  variables = model.init(jax.random.key(0), x)
  return compile_case(model.apply, variables, x, mode=mode)


def equinox_case(B, T, H, mode) -> Case:
  try:
    import equinox as eqx
  except ImportError:
    raise Skip("equinox is not installed (pip install 'lstmx[bench]')") from None
  cell = eqx.nn.LSTMCell(H, H, key=jax.random.key(0))
  params, static = eqx.partition(cell, eqx.is_array)

  def f(params, x):
    step_cell = jax.vmap(eqx.combine(params, static))  # over the batch

    def step(carry, x_t):
      carry = step_cell(x_t, carry)
      return carry, carry[0]
    zeros = jnp.zeros((x.shape[0], H), x.dtype)
    _, ys = jax.lax.scan(step, (zeros, zeros), jnp.swapaxes(x, 0, 1))
    return jnp.swapaxes(ys, 0, 1)
  return compile_case(f, params, random_input(B, T, H), mode=mode)


def cudnn_case(B, T, H, mode) -> Case:
  if not any(d.platform == "gpu" for d in jax.devices()):
    raise Skip("jax.experimental.rnn (cuDNN) needs an NVIDIA GPU; none present")
  from jax.experimental import rnn
  w = rnn.init_lstm_weight(jax.random.key(0), H, H, 1, False)
  lengths = jnp.full((B,), T, jnp.int32)
  zeros = jnp.zeros((1, B, H))

  def f(w, x):
    return rnn.lstm(x, zeros, zeros, w, lengths, H, H, 1, 0.0, False)[0]
  return compile_case(f, w, random_input(B, T, H), mode=mode)


def torch_case(B, T, H, mode, dtype=None) -> Case:
  """`torch.nn.LSTM` on CUDA (cuDNN) where torch sees a GPU, else on the CPU; `dtype`
  "bfloat16": module and input in bfloat16 (torch's cuDNN LSTM has no mixed mode)."""
  try:
    import torch
  except ImportError:
    raise Skip("torch is not installed (pip install 'lstmx[torch]')") from None
  device = "cuda" if torch.cuda.is_available() else "cpu"
  tdtype = torch.bfloat16 if dtype is not None and "bfloat16" in str(dtype) else torch.float32
  module = torch.nn.LSTM(H, H, batch_first=True).to(device=device, dtype=tdtype)
  x = torch.randn(B, T, H, device=device, dtype=tdtype, requires_grad=mode == "train")
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

  def train():
    module.zero_grad(set_to_none=True)
    x.grad = None
    y, _ = module(x)
    y.float().sum().backward()
    sync()

  def forward():
    with torch.no_grad():
      module(x)
    sync()
  return Case(train if mode == "train" else forward)


PEERS: dict[str, Callable[..., Case]] = {
    "torch.nn.LSTM": torch_case,
    "flax nnx.RNN(OptimizedLSTMCell)": flax_nnx_case,
    "flax linen nn.RNN(OptimizedLSTMCell)": flax_linen_case,
    "equinox LSTMCell + lax.scan": equinox_case,
    "jax.experimental.rnn (cuDNN)": cudnn_case,
}
