"""The LSTM sequence model: a stacked `lstmx.nn.LSTM` and a linear head per step."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from lstmx.kernels import dispatch
from lstmx.lstm import DEFAULT_UNROLL
from lstmx.models.base import ModelConfig, SequenceModel, register_kind
from lstmx.models.checks import as_bool, as_choice, as_int, normalize
from lstmx.nn import LSTM
from lstmx.params import INITIALIZERS
from lstmx.regularization import Regularization


@dataclasses.dataclass(frozen=True, kw_only=True)
class LSTMConfig(ModelConfig):
  """``model.kind="lstm"``: a stacked `lstmx.nn.LSTM` (the default kind).

  Attributes:
    bidirectional: a forward and a reverse LSTM per layer, outputs concatenated.
    init: the parameter init (``forget_bias``, ``chrono``, ``torch``, ...).
    chrono_max_length: T_max of the chrono init.
    backend: the LSTM backend (``auto``, ``scan``, ``pallas``, ``cudnn``, ``reference``).
    unroll: steps unrolled per scan iteration.
    remat_every: nested checkpointing every k steps (`lstmx.kernels.remat`); None: off.
    regularization: `lstmx.Regularization` (off by default); its AR/TAR weights'
      penalty is added to the training loss.
  """

  kind: str = "lstm"
  bidirectional: bool = False
  init: str = "forget_bias"
  chrono_max_length: int | None = None
  backend: str = "auto"
  unroll: int = DEFAULT_UNROLL
  remat_every: int | None = None
  regularization: Regularization = Regularization()

  def __post_init__(self):
    super().__post_init__()
    normalize(
        self, bidirectional=as_bool("model.bidirectional", self.bidirectional),
        init=as_choice("model.init", self.init, INITIALIZERS),
        chrono_max_length=as_int("model.chrono_max_length", self.chrono_max_length, low=3,
                                 optional=True),
        backend=as_choice("model.backend", self.backend, dispatch.names()),
        unroll=as_int("model.unroll", self.unroll, low=1),
        remat_every=as_int("model.remat_every", self.remat_every, low=1, optional=True))
    if not isinstance(self.regularization, Regularization):
      raise ValueError("model.regularization: expected a lstmx.Regularization; got "
                       f"{self.regularization!r}")


class LSTMSequenceModel(SequenceModel):
  """A stacked LSTM over the inputs and a linear head on every step's output."""

  def __init__(self, cfg: LSTMConfig, input_size: int, output_size: int, *, rngs: nnx.Rngs):
    compute_dtype = jnp.dtype(cfg.compute_dtype) if cfg.compute_dtype else None
    r = cfg.regularization
    reg = r if (r.needs_mode or r.ar > 0 or r.tar > 0) else None
    self.lstm = LSTM(input_size, cfg.hidden_size, num_layers=cfg.num_layers,
                     bidirectional=cfg.bidirectional, init=cfg.init,
                     chrono_max_length=cfg.chrono_max_length, backend=cfg.backend,
                     unroll=cfg.unroll, remat_every=cfg.remat_every,
                     compute_dtype=compute_dtype, regularization=reg,
                     deterministic=True, rngs=rngs)
    width = cfg.hidden_size * (2 if cfg.bidirectional else 1)
    self.head = nnx.Linear(width, output_size, rngs=rngs)

  def __call__(self, inputs: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
    """Evaluation: [B, T, D] -> [B, T, output_size], regularizers in evaluation mode."""
    y, _ = self.lstm(inputs, seq_lengths=lengths, deterministic=True)
    return self.head(y)

  def resolved_backend(self, *, training: bool = False) -> str:
    return self.lstm.resolved_backend(training=training)

  def forward_train(self, inputs: jax.Array, lengths: jax.Array | None,
                    key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Training: (outputs, penalty) with masks drawn from `key`; the penalty is the
    weighted AR/TAR loss (zero without them)."""
    if self.lstm.regularization is None:
      return self(inputs, lengths), jnp.zeros((), jnp.float32)
    y, _, pen = self.lstm(inputs, seq_lengths=lengths, deterministic=False, rngs=key,
                          return_penalties=True)
    return self.head(y), pen["loss"]


register_kind("lstm", LSTMConfig,
              lambda cfg, d, o, n, rngs: LSTMSequenceModel(cfg, d, o, rngs=rngs), causal=True)
