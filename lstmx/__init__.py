"""lstmx: a JAX/Flax research framework for LSTMs.

The core is functional: `init_lstm` builds a ``params[layer][direction]``
pytree of `LSTMParams`; `lstm` runs a stacked, bidirectional, masked LSTM
with PyTorch's conventions on a fused scan kernel with a hand-written
backward. `Regularization` configures dropout (input, between layers, output,
recurrent, weight drop), zoneout and AR/TAR for it. `lstmx.nn` holds thin
Flax NNX wrappers.
"""

from lstmx import backends, nn
from lstmx.backends import Backend
from lstmx.cell import lstm_step
from lstmx.cudnn import lstm_layer_cudnn
from lstmx.interop import (from_flax_linen, from_flax_nnx, from_torch, to_flax_linen,
                           to_flax_nnx, to_torch)
from lstmx.lstm import lengths_to_mask, lstm
from lstmx.pallas_lstm import PallasBlocks, lstm_layer_pallas
from lstmx.params import GATES, LSTMParams, init_layer, init_lstm, param_count
from lstmx.reference import lstm_layer_reference
from lstmx.penalties import ar_penalty, tar_penalty
from lstmx.regularization import (LayerMasks, Masks, Regularization, draw_masks,
                                  embedding_dropout)
from lstmx.scan import lstm_layer_scan

__version__ = "0.1.0"

__all__ = [
    "Backend", "GATES", "LSTMParams", "LayerMasks", "Masks", "PallasBlocks", "Regularization",
    "backends", "nn",
    "ar_penalty", "draw_masks", "embedding_dropout", "from_flax_linen", "from_flax_nnx",
    "from_torch", "init_layer", "init_lstm", "lengths_to_mask", "lstm",
    "lstm_layer_cudnn", "lstm_layer_pallas", "lstm_layer_reference", "lstm_layer_scan",
    "lstm_step", "param_count", "tar_penalty",
    "to_flax_linen", "to_flax_nnx", "to_torch",
]
