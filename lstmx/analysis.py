"""Diagnostics of trained or fresh models: gradient flow through time."""

from __future__ import annotations

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from lstmx.kernels import lstm_step


def hidden_gradient_norms(model, task, batch) -> np.ndarray:
  """Mean over the batch of ||dL/dh_t||, t = 0..T-1, for an `LSTMSequenceModel`.

  L is the task loss restricted to the steps that need memory (the batch's
  ``recall`` steps where the task marks them, else its loss mask), so the
  curve against the distance from those steps shows how much gradient signal
  reaches far into the past: it decays exponentially when gradients vanish.
  Uses the first layer's forward direction of a one-layer model.

  Returns:
    [T] float64 array.
  """
  params = model.lstm.params
  if len(params) != 1 or len(params[0]) != 1:
    raise ValueError("hidden_gradient_norms: expected a one-layer unidirectional LSTM; got "
                     f"{len(params)} layers x {len(params[0])} directions")
  p = params[0][0]
  x = jnp.swapaxes(batch["inputs"], 0, 1)  # [T, B, D]
  T, B = x.shape[:2]
  H = p.hidden_size
  loss_batch = dict(batch, mask=batch.get("recall", batch["mask"]))

  def loss_of(eps):  # eps [T, B, H] added to each h_t
    def step(carry, inputs):
      x_t, e_t = inputs
      (h, c), _ = lstm_step(p, carry, x_t)
      h = h + e_t
      return (h, c), h
    zeros = jnp.zeros((B, H), p.w_hh.dtype)
    _, hs = jax.lax.scan(step, (zeros, zeros), (x, eps))
    return task.loss(model.head(jnp.swapaxes(hs, 0, 1)), loss_batch)

  g = jax.jit(jax.grad(loss_of))(jnp.zeros((T, B, H), p.w_hh.dtype))
  return np.asarray(jnp.mean(jnp.linalg.norm(g, axis=-1), axis=1), np.float64)


def decay_rate(norms, start: int) -> tuple[float, float]:
  """(rate, r2): the least-squares fit ``log ||dL/dh_t|| ~ c - rate * d`` over the
  distances ``d = start - t`` for t = start, ..., 0 (`start`: the first step whose
  loss counts), skipping norms that underflowed (<= 1e-35); r2 is the fit's R^2.
  A rate of 0.1 means the gradient shrinks e-fold every 10 steps."""
  y = np.asarray(norms, np.float64)[:start + 1][::-1]
  d = np.arange(len(y), dtype=np.float64)
  ok = np.isfinite(y) & (y > 1e-35)
  if ok.sum() < 3:
    return math.nan, math.nan
  slope, icept = np.polyfit(d[ok], np.log(y[ok]), 1)
  resid = np.log(y[ok]) - (slope * d[ok] + icept)
  total = np.sum((np.log(y[ok]) - np.log(y[ok]).mean()) ** 2)
  return float(-slope), float(1 - np.sum(resid ** 2) / total) if total > 0 else math.nan


GRADIENT_FLOW = "gradient_flow.json"


def save_gradient_flow(workdir: str, curves: dict) -> None:
  """Writes ``{"init": [||dL/dh_t||], "trained": [...], "start": t0}`` (t0: the first
  step whose loss counts) to the trial's `GRADIENT_FLOW` file."""
  with open(os.path.join(workdir, GRADIENT_FLOW), "w") as f:
    json.dump(curves, f)


def gradient_flow_curves(out_dir: str, trial_ids) -> dict[str, list]:
  """stage -> [(distance from the first loss step, ||dL/dh_t||)], one per trial of
  `trial_ids` under ``out_dir/trials`` that saved its gradient flow."""
  curves = {"init": [], "trained": []}
  for trial_id in trial_ids:
    path = os.path.join(out_dir, "trials", str(trial_id), GRADIENT_FLOW)
    if not os.path.exists(path):
      continue
    with open(path) as f:
      flow = json.load(f)
    start = int(flow.get("start", len(flow["init"]) - 1))
    for stage in curves:
      c = np.asarray(flow[stage])[:start + 1][::-1] + 1e-30  # index = distance
      curves[stage].append((np.arange(len(c)), c))
  return curves
