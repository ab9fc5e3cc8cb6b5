"""Activation penalties of Merity et al. 2017, "Revisiting activation regularization
for language RNNs": AR and TAR, as in AWD-LSTM.

Both are returned unweighted; `lstmx.lstm(..., return_penalties=True)` computes
them where AWD-LSTM does (AR on the last layer's output after output dropout,
TAR on its raw output) and adds ``reg.ar * ar + reg.tar * tar`` as ``"loss"``
for the training step to add to its objective. Padded steps are excluded.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _time_first(y: jax.Array, mask: jax.Array | None, time_major: bool):
  if time_major:
    return y, mask
  return jnp.swapaxes(y, 0, 1), None if mask is None else jnp.swapaxes(mask, 0, 1)


def _masked_mean_square(d: jax.Array, valid: jax.Array | None) -> jax.Array:
  """Mean of d^2 [T', B, F] over the rows where valid [T', B] (all if None); 0 if none."""
  if valid is None:
    return jnp.mean(jnp.square(d)) if d.size else jnp.zeros((), d.dtype)
  w = valid.astype(d.dtype)[..., None]
  count = jnp.maximum(jnp.sum(w), 1) * d.shape[-1]
  return jnp.sum(w * jnp.square(d)) / count


def ar_penalty(y: jax.Array, mask: jax.Array | None = None, *,
               time_major: bool = False) -> jax.Array:
  """Activation regularization (AR; Merity et al. 2017), unweighted.

  ``mean(y_t^2)`` over valid (b, t) and all features: AWD-LSTM's
  ``dropped_rnn_h.pow(2).mean()``. Apply it to the last layer's output after
  output dropout (what `lstmx.lstm(..., return_penalties=True)` does).

  Args:
    y: [B, T, F] outputs ([T, B, F] if `time_major`).
    mask: optional [B, T] bool ([T, B] if `time_major`), True at valid steps.
  """
  y, mask = _time_first(y, mask, time_major)
  return _masked_mean_square(y, mask)


def tar_penalty(y: jax.Array, mask: jax.Array | None = None, *,
                time_major: bool = False) -> jax.Array:
  """Temporal activation regularization (TAR; Merity et al. 2017), unweighted.

  ``mean((h_t - h_{t+1})^2)`` over pairs of consecutive valid steps and all
  features: AWD-LSTM's ``(rnn_h[1:] - rnn_h[:-1]).pow(2).mean()``. Apply it to
  the last layer's raw output, before output dropout (what
  `lstmx.lstm(..., return_penalties=True)` does). Zero if T = 1.

  Args:
    y: [B, T, F] outputs ([T, B, F] if `time_major`).
    mask: optional [B, T] bool ([T, B] if `time_major`), True at valid steps.
  """
  y, mask = _time_first(y, mask, time_major)
  diff = y[1:] - y[:-1]
  pairs = None if mask is None else mask[1:] & mask[:-1]
  return _masked_mean_square(diff, pairs)
