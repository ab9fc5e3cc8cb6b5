"""minLSTM and minGRU (Feng et al. 2024, "Were RNNs all we needed?"): gates from the input only.

With no h_{t-1} inside the gates, each layer is a linear recurrence in h,

    minLSTM:  f_t = sigmoid(W_f x_t + b_f),  i_t = sigmoid(W_i x_t + b_i),
              h~_t = g(W_h x_t + b_h),
              f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t),
              h_t = f'_t * h_{t-1} + i'_t * h~_t
    minGRU:   z_t = sigmoid(W_z x_t + b_z),  h~_t = g(W_h x_t + b_h),
              h_t = (1 - z_t) * h_{t-1} + z_t * h~_t

with g(x) = x + 1/2 for x >= 0, sigmoid(x) otherwise (positive, so h > 0 and
the recurrence runs in log space), h_0 = 0. Over all T steps at once, as the
paper does (`log_space_scan`):

    log h_t = a_t + logcumsumexp_{s <= t}(log v_s - a_s),     a_t = sum_{s <= t} log f'_s

(log v_s = log i'_s + log g(...)), with log f' = -softplus(softplus(-k_f) -
softplus(-k_i)) etc. computed stably from the pre-activations. `linear_scan`
is the plain sequential recurrence, the reference the tests compare with.

At padded steps (t >= lengths[b]) the state is carried (f' = 1, v = 0) and the
output is zero, as in `lstmx.lstm`. Layers stack (layer l reads layer l - 1's
h); a linear head maps every step's h to the outputs.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from lstmx.models.base import ModelConfig, SequenceModel, register_kind
from lstmx.models.checks import as_bool, normalize
from lstmx.models.common import compute_dtype, valid_steps


@dataclasses.dataclass(frozen=True, kw_only=True)
class MinLSTMConfig(ModelConfig):
  """``model.kind="minlstm"``: stacked minLSTM layers (3 input projections of width H).

  Attributes:
    parallel: the log-space associative scan (True, the paper's) or the equal
      sequential `lax.scan` (False: faster to differentiate on a CPU).
  """

  kind: str = "minlstm"
  parallel: bool = True

  def __post_init__(self):
    super().__post_init__()
    normalize(self, parallel=as_bool("model.parallel", self.parallel))


@dataclasses.dataclass(frozen=True, kw_only=True)
class MinGRUConfig(MinLSTMConfig):
  """``model.kind="mingru"``: stacked minGRU layers (2 input projections of width H);
  ``parallel`` as in `MinLSTMConfig`."""

  kind: str = "mingru"


_LOG_ZERO = -1e30


def log_g(x: jax.Array) -> jax.Array:
  """log g(x): log(x + 1/2) for x >= 0, -softplus(-x) (= log sigmoid x) otherwise."""
  return jnp.where(x >= 0, jnp.log(jnp.maximum(x, 0) + 0.5), -jax.nn.softplus(-x))


def g(x: jax.Array) -> jax.Array:
  """x + 1/2 for x >= 0, sigmoid(x) otherwise."""
  return jnp.where(x >= 0, x + 0.5, jax.nn.sigmoid(x))


def log_coefficients(kind: str, k: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(log f'_t, log v_t) [T, B, H] from the projections k [T, B, nH] (n = 3 for
  minLSTM: f, i, h~; n = 2 for minGRU: z, h~)."""
  if kind == "minlstm":
    kf, ki, kh = jnp.split(k, 3, axis=-1)
    diff = jax.nn.softplus(-kf) - jax.nn.softplus(-ki)  # log i - log f
    return -jax.nn.softplus(diff), -jax.nn.softplus(-diff) + log_g(kh)
  kz, kh = jnp.split(k, 2, axis=-1)
  return -jax.nn.softplus(kz), -jax.nn.softplus(-kz) + log_g(kh)


def log_space_scan(log_f: jax.Array, log_v: jax.Array) -> jax.Array:
  """h [T, ...] of h_t = f_t h_{t-1} + v_t (h_{-1} = 0, v > 0) from log f, log v,
  in parallel over time: `lax.associative_scan` over the pairs (log f_t, log v_t)
  with (a1, b1) then (a2, b2) = (a1 + a2, logaddexp(b1 + a2, b2)), which is the
  module docstring's a_t + logcumsumexp(log v - a) without its large
  intermediates. (`lax.cumlogsumexp` and `jnp.cumsum` lower to a quadratic
  reduce-window on CPU: ~2 s per training step at T = 100 there.)"""
  def combine(first, second):
    a1, b1 = first
    a2, b2 = second
    return a1 + a2, jnp.logaddexp(b1 + a2, b2)

  _, log_h = jax.lax.associative_scan(combine, (log_f, log_v), axis=0)
  return jnp.exp(log_h)


def linear_scan(f: jax.Array, v: jax.Array) -> jax.Array:
  """The same h by a sequential `lax.scan` (the reference)."""
  def step(h, fv):
    h = fv[0] * h + fv[1]
    return h, h
  return jax.lax.scan(step, jnp.zeros_like(v[0]), (f, v))[1]


def min_layer(kind: str, k: jax.Array, valid: jax.Array, *, parallel: bool = True):
  """One layer: projections k [T, B, nH] and valid [T, B] -> h [T, B, H], zero where
  padded. ``parallel=False`` runs the sequential reference instead."""
  log_f, log_v = log_coefficients(kind, k)
  ok = valid[:, :, None]
  log_f = jnp.where(ok, log_f, jnp.zeros((), log_f.dtype))
  # A huge finite log 0: -inf would make logaddexp(-inf, -inf) in the scan's backward NaN.
  log_v = jnp.where(ok, log_v, jnp.full((), _LOG_ZERO, log_v.dtype))
  h = log_space_scan(log_f, log_v) if parallel else linear_scan(jnp.exp(log_f), jnp.exp(log_v))
  return jnp.where(ok, h, jnp.zeros((), h.dtype))


class MinRNNSequenceModel(SequenceModel):
  """Stacked minLSTM / minGRU layers and a linear head on every step.

  Example:
    >>> model = MinRNNSequenceModel(ModelConfig(kind="minlstm", hidden_size=16), 3, 2,
    ...                             rngs=nnx.Rngs(0))
    >>> model(jnp.ones((4, 10, 3)), jnp.full((4,), 7)).shape
    (4, 10, 2)
  """

  def __init__(self, cfg: MinLSTMConfig | MinGRUConfig, input_size: int, output_size: int, *,
               rngs: nnx.Rngs):
    self.kind = cfg.kind
    self.parallel = cfg.parallel
    self.dtype = compute_dtype(cfg)
    n = 3 if cfg.kind == "minlstm" else 2
    H = cfg.hidden_size
    self.layers = nnx.List([
        nnx.Linear(input_size if layer == 0 else H, n * H, dtype=self.dtype, rngs=rngs)
        for layer in range(cfg.num_layers)])
    self.head = nnx.Linear(H, output_size, rngs=rngs)

  def __call__(self, inputs: jax.Array, lengths: jax.Array | None = None, *,
               parallel: bool | None = None) -> jax.Array:
    """[B, T, D] (and lengths [B] | None) -> [B, T, output_size] float32; `parallel`
    (default: the config's) False runs the sequential recurrence."""
    parallel = self.parallel if parallel is None else parallel
    B, T, _ = inputs.shape
    valid = valid_steps(lengths, B, T).T
    x = jnp.swapaxes(inputs, 0, 1)
    for layer in self.layers:
      k = layer(x if self.dtype is None else x.astype(self.dtype))
      if k.dtype.itemsize < 4:  # the scan runs in float32 (or wider)
        k = k.astype(jnp.float32)
      x = min_layer(self.kind, k, valid, parallel=parallel)
    return self.head(jnp.swapaxes(x, 0, 1))


for _kind, _cfg in (("minlstm", MinLSTMConfig), ("mingru", MinGRUConfig)):
  register_kind(_kind, _cfg, lambda cfg, d, o, n, rngs: MinRNNSequenceModel(cfg, d, o, rngs=rngs),
                causal=True)
