"""A small pre-LayerNorm Transformer encoder with a per-step head.

    x_0 = W_e x + p                          (p: sinusoidal or learned positions)
    x   = x + MHA(LN(x), mask)               (per block, ``num_layers`` blocks)
    x   = x + W_2 act(W_1 LN(x))             (W_1: H -> ff_multiple * H)
    y   = W_o LN(x)

The attention mask is causal by default (step t sees steps <= t, like an
LSTM); ``causal=False`` attends in both directions. Keys at padded steps
(``t >= lengths[b]``) are masked out, so padding never reaches a valid step.
Sinusoidal positions work at any length (length generalization); learned ones
stop at the ``max_length`` given at build time.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from lstmx.models.base import ModelConfig, SequenceModel, register_kind
from lstmx.models.checks import as_bool, as_choice, as_int, normalize
from lstmx.models.common import (ACTIVATIONS, activation, check_positive, compute_dtype,
                                 valid_steps, zero_padded)

POSITIONAL = ("sinusoidal", "learned")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransformerConfig(ModelConfig):
  """``model.kind="transformer"``: a pre-LayerNorm Transformer encoder.

  Attributes:
    num_heads: attention heads; ``hidden_size`` must be a multiple.
    ff_multiple: feed-forward width = ff_multiple * hidden_size.
    causal: False attends in both directions.
    positional: ``sinusoidal`` | ``learned`` (up to the build's max_length).
    activation: the feed-forward nonlinearity: relu | gelu | tanh.
  """

  HINTS: ClassVar[dict[str, str]] = {"bidirectional": "use model.causal=false"}

  kind: str = "transformer"
  num_heads: int = 4
  ff_multiple: int = 4
  causal: bool = True
  positional: str = "sinusoidal"
  activation: str = "relu"

  def __post_init__(self):
    super().__post_init__()
    normalize(self, num_heads=as_int("model.num_heads", self.num_heads, low=1),
              ff_multiple=as_int("model.ff_multiple", self.ff_multiple, low=1),
              causal=as_bool("model.causal", self.causal),
              positional=as_choice("model.positional", self.positional, POSITIONAL),
              activation=as_choice("model.activation", self.activation, tuple(ACTIVATIONS)))


def sinusoidal_positions(T: int, width: int) -> jax.Array:
  """[T, width] float32 encodings, sin and cos interleaved (Vaswani et al. 2017)."""
  half = (width + 1) // 2
  position = jnp.arange(T, dtype=jnp.float32)[:, None]
  frequency = jnp.exp(jnp.arange(half, dtype=jnp.float32) * (-math.log(10000.0) / half))
  angles = position * frequency[None, :]
  return jnp.stack([jnp.sin(angles), jnp.cos(angles)], axis=-1).reshape(T, 2 * half)[:, :width]


def attention_mask(lengths: jax.Array | None, B: int, T: int, causal: bool) -> jax.Array:
  """[B, 1, T, T] bool: query t may attend key s (valid key, and s <= t if causal)."""
  mask = valid_steps(lengths, B, T)[:, None, None, :]
  if causal:
    mask = mask & jnp.tril(jnp.ones((T, T), jnp.bool_))[None, None]
  return jnp.broadcast_to(mask, (B, 1, T, T))


class TransformerBlock(nnx.Module):
  """Pre-LN block: x + MHA(LN(x)), then x + FF(LN(x)); x [B, T, H] -> [B, T, H].

  The residual stream and LayerNorms stay float32; `dtype` sets the matmuls' dtype.
  """

  def __init__(self, width: int, num_heads: int, ff_width: int, act: str, dtype,
               *, rngs: nnx.Rngs):
    self.act = act
    self.norm_attention = nnx.LayerNorm(width, rngs=rngs)
    self.attention = nnx.MultiHeadAttention(num_heads, width, qkv_features=width,
                                            out_features=width, dtype=dtype, decode=False,
                                            keep_rngs=False, rngs=rngs)
    self.norm_ff = nnx.LayerNorm(width, rngs=rngs)
    self.ff_in = nnx.Linear(width, ff_width, dtype=dtype, rngs=rngs)
    self.ff_out = nnx.Linear(ff_width, width, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    # jax's attention promotes bf16 logits to float32 implicitly, which strict
    # dtype promotion rejects; only that library call runs under standard rules.
    h = self.norm_attention(x)
    with jax.numpy_dtype_promotion("standard"):
      a = self.attention(h, mask=mask, deterministic=True)
    x = x + a.astype(x.dtype)
    return x + self.ff_out(ACTIVATIONS[self.act](self.ff_in(self.norm_ff(x)))).astype(x.dtype)


class TransformerSequenceModel(SequenceModel):
  """Input projection + positions, pre-LN Transformer blocks, a linear head per step.

  Example:
    >>> model = TransformerSequenceModel(ModelConfig(kind="transformer", hidden_size=16),
    ...                                  3, 2, max_length=10, rngs=nnx.Rngs(0))
    >>> model(jnp.ones((4, 10, 3)), jnp.full((4,), 7)).shape
    (4, 10, 2)
  """

  def __init__(self, cfg: TransformerConfig, input_size: int, output_size: int, *,
               max_length: int | None = None, rngs: nnx.Rngs):
    width = cfg.hidden_size
    if cfg.num_heads < 1 or width % cfg.num_heads:
      raise ValueError(f"model.hidden_size: expected a multiple of model.num_heads="
                       f"{cfg.num_heads} for the transformer; got {width}")
    if cfg.positional not in POSITIONAL:
      raise ValueError(f"model.positional: expected one of {POSITIONAL}; "
                       f"got {cfg.positional!r}")
    if cfg.positional == "learned" and max_length is None:
      raise ValueError("model.positional='learned' needs max_length (the task length) "
                       "at build time: models.build(..., max_length=task.length)")
    check_positive("model.ff_multiple", cfg.ff_multiple)
    activation(cfg)  # validates the name
    self.dtype = compute_dtype(cfg)
    self.causal = cfg.causal
    self.positional = cfg.positional
    self.max_length = max_length
    self.embed = nnx.Linear(input_size, width, dtype=self.dtype, rngs=rngs)
    if cfg.positional == "learned":
      init = nnx.initializers.normal(0.02)
      self.positions = nnx.Param(init(rngs.params(), (max_length, width), jnp.float32))
    self.blocks = nnx.List([
        TransformerBlock(width, cfg.num_heads, cfg.ff_multiple * width, cfg.activation,
                         self.dtype, rngs=rngs) for _ in range(cfg.num_layers)])
    self.norm = nnx.LayerNorm(width, rngs=rngs)
    self.head = nnx.Linear(width, output_size, rngs=rngs)

  def _positions(self, T: int, width: int) -> jax.Array:
    if self.positional == "sinusoidal":
      return sinusoidal_positions(T, width)
    if T > self.max_length:
      raise ValueError(f"transformer: inputs have T={T} steps but the learned positions "
                       f"stop at max_length={self.max_length}; use model.positional="
                       "'sinusoidal' for longer test sequences")
    return self.positions[:T]

  def __call__(self, inputs: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
    """Runs the model.

    Args:
      inputs: [B, T, D] float32.
      lengths: [B] int valid lengths, or None for all T.

    Returns:
      [B, T, output_size] float32, one output per step.
    """
    B, T, _ = inputs.shape
    x = self.embed(zero_padded(inputs, lengths)).astype(jnp.float32)
    x = x + self._positions(T, x.shape[-1])[None]
    mask = attention_mask(lengths, B, T, self.causal)
    for block in self.blocks:
      x = block(x, mask)
    return self.head(self.norm(x))


register_kind("transformer", TransformerConfig,
              lambda cfg, d, o, n, rngs: TransformerSequenceModel(cfg, d, o, max_length=n,
                                                                  rngs=rngs), causal=True)
