"""A temporal convolutional network (Bai, Kolter and Koltun 2018, "An empirical
evaluation of generic convolutional and recurrent networks for sequence modeling").

Residual block i (i = 0 .. num_layers - 1) with dilation d = 2^i and kernel k:

    a = act(CausalConv_d(x));  a = act(CausalConv_d(a))
    y = act(a + x)             (x through a 1x1 projection when widths differ)

A causal convolution pads k - 1 steps times d on the left only, so step t sees
steps <= t; the receptive field is 1 + 2 (k - 1) (2^num_layers - 1) steps.
Padded steps sit at the end of each sequence, so they never reach a valid
step. Bai et al.'s weight normalization and dropout are left out.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from lstmx.models.base import ModelConfig, SequenceModel, register_kind
from lstmx.models.checks import as_choice, as_int, normalize
from lstmx.models.common import ACTIVATIONS, activation, check_positive, compute_dtype, zero_padded


def receptive_field(kernel_size: int, num_layers: int) -> int:
  """How many steps (including the current one) an output of the TCN sees."""
  return 1 + 2 * (kernel_size - 1) * (2 ** num_layers - 1)


class TemporalBlock(nnx.Module):
  """Two causal dilated convolutions and a residual: x [B, T, D_in] -> [B, T, H]."""

  def __init__(self, d_in: int, width: int, kernel_size: int, dilation: int, act: str, dtype,
               *, rngs: nnx.Rngs):
    self.act = act
    causal = [((kernel_size - 1) * dilation, 0)]
    self.conv1 = nnx.Conv(d_in, width, (kernel_size,), kernel_dilation=(dilation,),
                          padding=causal, dtype=dtype, rngs=rngs)
    self.conv2 = nnx.Conv(width, width, (kernel_size,), kernel_dilation=(dilation,),
                          padding=causal, dtype=dtype, rngs=rngs)
    self.residual = (nnx.Linear(d_in, width, dtype=dtype, rngs=rngs)
                     if d_in != width else None)

  def __call__(self, x: jax.Array) -> jax.Array:
    act = ACTIVATIONS[self.act]
    a = act(self.conv2(act(self.conv1(x))))
    res = x if self.residual is None else self.residual(x)
    return act(a + res.astype(a.dtype))


@dataclasses.dataclass(frozen=True, kw_only=True)
class TCNConfig(ModelConfig):
  """``model.kind="tcn"``: a causal temporal convolutional network.

  Attributes:
    kernel_size: the 1-D kernel width k.
    activation: relu | gelu | tanh.
  """

  kind: str = "tcn"
  kernel_size: int = 3
  activation: str = "relu"

  def __post_init__(self):
    super().__post_init__()
    normalize(self, kernel_size=as_int("model.kernel_size", self.kernel_size, low=1),
              activation=as_choice("model.activation", self.activation, tuple(ACTIVATIONS)))


class TCNSequenceModel(SequenceModel):
  """Residual blocks of causal dilated convolutions (dilations 1, 2, 4, ...), a head per step.

  Example:
    >>> model = TCNSequenceModel(ModelConfig(kind="tcn", hidden_size=16, num_layers=3),
    ...                          3, 2, rngs=nnx.Rngs(0))
    >>> model(jnp.ones((4, 10, 3)), jnp.full((4,), 7)).shape
    (4, 10, 2)
  """

  def __init__(self, cfg: TCNConfig, input_size: int, output_size: int, *, rngs: nnx.Rngs):
    check_positive("model.kernel_size", cfg.kernel_size)
    activation(cfg)  # validates the name
    self.dtype = compute_dtype(cfg)
    self.blocks = nnx.List([
        TemporalBlock(input_size if i == 0 else cfg.hidden_size, cfg.hidden_size,
                      cfg.kernel_size, 2 ** i, cfg.activation, self.dtype, rngs=rngs)
        for i in range(cfg.num_layers)])
    self.head = nnx.Linear(cfg.hidden_size, output_size, rngs=rngs)

  def __call__(self, inputs: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
    """The blocks over zero-padded inputs, then the head on every step
    (`SequenceModel.__call__`)."""
    x = zero_padded(inputs, lengths)
    if self.dtype is not None:
      x = x.astype(self.dtype)
    for block in self.blocks:
      x = block(x)
    return self.head(zero_padded(x, lengths).astype(jnp.float32))


register_kind("tcn", TCNConfig,
              lambda cfg, d, o, n, rngs: TCNSequenceModel(cfg, d, o, rngs=rngs), causal=True)
