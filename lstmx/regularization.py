"""LSTM regularization: one frozen config, masks drawn once per forward pass.

`Regularization` configures everything and is off by default. `lstmx.lstm`
draws every random mask with `draw_masks` from one explicit PRNG key *before*
any scan runs, then

* multiplies the non-recurrent dropout masks (input, between layers, output)
  into the activations outside the layer kernels,
* multiplies each weight-drop mask into its ``w_hh`` before the scan (autodiff
  of that product composes with the kernel's custom VJP), and
* hands the recurrent-dropout mask [B, H] and the zoneout weights [T, B, H] to
  the layer kernels, whose hand-written backward accounts for them.

So the fused custom-VJP path stays in use with every regularizer on. Masks are
constants: nothing is differentiated with respect to them.

Dropout masks hold 0 or 1/keep ("inverted dropout"), so evaluation applies no
mask at all. Zoneout weights hold 1 where a unit keeps its previous value.

Also here: `embedding_dropout`, for language models that own an embedding.
The AR / TAR penalties are in `lstmx.penalties`.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from lstmx.checks import as_real, check_bool, is_real
from lstmx.kernels.contract import LayerMasks  # re-exported: lstmx.LayerMasks
from lstmx.params import StackedParams

_DROPOUTS = ("input_dropout", "layer_dropout", "output_dropout", "recurrent_dropout",
             "weight_drop")  # applied by lstmx.lstm; rates in [0, 1)
_ZONEOUT = ("zoneout_h", "zoneout_c")  # rates in [0, 1]
_WEIGHTS = ("ar", "tar")


def check_rate(owner: str, value, *, closed: bool = False) -> float:
  """`value` as a float in [0, 1) ([0, 1] if `closed`), or a clear ValueError.

  NumPy and JAX scalars (``np.float32(0.1)``, ``jnp.float32(0.1)``) count as numbers;
  bools do not.
  """
  interval = "[0, 1]" if closed else "[0, 1)"
  ok = is_real(value) and 0.0 <= as_real(value) and (
      as_real(value) <= 1.0 if closed else as_real(value) < 1.0)
  if not ok:
    raise ValueError(f"{owner}: expected a rate in {interval}; got {value!r}")
  return as_real(value)


@dataclasses.dataclass(frozen=True)
class Regularization:
  """Every regularizer of an LSTM (all off by default). Rates are probabilities.

  Attributes:
    input_dropout: dropout on the first layer's input x_t (Srivastava et al.
      2014; Zaremba et al. 2014, "Recurrent neural network regularization").
      Each element is zeroed with this probability and survivors are scaled by
      1/(1 - rate). AWD-LSTM's ``dropouti``.
    layer_dropout: the same dropout on the input of every layer l > 0 (the
      previous layer's output, both directions), as ``torch.nn.LSTM(dropout=)``
      and AWD-LSTM's ``dropouth``. Not applied after the last layer.
    output_dropout: the same dropout on the last layer's output y (not on h_n,
      c_n). AWD-LSTM's ``dropout``.
    variational: the three dropouts above draw one mask per sequence, shared by
      every time step ([B, features]; Gal & Ghahramani 2016, "A theoretically
      grounded application of dropout in recurrent neural networks"; AWD-LSTM's
      ``LockedDropout``). False draws a fresh mask per step ([T, B, features]).
    recurrent_dropout: variational dropout of h_{t-1} where it enters the
      recurrent matmul, z_t = x_t W_ih + (m ⊙ h_{t-1}) W_hh + b, with one mask
      m [B, H] (scaled by 1/(1 - rate)) per sequence and layer-direction, fixed
      over time and shared by the four gates (Gal & Ghahramani 2016). The carried
      and output h_t are not dropped.
    weight_drop: DropConnect on the recurrent weights (Wan et al. 2013,
      "Regularization of neural networks using DropConnect"; Merity et al. 2017,
      AWD-LSTM's ``WeightDrop``): W_hh <- M ⊙ W_hh / (1 - rate) with one mask
      M [H, 4H] per layer-direction and forward pass, shared by every sequence
      and step.
    zoneout_h, zoneout_c: zoneout (Krueger et al. 2017, "Zoneout: regularizing
      RNNs by randomly preserving hidden activations"). In training, each unit of
      h (resp. c) keeps its previous value with this probability, independently
      per step: h_t = d_t ⊙ h_{t-1} + (1 - d_t) ⊙ h_new, d_t ~ Bernoulli(rate);
      the output is the zoned-out h_t. In evaluation, the expectation:
      h_t = rate · h_{t-1} + (1 - rate) · h_new (likewise c). Rate 1 freezes
      the state. Rates in [0, 1].
    embedding_dropout: whole-row dropout of an embedding matrix (Gal &
      Ghahramani 2016; AWD-LSTM's ``embedded_dropout``); not used by
      `lstmx.lstm` (which owns no embedding): pass it to `embedding_dropout`.
    ar: weight alpha of the activation regularization alpha · `ar_penalty` on
      the last layer's output after output dropout (Merity et al. 2017,
      "Revisiting activation regularization for language RNNs").
    tar: weight beta of the temporal activation regularization
      beta · `tar_penalty` on the last layer's raw output (before output
      dropout; Merity et al. 2017).

  Example:
    >>> reg = lstmx.Regularization(recurrent_dropout=0.25, zoneout_c=0.1)
    >>> y, _ = lstmx.lstm(params, x, regularization=reg, key=key, deterministic=False)
  """

  input_dropout: float = 0.0
  layer_dropout: float = 0.0
  output_dropout: float = 0.0
  variational: bool = False
  recurrent_dropout: float = 0.0
  weight_drop: float = 0.0
  zoneout_h: float = 0.0
  zoneout_c: float = 0.0
  embedding_dropout: float = 0.0
  ar: float = 0.0
  tar: float = 0.0

  def __post_init__(self):
    for name in _DROPOUTS + ("embedding_dropout",) + _ZONEOUT:
      object.__setattr__(self, name, check_rate(f"Regularization.{name}", getattr(self, name),
                                                closed=name in _ZONEOUT))
    for name in _WEIGHTS:
      value = getattr(self, name)
      if not is_real(value) or not math.isfinite(as_real(value)) or as_real(value) < 0:
        raise ValueError(f"Regularization.{name}: expected a finite weight >= 0; got {value!r}")
      object.__setattr__(self, name, as_real(value))
    if not isinstance(self.variational, (bool, np.bool_)):
      raise TypeError(f"Regularization.variational: expected a bool; got {self.variational!r}")
    object.__setattr__(self, "variational", bool(self.variational))

  @property
  def needs_mode(self) -> bool:
    """True if `lstmx.lstm`'s result depends on train vs evaluation mode."""
    return any(getattr(self, n) > 0 for n in _DROPOUTS + _ZONEOUT)

  @property
  def reaches_kernel(self) -> bool:
    """True if training draws per-step masks the recurrence itself must apply.

    Recurrent dropout and zoneout act inside the scan, so backends that cannot
    take them (cuDNN) are not eligible; the other regularizers act outside it.
    """
    return self.recurrent_dropout > 0 or self.zoneout_h > 0 or self.zoneout_c > 0


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Masks:
  """All masks of one forward pass, time-major; None means "not applied".

  Attributes:
    input: [T or 1, B, D] for the first layer's input.
    between: one per layer l > 0, [T or 1, B, num_dirs * H], for its input.
    output: [T or 1, B, num_dirs * H] for the last layer's output.
    layers: ``layers[layer][direction]`` of `LayerMasks` (`lstmx.kernels.contract`).
  """

  input: jax.Array | None
  between: tuple
  output: jax.Array | None
  layers: tuple


def _bernoulli(key, p: float, shape) -> jax.Array:
  """Bernoulli(p) bools of `shape`, drawn flat: with JAX's (partitionable) threefry,
  multi-dimensional draws of distinct shapes cost seconds of XLA compile each."""
  return jax.random.bernoulli(key, p, (math.prod(shape),)).reshape(shape)


def _dropout_mask(key, rate: float, shape, dtype) -> jax.Array:
  """0 with probability `rate`, else 1/(1 - rate)."""
  keep = _bernoulli(key, 1.0 - rate, shape)
  return jnp.where(keep, jnp.asarray(1.0 / (1.0 - rate), dtype), jnp.zeros((), dtype))


def draw_masks(reg: Regularization, key: jax.Array | None, params: StackedParams, T: int,
               B: int, *, deterministic: bool) -> Masks:
  """Draws every mask of one forward pass (time-major) from `key`.

  Each regularizer draws all its masks (every layer-direction at once) from its
  own fixed sub-key, so changing one rate never changes another's masks. A zero
  rate, or evaluation mode for the dropouts, gives None.

  Args:
    reg: the configuration.
    key: PRNG key; may be None if `deterministic`.
    params: ``params[layer][direction]`` (gives D, H, L, directions, dtype).
    T, B: sequence length and batch size.
    deterministic: evaluation mode (no dropout; zoneout by its expectation).
  """
  L, num_dirs = len(params), len(params[0])
  D, H = params[0][0].w_ih.shape[0], params[0][0].w_hh.shape[0]
  dtype = params[0][0].w_hh.dtype
  deterministic = check_bool("deterministic", deterministic)
  if not deterministic and key is None:
    raise ValueError("draw_masks: training mode (deterministic=False) needs a PRNG key; "
                     "got key=None")
  names = ("input", "between", "output", "recurrent", "zoneout_h", "zoneout_c", "weight")
  keys = None if deterministic else dict(zip(names, jax.random.split(key, len(names))))

  def drop(name, rate, shape):
    if deterministic or rate == 0.0 or 0 in shape:
      return None
    return _dropout_mask(keys[name], rate, shape, dtype)

  def zoneout(name, rate, shape):
    if rate == 0.0:
      return None
    if deterministic:
      return [jnp.asarray(rate, dtype)] * shape[0]
    return _bernoulli(keys[name], rate, shape).astype(dtype)

  n, steps = L * num_dirs, 1 if reg.variational else T
  per_layer = dict(recurrent=drop("recurrent", reg.recurrent_dropout, (n, B, H)),
                   zoneout_h=zoneout("zoneout_h", reg.zoneout_h, (n, T, B, H)),
                   zoneout_c=zoneout("zoneout_c", reg.zoneout_c, (n, T, B, H)),
                   weight=drop("weight", reg.weight_drop, (n, H, 4 * H)))
  layers = tuple(
      tuple(LayerMasks(**{k: None if v is None else v[l * num_dirs + d]
                          for k, v in per_layer.items()})
            for d in range(num_dirs))
      for l in range(L))
  between = drop("between", reg.layer_dropout, (L - 1, steps, B, num_dirs * H))
  return Masks(
      input=drop("input", reg.input_dropout, (steps, B, D)),
      between=tuple(None if between is None else between[l] for l in range(L - 1)),
      output=drop("output", reg.output_dropout, (steps, B, num_dirs * H)),
      layers=layers)


def apply_mask(x: jax.Array, mask: jax.Array | None) -> jax.Array:
  """x * mask, or x itself if mask is None."""
  return x if mask is None else x * mask


def embedding_dropout(embedding: jax.Array, ids: jax.Array, rate: float,
                      key: jax.Array | None = None, *,
                      deterministic: bool | None = None) -> jax.Array:
  """Looks up `ids` in `embedding` after dropping whole vocabulary rows.

  AWD-LSTM's ``embedded_dropout`` (Merity et al. 2017; Gal & Ghahramani 2016):
  in training, each row v of the [V, E] matrix is kept with probability
  1 - rate and scaled by 1/(1 - rate), else zeroed, with one draw per call, so
  every occurrence of a dropped word in the batch gets a zero vector. In
  evaluation the matrix is used as is.

  Args:
    embedding: [V, E] embedding matrix.
    ids: integer token ids of any shape [...], values in [0, V).
    rate: the probability of dropping a row, in [0, 1).
    key: PRNG key (training only).
    deterministic: True for evaluation; must be given when rate > 0.

  Returns:
    [..., E] embeddings.
  """
  rate = check_rate("embedding_dropout: rate", rate)
  deterministic = check_bool("embedding_dropout: deterministic", deterministic, allow_none=True)
  rows = jnp.take(embedding, ids, axis=0)
  if rate == 0.0:
    return rows
  if deterministic is None:
    raise ValueError("embedding_dropout: pass deterministic=True (evaluation) or "
                     "deterministic=False (training, with key=...)")
  if deterministic:
    return rows
  if key is None:
    raise ValueError("embedding_dropout: training mode needs a PRNG key; got key=None")
  row_mask = _dropout_mask(key, rate, (embedding.shape[0],), embedding.dtype)
  return rows * jnp.take(row_mask, ids, axis=0)[..., None]
