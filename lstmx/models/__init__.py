"""Sequence models built from config, with one interface:
``model(inputs [B, T, D], lengths [B] | None) -> outputs [B, T, output_size]``.

Kinds (``model.kind``): ``lstm``, ``gru``, ``transformer``, ``tcn`` (one
output per step, causal by default), ``minlstm`` and ``mingru`` (gates from the input
only, parallel over time; `lstmx.models.minrnn`), ``cnn2d`` and ``mlp`` (one prediction per
sequence, repeated on every step). Each kind has its own frozen config
dataclass beside its model (`LSTMConfig`, `GRUConfig`, ...); ``ModelConfig(kind=K,
...)`` builds kind K's (see `lstmx.models.base`).

    >>> model = models.build(ModelConfig(kind="gru"), 4, 4, seed=0, max_length=20)
    >>> cfg = models.match_size(ModelConfig(kind="tcn"), 20_000, 4, 4, max_length=20)
"""

from lstmx.models.base import (KINDS, ModelConfig, ModelKind, SequenceModel, config_class,
                               register_kind, with_kind)
from lstmx.models.lstm import LSTMConfig, LSTMSequenceModel  # noqa: I001  (registration order)
from lstmx.models.gru import GRUConfig, GRUSequenceModel
from lstmx.models.transformer import TransformerConfig, TransformerSequenceModel
from lstmx.models.tcn import TCNConfig, TCNSequenceModel
from lstmx.models.cnn2d import CNN2DConfig, CNN2DModel
from lstmx.models.mlp import MLPConfig, MLPModel
from lstmx.models.minrnn import MinGRUConfig, MinLSTMConfig, MinRNNSequenceModel
from lstmx.models.registry import CAUSAL, MODELS, build
from lstmx.models.sizing import match_size, param_count

__all__ = [
    "CAUSAL", "CNN2DConfig", "CNN2DModel", "GRUConfig", "GRUSequenceModel", "KINDS",
    "LSTMConfig", "LSTMSequenceModel", "MLPConfig", "MLPModel", "MODELS", "MinGRUConfig",
    "MinLSTMConfig", "MinRNNSequenceModel", "ModelConfig",
    "ModelKind", "SequenceModel", "TCNConfig", "TCNSequenceModel", "TransformerConfig",
    "TransformerSequenceModel", "build", "config_class", "match_size", "param_count",
    "register_kind", "with_kind",
]
