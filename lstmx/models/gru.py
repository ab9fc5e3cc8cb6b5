"""The GRU sequence model: stacked (optionally bidirectional) GRUs and a per-step head.

Parameters are Flax's `nnx.GRUCell` (``dense_i``: W_i [D, 3H] and b_i [3H];
``dense_h``: W_h [H, 3H], no bias; gate order r, z, n); `gru_scan` runs the
cell's equations over time with `jax.lax.scan`:

    r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1})
    z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1})
    n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1}))
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

At padded steps (``t >= lengths[b]``) the state is carried unchanged and the
output is zero, as in `lstmx.lstm`; the reverse direction therefore starts
from h_0 at each sequence's last valid step, and padding never reaches a
valid step. The input projections of all steps are one matmul before the scan.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from lstmx.lstm import DEFAULT_UNROLL
from lstmx.models.base import ModelConfig, SequenceModel, register_kind
from lstmx.models.checks import as_bool, as_int, normalize
from lstmx.models.common import compute_dtype, valid_steps


@dataclasses.dataclass(frozen=True, kw_only=True)
class GRUConfig(ModelConfig):
  """``model.kind="gru"``: stacked GRUs.

  Attributes:
    bidirectional: a forward and a reverse GRU per layer, outputs concatenated.
    unroll: steps unrolled per scan iteration.
  """

  kind: str = "gru"
  bidirectional: bool = False
  unroll: int = DEFAULT_UNROLL

  def __post_init__(self):
    super().__post_init__()
    normalize(self, bidirectional=as_bool("model.bidirectional", self.bidirectional),
              unroll=as_int("model.unroll", self.unroll, low=1))


def gru_scan(w_h: jax.Array, x_proj: jax.Array, valid: jax.Array, h0: jax.Array, *,
             reverse: bool = False, unroll: int = 1) -> jax.Array:
  """Runs a GRU over time (time-major).

  Args:
    w_h: [H, 3H] recurrent weights (r, z, n).
    x_proj: [T, B, 3H] input projections W_i x_t + b_i.
    valid: [T, B] bool, False at padded steps.
    h0: [B, H] initial state.
    reverse: run from the last step to the first.
    unroll: `jax.lax.scan` unroll.

  Returns:
    [T, B, H] hidden states, zero at padded steps.
  """
  def step(h, inputs):
    xp, ok = inputs
    xr, xz, xn = jnp.split(xp, 3, axis=-1)
    hr, hz, hn = jnp.split(h @ w_h, 3, axis=-1)
    r = jax.nn.sigmoid(xr + hr)
    z = jax.nn.sigmoid(xz + hz)
    n = jnp.tanh(xn + r * hn)
    new = (1.0 - z) * n + z * h
    ok = ok[:, None]
    return jnp.where(ok, new, h), jnp.where(ok, new, jnp.zeros((), new.dtype))

  _, ys = jax.lax.scan(step, h0, (x_proj, valid), reverse=reverse, unroll=unroll)
  return ys


class GRUSequenceModel(SequenceModel):
  """A stacked GRU over the inputs and a linear head on every step's output.

  Example:
    >>> model = GRUSequenceModel(ModelConfig(kind="gru", hidden_size=16), 3, 2,
    ...                          rngs=nnx.Rngs(0))
    >>> model(jnp.ones((4, 10, 3)), jnp.full((4,), 7)).shape
    (4, 10, 2)
  """

  def __init__(self, cfg: GRUConfig, input_size: int, output_size: int, *, rngs: nnx.Rngs):
    self.hidden_size = cfg.hidden_size
    self.unroll = cfg.unroll
    self.dtype = compute_dtype(cfg)
    num_directions = 2 if cfg.bidirectional else 1
    width = cfg.hidden_size * num_directions
    self.layers = nnx.List([
        nnx.List([nnx.GRUCell(input_size if layer == 0 else width, cfg.hidden_size,
                              dtype=self.dtype, rngs=rngs) for _ in range(num_directions)])
        for layer in range(cfg.num_layers)])
    self.head = nnx.Linear(width, output_size, rngs=rngs)

  def __call__(self, inputs: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
    """The stacked GRU layers, then the head on every step (`SequenceModel.__call__`)."""
    B, T, _ = inputs.shape
    x = jnp.swapaxes(inputs, 0, 1)  # [T, B, D]
    if self.dtype is not None:
      x = x.astype(self.dtype)
    valid = valid_steps(lengths, B, T).T
    h0 = jnp.zeros((B, self.hidden_size), x.dtype)
    for layer in self.layers:
      x = jnp.concatenate([
          gru_scan(cell.dense_h.kernel[...].astype(x.dtype), cell.dense_i(x), valid, h0,
                   reverse=direction == 1, unroll=self.unroll)
          for direction, cell in enumerate(layer)], axis=-1)
    return self.head(jnp.swapaxes(x, 0, 1).astype(jnp.float32))


register_kind("gru", GRUConfig,
              lambda cfg, d, o, n, rngs: GRUSequenceModel(cfg, d, o, rngs=rngs), causal=True)
