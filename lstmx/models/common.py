"""Small helpers shared by the comparison models: padding masks, dtypes, activations."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from lstmx.models.base import ModelConfig

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu, "gelu": jax.nn.gelu, "tanh": jnp.tanh}


def activation(cfg: ModelConfig) -> Callable[[jax.Array], jax.Array]:
  """The elementwise nonlinearity named by ``cfg.activation``."""
  if cfg.activation not in ACTIVATIONS:
    raise ValueError(f"model.activation: expected one of {tuple(ACTIVATIONS)}; "
                     f"got {cfg.activation!r}")
  return ACTIVATIONS[cfg.activation]


def compute_dtype(cfg: ModelConfig) -> jnp.dtype | None:
  """The matmul dtype (``cfg.compute_dtype``), or None for the parameters' float32."""
  return jnp.dtype(cfg.compute_dtype) if cfg.compute_dtype else None


def valid_steps(lengths: jax.Array | None, batch_size: int, T: int) -> jax.Array:
  """[B, T] bool, True where ``t < lengths[b]`` (all True without lengths)."""
  if lengths is None:
    return jnp.ones((batch_size, T), jnp.bool_)
  return jnp.arange(T)[None, :] < lengths[:, None]


def zero_padded(x: jax.Array, lengths: jax.Array | None) -> jax.Array:
  """``x`` [B, T, F] with the steps at or past ``lengths`` [B] set to zero."""
  if lengths is None:
    return x
  valid = valid_steps(lengths, x.shape[0], x.shape[1])
  return jnp.where(valid[..., None], x, jnp.zeros((), x.dtype))


def every_step(y: jax.Array, T: int) -> jax.Array:
  """One prediction per sequence, y [B, F], repeated on every step: [B, T, F]."""
  return jnp.broadcast_to(y[:, None, :], (y.shape[0], T, y.shape[1]))


def check_positive(name: str, value, low: int = 1) -> None:
  if not isinstance(value, int) or isinstance(value, bool) or value < low:
    raise ValueError(f"{name}: expected an int >= {low}; got {value!r}")
