"""`build`: the model named by ``cfg.kind``, one interface for every kind.

``model(inputs [B, T, D], lengths [B] | None) -> outputs [B, T, output_size]``
"""

from __future__ import annotations

from typing import Callable

from flax import nnx

from lstmx.config import ModelConfig
from lstmx.models.cnn2d import CNN2DModel
from lstmx.models.common import check_positive
from lstmx.models.gru import GRUSequenceModel
from lstmx.models.lstm import LSTMSequenceModel
from lstmx.models.mlp import MLPModel
from lstmx.models.transformer import TransformerSequenceModel
from lstmx.models.tcn import TCNSequenceModel

# kind -> constructor(cfg, input_size, output_size, max_length, rngs)
_BUILDERS: dict[str, Callable[..., nnx.Module]] = {
    "lstm": lambda cfg, d, o, n, rngs: LSTMSequenceModel(cfg, d, o, rngs=rngs),
    "gru": lambda cfg, d, o, n, rngs: GRUSequenceModel(cfg, d, o, rngs=rngs),
    "transformer": lambda cfg, d, o, n, rngs: TransformerSequenceModel(
        cfg, d, o, max_length=n, rngs=rngs),
    "tcn": lambda cfg, d, o, n, rngs: TCNSequenceModel(cfg, d, o, rngs=rngs),
    "cnn2d": lambda cfg, d, o, n, rngs: CNN2DModel(cfg, d, o, rngs=rngs),
    "mlp": lambda cfg, d, o, n, rngs: MLPModel(cfg, d, o, max_length=n, rngs=rngs),
}
MODELS = tuple(_BUILDERS)
CAUSAL = ("lstm", "gru", "transformer", "tcn")  # unidirectional: step t sees steps <= t
_BIDIRECTIONAL = ("lstm", "gru")


def build(cfg: ModelConfig, input_size: int, output_size: int, *, seed: int,
          max_length: int | None = None) -> nnx.Module:
  """Builds the model named by ``cfg.kind``.

  Args:
    cfg: the model config.
    input_size: D of the inputs [B, T, D].
    output_size: the width of the outputs [B, T, output_size].
    seed: seeds the parameter initialization.
    max_length: the task length T; sizes the MLP's input layer and the
      Transformer's learned positions (other kinds ignore it).

  Returns:
    An NNX module, ``model(inputs [B, T, D], lengths [B] | None) -> [B, T, output_size]``.
  """
  if cfg.kind not in MODELS:
    raise ValueError(f"model.kind: expected one of {MODELS}; got {cfg.kind!r}")
  if cfg.kind != "lstm":
    check_positive("model.hidden_size", cfg.hidden_size)
    check_positive("model.num_layers", cfg.num_layers)
    if cfg.bidirectional and cfg.kind not in _BIDIRECTIONAL:
      hint = "; use model.causal=false" if cfg.kind == "transformer" else ""
      raise ValueError(f"model.bidirectional: only for {_BIDIRECTIONAL}, not "
                       f"model.kind={cfg.kind!r}{hint}")
    if max_length is not None:
      check_positive("max_length", max_length)
  return _BUILDERS[cfg.kind](cfg, input_size, output_size, max_length, nnx.Rngs(seed))
