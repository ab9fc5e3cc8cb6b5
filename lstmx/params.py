"""LSTM parameters as explicit pytrees, and their initializers.

Gate order, written down once for all of lstmx: **i, f, g, o** (input, forget,
cell candidate, output), the order of PyTorch, cuDNN and Flax. A layer's fused
pre-activation is

    z_t = x_t @ w_ih + h_{t-1} @ w_hh + b,      z_t in R^{4H}
    i, f, g, o = z_t[0:H], z_t[H:2H], z_t[2H:3H], z_t[3H:4H]

A stacked (and possibly bidirectional) LSTM is a tuple of layers, each a tuple
of one (forward) or two (forward, reverse) `LSTMParams`:
``params[layer][direction]``. This mirrors PyTorch's ``weight_ih_l{k}`` and
``weight_ih_l{k}_reverse``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal, Sequence

import jax
import jax.numpy as jnp

from lstmx.checks import check_bool, check_float_dtype, is_int, is_real

GATES = ("i", "f", "g", "o")
Initializer = Literal["forget_bias", "torch", "flax", "chrono"]
INITIALIZERS: tuple[str, ...] = ("forget_bias", "torch", "flax", "chrono")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LSTMParams:
  """Parameters of one LSTM layer in one direction.

  Attributes:
    w_ih: [D, 4H] input-to-gates weights, gate blocks in order i, f, g, o.
    w_hh: [H, 4H] hidden-to-gates weights.
    b: [4H] gate bias (PyTorch's ``bias_ih + bias_hh``).
  """

  w_ih: jax.Array
  w_hh: jax.Array
  b: jax.Array

  @property
  def input_size(self) -> int:
    return self.w_ih.shape[0]

  @property
  def hidden_size(self) -> int:
    return self.w_hh.shape[0]


StackedParams = tuple[tuple[LSTMParams, ...], ...]


def gate_slice(gate: str, hidden_size: int) -> slice:
  """The columns of the fused [*, 4H] gate axis that belong to `gate`."""
  k = GATES.index(gate)
  return slice(k * hidden_size, (k + 1) * hidden_size)


def _uniform(key, shape, bound, dtype):
  return jax.random.uniform(key, shape, dtype, -bound, bound)


def _orthogonal_blocks(key, hidden_size, dtype):
  """[H, 4H]: an independent orthogonal [H, H] matrix per gate (Flax's init)."""
  init = jax.nn.initializers.orthogonal()
  keys = jax.random.split(key, 4)
  return jnp.concatenate([init(k, (hidden_size, hidden_size), dtype) for k in keys], axis=1)


def _lecun_blocks(key, input_size, hidden_size, dtype):
  init = jax.nn.initializers.lecun_normal()
  keys = jax.random.split(key, 4)
  return jnp.concatenate([init(k, (input_size, hidden_size), dtype) for k in keys], axis=1)


def init_layer(
    key: jax.Array,
    input_size: int,
    hidden_size: int,
    *,
    init: Initializer = "forget_bias",
    forget_bias: float = 1.0,
    chrono_max_length: int | None = None,
    dtype=jnp.float32,
) -> LSTMParams:
  """Initializes one layer-direction. See `init_lstm` for the initializers."""
  _check_init_args(input_size, hidden_size, init, forget_bias, chrono_max_length, dtype)
  if jnp.dtype(dtype).itemsize < 4:
    # float16 / bfloat16: LAPACK (the orthogonal init's QR) has no such kernels, so
    # draw in float32 and round once.
    p = init_layer(key, int(input_size), int(hidden_size), init=init,
                   forget_bias=forget_bias, chrono_max_length=chrono_max_length,
                   dtype=jnp.float32)
    return jax.tree.map(lambda a: a.astype(dtype), p)
  input_size, hidden_size = int(input_size), int(hidden_size)
  k_ih, k_hh, k_b = jax.random.split(key, 3)
  H = hidden_size
  if init == "torch":
    bound = 1.0 / math.sqrt(H)
    k_bih, k_bhh = jax.random.split(k_b)
    # PyTorch draws bias_ih and bias_hh separately; their sum is our b.
    b = _uniform(k_bih, (4 * H,), bound, dtype) + _uniform(k_bhh, (4 * H,), bound, dtype)
    return LSTMParams(
        w_ih=_uniform(k_ih, (input_size, 4 * H), bound, dtype),
        w_hh=_uniform(k_hh, (H, 4 * H), bound, dtype),
        b=b,
    )
  w_ih = _lecun_blocks(k_ih, input_size, H, dtype)
  w_hh = _orthogonal_blocks(k_hh, H, dtype)
  b = jnp.zeros((4 * H,), dtype)
  if init == "flax":
    pass
  elif init == "forget_bias":
    b = b.at[gate_slice("f", H)].set(forget_bias)
  elif init == "chrono":
    # Tallec & Ollivier 2018, "Can recurrent neural networks warp time?":
    # b_f ~ log(U[1, T_max - 1]), b_i = -b_f.
    u = jax.random.uniform(k_b, (H,), dtype, 1.0, chrono_max_length - 1.0)
    b_f = jnp.log(u)
    b = b.at[gate_slice("f", H)].set(b_f).at[gate_slice("i", H)].set(-b_f)
  return LSTMParams(w_ih=w_ih, w_hh=w_hh, b=b)


def _check_init_args(input_size, hidden_size, init, forget_bias, chrono_max_length, dtype):
  """The checks of `init_layer` / `init_lstm`; numpy scalars count as numbers."""
  for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
    if not is_int(value) or value < 1:
      raise ValueError(f"{name} must be a positive int; got {name}={value!r}")
  if not isinstance(init, str) or init not in INITIALIZERS:
    raise ValueError(f"init must be one of {INITIALIZERS}; got init={init!r}")
  if not is_real(forget_bias) or not math.isfinite(forget_bias):
    raise ValueError(f"forget_bias: expected a finite float; got {forget_bias!r}")
  if init == "chrono" and (not is_int(chrono_max_length) or chrono_max_length < 3):
    raise ValueError(
        "init='chrono' needs chrono_max_length (the longest dependency T_max, "
        f"an int >= 3); got chrono_max_length={chrono_max_length!r}")
  check_float_dtype("dtype", dtype, allow_none=False)


def init_lstm(
    key: jax.Array,
    input_size: int,
    hidden_size: int,
    *,
    num_layers: int = 1,
    bidirectional: bool = False,
    init: Initializer = "forget_bias",
    forget_bias: float = 1.0,
    chrono_max_length: int | None = None,
    dtype=jnp.float32,
) -> StackedParams:
  """Initializes a stacked, optionally bidirectional LSTM.

  Initializers (`init`):
    * ``"forget_bias"`` (default): Flax's weights (LeCun-normal input kernel,
      orthogonal recurrent kernel per gate) with the forget-gate bias set to
      `forget_bias` (1.0; Gers et al. 2000, Jozefowicz et al. 2015), other
      biases zero.
    * ``"torch"``: every weight and both biases U(-1/sqrt(H), 1/sqrt(H)), as
      ``torch.nn.LSTM`` (b is the sum of the two bias draws).
    * ``"flax"``: Flax ``OptimizedLSTMCell``'s defaults (biases zero).
    * ``"chrono"``: Flax's weights, b_f ~ log U[1, T_max - 1] and b_i = -b_f
      (Tallec & Ollivier 2018); needs `chrono_max_length` = T_max.

  Args:
    key: PRNG key.
    input_size: D, features of the input.
    hidden_size: H.
    num_layers: L, stacked layers; layer l > 0 takes the previous layer's
      output, of size H (or 2H if bidirectional).
    bidirectional: adds a reverse direction to every layer.
    init: the initializer (above).
    forget_bias: the forget-gate bias of ``"forget_bias"``.
    chrono_max_length: T_max of ``"chrono"``, an int >= 3.
    dtype: a floating dtype; float16 and bfloat16 are drawn in float32 and
      rounded once.

  Numpy integers and floats are accepted wherever a Python number is.

  Returns:
    ``params[layer][direction]`` of `LSTMParams`.

  Example:
    >>> params = init_lstm(jax.random.key(0), 8, 32, num_layers=2)
    >>> params[1][0].w_ih.shape
    (32, 128)
  """
  if not is_int(num_layers) or num_layers < 1:
    raise ValueError(f"num_layers must be a positive int; got num_layers={num_layers!r}")
  _check_init_args(input_size, hidden_size, init, forget_bias, chrono_max_length, dtype)
  input_size, hidden_size, num_layers = int(input_size), int(hidden_size), int(num_layers)
  num_dirs = 2 if check_bool("bidirectional", bidirectional) else 1
  keys = jax.random.split(key, num_layers * num_dirs)
  layers = []
  for layer in range(num_layers):
    d_in = input_size if layer == 0 else hidden_size * num_dirs
    layers.append(tuple(
        init_layer(keys[layer * num_dirs + d], d_in, hidden_size, init=init,
                   forget_bias=forget_bias, chrono_max_length=chrono_max_length,
                   dtype=dtype)
        for d in range(num_dirs)))
  return tuple(layers)


def as_stacked(params: LSTMParams | Sequence[Sequence[LSTMParams]]) -> StackedParams:
  """Accepts a single `LSTMParams` as a one-layer, one-direction stack.

  Raises:
    TypeError: `params` is neither an `LSTMParams` nor a sequence of layers that
      are sequences of `LSTMParams` (e.g. one layer ``params[0]`` on its own,
      which could mean one layer with two directions or two one-direction layers).
  """
  if isinstance(params, LSTMParams):
    return ((params,),)
  expected = ("params: expected params[layer][direction] (a tuple of layers, each a tuple "
              "of LSTMParams) or one LSTMParams; got ")
  if not isinstance(params, (tuple, list)):
    raise TypeError(expected + type(params).__name__)
  for l, layer in enumerate(params):
    if isinstance(layer, LSTMParams):
      raise TypeError(expected + f"a {type(params).__name__} of LSTMParams (one layer?); "
                      "wrap it as (layer,) or pass a single LSTMParams")
    if not isinstance(layer, (tuple, list)):
      raise TypeError(expected + f"params[{l}] of type {type(layer).__name__}")
  return tuple(tuple(layer) for layer in params)


def param_count(params) -> int:
  return sum(int(x.size) for x in jax.tree_util.tree_leaves(params))
