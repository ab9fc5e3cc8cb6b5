"""What every model kind shares: its config's base class, the `SequenceModel`
interface, and the registry of kinds (``model.kind`` -> `ModelKind`).

Each kind defines, in its own module, a frozen config dataclass that extends
`ModelConfig` with its fields, and registers both with `register_kind`:

    >>> @dataclasses.dataclass(frozen=True)
    ... class GRUConfig(ModelConfig):
    ...   kind: str = "gru"
    ...   bidirectional: bool = False
    >>> register_kind("gru", GRUConfig, build_gru, causal=True)

Calling the base class builds the kind's config, so users' configs keep one
spelling for every kind:

    >>> ModelConfig(kind="transformer", num_heads=2)     # a TransformerConfig
    >>> ModelConfig(hidden_size=64)                      # an LSTMConfig (the default kind)
    >>> ModelConfig(kind="lstm", num_heads=2)            # ValueError naming the key and kind

`with_kind(cfg, kind)` switches kinds, carrying over the fields both kinds
have (``hidden_size``, ``num_layers``, ``compute_dtype``, ...).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from lstmx.models.checks import as_float_dtype, as_int, normalize
from lstmx.registry import Registry

DEFAULT_KIND = "lstm"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig:
  """The fields every model kind has; ``ModelConfig(kind=K, ...)`` builds kind K's config.

  Attributes:
    kind: the model kind, a name in `KINDS` (``lstm``, ``gru``, ``transformer``,
      ``tcn``, ``cnn2d``, ``mlp``).
    hidden_size: the width (LSTM / GRU units, Transformer width, TCN and CNN
      channels, MLP hidden width).
    num_layers: the depth (layers, blocks).
    compute_dtype: ``"bfloat16"`` for bf16 matmul inputs (a floating dtype's name:
      bfloat16, float16, float32, float64); None for float32.

  Every field is checked when the config is built (`lstmx.models.checks`): a wrong
  value raises a ValueError naming ``model.FIELD``; numpy scalars become Python numbers.
  """

  # Extra words for the error raised when a key is set on a kind that lacks it.
  HINTS: ClassVar[dict[str, str]] = {}

  kind: str = DEFAULT_KIND
  hidden_size: int = 64
  num_layers: int = 1
  compute_dtype: str | None = None

  def __new__(cls, *args, **kwargs):
    """The base class dispatches on ``kind`` to the kind's config class (fields are
    keyword-only: their positions differ between kinds)."""
    if cls is ModelConfig:
      kind = kwargs.get("kind", DEFAULT_KIND)
      cls = config_class(kind)
      check_fields(cls, kwargs)
    return object.__new__(cls)

  def __post_init__(self):
    own = type(self).__dataclass_fields__["kind"].default
    if self.kind != own:
      raise ValueError(f"model.kind: {type(self).__name__} is kind {own!r}; got {self.kind!r} "
                       "(switch kinds with ModelConfig(kind=...), with_kind or "
                       "--set model.kind=...)")
    normalize(self, hidden_size=as_int("model.hidden_size", self.hidden_size, low=1),
              num_layers=as_int("model.num_layers", self.num_layers, low=1),
              compute_dtype=as_float_dtype("model.compute_dtype", self.compute_dtype))


class SequenceModel(nnx.Module):
  """The interface of every model: ``model(inputs [B, T, D], lengths [B] | None)
  -> outputs [B, T, output_size]`` in evaluation mode, and `forward_train`."""

  def __call__(self, inputs: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
    """Evaluation mode: runs the model.

    Args:
      inputs: [B, T, D] float32.
      lengths: [B] int valid lengths, or None for all T.

    Returns:
      [B, T, output_size] float32, one output per step (``cnn2d`` and ``mlp``:
      the same prediction on every step).
    """
    raise NotImplementedError

  def forward_train(self, inputs: jax.Array, lengths: jax.Array | None,
                    key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Training mode: (outputs [B, T, output_size], penalty scalar float32).

    The default is the evaluation forward and a zero penalty; models with
    dropout masks (drawn from `key`) or activation penalties override it.
    """
    del key
    return self(inputs, lengths), jnp.zeros((), jnp.float32)

  def resolved_backend(self, *, training: bool = False) -> str | None:
    """The LSTM backend this model's calls resolve to (`lstmx.nn.LSTM.resolved_backend`);
    None for a model without an LSTM."""
    del training
    return None


@dataclasses.dataclass(frozen=True)
class ModelKind:
  """A registered model kind.

  Attributes:
    config: its config dataclass (a `ModelConfig` subclass).
    build: ``build(cfg, input_size, output_size, max_length, rngs) -> SequenceModel``.
    causal: True if output t sees inputs <= t only.
  """

  config: type[ModelConfig]
  build: Callable[..., SequenceModel]
  causal: bool


KINDS: Registry[ModelKind] = Registry("model.kind")


def register_kind(kind: str, config: type[ModelConfig], build: Callable[..., SequenceModel],
                  *, causal: bool) -> None:
  """Registers a model kind: its config class and its constructor."""
  KINDS.register(kind, ModelKind(config, build, causal))


def config_class(kind: str) -> type[ModelConfig]:
  """The config dataclass of `kind`; ValueError naming ``model.kind`` if unknown.

  Every built-in kind is registered by then: importing this module imports the
  `lstmx.models` package first, which imports each kind's module.
  """
  return KINDS.get(kind).config


def field_names(cls: type[ModelConfig]) -> list[str]:
  return [f.name for f in dataclasses.fields(cls)]


def unknown_field_error(cls: type[ModelConfig], key: str, where: str = "") -> ValueError:
  """The error for a key that kind `cls` lacks: names the key, the kind and its fields.

  `where` starts the message (e.g. ``--set model.num_heads``); by default ``model.KEY``.
  """
  kind = cls.__dataclass_fields__["kind"].default
  hint = f"; {cls.HINTS[key]}" if key in cls.HINTS else ""
  return ValueError(f"{where or f'model.{key}'}: {key!r} is not a field of model.kind={kind!r}"
                    f"{hint}; expected one of {field_names(cls)}")


def check_fields(cls: type[ModelConfig], kwargs: dict[str, Any]) -> None:
  names = field_names(cls)
  for key in kwargs:
    if key not in names:
      raise unknown_field_error(cls, key)


def with_kind(cfg: ModelConfig, kind: str) -> ModelConfig:
  """`cfg` as kind `kind`: the fields both kinds have keep their values, the
  rest take the new kind's defaults. The same config if the kind is unchanged."""
  if kind == cfg.kind:
    return cfg
  cls = config_class(kind)
  names = field_names(cls)
  carried = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
             if f.name in names and f.name != "kind"}
  return cls(kind=kind, **carried)
