"""Typed, frozen experiment configs and dotted-key overrides.

    >>> cfg = Config()
    >>> cfg = override(cfg, ["optimizer.lr=3e-3", "task.params.delay=50"])
    >>> cfg.optimizer.lr
    0.003

Variants derive with `dataclasses.replace`; `override` parses command-line
``key=value`` strings against the field types and raises on an unknown key or
a value of the wrong type. `to_dict` / `from_dict` round-trip through JSON.
"""

from __future__ import annotations

import ast
import dataclasses
import types
import typing
from typing import Any, Mapping, Sequence

from lstmx.lstm import DEFAULT_UNROLL
from lstmx.regularization import Regularization


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """A model from `lstmx.models` (``kind``): one output per step, [B, T, output_size].

  ``hidden_size`` and ``num_layers`` are width and depth for every kind (LSTM /
  GRU layers, Transformer blocks, TCN residual blocks, 2-D conv-pool blocks,
  MLP hidden layers). The other fields apply to the kinds named beside them.
  """

  kind: str = "lstm"  # lstm | gru | transformer | tcn | cnn2d | mlp
  hidden_size: int = 64
  num_layers: int = 1
  bidirectional: bool = False  # lstm, gru
  init: str = "forget_bias"  # lstm
  chrono_max_length: int | None = None  # lstm
  backend: str = "auto"  # lstm
  unroll: int = DEFAULT_UNROLL  # lstm, gru (steps unrolled per scan iteration)
  remat_every: int | None = None  # lstm: nested checkpointing every k steps (lstmx.remat)
  compute_dtype: str | None = None  # "bfloat16" for bf16 matmul inputs
  # LSTM regularizers (lstmx.Regularization; off by default). AR/TAR weights
  # are in it too; the training step adds their penalty to the loss.
  regularization: Regularization = Regularization()
  num_heads: int = 4  # transformer; hidden_size must be a multiple
  ff_multiple: int = 4  # transformer: feed-forward width = ff_multiple * hidden_size
  causal: bool = True  # transformer: False attends in both directions
  positional: str = "sinusoidal"  # transformer: sinusoidal | learned (up to max_length)
  kernel_size: int = 3  # tcn (1-D), cnn2d (k x k)
  image_shape: tuple[int, ...] | None = None  # cnn2d: (H, W, C), H*W*C = T*D; None: (T, D, 1)
  activation: str = "relu"  # transformer feed-forward, tcn, cnn2d, mlp: relu | gelu | tanh


@dataclasses.dataclass(frozen=True)
class TaskConfig:
  """A task from `lstmx.tasks` (``name``) with its parameters (``params``)."""

  name: str = "copy"
  params: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """An optax chain: clip -> optimizer (+ weight decay) -> schedule.

  ``weight_decay`` is decoupled (AdamW-style) for ``adamw`` and coupled L2
  (added to the gradient) otherwise; it applies to parameters whose path
  contains one of ``decay_patterns`` (weights, not biases).

  ``averaging`` averages the iterates after each update (Polyak & Juditsky
  1992): ``"always"`` from the first step, ``"nt"`` from the first validation
  evaluation whose monitored metric is worse than the best of all but the last
  ``nonmono`` evaluations (non-monotonically triggered, Merity et al. 2017).
  AWD-LSTM's NT-ASGD is ``name="sgd", momentum=0, averaging="nt"``. Evaluation,
  the best checkpoint and the final metrics use the averaged parameters once
  averaging is on.
  """

  name: str = "adam"  # adam | adamw | sgd | rmsprop
  lr: float = 1e-3
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  momentum: float = 0.9
  weight_decay: float = 0.0
  decay_patterns: tuple[str, ...] = ("w_ih", "w_hh", "kernel", "embedding")
  clip_norm: float | None = 1.0
  schedule: str = "constant"  # constant | cosine | step
  warmup_steps: int = 0
  step_every: int = 1000  # step decay: multiply by step_factor every step_every steps
  step_factor: float = 0.5
  averaging: str = "none"  # none | nt | always
  nonmono: int = 5


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  steps: int = 1000
  batch_size: int = 32
  seed: int = 0
  log_every: int = 50
  eval_every: int = 100
  eval_batches: int = 4
  checkpoint_every: int = 100
  keep_checkpoints: int = 2
  patience: int = 0  # evaluations without improvement before stopping; 0 = off
  min_delta: float = 0.0
  monitor: str = "loss"  # validation metric for early stopping and the best checkpoint
  monitor_mode: str = "min"
  progress: bool = True


@dataclasses.dataclass(frozen=True)
class ShardingConfig:
  """Where the arrays live: ``preset`` none | data_parallel | hidden_parallel
  (see `lstmx.sharding`); ``model_axis``: devices on the ``model`` mesh axis for
  hidden_parallel (0 = all devices; the rest split the batch)."""

  preset: str = "none"
  model_axis: int = 0


@dataclasses.dataclass(frozen=True)
class Config:
  name: str = "run"
  model: ModelConfig = ModelConfig()
  task: TaskConfig = TaskConfig()
  optimizer: OptimizerConfig = OptimizerConfig()
  train: TrainConfig = TrainConfig()
  sharding: ShardingConfig = ShardingConfig()


def _parse(value: str, tp, key: str):
  """Parses a command-line string as type `tp`, or raises naming `key`."""
  origin = typing.get_origin(tp)
  args = typing.get_args(tp)
  if origin in (typing.Union, types.UnionType):
    if value.lower() in ("none", "null") and type(None) in args:
      return None
    errors = []
    for a in args:
      if a is type(None):
        continue
      try:
        return _parse(value, a, key)
      except ValueError as e:
        errors.append(str(e))
    raise ValueError(errors[0])
  if tp is bool:
    if value.lower() in ("true", "1", "yes"):
      return True
    if value.lower() in ("false", "0", "no"):
      return False
  elif tp is int:
    try:
      return int(value)
    except ValueError:
      pass
  elif tp is float:
    try:
      return float(value)
    except ValueError:
      pass
  elif tp is str:
    return value
  elif origin is tuple:
    items = [v for v in value.split(",") if v] if not value.startswith("(") else list(
        ast.literal_eval(value))
    return tuple(_parse(str(v), args[0], key) for v in items)
  elif tp is Any:
    try:
      return ast.literal_eval(value)
    except (ValueError, SyntaxError):
      return value
  raise ValueError(f"--set {key}: expected a value of type {getattr(tp, '__name__', tp)}; "
                   f"got {value!r}")


def _replace_path(obj, path: Sequence[str], value: str, full_key: str):
  head, rest = path[0], path[1:]
  if isinstance(obj, Mapping):
    if rest:
      return {**obj, head: _replace_path(obj.get(head), rest, value, full_key)}
    return {**obj, head: _parse(value, Any, full_key)}
  if not dataclasses.is_dataclass(obj):
    raise ValueError(f"--set {full_key}: {type(obj).__name__} has no field {head!r}")
  hints = typing.get_type_hints(type(obj))
  names = [f.name for f in dataclasses.fields(obj)]
  if head not in names:
    raise ValueError(f"--set {full_key}: unknown key {head!r}; expected one of {names}")
  if rest:
    new = _replace_path(getattr(obj, head), rest, value, full_key)
  else:
    new = _parse(value, hints[head], full_key)
  return dataclasses.replace(obj, **{head: new})


def override(config: Config, assignments: Sequence[str]) -> Config:
  """Applies ``dotted.key=value`` assignments; raises ValueError on a bad one."""
  for a in assignments:
    if "=" not in a:
      raise ValueError(f"--set: expected key=value; got {a!r}")
    key, value = a.split("=", 1)
    config = _replace_path(config, key.strip().split("."), value.strip(), key.strip())
  return config


def to_dict(config) -> dict:
  return dataclasses.asdict(config)


def from_dict(cls, data: Mapping):
  """Rebuilds a (nested) config dataclass from `to_dict` output."""
  hints = typing.get_type_hints(cls)
  kwargs = {}
  for f in dataclasses.fields(cls):
    if f.name not in data:
      continue
    v, tp = data[f.name], hints[f.name]
    if dataclasses.is_dataclass(tp):
      v = from_dict(tp, v)
    elif v is not None and (typing.get_origin(tp) is tuple or any(
        typing.get_origin(a) is tuple for a in typing.get_args(tp))):
      v = tuple(v)  # JSON lists back to tuples, also for ``tuple[...] | None``
    kwargs[f.name] = v
  return cls(**kwargs)
