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

Attention (``attention``; `attend`), the same function three ways:

    A = softmax(q k^T / sqrt(d_head) + mask) v      q, k, v [B, T, heads, d_head]

* ``"naive"``: written out, materializing the [B, heads, T, T] logits and
  weights (and keeping them for the backward pass);
* ``"fused"`` (default): `jax.nn.dot_product_attention` with
  ``implementation=None`` (jax picks; in jax 0.10 that is its XLA path), the
  mask given as ``is_causal`` and ``key_value_seq_lengths``, no [T, T] mask
  built by us;
* ``"cudnn"``: the same call with ``implementation="cudnn"``: cuDNN's fused
  (flash) attention, NVIDIA GPUs and float16/bfloat16 (``model.dtype``) only.

tests/test_attention.py checks the three against each other (values and gradients).
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
ATTENTIONS = ("naive", "fused", "cudnn")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransformerConfig(ModelConfig):
  """``model.kind="transformer"``: a pre-LayerNorm Transformer encoder.

  Attributes:
    num_heads: attention heads; ``hidden_size`` must be a multiple.
    ff_multiple: feed-forward width = ff_multiple * hidden_size.
    causal: False attends in both directions.
    positional: ``sinusoidal`` | ``learned`` (up to the build's max_length).
    activation: the feed-forward nonlinearity: relu | gelu | tanh.
    attention: ``naive`` | ``fused`` | ``cudnn`` (`attend`; the module docstring).
  """

  HINTS: ClassVar[dict[str, str]] = {"bidirectional": "use model.causal=false"}

  kind: str = "transformer"
  num_heads: int = 4
  ff_multiple: int = 4
  causal: bool = True
  positional: str = "sinusoidal"
  activation: str = "relu"
  attention: str = "fused"

  def __post_init__(self):
    super().__post_init__()
    normalize(self, num_heads=as_int("model.num_heads", self.num_heads, low=1),
              ff_multiple=as_int("model.ff_multiple", self.ff_multiple, low=1),
              causal=as_bool("model.causal", self.causal),
              positional=as_choice("model.positional", self.positional, POSITIONAL),
              activation=as_choice("model.activation", self.activation, tuple(ACTIVATIONS)),
              attention=as_choice("model.attention", self.attention, ATTENTIONS))


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


def attend(q: jax.Array, k: jax.Array, v: jax.Array, lengths: jax.Array | None,
           causal: bool, kind: str = "fused") -> jax.Array:
  """Scaled dot-product attention; q, k, v [B, T, heads, d_head] -> [B, T, heads, d_head].

  Query t attends key s when s < lengths[b] (all T if `lengths` is None) and,
  if `causal`, s <= t. `kind` is ``naive``, ``fused`` or ``cudnn`` (module
  docstring). The naive form's softmax runs in float32 and casts back.
  """
  B, T = q.shape[:2]
  if kind == "naive":
    logits = jnp.einsum("btnd,bsnd->bnts", q, k).astype(jnp.float32)
    logits = logits / jnp.sqrt(jnp.float32(q.shape[-1]))
    mask = attention_mask(lengths, B, T, causal)  # [B, 1, T, T]
    logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
    weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    return jnp.einsum("bnts,bsnd->btnd", weights, v)
  if kind not in ("fused", "cudnn"):
    raise ValueError(f"model.attention: expected one of {ATTENTIONS}; got {kind!r}")
  seq = None if lengths is None else jnp.asarray(lengths, jnp.int32)
  return jax.nn.dot_product_attention(q, k, v, is_causal=causal, key_value_seq_lengths=seq,
                                      implementation="cudnn" if kind == "cudnn" else None)


class TransformerBlock(nnx.Module):
  """Pre-LN block: x + MHA(LN(x)), then x + FF(LN(x)); x [B, T, H] -> [B, T, H].

  The residual stream and LayerNorms stay float32; `dtype` sets the matmuls' dtype.
  """

  def __init__(self, width: int, num_heads: int, ff_width: int, act: str, dtype,
               *, causal: bool = True, attention: str = "fused", rngs: nnx.Rngs):
    self.act = act
    self.causal = causal
    self.kind = attention
    self.norm_attention = nnx.LayerNorm(width, rngs=rngs)
    self.attention = nnx.MultiHeadAttention(num_heads, width, qkv_features=width,
                                            out_features=width, dtype=dtype, decode=False,
                                            keep_rngs=False, rngs=rngs)
    self.norm_ff = nnx.LayerNorm(width, rngs=rngs)
    self.ff_in = nnx.Linear(width, ff_width, dtype=dtype, rngs=rngs)
    self.ff_out = nnx.Linear(ff_width, width, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array, lengths: jax.Array | None) -> jax.Array:
    # The projections are MultiHeadAttention's (its parameter layout); `attend`
    # replaces its attention function. jax's attention promotes bf16 logits to
    # float32 implicitly, which strict dtype promotion rejects; only these library
    # calls run under standard rules.
    mha = self.attention
    h = self.norm_attention(x)
    with jax.numpy_dtype_promotion("standard"):
      q, k, v = mha.query(h), mha.key(h), mha.value(h)  # [B, T, heads, d_head]
      a = mha.out(attend(q, k, v, lengths, self.causal, self.kind))
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
                         self.dtype, causal=cfg.causal, attention=cfg.attention, rngs=rngs)
        for _ in range(cfg.num_layers)])
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
    """Embedding plus positions, the blocks (attending within ``lengths``), then the
    head on every step (`SequenceModel.__call__`)."""
    T = inputs.shape[1]
    x = self.embed(zero_padded(inputs, lengths)).astype(jnp.float32)
    x = x + self._positions(T, x.shape[-1])[None]
    for block in self.blocks:
      x = block(x, lengths)
    return self.head(self.norm(x))


register_kind("transformer", TransformerConfig,
              lambda cfg, d, o, n, rngs: TransformerSequenceModel(cfg, d, o, max_length=n,
                                                                  rngs=rngs), causal=True)
