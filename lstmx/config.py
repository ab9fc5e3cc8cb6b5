"""Typed, frozen experiment configs and the one dotted-path setter.

    >>> cfg = Config()
    >>> cfg = override(cfg, ["optimizer.lr=3e-3", "task.params.delay=50"])
    >>> cfg.optimizer.lr
    0.003

Variants derive with `dataclasses.replace`. `set_path` is the one dotted-path
setter: `override` feeds it command-line ``key=value`` strings (parsed against
the field types), `lstmx.lab.sweep.apply` sweep values (type-checked); both
raise on an unknown key or a value of the wrong type. ``model`` is the model
kind's own dataclass (`lstmx.models.base.ModelConfig`; ``ModelConfig(kind=...)``
builds it) and ``model.kind`` switches kinds. `to_dict` / `from_dict`
round-trip through JSON, the model by its kind.
"""

from __future__ import annotations

import ast
import dataclasses
import types
import typing
from typing import Any, Mapping, Sequence

import numpy as np

from lstmx import sharding
from lstmx.models.base import KINDS, ModelConfig, config_class, unknown_field_error, with_kind
from lstmx.models.checks import as_bool, as_choice, as_float, as_int, as_str, normalize

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "step")
AVERAGING = ("none", "nt", "always")


def _did_you_mean(name, choices) -> str:
  from lstmx.checks import did_you_mean
  return did_you_mean(name, choices)


def _choice(name: str, value, choices: Sequence[str]) -> str:
  """`as_choice`, its error with a "did you mean" for a near miss."""
  try:
    return as_choice(name, value, choices)
  except ValueError as e:
    raise ValueError(f"{e}{_did_you_mean(value, choices)}") from None


@dataclasses.dataclass(frozen=True)
class TaskConfig:
  """A task from `lstmx.tasks` (``name``) with its parameters (``params``)."""

  name: str = "copy"
  params: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    # The parameters are checked against the task by `lstmx.tasks.make` when the run
    # builds it (a parameter of another task is fine until then: `--set task.name=...`
    # and `--set task.params.X=...` apply one at a time).
    from lstmx import tasks
    if not isinstance(self.name, str) or self.name not in tasks.TASKS:
      raise ValueError(f"task.name: expected one of {tasks.names()}; got {self.name!r}"
                       f"{_did_you_mean(self.name, tasks.names())}")
    if not isinstance(self.params, Mapping) or not all(isinstance(k, str) for k in self.params):
      raise ValueError(f"task.params: expected a mapping of parameter names to values; "
                       f"got {self.params!r}")


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

  def __post_init__(self):
    f = lambda name, **kw: as_float(f"optimizer.{name}", getattr(self, name), **kw)  # noqa: E731
    i = lambda name, **kw: as_int(f"optimizer.{name}", getattr(self, name), **kw)  # noqa: E731
    decay = self.decay_patterns
    if isinstance(decay, str) or not all(isinstance(d, str) for d in decay):
      raise ValueError(f"optimizer.decay_patterns: expected a tuple of str; got {decay!r}")
    normalize(
        self, name=_choice("optimizer.name", self.name, OPTIMIZERS),
        lr=f("lr", above=0.0, finite=False),  # inf: a test's way to force divergence
        b1=f("b1", low=0.0, high=1.0), b2=f("b2", low=0.0, high=1.0),
        eps=f("eps", low=0.0), momentum=f("momentum", low=0.0, high=1.0),
        weight_decay=f("weight_decay", low=0.0), decay_patterns=tuple(decay),
        clip_norm=f("clip_norm", above=0.0, optional=True),
        schedule=_choice("optimizer.schedule", self.schedule, SCHEDULES),
        warmup_steps=i("warmup_steps", low=0), step_every=i("step_every", low=1),
        step_factor=f("step_factor", above=0.0),
        averaging=_choice("optimizer.averaging", self.averaging, AVERAGING),
        nonmono=i("nonmono", low=0))


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """The training loop's settings; every field is checked when the config is built.

  ``monitor`` must be a metric the task reports (checked when training starts,
  where the task is known). Divergence: besides a non-finite loss or gradient,
  a run stops as ``diverged`` when the mean training loss of ``diverge_patience``
  consecutive log windows (``log_every`` steps each) exceeds ``diverge_factor``
  times the run's initial loss (its first step's); ``diverge_factor=None`` or
  ``diverge_patience=0`` turns this rule off (`lstmx.train.hooks.Diverge`).

  Every validation evaluation checks the task's solved rule (`Task.solved`); the first step
  where it holds is the run's ``solved_step``, and ``stop_when_solved=True`` ends the run
  (``early_stopped``) once it held at ``solved_streak`` evaluations in a row.

  ``steps_per_call=k`` runs k training steps (batch sampling included) in one
  compiled call (a `jax.lax.scan`); it must divide ``log_every``, ``eval_every``
  and ``checkpoint_every`` (the loop reads results only at those steps), and
  the steps left over at the end of a run that is not a multiple of k run one
  call each. It needs ``sharding.preset="none"`` (sharded batches are placed
  from the host, one per step).
  """

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
  diverge_factor: float | None = 10.0
  diverge_patience: int = 3
  steps_per_call: int = 1
  stop_when_solved: bool = False  # end the run (early_stopped) once solved (solved_streak)
  solved_streak: int = 1  # consecutive solved evaluations before stop_when_solved ends it

  def __post_init__(self):
    i = lambda name, **kw: as_int(f"train.{name}", getattr(self, name), **kw)  # noqa: E731
    normalize(
        self, steps=i("steps", low=1), batch_size=i("batch_size", low=1),
        seed=i("seed", low=0, high=2**32 - 1), log_every=i("log_every", low=1),
        eval_every=i("eval_every", low=1), eval_batches=i("eval_batches", low=1),
        checkpoint_every=i("checkpoint_every", low=1),
        keep_checkpoints=i("keep_checkpoints", low=1), patience=i("patience", low=0),
        min_delta=as_float("train.min_delta", self.min_delta, low=0.0),
        monitor=as_str("train.monitor", self.monitor),
        monitor_mode=_choice("train.monitor_mode", self.monitor_mode, ("min", "max")),
        progress=as_bool("train.progress", self.progress),
        diverge_factor=as_float("train.diverge_factor", self.diverge_factor, above=1.0,
                                optional=True),
        diverge_patience=i("diverge_patience", low=0),
        steps_per_call=i("steps_per_call", low=1),
        stop_when_solved=as_bool("train.stop_when_solved", self.stop_when_solved),
        solved_streak=i("solved_streak", low=1))
    k = self.steps_per_call
    for name in ("log_every", "eval_every", "checkpoint_every"):
      if getattr(self, name) % k:
        raise ValueError(f"train.steps_per_call: expected a divisor of train.{name} "
                         f"({getattr(self, name)}); got {k}")


@dataclasses.dataclass(frozen=True)
class ShardingConfig:
  """Where the arrays live: ``preset`` none | data_parallel | hidden_parallel
  (see `lstmx.sharding`); ``model_axis``: devices on the ``model`` mesh axis for
  hidden_parallel (0 = all devices; the rest split the batch)."""

  preset: str = "none"
  model_axis: int = 0

  def __post_init__(self):
    normalize(self, preset=_choice("sharding.preset", self.preset, sharding.PRESETS),
              model_axis=as_int("sharding.model_axis", self.model_axis, low=0))


@dataclasses.dataclass(frozen=True)
class Config:
  name: str = "run"
  model: ModelConfig = ModelConfig()
  task: TaskConfig = TaskConfig()
  optimizer: OptimizerConfig = OptimizerConfig()
  train: TrainConfig = TrainConfig()
  sharding: ShardingConfig = ShardingConfig()

  def __post_init__(self):
    as_str("name", self.name)
    for name, cls in (("model", ModelConfig), ("task", TaskConfig), ("optimizer", OptimizerConfig),
                      ("train", TrainConfig), ("sharding", ShardingConfig)):
      if not isinstance(getattr(self, name), cls):
        raise ValueError(f"{name}: expected a {cls.__name__}; got {getattr(self, name)!r}")


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
    if not value.startswith("("):
      items = [v for v in value.split(",") if v]
    else:
      try:
        items = ast.literal_eval(value)
      except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        items = None
      if not isinstance(items, tuple):
        raise ValueError(f"--set {key}: expected a tuple such as (8, 8, 1) or 8,8,1; "
                         f"got {value!r}")
    return tuple(_parse(str(v), args[0], key) for v in items)
  elif tp is Any:
    try:
      return ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
      return value
  raise ValueError(f"--set {key}: expected a value of type {getattr(tp, '__name__', tp)}; "
                   f"got {value!r}")


@dataclasses.dataclass(frozen=True)
class _Source:
  """Where a dotted assignment comes from, for its error messages: ``--set`` strings
  (parsed against the field's type) or sweep values (Python values, type-checked)."""

  parse: bool
  key: str

  @property
  def where(self) -> str:
    return f"--set {self.key}" if self.parse else f"sweep key {self.key!r}"

  @property
  def word(self) -> str:
    return "key" if self.parse else "field"

  def convert(self, value, tp):
    """`value` as a value of type `tp`, or a ValueError naming the key."""
    if self.parse:
      return _parse(value, tp, self.key)
    # numpy scalars (np.linspace, np.arange sweep values) are accepted as Python numbers
    if tp is bool and isinstance(value, np.bool_):
      return bool(value)
    if tp is int and isinstance(value, np.integer):
      return int(value)
    if tp is float and isinstance(value, (int, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)):
      return float(str(value)) if isinstance(value, np.floating) else float(value)
    if tp in (int, float, bool, str) and type(value) is not tp:
      raise ValueError(f"{self.where}: expected {tp.__name__}; got {value!r}")
    return value


def _replace(obj, path: Sequence[str], value, src: _Source):
  head, rest = path[0], path[1:]
  if isinstance(obj, Mapping):
    if rest:
      return {**obj, head: _replace(obj.get(head), rest, value, src)}
    return {**obj, head: src.convert(value, Any)}
  if not dataclasses.is_dataclass(obj):
    raise ValueError(f"{src.where}: {type(obj).__name__} has no field {head!r}")
  names = [f.name for f in dataclasses.fields(obj)]
  if head not in names:
    hint = _did_you_mean(head, names)
    if isinstance(obj, ModelConfig):  # a key of another model kind
      raise ValueError(f"{unknown_field_error(type(obj), head, src.where)}{hint}")
    raise ValueError(f"{src.where}: unknown {src.word} {head!r}; expected one of {names}{hint}")
  if rest:
    return dataclasses.replace(obj, **{head: _replace(getattr(obj, head), rest, value, src)})
  new = src.convert(value, typing.get_type_hints(type(obj))[head])
  if isinstance(obj, ModelConfig) and head == "kind":
    try:
      return with_kind(obj, new)  # the new kind's dataclass, shared fields carried over
    except ValueError as e:
      raise ValueError(f"{src.where}: {e}{_did_you_mean(new, KINDS.names())}") from None
  return dataclasses.replace(obj, **{head: new})


def _kind_first(key: str) -> bool:
  return key != "model.kind"  # False sorts first


def set_path(config, key: str, value, *, parse: bool = False):
  """The one dotted-path setter: `config` with ``key`` (e.g. ``"model.hidden_size"``,
  ``"task.params.delay"``) set to `value`.

  Args:
    config: a (nested) config dataclass.
    key: the dotted path; a path into a Mapping field (``task.params.X``) adds keys.
    value: with ``parse=True``, a command-line string parsed against the field's
      type (``"3e-3"``, ``"none"``, ``"8,8,1"``); otherwise a Python value,
      checked against ``int``/``float``/``bool``/``str`` fields (an int is
      accepted for a float).
    parse: which of the two the value is; it also picks the error messages'
      prefix (``--set KEY`` or ``sweep key 'KEY'``).

  Returns:
    The new config. Setting ``model.kind`` switches to that kind's config
    dataclass, carrying over the fields both kinds have.

  Raises:
    ValueError: an unknown key (naming the model kind for a ``model.*`` key
      another kind has) or a value of the wrong type.
  """
  return _replace(config, key.split("."), value, _Source(parse, key))


def set_many(config, items: Sequence[tuple[str, Any]], *, parse: bool = False):
  """`set_path` for each ``(key, value)``, ``model.kind`` first (then in order)."""
  for key, value in sorted(items, key=lambda kv: _kind_first(kv[0])):
    config = set_path(config, key, value, parse=parse)
  return config


def override(config: Config, assignments: Sequence[str]) -> Config:
  """Applies ``dotted.key=value`` strings (`set_path` with ``parse=True``); raises
  ValueError on a bad one."""
  items = []
  for a in assignments:
    if "=" not in a:
      raise ValueError(f"--set: expected key=value; got {a!r}")
    key, value = a.split("=", 1)
    items.append((key.strip(), value.strip()))
  return set_many(config, items, parse=True)


def to_dict(config) -> dict:
  return dataclasses.asdict(config)


def from_dict(cls, data: Mapping):
  """Rebuilds a (nested) config dataclass from `to_dict` output."""
  if isinstance(cls, type) and issubclass(cls, ModelConfig):
    cls = config_class(data.get("kind", ModelConfig.kind))  # the kind's dataclass
  hints = typing.get_type_hints(cls)
  kwargs = {}
  for f in dataclasses.fields(cls):
    if f.name not in data:
      continue
    v, tp = data[f.name], hints[f.name]
    if dataclasses.is_dataclass(tp) and isinstance(v, Mapping):
      v = from_dict(tp, v)
    elif v is not None and (typing.get_origin(tp) is tuple or any(
        typing.get_origin(a) is tuple for a in typing.get_args(tp))):
      v = tuple(v)  # JSON lists back to tuples, also for ``tuple[...] | None``
    kwargs[f.name] = v
  return cls(**kwargs)
