"""Flax NNX modules: thin wrappers whose ``__call__`` calls the functional core.

Parameters are stored as one ``nnx.Param`` per array, named like PyTorch's
(``w_ih_l0``, ``w_hh_l1_reverse``, ``b_l0``), and reassembled into the
``params[layer][direction]`` pytree of `lstmx.LSTMParams` on each call.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lstmx import validate
from lstmx.checks import check_bool, check_float_dtype, is_int
from lstmx.kernels import (Backend, KernelBackend, KernelOptions, LayerMasks, lstm_step, names,
                           select)
from lstmx.lstm import DEFAULT_UNROLL, lstm
from lstmx.params import LSTMParams, StackedParams, as_stacked, init_layer, init_lstm
from lstmx.regularization import Regularization


def _check_rngs(rngs) -> nnx.Rngs:
  """`rngs` unchanged if it is an ``nnx.Rngs``, or a TypeError naming it."""
  if not isinstance(rngs, nnx.Rngs):
    raise TypeError(f"rngs: expected an nnx.Rngs (e.g. nnx.Rngs(0), or nnx.Rngs(key)); got "
                    f"{type(rngs).__name__}")
  return rngs


def _check_backend(backend) -> None:
  """Refuses a backend name the dispatcher does not know, when the module is built (whether
  a known one runs a call is the dispatcher's to say, at the call)."""
  if isinstance(backend, (KernelBackend, Backend)) and not isinstance(backend, str):
    return  # a Backend, or a configured backend object
  if not isinstance(backend, str) or backend not in names():
    raise ValueError(f"backend: expected one of {names()}; got {backend!r}")


def _check_shape(name: str, value, want: tuple, what: str) -> None:
  """Raises a ValueError naming `name` unless `value` has shape `want` (None: any size)."""
  shape = tuple(getattr(value, "shape", ()))
  if len(shape) != len(want) or any(w is not None and w != g for w, g in zip(want, shape)):
    raise ValueError(f"{name}: expected shape {what}; got {shape}")


def _suffix(layer: int, direction: int) -> str:
  return f"_l{layer}" + ("_reverse" if direction == 1 else "")


class LSTM(nnx.Module):
  """A stacked, optionally bidirectional LSTM layer (batch-major, like PyTorch).

  With a `regularization`, training vs evaluation is explicit, the NNX way:
  ``model.train()`` / ``model.eval()`` (or ``nnx.view(model, deterministic=...)``)
  set ``deterministic``, and a call's ``deterministic=`` overrides it. Masks
  come from the ``'dropout'`` stream of the `rngs` given at construction (or
  at call time: an ``nnx.Rngs``, an ``nnx.RngStream`` or a key).

  Example:
    >>> layer = lstmx.nn.LSTM(3, 16, num_layers=2, rngs=nnx.Rngs(0))
    >>> y, (h_n, c_n) = layer(jnp.ones((4, 10, 3)))   # y: [4, 10, 16]
    >>> reg = lstmx.Regularization(recurrent_dropout=0.2, zoneout_c=0.1)
    >>> layer = lstmx.nn.LSTM(3, 16, regularization=reg, rngs=nnx.Rngs(0, dropout=1))
    >>> layer.train()
    >>> y, _ = layer(jnp.ones((4, 10, 3)))            # fresh masks on every call
  """

  def __init__(self, in_features: int, hidden_size: int, *, num_layers: int = 1,
               bidirectional: bool = False, init: str = "forget_bias",
               chrono_max_length: int | None = None, backend: str = "auto",
               unroll: int = DEFAULT_UNROLL, remat_every: int | None = None, compute_dtype=None,
               param_dtype=jnp.float32,
               regularization: Regularization | None = None,
               deterministic: bool | None = None, rngs: nnx.Rngs):
    _check_rngs(rngs)
    self.in_features = in_features
    self.hidden_size = hidden_size
    self.num_layers = num_layers
    self.num_directions = 2 if check_bool("bidirectional", bidirectional) else 1
    _check_backend(backend)
    if not is_int(unroll) or unroll < 1:
      raise ValueError(f"unroll: expected a positive int; got {unroll!r}")
    self.backend = backend
    self.unroll = int(unroll)
    self.compute_dtype = check_float_dtype("compute_dtype", compute_dtype)
    self.remat_every = KernelOptions(unroll=self.unroll, compute_dtype=self.compute_dtype,
                                     remat_every=remat_every).remat_every
    check_float_dtype("param_dtype", param_dtype, allow_none=False)
    if regularization is not None and not isinstance(regularization, Regularization):
      raise TypeError(f"regularization: expected lstmx.Regularization or None; got "
                      f"{type(regularization).__name__}")
    self.regularization = regularization
    self.deterministic = check_bool("deterministic", deterministic, allow_none=True)
    params = init_lstm(rngs.params(), in_features, hidden_size, num_layers=num_layers,
                       bidirectional=bidirectional, init=init,
                       chrono_max_length=chrono_max_length, dtype=param_dtype)
    # Python ints from here on (numpy integers are accepted as arguments).
    self.in_features, self.hidden_size = int(in_features), int(hidden_size)
    self.num_layers = int(num_layers)
    self.load_params(params, create=True)
    if regularization is not None and regularization.needs_mode:
      self.rngs = rngs["dropout"].fork()
    else:
      self.rngs = nnx.data(None)

  def load_params(self, params: StackedParams, *, create: bool = False) -> None:
    """Sets the module's parameters from a ``params[layer][direction]`` pytree.

    Args:
      params: ``params[layer][direction]`` of `LSTMParams` (or one `LSTMParams`
        for a one-layer, one-direction module) with exactly this module's
        structure and shapes: num_layers, directions, input size, hidden size.
      create: used by ``__init__`` to create the ``nnx.Param`` variables.

    Raises:
      ValueError: the structure or a shape differs from the module's (nothing is
        loaded then); the message names what differs.
      TypeError: `params` is not such a pytree, or holds non-floating arrays.
    """
    params = as_stacked(params)
    D, H, L, num_dirs = validate.check_params(params)
    if not create:
      want = (self.in_features, self.hidden_size, self.num_layers, self.num_directions)
      for what, w, g in zip(("input size", "hidden size", "num_layers", "directions"), want,
                            (D, H, L, num_dirs)):
        if w != g:
          raise ValueError(f"load_params: params: expected {what} {w} (this LSTM's); got {g} "
                           f"(params of {L} layer(s), {num_dirs} direction(s), input size "
                           f"{D}, hidden size {H})")
    for l, layer in enumerate(params):
      for d, p in enumerate(layer):
        sfx = _suffix(l, d)
        for name in ("w_ih", "w_hh", "b"):
          if create:
            setattr(self, name + sfx, nnx.Param(getattr(p, name)))
          else:
            getattr(self, name + sfx)[...] = getattr(p, name)

  @property
  def params(self) -> StackedParams:
    """The parameters as the functional core's ``params[layer][direction]``."""
    return tuple(
        tuple(LSTMParams(*(getattr(self, n + _suffix(l, d))[...] for n in ("w_ih", "w_hh", "b")))
              for d in range(self.num_directions))
        for l in range(self.num_layers))

  def set_view(self, deterministic: bool | None = None):
    """Used by ``nnx.view``.

    Args:
      deterministic: if True, evaluation mode (no dropout, zoneout by its expectation).
    """
    if deterministic is not None:
      self.deterministic = check_bool("deterministic", deterministic)

  def resolved_backend(self, *, training: bool = False) -> str:
    """The backend name this module's calls resolve to (e.g. ``"scan"``, ``"cudnn"``).

    Asks the dispatcher (`lstmx.kernels.select`) with the module's own facts: its
    parameter dtype, `compute_dtype`, `remat_every`, and whether its
    regularization puts masks inside the recurrence in that mode (recurrent
    dropout only in training; zoneout in both, by its expectation in evaluation).

    Args:
      training: ask for a training call (``deterministic=False``) instead of an
        evaluation call.
    """
    reg = self.regularization
    in_kernel = reg is not None and (
        reg.reaches_kernel if training else (reg.zoneout_h > 0 or reg.zoneout_c > 0))
    stand_in = jnp.ones((), jnp.float32)  # only "some mask reaches the kernel" matters
    masks = LayerMasks(recurrent=stand_in) if in_kernel else LayerMasks()
    options = KernelOptions(unroll=self.unroll, compute_dtype=self.compute_dtype,
                            remat_every=self.remat_every)
    dtype = self.params[0][0].w_hh.dtype
    return select(self.backend, options, masks, dtype=dtype).name

  def __call__(self, x: jax.Array, *, seq_lengths: jax.Array | None = None,
               initial_state: tuple[jax.Array, jax.Array] | None = None,
               deterministic: bool | None = None,
               rngs: nnx.Rngs | nnx.RngStream | jax.Array | None = None,
               return_penalties: bool = False):
    """x [B, T, D] -> (y [B, T, num_dirs*H], (h_n, c_n) [L*num_dirs, B, H]).

    With ``return_penalties``, also the AR/TAR dict of `lstmx.lstm`.
    """
    reg = self.regularization
    deterministic = check_bool("deterministic", deterministic, allow_none=True)
    deterministic = self.deterministic if deterministic is None else deterministic
    key = None
    if reg is not None and reg.needs_mode and deterministic is False:
      key = _dropout_key(rngs if rngs is not None else self.rngs)
    return lstm(self.params, x, seq_lengths=seq_lengths, initial_state=initial_state,
                backend=self.backend, unroll=self.unroll, remat_every=self.remat_every,
                compute_dtype=self.compute_dtype,
                regularization=reg, key=key, deterministic=deterministic,
                return_penalties=return_penalties)


def _dropout_key(rngs) -> jax.Array | None:
  if isinstance(rngs, nnx.Rngs):
    return rngs["dropout"]()
  if isinstance(rngs, nnx.RngStream):
    return rngs()
  return rngs  # a key, or None (lstm then raises a clear error)


class LSTMCell(nnx.Module):
  """One LSTM step at a time, for decoding and streaming.

  ``cell((h, c), x_t) -> ((h', c'), h')`` with x_t [B, D] and h, c [B, H].
  Its parameters use the same layout as `LSTM` (``w_ih``, ``w_hh``, ``b``).
  """

  def __init__(self, in_features: int, hidden_size: int, *, init: str = "forget_bias",
               chrono_max_length: int | None = None, compute_dtype=None,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    _check_rngs(rngs)
    self.compute_dtype = check_float_dtype("compute_dtype", compute_dtype)
    check_float_dtype("param_dtype", param_dtype, allow_none=False)
    p = init_layer(rngs.params(), in_features, hidden_size, init=init,
                   chrono_max_length=chrono_max_length, dtype=param_dtype)
    self.in_features, self.hidden_size = int(in_features), int(hidden_size)
    self.w_ih, self.w_hh, self.b = nnx.Param(p.w_ih), nnx.Param(p.w_hh), nnx.Param(p.b)

  @property
  def params(self) -> LSTMParams:
    return LSTMParams(self.w_ih[...], self.w_hh[...], self.b[...])

  def initialize_carry(self, batch_size: int, dtype=None) -> tuple[jax.Array, jax.Array]:
    dtype = dtype or self.w_hh[...].dtype
    zeros = jnp.zeros((batch_size, self.hidden_size), dtype)
    return zeros, zeros

  def __call__(self, carry: tuple[jax.Array, jax.Array], x_t: jax.Array):
    """(h [B, H], c [B, H]), x_t [B, D] -> ((h', c'), h').

    Raises:
      ValueError: `x_t` is not [B, in_features], or `carry` not a pair (h, c) of
        [B, hidden_size] (the message names which, with both shapes).
    """
    D, H = self.in_features, self.hidden_size
    _check_shape("x_t", x_t, (None, D), f"[B, {D}] (B, in_features)")
    B = x_t.shape[0]
    if not isinstance(carry, (tuple, list)) or len(carry) != 2:
      raise ValueError(f"carry: expected a pair (h, c) of [B, {H}] arrays; got "
                       f"{type(carry).__name__}")
    for name, value in zip(("carry h", "carry c"), carry):
      _check_shape(name, value, (B, H), f"({B}, {H}) (x_t's batch, hidden_size)")
    return lstm_step(self.params, tuple(carry), x_t, compute_dtype=self.compute_dtype)
