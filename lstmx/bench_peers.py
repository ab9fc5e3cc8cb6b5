"""The implementations `lstmx.bench` times: lstmx and its peers, one LSTM layer each.

Each builder ``make(B, T, H, mode)`` returns a `Case`: a zero-argument callable
that runs one forward pass (``mode="fwd"``) or one training step (``"train"``:
forward + backward w.r.t. every parameter and the input, loss = sum of the
outputs) and blocks until done; for JAX implementations also the compile time
and the compiled program's memory. Input size D = H, batch-major [B, T, D].
A builder raises `Skip` when its package or device is absent.
`gemm_skeleton` is no peer: lstmx's GEMMs without its cell math (``--gemm-only``).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Callable

import jax
import jax.numpy as jnp

import lstmx
from lstmx.lstm import DEFAULT_UNROLL  # the "lstmx" rows and the GEMM skeleton follow it
from lstmx.scan import previous


class Skip(Exception):
  """The implementation cannot run here (package missing, no GPU, ...)."""


@dataclasses.dataclass
class Case:
  run: Callable[[], None]
  compile_s: float | None = None
  memory_bytes: int | None = None  # arguments + outputs + temps of the compiled program


def compile_case(f, *args, argnums=(0, 1), mode="train") -> Case:
  """Jits f(*args) -> outputs (fwd) or its grad w.r.t. `argnums` of sum(outputs)."""
  if mode == "train":
    g = jax.grad(lambda *a: jnp.sum(f(*a).astype(jnp.float32)), argnums=argnums)
  else:
    g = f
  t = time.perf_counter()
  compiled = jax.jit(g).lower(*args).compile()
  compile_s = time.perf_counter() - t
  m = compiled.memory_analysis()
  mem = None if m is None else (m.argument_size_in_bytes + m.output_size_in_bytes
                                + m.temp_size_in_bytes - m.alias_size_in_bytes)
  return Case(lambda: jax.block_until_ready(compiled(*args)), compile_s, mem)


def _x(B, T, H, dtype=jnp.float32):
  return jax.random.normal(jax.random.key(1), (B, T, H), dtype)


def lstmx_case(B, T, H, mode, *, unroll=DEFAULT_UNROLL, compute_dtype=None,
               remat_every=None) -> Case:
  params = lstmx.init_lstm(jax.random.key(0), H, H)[0][0]

  def f(p, x):
    return lstmx.lstm(p, x, unroll=unroll, compute_dtype=compute_dtype,
                      remat_every=remat_every)[0]
  return compile_case(f, params, _x(B, T, H), mode=mode)


def gemm_skeleton(w_ih, w_hh, x, mode="train", unroll=DEFAULT_UNROLL):
  """lstmx's kernel with its cell math cut down to one tanh: the GEMMs alone.

  Not an LSTM. It runs the matmuls of `lstmx.scan` with the same shapes, data
  flow and buffers (batch-first x [B, T, D] transposed to time-major, the
  projection ``xp = X w_ih`` updated in place, forward unrolled `unroll`, the
  backward's dZ written over the same buffer), with

      z_t = tanh(xp_t + h_{t-1} w_hh),   h_t = z_i * z_f + z_g * z_o   (the four H-blocks)

  and, for ``mode="train"``, a backward-shaped pass (g starts at ones [B, H])

      dz_t = z_t * [g, g, g, g],   g <- dz_t w_hh^T,   (t = T-1 .. 0)
      dW_ih = X^T dZ,   dW_hh = H_prev^T dZ,   dX = dZ w_ih^T.

  Every output depends on every GEMM, so XLA can drop none of them. Its time is
  what XLA's GEMMs cost on this machine for one LSTM training step (``fwd``:
  forward): a floor for a `lax.scan` kernel with this data flow
  (docs/performance.md measures the other arrangements).

  Returns: ``fwd``: hs [B, T, H]; ``train``: (dW_ih [D, 4H], dW_hh [H, 4H], dX [B, T, D]).
  """
  B, T, D = x.shape
  H = w_hh.shape[0]
  xs = jnp.swapaxes(x, 0, 1)
  xp = (xs.reshape(T * B, D) @ w_ih).reshape(T, B, 4 * H)

  def fstep(carry, t):
    h, buf = carry
    z = jnp.tanh(jax.lax.dynamic_index_in_dim(buf, t, 0, False) + h @ w_hh)
    buf = jax.lax.dynamic_update_index_in_dim(buf, z, t, 0)
    h = z[:, :H] * z[:, H:2 * H] + z[:, 2 * H:3 * H] * z[:, 3 * H:]
    return (h, buf), h
  (_, zs), hs = jax.lax.scan(fstep, (jnp.zeros((B, H), x.dtype), xp), jnp.arange(T),
                             unroll=unroll)
  if mode == "fwd":
    return jnp.swapaxes(hs, 0, 1)
  w_hh_t = w_hh.T

  def bstep(carry, t):
    g, z, buf = carry
    dz = z * jnp.tile(g, (1, 4))
    buf = jax.lax.dynamic_update_index_in_dim(buf, dz, t, 0)
    z = jax.lax.dynamic_index_in_dim(buf, t - 1, 0, False)  # t - 1 < 0 clamps; unused
    return (dz @ w_hh_t, z, buf), None
  (_, _, dzs), _ = jax.lax.scan(bstep, (jnp.ones((B, H), x.dtype), zs[T - 1], zs),
                                jnp.arange(T), reverse=True)
  dz2 = dzs.reshape(T * B, 4 * H)
  h_prev = previous(hs, jnp.zeros((B, H), x.dtype), reverse=False).reshape(T * B, H)
  dx = (dz2 @ w_ih.T).reshape(T, B, D)
  return xs.reshape(T * B, D).T @ dz2, h_prev.T @ dz2, jnp.swapaxes(dx, 0, 1)


def gemm_skeleton_case(B, T, H, mode) -> Case:
  params = lstmx.init_lstm(jax.random.key(0), H, H)[0][0]
  f = functools.partial(gemm_skeleton, mode=mode)
  return compile_case(f, params.w_ih, params.w_hh, _x(B, T, H), mode="fwd")  # no autodiff


def flax_nnx_case(B, T, H, mode) -> Case:
  from flax import nnx
  rnn = nnx.RNN(nnx.OptimizedLSTMCell(H, H, rngs=nnx.Rngs(0)))
  graphdef, params, rest = nnx.split(rnn, nnx.Param, ...)
  zeros = jnp.zeros((B, H))  # an explicit (c, h) carry: no RNG draw inside the trace

  def f(p, x):
    return nnx.merge(graphdef, p, rest)(x, initial_carry=(zeros, zeros))
  return compile_case(f, params, _x(B, T, H), mode=mode)


def flax_linen_case(B, T, H, mode) -> Case:
  import flax.linen as nn
  model = nn.RNN(nn.OptimizedLSTMCell(H))
  x = _x(B, T, H)
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
  return compile_case(f, params, _x(B, T, H), mode=mode)


def cudnn_case(B, T, H, mode) -> Case:
  if not any(d.platform == "gpu" for d in jax.devices()):
    raise Skip("jax.experimental.rnn (cuDNN) needs an NVIDIA GPU; none present")
  from jax.experimental import rnn
  w = rnn.init_lstm_weight(jax.random.key(0), H, H, 1, False)
  lengths = jnp.full((B,), T, jnp.int32)
  zeros = jnp.zeros((1, B, H))

  def f(w, x):
    return rnn.lstm(x, zeros, zeros, w, lengths, H, H, 1, 0.0, False)[0]
  return compile_case(f, w, _x(B, T, H), mode=mode)


def torch_case(B, T, H, mode) -> Case:
  try:
    import torch
  except ImportError:
    raise Skip("torch is not installed (pip install 'lstmx[torch]')") from None
  module = torch.nn.LSTM(H, H, batch_first=True)
  x = torch.randn(B, T, H, requires_grad=mode == "train")

  def train():
    module.zero_grad(set_to_none=True)
    x.grad = None
    y, _ = module(x)
    y.sum().backward()

  def forward():
    with torch.no_grad():
      module(x)
  return Case(train if mode == "train" else forward)


PEERS: dict[str, Callable[..., Case]] = {
    "torch.nn.LSTM": torch_case,
    "flax nnx.RNN(OptimizedLSTMCell)": flax_nnx_case,
    "flax linen nn.RNN(OptimizedLSTMCell)": flax_linen_case,
    "equinox LSTMCell + lax.scan": equinox_case,
    "jax.experimental.rnn (cuDNN)": cudnn_case,
}
