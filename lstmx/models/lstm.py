"""The LSTM sequence model: a stacked `lstmx.nn.LSTM` and a linear head per step."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lstmx.config import ModelConfig
from lstmx.nn import LSTM


class LSTMSequenceModel(nnx.Module):
  """A stacked LSTM over the inputs and a linear head on every step's output."""

  def __init__(self, cfg: ModelConfig, input_size: int, output_size: int, *, rngs: nnx.Rngs):
    compute_dtype = jnp.dtype(cfg.compute_dtype) if cfg.compute_dtype else None
    self.lstm = LSTM(input_size, cfg.hidden_size, num_layers=cfg.num_layers,
                     bidirectional=cfg.bidirectional, init=cfg.init,
                     chrono_max_length=cfg.chrono_max_length, backend=cfg.backend,
                     unroll=cfg.unroll, compute_dtype=compute_dtype, rngs=rngs)
    width = cfg.hidden_size * (2 if cfg.bidirectional else 1)
    self.head = nnx.Linear(width, output_size, rngs=rngs)

  def __call__(self, inputs: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
    y, _ = self.lstm(inputs, seq_lengths=lengths)
    return self.head(y)
