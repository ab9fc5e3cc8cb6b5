"""An MLP over the whole flattened sequence; one prediction broadcast to every step.

    x = flatten(inputs[:, :max_length]) in R^{max_length * D}   (padded steps zero)
    x = act(W_l x + b_l)                        (``num_layers`` hidden layers, width H)
    y = W_o x + b_o

y [B, output_size] is repeated on all T steps (the task's mask picks the step
that counts). The input layer is sized for ``max_length`` steps, given at
build time (the task length): shorter batches are zero-padded, and of longer
ones (a length-generalization test split) the MLP sees only the first
``max_length`` steps, its fixed window, so it still runs and scores.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from lstmx.models.base import ModelConfig, SequenceModel, register_kind
from lstmx.models.checks import as_choice, normalize
from lstmx.models.common import ACTIVATIONS, activation, compute_dtype, every_step, zero_padded


@dataclasses.dataclass(frozen=True, kw_only=True)
class MLPConfig(ModelConfig):
  """``model.kind="mlp"``: hidden layers over the flattened sequence.

  Attributes:
    activation: relu | gelu | tanh.
  """

  kind: str = "mlp"
  activation: str = "relu"

  def __post_init__(self):
    super().__post_init__()
    normalize(self, activation=as_choice("model.activation", self.activation,
                                         tuple(ACTIVATIONS)))


class MLPModel(SequenceModel):
  """Hidden layers over the flattened [B, max_length * D] inputs and a linear head.

  Example:
    >>> model = MLPModel(ModelConfig(kind="mlp", hidden_size=16, num_layers=2), 3, 2,
    ...                  max_length=10, rngs=nnx.Rngs(0))
    >>> model(jnp.ones((4, 10, 3))).shape
    (4, 10, 2)
  """

  def __init__(self, cfg: MLPConfig, input_size: int, output_size: int, *,
               max_length: int | None = None, rngs: nnx.Rngs):
    if max_length is None:
      raise ValueError("model.kind='mlp' needs max_length (the task length) at build time: "
                       "models.build(..., max_length=task.length)")
    activation(cfg)  # validates the name
    self.act = cfg.activation
    self.dtype = compute_dtype(cfg)
    self.max_length = max_length
    width = cfg.hidden_size
    self.hidden = nnx.List([
        nnx.Linear(max_length * input_size if i == 0 else width, width, dtype=self.dtype,
                   rngs=rngs) for i in range(cfg.num_layers)])
    self.head = nnx.Linear(width, output_size, rngs=rngs)

  def __call__(self, inputs: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
    """Runs the model.

    Args:
      inputs: [B, T, D] float32; steps past max_length are not seen.
      lengths: [B] int valid lengths, or None for all T.

    Returns:
      [B, T, output_size] float32, the same prediction on every step.
    """
    B, T, D = inputs.shape
    window = min(T, self.max_length)
    x = zero_padded(inputs, lengths)[:, :window]
    x = jnp.pad(x, ((0, 0), (0, self.max_length - window), (0, 0)))
    x = x.reshape(B, self.max_length * D)
    if self.dtype is not None:
      x = x.astype(self.dtype)
    act = ACTIVATIONS[self.act]
    for layer in self.hidden:
      x = act(layer(x))
    return every_step(self.head(x.astype(jnp.float32)), T)


register_kind("mlp", MLPConfig,
              lambda cfg, d, o, n, rngs: MLPModel(cfg, d, o, max_length=n, rngs=rngs), causal=False)
