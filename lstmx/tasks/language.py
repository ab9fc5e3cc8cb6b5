"""Language modelling over a whole token stream, with truncated BPTT and carried state.

`StreamLM` (``task.name="stream_lm"``) reads any ``"lm"`` dataset of
`lstmx.data`: words (``brown``, ``ptb``, ``wikitext2``) or characters
(``shakespeare``). The model sees token ids [B, T] (int32) and needs an
embedding (``model.embedding_size``).

Training follows Zaremba et al. (2014) and AWD-LSTM (Merity et al. 2018,
``batchify``/``get_batch``): the train stream is cut into B contiguous rows
(`lstmx.data.batchify`) and step s reads window ``k = s mod K`` of them
(`lstmx.data.tbptt_batches`, ``K`` full windows of T steps per epoch, the short
remainder dropped so every step has one shape). The LSTM state at the end of
window k is the initial state of window k + 1 (gradients stop between windows);
it is reset to zero at the start of every epoch (``batch["reset"]``). Batches
are fixed by the step, not drawn at random: `train_window`.

Evaluation is exact and stateful (`eval_windows`, `lstmx.train.tbptt`): the
split's N tokens give N - 1 predictions (every token but the first), cut into
`eval_rows` contiguous rows; each row starts from a zero state and carries it
over its windows; every prediction is counted once, padding masked. With
``eval_rows=1`` the whole split is one stream (Zaremba's and AWD-LSTM's test
protocol, batch size 1); more rows run faster and lose a little context at the
row starts (AWD-LSTM evaluates validation with 10 rows).

Metrics: ``loss`` (nats per token), ``perplexity`` = exp(loss), ``accuracy``;
the baseline is the unigram entropy of the train stream (a model that ignores
the context).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from lstmx.tasks.base import Batch, Sums, Task, check_int


@functools.lru_cache(maxsize=16)
def _stream(dataset: str, split: str, path: str | None, size: int | None):
  """(tokens int32 [N], vocabulary size) of `split`, cut to its first `size` tokens."""
  from lstmx import data
  options = {"path": path} if path is not None else {}
  ds = data.load(dataset, split, seed=0, **options)
  if ds.kind != "lm":
    raise ValueError(f"stream_lm.dataset: expected a language-modelling dataset (kind 'lm'); "
                     f"got {dataset!r} of kind {ds.kind!r}")
  tokens = np.asarray(ds.inputs, np.int32)
  if size is not None:
    tokens = tokens[:size]
  return tokens, int(ds.num_classes)


def eval_windows(tokens: np.ndarray, rows: int, seq_len: int) -> dict[str, np.ndarray]:
  """An exact evaluation of a stream as windows, time-sliced for a carried state.

  The N - 1 predictions of `tokens` [N] (target p + 1 from inputs up to p) are
  cut into `rows` contiguous rows of ``P = ceil((N - 1) / rows)`` predictions
  (the last row shorter), and each row into ``K = ceil(P / seq_len)`` windows.

  Returns:
    ``inputs``, ``targets`` int32 and ``mask`` float32, each [K, rows, seq_len]:
    window k of row r predicts ``tokens[r P + k T + 1 + t]`` from
    ``tokens[r P + k T + t]``; the mask is one for each of the N - 1 predictions
    exactly once and zero on padding.
  """
  tokens = np.asarray(tokens, np.int32)
  n = len(tokens) - 1
  if n < 1:
    raise ValueError(f"tokens: expected at least 2 tokens; got {len(tokens)}")
  check_int("stream_lm", "eval_rows", rows, 1)
  per_row = -(-n // rows)
  K = -(-per_row // seq_len)
  p = np.arange(rows)[:, None] * per_row + np.arange(K * seq_len)[None, :]  # [rows, K*T]
  valid = (p < n) & (np.arange(K * seq_len)[None, :] < per_row)
  safe = np.where(valid, p, 0)
  to_windows = lambda a: np.ascontiguousarray(  # noqa: E731
      a.reshape(rows, K, seq_len).transpose(1, 0, 2))
  return {"inputs": to_windows(np.where(valid, tokens[safe], 0).astype(np.int32)),
          "targets": to_windows(np.where(valid, tokens[safe + 1], 0).astype(np.int32)),
          "mask": to_windows(valid.astype(np.float32))}


@dataclasses.dataclass(frozen=True)
class StreamLM(Task):
  """Language modelling of a token stream with TBPTT and carried state (module docstring).

  Attributes:
    dataset: an ``"lm"`` dataset of `lstmx.data` (``brown``, ``ptb``,
      ``wikitext2``, ``shakespeare``).
    path: the folder of a dataset kept on disk (``ptb``, ``wikitext2``).
    seq_len: T, the truncation length (35 in Zaremba's and AWD-LSTM's PTB runs).
    train_size: the train stream cut to its first `train_size` tokens (None: all).
    eval_rows: rows of the exact evaluation (1: the whole split as one stream).
    eval_tokens: validation and test cut to their first `eval_tokens` tokens
      (None: whole), a fixed, smaller evaluation set for CPU presets; each is
      still evaluated exactly.
  """

  name = "stream_lm"
  finite = True
  stateful: ClassVar[bool] = True  # the loop carries the model state between steps
  solved_rule = "none (report perplexity and the train/validation gap)"
  dataset: str = "shakespeare"
  path: str | None = None
  seq_len: int = 35
  train_size: int | None = None
  eval_rows: int = 1
  eval_tokens: int | None = None

  def validate(self):
    check_int(self.name, "seq_len", self.seq_len, 1)
    check_int(self.name, "eval_rows", self.eval_rows, 1)
    if self.eval_tokens is not None:
      check_int(self.name, "eval_tokens", self.eval_tokens, 2)
    if self.train_size is not None:
      check_int(self.name, "train_size", self.train_size, 2)
    # The data is read when first used (a preset's fetched corpus need not be on
    # disk to build its configs); `windows_per_epoch` checks seq_len against it.

  def tokens(self, split: str) -> np.ndarray:
    """The split's token stream [N] int32 (cut to `train_size` or `eval_tokens`)."""
    self.check_split(split)
    size = self.train_size if split == "train" else self.eval_tokens
    return _stream(self.dataset, split, self.path, size)[0]

  @property
  def vocab_size(self) -> int:
    return _stream(self.dataset, "train", self.path, None)[1]

  input_size = property(lambda self: self.vocab_size)
  output_size = property(lambda self: self.vocab_size)
  length = property(lambda self: self.seq_len)

  @property
  def baseline_loss(self) -> float:
    """Unigram entropy of the train stream (nats per token)."""
    p = np.bincount(self.tokens("train"), minlength=self.vocab_size) / len(self.tokens("train"))
    p = p[p > 0]
    return float(-np.sum(p * np.log(p)))

  def windows_per_epoch(self, batch_size: int) -> int:
    """K: the full windows of T steps in B rows of the train stream."""
    from lstmx.data import num_tbptt_steps
    check_int("train", "batch_size", batch_size, 1)
    steps = num_tbptt_steps(len(self.tokens("train")) // batch_size, self.seq_len,
                            drop_remainder=True)
    n = len(self.tokens("train"))
    if n < self.seq_len + 1:
      raise ValueError(f"{self.name}.seq_len: expected at most {n - 1} (the train stream has "
                       f"{n} tokens); got {self.seq_len}")
    if steps < 1:
      raise ValueError(f"train.batch_size: expected rows of at least seq_len + 1 = "
                       f"{self.seq_len + 1} tokens ({len(self.tokens('train'))} train tokens "
                       f"over {batch_size} rows); got batch_size={batch_size}")
    return steps

  def train_window(self, step: jax.Array, batch_size: int) -> Batch:
    """The batch of training step `step` (traceable): window ``step mod K`` of the
    batchified train stream, ``inputs``/``targets`` [B, T] int32, a full ``mask``,
    ``lengths`` T, and ``reset`` (bool scalar), True at an epoch's first window."""
    from lstmx.data import batchify
    stream = jnp.asarray(batchify(self.tokens("train"), batch_size))
    K, T = self.windows_per_epoch(batch_size), self.seq_len
    k = jnp.asarray(step, jnp.int32) % K
    inputs = jax.lax.dynamic_slice_in_dim(stream, k * T, T, axis=1)
    targets = jax.lax.dynamic_slice_in_dim(stream, k * T + 1, T, axis=1)
    return {"inputs": inputs, "targets": targets,
            "mask": jnp.ones((batch_size, T), jnp.float32),
            "lengths": jnp.full((batch_size,), T, jnp.int32), "reset": k == 0}

  def sample(self, key: jax.Array, batch_size: int, split: str = "train") -> Batch:
    """Windows at uniformly random offsets of `split`'s stream, each from a fresh
    state (``reset`` True): for shape checks and stateless use; training uses
    `train_window`."""
    self.check_sample(batch_size, split)
    tokens = self.tokens(split)
    T = self.seq_len
    start = jax.random.randint(key, (batch_size,), 0, max(len(tokens) - T, 1))
    window = jnp.asarray(tokens)[jnp.minimum(start[:, None] + jnp.arange(T + 1)[None, :],
                                             len(tokens) - 1)]
    return {"inputs": window[:, :-1], "targets": window[:, 1:],
            "mask": jnp.ones((batch_size, T), jnp.float32),
            "lengths": jnp.full((batch_size,), T, jnp.int32), "reset": jnp.asarray(True)}

  def eval_windows(self, split: str) -> dict[str, np.ndarray]:
    """`split`'s exact evaluation windows (`eval_windows`), each [K, eval_rows, T]."""
    return eval_windows(self.tokens(split), self.eval_rows, self.seq_len)

  def eval_size(self, split: str, examples: int) -> int:
    """The predictions evaluated: every token of `split` but the first."""
    return len(self.tokens(split)) - 1

  def eval_batches(self, split, batch_size, examples):
    raise NotImplementedError("stream_lm: evaluation carries the state across windows; use "
                              "lstmx.train.tbptt.stream_evaluator")

  def metric_sums(self, outputs: jax.Array, batch: Batch) -> Sums:
    mask = batch["mask"]
    steps = jnp.sum(mask)
    loss = jnp.sum(self.step_loss(outputs, batch) * mask)
    correct = (jnp.argmax(outputs, -1) == batch["targets"]).astype(jnp.float32)
    return {"loss": (loss, steps), "accuracy": (jnp.sum(correct * mask), steps)}

  def metrics_from_sums(self, sums) -> dict:
    out = super().metrics_from_sums(sums)
    loss = out["loss"]
    out["perplexity"] = (jnp.exp(loss) if isinstance(loss, jax.Array)
                         else math.exp(min(float(loss), 700.0)))
    return out

  def solved(self, metrics) -> bool:
    return False
