"""Tasks over the real datasets of `lstmx.data`: classification, character-level
language modelling and forecasting. Training batches (`sample`) draw examples (or
windows) uniformly at random from the requested split, so a run is deterministic
given its keys and resumes exactly. Evaluation (`eval_batches`) covers every
example of a split once, in order; for language modelling, the split's stream
cut into consecutive windows of `seq_len` predictions (every character but the
first predicted once; the last window shorter, its tail masked). The training
split can be cut to `train_size` examples (characters for language modelling)
and, for classification, given `label_noise`, the knobs of overfitting sweeps.
Inputs are standardized with statistics of the (cut) training split only.

A classification task's split (for datasets without an official one), its
training cut and its label noise are drawn by `data_seed`; ``data_seed=
"train.seed"`` (`FOLLOW_TRAIN_SEED`) makes a run draw them from its own
``train.seed`` (`resolve_params`, called where a run builds its task), so each
seed of a sweep gets a different split while every model at one seed gets the
same one (paired comparisons).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from lstmx.checks import as_real, is_real
from lstmx.tasks.base import Batch, Task, check_int, last_step_mask, one_hot, pad_rows

FOLLOW_TRAIN_SEED = "train.seed"


def resolve_params(params, train_seed: int) -> dict:
  """Task parameters with ``data_seed="train.seed"`` replaced by `train_seed`.

    >>> resolve_params({"dataset": "iris", "data_seed": "train.seed"}, 3)["data_seed"]
    3
  """
  params = dict(params)
  if params.get("data_seed") == FOLLOW_TRAIN_SEED:
    params["data_seed"] = int(train_seed)
  return params


def check_dataset(task: str, dataset, kind: str) -> None:
  """Raises a ValueError naming ``task.dataset`` unless it names a registered dataset of
  `kind` (`lstmx.data.DatasetSpec.kind`)."""
  from lstmx import data
  choices = tuple(n for n in data.names() if data.spec(n).kind == kind)
  if isinstance(dataset, str) and dataset in choices:
    return
  known = isinstance(dataset, str) and dataset in data.names()
  got = f"{dataset!r} (a {data.spec(dataset).kind} dataset)" if known else repr(dataset)
  raise ValueError(f"{task}.dataset: expected a {kind} dataset, one of {choices}; got {got}")


def _check_train_size(task) -> None:
  """``task.train_size``: None or an int >= 1 (a NumPy or JAX integer too), kept as an int."""
  if task.train_size is not None:
    check_int(task.name, "train_size", task.train_size, 1)
    object.__setattr__(task, "train_size", int(task.train_size))


def _load(name: str, split: str, seed: int, **options):
  from lstmx import data
  return data.load(name, split, seed=seed, **options)


def _at_last_step(inputs: np.ndarray, values: np.ndarray) -> dict[str, np.ndarray]:
  """A host batch whose targets `values` [n] sit at the last step of `inputs` [n, T, D]."""
  n, T = inputs.shape[:2]
  mask = np.zeros((n, T), np.float32)
  mask[:, -1] = 1.0
  targets = np.zeros((n, T), values.dtype)
  targets[:, -1] = values
  return {"inputs": inputs, "targets": targets, "mask": mask,
          "lengths": np.full((n,), T, np.int32)}


@functools.lru_cache(maxsize=32)
def _examples(task: "DatasetClassification", split: str):
  """(inputs float32 [N, T, D], labels int32 [N], num_classes), preprocessed."""
  from lstmx import data
  opts = {"layout": task.layout} if task.layout else {}
  train = _load(task.dataset, "train", task.data_seed, **opts)
  if train.kind != "classification":
    raise ValueError(f"classify.dataset: expected a classification dataset; got "
                     f"{task.dataset!r} of kind {train.kind!r}")
  if task.train_size is not None:
    if task.train_size > len(train):
      raise ValueError(f"{task.name}.train_size: expected an int in [1, {len(train)}] (the "
                       f"{task.dataset!r} training split's size); got {task.train_size}")
    train = data.subsample(train, task.train_size, seed=task.data_seed)
  if task.label_noise:
    train = data.add_label_noise(train, task.label_noise, seed=task.data_seed)
  ds = train if split == "train" else _load(task.dataset, split, task.data_seed, **opts)
  x = np.asarray(ds.inputs, np.float32)
  if x.ndim == 2:
    x = x[:, :, None]
  if task.scale == "standardize":
    # Per step and feature (e.g. each column of a table), over training examples.
    tx = np.asarray(train.inputs, np.float32).reshape(len(train), *x.shape[1:])
    mean, std = tx.mean(axis=0), tx.std(axis=0) + 1e-6
    x = (x - mean) / std
  else:  # "unit": intensities to [0, 1] by the training split's maximum
    x = x / max(float(np.max(train.inputs)), 1.0)
  if task.permuted:
    x = x[:, np.random.default_rng(task.permute_seed).permutation(x.shape[1])]
  return x, np.asarray(ds.targets, np.int32), int(train.num_classes)


@dataclasses.dataclass(frozen=True)
class DatasetClassification(Task):
  """Sequence classification of a `lstmx.data` dataset; the class is predicted at
  the last step. Baseline: the entropy of the training labels' prior (a
  memoryless model sees only the last step); chance: the majority class."""

  name = "classify"
  finite = True
  solved_rule = "validation accuracy >= 0.9 (lstmx's criterion)"
  dataset: str = "gunpoint"
  layout: str | None = None  # passed to data.load where the dataset has layouts
  train_size: int | None = None
  label_noise: float = 0.0
  scale: str = "standardize"  # or "unit"
  permuted: bool = False
  permute_seed: int = 0
  data_seed: int = 0  # or "train.seed" in a config: the run's seed (`resolve_params`)

  def validate(self):
    if isinstance(self.data_seed, bool) or not isinstance(self.data_seed, int) \
        or self.data_seed < 0:
      hint = (" (a run replaces 'train.seed' by its seed; build the task with "
              "lstmx.tasks.datasets.resolve_params)" if self.data_seed == FOLLOW_TRAIN_SEED
              else "")
      raise ValueError(f"{self.name}.data_seed: expected an int >= 0{hint}; got "
                       f"{self.data_seed!r}")
    if self.scale not in ("standardize", "unit"):
      raise ValueError(f"{self.name}.scale: expected 'standardize' or 'unit'; got {self.scale!r}")
    if not is_real(self.label_noise) or not 0.0 <= as_real(self.label_noise) < 1.0:
      raise ValueError(f"{self.name}.label_noise: expected a fraction in [0, 1); got "
                       f"{self.label_noise!r}")
    object.__setattr__(self, "label_noise", as_real(self.label_noise))
    _check_train_size(self)
    check_dataset(self.name, self.dataset, "classification")

  def arrays(self, split: str = "train"):
    return _examples(self, split)

  input_size = property(lambda self: self.arrays()[0].shape[2])
  output_size = property(lambda self: self.arrays()[2])
  length = property(lambda self: self.arrays()[0].shape[1])

  @property
  def baseline_loss(self) -> float:
    _, y, k = self.arrays()
    p = np.bincount(y, minlength=k) / len(y)
    p = p[p > 0]
    return float(-np.sum(p * np.log(p)))

  @property
  def chance_accuracy(self) -> float:
    _, y, k = self.arrays()
    return float(np.bincount(y, minlength=k).max() / len(y))

  def sample(self, key: jax.Array, batch_size: int, split: str = "train") -> Batch:
    self.check_sample(batch_size, split)
    x, y, _ = self.arrays(split)
    idx = jax.random.randint(key, (batch_size,), 0, x.shape[0])
    T = x.shape[1]
    lengths = jnp.full((batch_size,), T, jnp.int32)
    mask = last_step_mask(lengths, T)
    labels = jnp.asarray(y)[idx]
    return {"inputs": jnp.asarray(x)[idx], "mask": mask, "lengths": lengths,
            "targets": jnp.where(mask > 0, labels[:, None], 0).astype(jnp.int32)}

  def eval_size(self, split: str, examples: int) -> int:
    """Every example of `split` (`examples` is ignored)."""
    self.check_split(split)
    return len(self.arrays(split)[1])

  def _eval_batch(self, split, start, count, batch_size):
    x, y, _ = self.arrays(split)
    rows = slice(start, start + count)
    return pad_rows(_at_last_step(x[rows], y[rows]), batch_size)

  def solved(self, metrics) -> bool:
    return float(metrics["accuracy"]) >= 0.9


@functools.lru_cache(maxsize=16)
def _stream(dataset: str, split: str, train_size: int | None):
  ds = _load(dataset, split, 0)
  tokens = np.asarray(ds.inputs, np.int32)
  if split == "train" and train_size is not None:
    tokens = tokens[:train_size]
  return tokens, int(ds.num_classes)


@dataclasses.dataclass(frozen=True)
class CharLM(Task):
  """Character-level language modelling (one-hot characters in, next character out).

  Windows of `seq_len` steps start at uniformly random offsets of the split's
  character stream; the training stream is its first `train_size`
  characters. Baseline: the bigram conditional entropy H(x_{t+1} | x_t) of
  the training stream, the best a model that sees only the current character
  can do. Language modelling has no solved criterion (`solved` is False).
  """

  name = "char_lm"
  finite = True
  solved_rule = "none (report perplexity and the train/validation gap)"
  dataset: str = "shakespeare"
  seq_len: int = 100
  train_size: int | None = None

  def validate(self):
    check_int(self.name, "seq_len", self.seq_len, 1)
    if self.train_size is not None:
      check_int(self.name, "train_size", self.train_size, 2)
    if self.train_size is not None and self.train_size <= self.seq_len + 1:
      raise ValueError(f"{self.name}.train_size: expected more than seq_len + 1 = "
                       f"{self.seq_len + 1} characters; got {self.train_size}")
    for split in ("train", "validation", "test"):  # a window holds seq_len + 1 characters
      n = len(_stream(self.dataset, split, self.train_size)[0])
      if self.seq_len > n - 1:
        raise ValueError(f"{self.name}.seq_len: expected an int in [1, {n - 1}] (the "
                         f"{self.dataset!r} {split} split has {n} characters); "
                         f"got {self.seq_len}")

  input_size = property(lambda self: _stream(self.dataset, "train", None)[1])
  output_size = property(lambda self: _stream(self.dataset, "train", None)[1])
  length = property(lambda self: self.seq_len)

  @property
  def baseline_loss(self) -> float:
    tokens, v = _stream(self.dataset, "train", self.train_size)
    counts = np.zeros((v, v))
    np.add.at(counts, (tokens[:-1], tokens[1:]), 1.0)
    p_joint = counts / counts.sum()
    p_cond = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    nz = counts > 0
    return float(-np.sum(p_joint[nz] * np.log(p_cond[nz])))

  def sample(self, key: jax.Array, batch_size: int, split: str = "train") -> Batch:
    self.check_sample(batch_size, split)
    tokens, v = _stream(self.dataset, split, self.train_size)
    T = self.seq_len
    start = jax.random.randint(key, (batch_size,), 0, len(tokens) - T)  # start + T < len
    window = jnp.asarray(tokens)[start[:, None] + jnp.arange(T + 1)[None, :]]
    return {"inputs": one_hot(window[:, :-1], v), "targets": window[:, 1:],
            "mask": jnp.ones((batch_size, T), jnp.float32),
            "lengths": jnp.full((batch_size,), T, jnp.int32)}

  def eval_size(self, split: str, examples: int) -> int:
    """Windows covering `split`'s stream: ceil((characters - 1) / seq_len)."""
    self.check_split(split)
    n = len(_stream(self.dataset, split, self.train_size)[0])
    return -(-(n - 1) // self.seq_len)

  def _eval_batch(self, split, start, count, batch_size):
    """Windows ``start .. start + count - 1``: window w predicts characters
    ``w T + 1 .. w T + T`` from those before them (a fresh state per window); the
    last may be shorter (its length and mask say how long)."""
    tokens, v = _stream(self.dataset, split, self.train_size)
    T, last = self.seq_len, len(tokens) - 1
    first = (start + np.arange(count)) * T
    lengths = np.minimum(T, last - first).astype(np.int32)
    window = tokens[np.minimum(first[:, None] + np.arange(T + 1)[None, :], last)]
    valid = np.arange(T)[None, :] < lengths[:, None]
    inputs = np.eye(v, dtype=np.float32)[window[:, :-1]] * valid[..., None]
    batch = {"inputs": inputs, "targets": np.where(valid, window[:, 1:], 0).astype(np.int32),
             "mask": valid.astype(np.float32), "lengths": lengths}
    return pad_rows(batch, batch_size)

  def solved(self, metrics) -> bool:
    return False


@functools.lru_cache(maxsize=16)
def _windows(dataset: str, split: str, window: int, train_size: int | None):
  """Standardized (inputs [N, W, 1], next value [N]) with train-split statistics."""
  train = _load(dataset, "train", 0, window=window)
  tx = np.asarray(train.inputs, np.float32)
  if train_size is not None:
    tx = tx[:train_size]
  mean, std = float(tx.mean()), float(tx.std()) + 1e-8
  ds = train if split == "train" else _load(dataset, split, 0, window=window)
  x = (np.asarray(ds.inputs, np.float32) - mean) / std
  y = (np.asarray(ds.targets, np.float32)[:, 0, 0] - mean) / std
  if split == "train" and train_size is not None:
    x, y = x[:train_size], y[:train_size]
  return x, y


@dataclasses.dataclass(frozen=True)
class Forecast(Task):
  """One-step-ahead forecasting of a standardized series from a window of its past.

  The target (the next value) is predicted at the window's last step; loss MSE
  in standardized units. Baseline: the persistence forecast (the current
  value), the standard memoryless yardstick, measured on the training split.
  """

  name = "forecast"
  kind = "regression"
  finite = True
  solved_rule = "loss below 0.5 x the persistence baseline (lstmx's criterion)"
  dataset: str = "sunspots"
  window: int = 132
  train_size: int | None = None

  input_size = property(lambda self: 1)
  output_size = property(lambda self: 1)
  length = property(lambda self: self.window)

  def validate(self):
    check_dataset(self.name, self.dataset, "forecasting")
    check_int(self.name, "window", self.window, 2)
    object.__setattr__(self, "window", int(self.window))
    _check_train_size(self)

  @property
  def baseline_loss(self) -> float:
    x, y = _windows(self.dataset, "train", self.window, self.train_size)
    return float(np.mean((x[:, -1, 0] - y) ** 2))

  def sample(self, key: jax.Array, batch_size: int, split: str = "train") -> Batch:
    self.check_sample(batch_size, split)
    x, y = _windows(self.dataset, split, self.window, self.train_size)
    idx = jax.random.randint(key, (batch_size,), 0, x.shape[0])
    T = self.window
    lengths = jnp.full((batch_size,), T, jnp.int32)
    mask = last_step_mask(lengths, T)
    return {"inputs": jnp.asarray(x)[idx], "targets": mask * jnp.asarray(y)[idx][:, None],
            "mask": mask, "lengths": lengths}

  def eval_size(self, split: str, examples: int) -> int:
    """Every window of `split` (`examples` is ignored)."""
    self.check_split(split)
    return len(_windows(self.dataset, split, self.window, self.train_size)[1])

  def _eval_batch(self, split, start, count, batch_size):
    x, y = _windows(self.dataset, split, self.window, self.train_size)
    rows = slice(start, start + count)
    return pad_rows(_at_last_step(x[rows], y[rows]), batch_size)

  def solved(self, metrics) -> bool:
    return float(metrics["loss"]) < 0.5 * self.baseline_loss
