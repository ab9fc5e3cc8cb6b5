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

The block. By default (``residual=False, norm=False, mlp_multiple=0,
expansion=1``) layers are plain stacked recurrences, x_{l+1} = minRNN_l(x_l),
the model lstmx had first. Feng et al. do not run a bare recurrence: their
models stack minRNN layers in a residual block (with LayerNorm and, in language
modelling, an MLP), here in the pre-norm form of the nanoGPT and Mamba
backbones their experiments build on. With ``residual=True`` the inputs are
first projected to the stream width H (`hidden_size`, an embedding for one-hot
tokens), and each of the `num_layers` blocks is

    x <- x + W_out minRNN(LN(x))             (W_out [E, H] only if E = expansion H > H)
    x <- x + W_2 gelu(W_1 LN(x))             (if mlp_multiple > 0: W_1 [H, mH], W_2 [mH, H])

followed by a last LN before the head (each LN only if ``norm``; without
``residual`` the same steps run without the ``x +``). The recurrence has width
E = `expansion` * H (the "expansion factor" of the public minGRU
implementations, e.g. lucidrains/minGRU-pytorch: project H -> E, recur, project
back).

What Feng, Tung, Ahmed, Bengio & Hajimirsadeghi (2024), "Were RNNs All We
Needed?" (arXiv 2410.01201) ran, and the config that reproduces each:

* Selective copying (Mamba's task, `lstmx.tasks.SelectiveCopy`):
  3 stacked layers in a residual block. ``ModelConfig(kind="minlstm",
  num_layers=3, residual=True, hidden_size=64, expansion=2)`` is the setting of
  a public reproduction of that experiment (embedding 64, 3 layers, expansion 2,
  a residual around each layer, dropout 0.1, no LayerNorm in its code); the
  paper's appendix gives its own widths, which were not readable from this
  sandbox when this was written: check them there before quoting a width as
  the paper's.
* Language modelling (Shakespeare, nanoGPT's character-level setup): the
  residual block with LayerNorm and an MLP after each minRNN, i.e. ``residual=
  True, norm=True, mlp_multiple=4`` (nanoGPT's MLP width 4H) with the paper's
  depth and width (nanoGPT's Shakespeare config is 6 layers of width 384).
* minLSTM has 3 projections of width E per layer (f, i, h~), minGRU 2 (z, h~),
  as in the paper's algorithms; both use the log-space scan and g(.) of its
  "numerically stable" versions.

Where lstmx departs: no dropout (the reproduction above and nanoGPT's setup use it); the first LN, the
final LN and the MLP's GELU follow nanoGPT, not a stated choice of the paper;
widths are set by `hidden_size` (and matched to a parameter budget with
`lstmx.models.match_size`), not copied from the paper per task. A one-layer
plain minLSTM (the default config) is *not* Feng et al.'s model.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from lstmx.models.base import ModelConfig, SequenceModel, register_kind
from lstmx.models.checks import as_bool, as_int, normalize
from lstmx.models.common import compute_dtype, valid_steps


@dataclasses.dataclass(frozen=True, kw_only=True)
class MinLSTMConfig(ModelConfig):
  """``model.kind="minlstm"``: stacked minLSTM layers (3 input projections of width H).

  Attributes:
    parallel: the log-space associative scan (True, the paper's) or the equal
      sequential `lax.scan` (False: faster to differentiate on a CPU).
    residual: the paper's residual block (module docstring): an input projection
      to width ``hidden_size``, then ``x + minRNN(x)`` per layer. False: plain
      stacked layers (lstmx's first model; the default).
    norm: a LayerNorm before each minRNN and MLP, and before the head.
    mlp_multiple: an MLP of width mlp_multiple * hidden_size (GELU) after each
      minRNN layer; 0 for none (the default; the paper's language model: 4).
    expansion: the recurrence's width as a multiple of ``hidden_size`` (projected
      back to ``hidden_size`` after it); above 1 needs ``residual``.
  """

  kind: str = "minlstm"
  parallel: bool = True
  residual: bool = False
  norm: bool = False
  mlp_multiple: int = 0
  expansion: int = 1

  def __post_init__(self):
    super().__post_init__()
    normalize(self, parallel=as_bool("model.parallel", self.parallel),
              residual=as_bool("model.residual", self.residual),
              norm=as_bool("model.norm", self.norm),
              mlp_multiple=as_int("model.mlp_multiple", self.mlp_multiple, low=0),
              expansion=as_int("model.expansion", self.expansion, low=1))
    if self.expansion > 1 and not self.residual:
      raise ValueError(f"model.expansion: expected 1 without model.residual=true (plain "
                       f"layers recur at width model.hidden_size); got {self.expansion}")


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
  """Stacked minLSTM / minGRU layers (plain, or the paper's residual block) and a linear
  head on every step.

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
    self.residual, self.norm, self.mlp = cfg.residual, cfg.norm, cfg.mlp_multiple > 0
    self.dtype = compute_dtype(cfg)
    n = 3 if cfg.kind == "minlstm" else 2
    H, L = cfg.hidden_size, cfg.num_layers
    E = cfg.expansion * H
    self.expanded = E > H
    width = [H if cfg.residual or layer > 0 else input_size for layer in range(L)]
    self.embed = (nnx.Linear(input_size, H, dtype=self.dtype, rngs=rngs) if cfg.residual
                  else None)
    self.layers = nnx.List([nnx.Linear(width[layer], n * E, dtype=self.dtype, rngs=rngs)
                            for layer in range(L)])
    self.outs = nnx.List([nnx.Linear(E, H, dtype=self.dtype, rngs=rngs)
                          for _ in range(L if self.expanded else 0)])
    self.norms = nnx.List([nnx.LayerNorm(width[layer], rngs=rngs)
                           for layer in range(L if cfg.norm else 0)])
    M = cfg.mlp_multiple * H
    self.mlp_norms = nnx.List([nnx.LayerNorm(H, rngs=rngs)
                               for _ in range(L if cfg.norm and self.mlp else 0)])
    self.mlp_in = nnx.List([nnx.Linear(H, M, dtype=self.dtype, rngs=rngs)
                            for _ in range(L if self.mlp else 0)])
    self.mlp_out = nnx.List([nnx.Linear(M, H, dtype=self.dtype, rngs=rngs)
                             for _ in range(L if self.mlp else 0)])
    self.final_norm = nnx.LayerNorm(H, rngs=rngs) if cfg.norm else None
    self.head = nnx.Linear(H, output_size, rngs=rngs)

  def _matmul_input(self, x: jax.Array) -> jax.Array:
    return x if self.dtype is None else x.astype(self.dtype)

  @staticmethod
  def _layer_norm(norm: nnx.LayerNorm, x: jax.Array) -> jax.Array:
    # flax's statistics call jnp.promote_types(dtype, float32), which strict dtype
    # promotion rejects for float64 inputs (the float64 tests); it returns x's dtype.
    with jax.numpy_dtype_promotion("standard"):
      return norm(x)

  def __call__(self, inputs: jax.Array, lengths: jax.Array | None = None, *,
               parallel: bool | None = None) -> jax.Array:
    """[B, T, D] (and lengths [B] | None) -> [B, T, output_size] float32; `parallel`
    (default: the config's) False runs the sequential recurrence. Every layer's output
    is zero at padded steps (t >= lengths[b]); the head gives its bias there."""
    parallel = self.parallel if parallel is None else parallel
    B, T, _ = inputs.shape
    valid = valid_steps(lengths, B, T).T
    ok = valid[:, :, None]
    x = jnp.swapaxes(inputs, 0, 1)  # [T, B, D]

    def wide(y):  # the stream runs in float32 (or wider, as the scan)
      return y.astype(jnp.float32) if y.dtype.itemsize < 4 else y

    def masked(y):
      return jnp.where(ok, y, jnp.zeros((), y.dtype))

    if self.residual:
      x = masked(wide(self.embed(self._matmul_input(x))))
    for i, layer in enumerate(self.layers):
      y = self._layer_norm(self.norms[i], x) if self.norm else x
      h = min_layer(self.kind, wide(layer(self._matmul_input(y))), valid, parallel=parallel)
      if self.expanded:
        h = wide(self.outs[i](self._matmul_input(h)))
      x = x + h if self.residual else h
      if self.mlp:
        y = self._layer_norm(self.mlp_norms[i], x) if self.norm else x
        y = self.mlp_out[i](jax.nn.gelu(self.mlp_in[i](self._matmul_input(y))))
        x = x + wide(y) if self.residual else wide(y)
      x = masked(x)
    if self.norm:
      x = masked(self._layer_norm(self.final_norm, x))
    return self.head(jnp.swapaxes(x, 0, 1))


for _kind, _cfg in (("minlstm", MinLSTMConfig), ("mingru", MinGRUConfig)):
  register_kind(_kind, _cfg, lambda cfg, d, o, n, rngs: MinRNNSequenceModel(cfg, d, o, rngs=rngs),
                causal=True)
