"""The LSTM sequence model: a stacked `lstmx.nn.LSTM` and a linear head per step.

With ``embedding_size`` set it is a language model: the inputs are token ids
[B, T] (int32, values in [0, input_size)), looked up in an [input_size, E]
embedding (with AWD-LSTM's embedding dropout in training), and `stream` runs
it from a given state and returns the final one, for truncated
backpropagation through time with carried state (`lstmx.train.tbptt`).
"""

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
from lstmx.regularization import Regularization, embedding_dropout


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
      penalty is added to the training loss; its ``embedding_dropout`` applies to
      the embedding (with ``embedding_size``).
    embedding_size: E; None (default) for real-valued inputs [B, T, D]. Set, the
      inputs are token ids [B, T] embedded by an [input_size, E] table (word and
      character language models).
  """

  kind: str = "lstm"
  bidirectional: bool = False
  init: str = "forget_bias"
  chrono_max_length: int | None = None
  backend: str = "auto"
  unroll: int = DEFAULT_UNROLL
  remat_every: int | None = None
  regularization: Regularization = Regularization()
  embedding_size: int | None = None

  def __post_init__(self):
    super().__post_init__()
    normalize(
        self, bidirectional=as_bool("model.bidirectional", self.bidirectional),
        init=as_choice("model.init", self.init, INITIALIZERS),
        chrono_max_length=as_int("model.chrono_max_length", self.chrono_max_length, low=3,
                                 optional=True),
        backend=as_choice("model.backend", self.backend, dispatch.names()),
        unroll=as_int("model.unroll", self.unroll, low=1),
        remat_every=as_int("model.remat_every", self.remat_every, low=1, optional=True),
        embedding_size=as_int("model.embedding_size", self.embedding_size, low=1,
                              optional=True))
    if not isinstance(self.regularization, Regularization):
      raise ValueError("model.regularization: expected a lstmx.Regularization; got "
                       f"{self.regularization!r}")


class LSTMSequenceModel(SequenceModel):
  """A stacked LSTM over the inputs (or their embeddings) and a linear head on every
  step's output."""

  def __init__(self, cfg: LSTMConfig, input_size: int, output_size: int, *, rngs: nnx.Rngs):
    compute_dtype = jnp.dtype(cfg.compute_dtype) if cfg.compute_dtype else None
    r = cfg.regularization
    reg = r if (r.needs_mode or r.ar > 0 or r.tar > 0) else None
    self.embedding_dropout = r.embedding_dropout
    if cfg.embedding_size is None:
      if r.embedding_dropout > 0:
        raise ValueError("model.regularization.embedding_dropout: needs model.embedding_size "
                         f"(an embedding to drop rows of); got embedding_dropout="
                         f"{r.embedding_dropout} with embedding_size=None")
      self.embed = nnx.data(None)
    else:
      init = nnx.initializers.uniform(0.2)  # U[0, 0.2) shifted to U[-0.1, 0.1): AWD, Zaremba
      table = init(rngs.params(), (input_size, cfg.embedding_size), jnp.float32) - 0.1
      self.embed = nnx.Param(table)
    lstm_input = input_size if cfg.embedding_size is None else cfg.embedding_size
    self.lstm = LSTM(lstm_input, cfg.hidden_size, num_layers=cfg.num_layers,
                     bidirectional=cfg.bidirectional, init=cfg.init,
                     chrono_max_length=cfg.chrono_max_length, backend=cfg.backend,
                     unroll=cfg.unroll, remat_every=cfg.remat_every,
                     compute_dtype=compute_dtype, regularization=reg,
                     deterministic=True, rngs=rngs)
    width = cfg.hidden_size * (2 if cfg.bidirectional else 1)
    self.head = nnx.Linear(width, output_size, rngs=rngs)

  def _inputs(self, inputs: jax.Array, key: jax.Array | None) -> jax.Array:
    """The LSTM's input [B, T, D or E]: `inputs` as they are, or their embeddings
    (rows dropped with ``embedding_dropout`` when `key` is given: training)."""
    if self.embed is None:
      return inputs
    if not jnp.issubdtype(inputs.dtype, jnp.integer) or inputs.ndim != 2:
      raise ValueError(f"inputs: expected token ids [B, T] of an integer dtype (the model has "
                       f"an embedding); got shape {inputs.shape}, dtype {inputs.dtype}")
    table = self.embed[...]
    if key is None or self.embedding_dropout == 0:
      return jnp.take(table, inputs, axis=0)
    return embedding_dropout(table, inputs, self.embedding_dropout, key, deterministic=False)

  def __call__(self, inputs: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
    """Evaluation: [B, T, D] (or ids [B, T]) -> [B, T, output_size], regularizers in
    evaluation mode."""
    y, _ = self.lstm(self._inputs(inputs, None), seq_lengths=lengths, deterministic=True)
    return self.head(y)

  def zero_state(self, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """Zero (h, c), each [num_layers * directions, B, H] float32: a stream's first state."""
    shape = (self.lstm.num_layers * self.lstm.num_directions, batch_size, self.lstm.hidden_size)
    return jnp.zeros(shape, jnp.float32), jnp.zeros(shape, jnp.float32)

  def stream(self, inputs: jax.Array, state: tuple[jax.Array, jax.Array],
             key: jax.Array | None = None):
    """One window of a stream from `state`: (outputs [B, T, output_size], final (h, c),
    penalty scalar float32).

    Training with `key` (dropout masks drawn from it, AR/TAR penalty), evaluation
    without (penalty 0). Running the windows of a stream one after the other, each
    from the state the previous one returned, equals one run over the whole
    stream (evaluation mode; tests/test_tbptt.py).

    Args:
      inputs: [B, T, D] (or ids [B, T] with an embedding), every step valid.
      state: (h, c), each [num_layers, B, H] (`zero_state` at a stream's start).
      key: PRNG key for training mode; None for evaluation.
    """
    if self.lstm.num_directions != 1:
      raise ValueError("model.bidirectional: a stream model must be unidirectional (a "
                       "reverse direction would read the future); got bidirectional=True")
    zero = jnp.zeros((), jnp.float32)
    if key is None:
      y, state = self.lstm(self._inputs(inputs, None), initial_state=state, deterministic=True)
      return self.head(y), state, zero
    k_embed, k_lstm = jax.random.split(key)
    x = self._inputs(inputs, k_embed)
    if self.lstm.regularization is None:
      y, state = self.lstm(x, initial_state=state, deterministic=True)
      return self.head(y), state, zero
    y, state, pen = self.lstm(x, initial_state=state, deterministic=False, rngs=k_lstm,
                              return_penalties=True)
    return self.head(y), state, pen["loss"]

  def resolved_backend(self, *, training: bool = False) -> str:
    return self.lstm.resolved_backend(training=training)

  def forward_train(self, inputs: jax.Array, lengths: jax.Array | None,
                    key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Training: (outputs, penalty) with masks drawn from `key`; the penalty is the
    weighted AR/TAR loss (zero without them)."""
    k_embed, k_lstm = jax.random.split(key) if self.embed is not None else (None, key)
    x = self._inputs(inputs, k_embed)
    if self.lstm.regularization is None:
      y, _ = self.lstm(x, seq_lengths=lengths, deterministic=True)
      return self.head(y), jnp.zeros((), jnp.float32)
    y, _, pen = self.lstm(x, seq_lengths=lengths, deterministic=False, rngs=k_lstm,
                          return_penalties=True)
    return self.head(y), pen["loss"]


register_kind("lstm", LSTMConfig,
              lambda cfg, d, o, n, rngs: LSTMSequenceModel(cfg, d, o, rngs=rngs), causal=True)
