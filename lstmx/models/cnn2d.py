"""A small 2-D CNN for images given as sequences; one prediction broadcast to every step.

The inputs [B, T, D] (padded steps zeroed) are reshaped row-major to an image
[B, H, W, C] of ``image_shape`` (H * W * C = T * D; default (T, D, 1)), then

    x = maxpool_2x2(act(Conv_kxk(x)))        (``num_layers`` blocks, ``hidden_size`` channels)
    y = W_o mean_{h, w}(x)                   (global average pooling, a linear head)

and y [B, output_size] is repeated on all T steps (the task's mask picks the
step that counts). Pooling uses SAME padding, so any image size works.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from lstmx.models.base import ModelConfig, SequenceModel, register_kind
from lstmx.models.checks import as_choice, as_int, normalize
from lstmx.models.common import (ACTIVATIONS, activation, check_positive, compute_dtype,
                                 every_step, zero_padded)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CNN2DConfig(ModelConfig):
  """``model.kind="cnn2d"``: conv-pool blocks over the inputs as an image.

  Attributes:
    kernel_size: the k x k kernel.
    image_shape: (H, W, C) with H * W * C = T * D; None: (T, D, 1).
    activation: relu | gelu | tanh.
  """

  kind: str = "cnn2d"
  kernel_size: int = 3
  image_shape: tuple[int, ...] | None = None
  activation: str = "relu"

  def __post_init__(self):
    super().__post_init__()
    shape = self.image_shape
    if shape is not None:
      if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__") or len(shape) != 3:
        raise ValueError(f"model.image_shape: expected (H, W, C) of positive ints or None; "
                         f"got {shape!r}")
      shape = tuple(as_int(f"model.image_shape[{i}]", v, low=1) for i, v in enumerate(shape))
    normalize(self, kernel_size=as_int("model.kernel_size", self.kernel_size, low=1),
              image_shape=shape,
              activation=as_choice("model.activation", self.activation, tuple(ACTIVATIONS)))


class CNN2DModel(SequenceModel):
  """Conv-pool blocks, global average pooling and a linear head over an image.

  Example:
    >>> cfg = ModelConfig(kind="cnn2d", hidden_size=16, num_layers=2, image_shape=(8, 8, 1))
    >>> model = CNN2DModel(cfg, 1, 10, rngs=nnx.Rngs(0))
    >>> model(jnp.ones((4, 64, 1))).shape
    (4, 64, 10)
  """

  def __init__(self, cfg: CNN2DConfig, input_size: int, output_size: int, *, rngs: nnx.Rngs):
    check_positive("model.kernel_size", cfg.kernel_size)
    activation(cfg)  # validates the name
    shape = None if cfg.image_shape is None else tuple(cfg.image_shape)
    if shape is not None and (len(shape) != 3 or min(shape) < 1):
      raise ValueError(f"model.image_shape: expected (H, W, C) of positive ints or None; "
                       f"got {cfg.image_shape!r}")
    self.image_shape = shape
    self.act = cfg.activation
    self.dtype = compute_dtype(cfg)
    channels = 1 if shape is None else shape[2]
    k = cfg.kernel_size
    self.convs = nnx.List([
        nnx.Conv(channels if i == 0 else cfg.hidden_size, cfg.hidden_size, (k, k),
                 padding="SAME", dtype=self.dtype, rngs=rngs) for i in range(cfg.num_layers)])
    self.head = nnx.Linear(cfg.hidden_size, output_size, rngs=rngs)

  def to_image(self, inputs: jax.Array) -> jax.Array:
    """inputs [B, T, D] -> [B, H, W, C] (row-major), checking the sizes agree."""
    B, T, D = inputs.shape
    shape = (T, D, 1) if self.image_shape is None else self.image_shape
    if math.prod(shape) != T * D:
      raise ValueError(f"model.image_shape: {shape} holds {math.prod(shape)} values but the "
                       f"inputs have T * D = {T} * {D} = {T * D}")
    return inputs.reshape((B, *shape))

  def __call__(self, inputs: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
    """Runs the model.

    Args:
      inputs: [B, T, D] float32.
      lengths: [B] int valid lengths, or None for all T.

    Returns:
      [B, T, output_size] float32, the same prediction on every step.
    """
    x = self.to_image(zero_padded(inputs, lengths))
    if self.dtype is not None:
      x = x.astype(self.dtype)
    act = ACTIVATIONS[self.act]
    for conv in self.convs:
      x = nnx.max_pool(act(conv(x)), (2, 2), strides=(2, 2), padding="SAME")
    y = self.head(jnp.mean(x, axis=(1, 2)).astype(jnp.float32))
    return every_step(y, inputs.shape[1])


register_kind("cnn2d", CNN2DConfig,
              lambda cfg, d, o, n, rngs: CNN2DModel(cfg, d, o, rngs=rngs), causal=False)
