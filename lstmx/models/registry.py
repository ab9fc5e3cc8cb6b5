"""`build`: the model named by ``cfg.kind``, one interface for every kind.

``model(inputs [B, T, D], lengths [B] | None) -> outputs [B, T, output_size]``

Kinds register themselves (config class and constructor) with
`lstmx.models.base.register_kind` in their own modules; this module imports
them all, in the order `MODELS` lists them.
"""

from __future__ import annotations

from flax import nnx

# Imported for their registrations, in this order (MODELS keeps it).
from lstmx.models import lstm, gru, transformer, tcn, cnn2d, mlp, minrnn  # noqa: F401, I001
from lstmx.models.base import KINDS, ModelConfig, SequenceModel
from lstmx.models.common import check_positive

# ("lstm", "gru", "transformer", "tcn", "cnn2d", "mlp", "minlstm", "mingru")
MODELS = KINDS.names()
CAUSAL = tuple(k for k in MODELS if KINDS.get(k).causal)  # step t sees steps <= t


def build(cfg: ModelConfig, input_size: int, output_size: int, *, seed: int,
          max_length: int | None = None) -> SequenceModel:
  """Builds the model named by ``cfg.kind``.

  Args:
    cfg: the model config (the kind's dataclass, e.g. from ``ModelConfig(kind=...)``).
    input_size: D of the inputs [B, T, D].
    output_size: the width of the outputs [B, T, output_size].
    seed: seeds the parameter initialization.
    max_length: the task length T; sizes the MLP's input layer and the
      Transformer's learned positions (other kinds ignore it).

  Returns:
    A `SequenceModel`, ``model(inputs [B, T, D], lengths [B] | None) -> [B, T, output_size]``.
  """
  kind = KINDS.get(cfg.kind)
  if not isinstance(cfg, kind.config):
    raise ValueError(f"model.kind: expected a {kind.config.__name__} for "
                     f"model.kind={cfg.kind!r}; got {type(cfg).__name__}")
  if cfg.kind != "lstm":
    check_positive("model.hidden_size", cfg.hidden_size)
    check_positive("model.num_layers", cfg.num_layers)
    if max_length is not None:
      check_positive("max_length", max_length)
  return kind.build(cfg, input_size, output_size, max_length, nnx.Rngs(seed))
