"""lstmx: a JAX/Flax research framework for LSTMs.

The core is functional: `init_lstm` builds a ``params[layer][direction]``
pytree of `LSTMParams`; `lstm` runs a stacked, bidirectional, masked LSTM
with PyTorch's conventions on a fused scan kernel with a hand-written
backward. `Regularization` configures dropout (input, between layers, output,
recurrent, weight drop), zoneout and AR/TAR for it. `lstmx.nn` holds thin
Flax NNX wrappers. The layer kernels and their dispatcher live in
`lstmx.kernels`; the Pallas and cuDNN names load their jax.experimental
modules only when first used.
"""

import importlib

from lstmx import backends, nn
from lstmx.backends import Backend
from lstmx.interop import (from_flax_linen, from_flax_nnx, from_torch, to_flax_linen,
                           to_flax_nnx, to_torch)
from lstmx.kernels import lstm_step
from lstmx.kernels.reference import lstm_layer_reference
from lstmx.kernels.scan import lstm_layer_scan
from lstmx.lstm import lengths_to_mask, lstm
from lstmx.params import GATES, LSTMParams, init_layer, init_lstm, param_count
from lstmx.penalties import ar_penalty, tar_penalty
from lstmx.regularization import (LayerMasks, Masks, Regularization, draw_masks,
                                  embedding_dropout)

from lstmx._version import __version__

# Names whose modules import optional jax.experimental parts: loaded on first access.
_LAZY = {
    "PallasBlocks": "lstmx.kernels.pallas",
    "lstm_layer_pallas": "lstmx.kernels.pallas",
    "lstm_layer_cudnn": "lstmx.kernels.cudnn",
}


def __getattr__(name: str):
  if name in _LAZY:
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
  raise AttributeError(f"module 'lstmx' has no attribute {name!r}")


__all__ = [
    "Backend", "GATES", "LSTMParams", "LayerMasks", "Masks", "PallasBlocks", "Regularization",
    "backends", "nn",
    "ar_penalty", "draw_masks", "embedding_dropout", "from_flax_linen", "from_flax_nnx",
    "from_torch", "init_layer", "init_lstm", "lengths_to_mask", "lstm",
    "lstm_layer_cudnn", "lstm_layer_pallas", "lstm_layer_reference", "lstm_layer_scan",
    "lstm_step", "param_count", "tar_penalty",
    "to_flax_linen", "to_flax_nnx", "to_torch",
]
