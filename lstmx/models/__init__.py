"""Sequence models built from config, with one interface:
``model(inputs [B, T, D], lengths [B] | None) -> outputs [B, T, output_size]``.

Kinds (``ModelConfig.kind``): ``lstm``, ``gru``, ``transformer``, ``tcn``
(one output per step, causal by default), ``cnn2d`` and ``mlp`` (one
prediction per sequence, repeated on every step).

    >>> model = models.build(ModelConfig(kind="gru"), 4, 4, seed=0, max_length=20)
    >>> cfg = models.match_size(ModelConfig(kind="tcn"), 20_000, 4, 4, max_length=20)
"""

from lstmx.models.cnn2d import CNN2DModel
from lstmx.models.gru import GRUSequenceModel
from lstmx.models.lstm import LSTMSequenceModel
from lstmx.models.mlp import MLPModel
from lstmx.models.registry import CAUSAL, MODELS, build
from lstmx.models.sizing import match_size, param_count
from lstmx.models.tcn import TCNSequenceModel
from lstmx.models.transformer import TransformerSequenceModel

__all__ = [
    "CAUSAL", "CNN2DModel", "GRUSequenceModel", "LSTMSequenceModel", "MLPModel", "MODELS",
    "TCNSequenceModel", "TransformerSequenceModel", "build", "match_size", "param_count",
]
