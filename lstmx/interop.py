"""Converters between lstmx parameters and PyTorch / Flax LSTM parameters.

* PyTorch ``nn.LSTM``: ``weight_ih_l{k}[_reverse]`` [4H, D], ``weight_hh_l{k}``
  [4H, H], ``bias_ih_l{k}`` and ``bias_hh_l{k}`` [4H], gates i, f, g, o. lstmx
  stores the transposes and b = bias_ih + bias_hh.
* Flax NNX ``OptimizedLSTMCell``: ``dense_i.kernel`` [D, 4H] (no bias),
  ``dense_h.kernel`` [H, 4H], ``dense_h.bias`` [4H], gates i, f, g, o: the
  lstmx layout exactly.
* Flax Linen ``LSTMCell`` / ``OptimizedLSTMCell``: per-gate ``i{g}`` kernels
  [D, H] (no bias) and ``h{g}`` kernels [H, H] with biases [H].
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np

from lstmx.params import GATES, LSTMParams, StackedParams, as_stacked, gate_slice
from lstmx.validate import check_params

_TORCH_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)(_reverse)?$")


def _to_numpy(value) -> np.ndarray:
  if hasattr(value, "detach"):  # a torch tensor; avoid importing torch
    value = value.detach().cpu()
    if str(value.dtype) == "torch.bfloat16":  # numpy has no bfloat16: via float32, exactly
      return value.float().numpy().astype(jnp.bfloat16)
    return value.numpy()
  return np.asarray(value)


def from_torch(module_or_state_dict: Any, dtype=None) -> StackedParams:
  """lstmx parameters from a ``torch.nn.LSTM`` or its ``state_dict()``.

  Args:
    module_or_state_dict: an ``nn.LSTM`` (any num_layers, bidirectional,
      with or without bias; not ``proj_size``) or its state dict.
    dtype: the jnp dtype of the result; the tensors' own dtype by default.

  Returns:
    ``params[layer][direction]`` of `LSTMParams`.
  """
  if hasattr(module_or_state_dict, "state_dict"):
    module = module_or_state_dict
    mode = getattr(module, "mode", "LSTM")  # torch.nn.RNNBase: "LSTM", "GRU", "RNN_TANH"...
    if mode != "LSTM":
      raise ValueError(f"from_torch: expected a torch.nn.LSTM or its state dict; got a "
                       f"{type(module).__name__} (mode={mode!r})")
    if getattr(module, "proj_size", 0):
      raise ValueError(f"from_torch: proj_size={module.proj_size} is not supported; "
                       "expected an nn.LSTM with proj_size=0")
    state = module.state_dict()
  else:
    state = module_or_state_dict
    if not isinstance(state, Mapping):
      raise TypeError("from_torch: expected a torch.nn.LSTM or its state dict; got "
                      f"{type(state).__name__}")
  found: dict[tuple[int, int], dict[str, np.ndarray]] = {}
  for key, value in state.items():
    m = _TORCH_KEY.match(key)
    if m is None:
      raise ValueError(f"from_torch: unexpected key {key!r}; expected keys like "
                       "'weight_ih_l0' or 'bias_hh_l1_reverse' (proj_size unsupported)")
    name, layer, rev = m.group(1), int(m.group(2)), 1 if m.group(3) else 0
    found.setdefault((layer, rev), {})[name] = _to_numpy(value)
  if not found:
    raise ValueError("from_torch: the state dict holds no LSTM weights")
  num_layers = max(l for l, _ in found) + 1
  num_dirs = max(d for _, d in found) + 1
  layers = []
  for l in range(num_layers):
    dirs = []
    for d in range(num_dirs):
      w = found.get((l, d))
      if w is None or "weight_ih" not in w or "weight_hh" not in w:
        raise ValueError(f"from_torch: missing weights for layer {l}, direction {d}")
      _check_torch_shapes(w, l, d)
      b = w.get("bias_ih", 0) + w.get("bias_hh", 0)
      if np.ndim(b) == 0:
        b = np.zeros(w["weight_hh"].shape[0], w["weight_hh"].dtype)
      p = LSTMParams(w_ih=jnp.asarray(w["weight_ih"].T, dtype),
                     w_hh=jnp.asarray(w["weight_hh"].T, dtype),
                     b=jnp.asarray(b, dtype))
      dirs.append(p)
    layers.append(tuple(dirs))
  return tuple(layers)


def _check_torch_shapes(w: dict[str, np.ndarray], layer: int, direction: int) -> None:
  """An LSTM's shapes: weight_hh [4H, H], weight_ih [4H, D], biases [4H]."""
  sfx = f"_l{layer}" + ("_reverse" if direction else "")
  hh = np.shape(w["weight_hh"])
  if len(hh) != 2 or hh[0] != 4 * hh[1]:
    raise ValueError(f"from_torch: weight_hh{sfx}: expected shape (4H, H) of an LSTM; got "
                     f"{hh} (a GRU's is (3H, H), an RNN's (H, H))")
  H = hh[1]
  ih = np.shape(w["weight_ih"])
  if len(ih) != 2 or ih[0] != 4 * H:
    raise ValueError(f"from_torch: weight_ih{sfx}: expected shape ({4 * H}, D); got {ih}")
  for name in ("bias_ih", "bias_hh"):
    if name in w and np.shape(w[name]) != (4 * H,):
      raise ValueError(f"from_torch: {name}{sfx}: expected shape ({4 * H},); got "
                       f"{np.shape(w[name])}")


def to_torch(params, *, as_tensors: bool = True) -> dict[str, Any]:
  """A ``torch.nn.LSTM(batch_first=True)`` state dict from lstmx parameters.

  ``bias_ih`` holds b and ``bias_hh`` zeros (only their sum matters). Load it
  with ``module.load_state_dict(lstmx.to_torch(params))`` into an ``nn.LSTM``
  of the same input size, hidden size, num_layers and bidirectional.
  With ``as_tensors=False`` the values are numpy arrays and torch is not needed.
  bfloat16 parameters give bfloat16 tensors (ml_dtypes' bfloat16 arrays without torch).

  Raises:
    ValueError, TypeError: `params` is not a ``params[layer][direction]`` stack of
      `LSTMParams` (e.g. ``()``); the message names what is wrong.
  """
  params = as_stacked(params)
  check_params(params)  # a ValueError or TypeError naming what is wrong, e.g. no layers
  out: dict[str, Any] = {}
  for l, layer in enumerate(params):
    for d, p in enumerate(layer):
      sfx = f"_l{l}" + ("_reverse" if d == 1 else "")
      b = np.asarray(p.b)
      out["weight_ih" + sfx] = np.ascontiguousarray(np.asarray(p.w_ih).T)
      out["weight_hh" + sfx] = np.ascontiguousarray(np.asarray(p.w_hh).T)
      out["bias_ih" + sfx] = b.copy()
      out["bias_hh" + sfx] = np.zeros_like(b)
  if as_tensors:
    out = {k: _to_tensor(v) for k, v in out.items()}
  return out


def _to_tensor(value: np.ndarray):
  """A torch tensor of `value`'s dtype; bfloat16 (which numpy lacks: ml_dtypes') goes
  through float32, exactly."""
  import torch
  if value.dtype == jnp.bfloat16:
    return torch.from_numpy(value.astype(np.float32)).to(torch.bfloat16)
  return torch.from_numpy(value)


def from_flax_nnx(cell) -> LSTMParams:
  """`LSTMParams` from a Flax NNX ``OptimizedLSTMCell`` (same layout)."""
  return LSTMParams(w_ih=jnp.asarray(cell.dense_i.kernel[...]),
                    w_hh=jnp.asarray(cell.dense_h.kernel[...]),
                    b=jnp.asarray(cell.dense_h.bias[...]))


def to_flax_nnx(params: LSTMParams, cell) -> None:
  """Writes `params` into a Flax NNX ``OptimizedLSTMCell`` of matching sizes, in place."""
  for var, value in ((cell.dense_i.kernel, params.w_ih), (cell.dense_h.kernel, params.w_hh),
                     (cell.dense_h.bias, params.b)):
    if tuple(var[...].shape) != tuple(value.shape):
      raise ValueError(f"to_flax_nnx: cell expects shape {tuple(var[...].shape)}; "
                       f"params have {tuple(value.shape)}")
    var[...] = value


def from_flax_linen(variables: Mapping[str, Any]) -> LSTMParams:
  """`LSTMParams` from a Flax Linen ``LSTMCell``/``OptimizedLSTMCell``'s params.

  Accepts ``{"params": {...}}`` or the inner dict with keys ``ii``..``io``
  (kernels [D, H]) and ``hi``..``ho`` (kernels [H, H], biases [H]).
  """
  p = variables.get("params", variables)
  missing = [k for g in GATES for k in (f"i{g}", f"h{g}") if k not in p]
  if missing:
    raise ValueError(f"from_flax_linen: missing Linen LSTMCell params {missing}")
  return LSTMParams(
      w_ih=jnp.concatenate([p[f"i{g}"]["kernel"] for g in GATES], axis=1),
      w_hh=jnp.concatenate([p[f"h{g}"]["kernel"] for g in GATES], axis=1),
      b=jnp.concatenate([p[f"h{g}"]["bias"] for g in GATES], axis=0),
  )


def to_flax_linen(params: LSTMParams) -> dict[str, Any]:
  """Linen ``LSTMCell`` variables ``{"params": {...}}`` from `LSTMParams`."""
  H = params.hidden_size
  out: dict[str, Any] = {}
  for g in GATES:
    s = gate_slice(g, H)
    out[f"i{g}"] = {"kernel": params.w_ih[:, s]}
    out[f"h{g}"] = {"kernel": params.w_hh[:, s], "bias": params.b[s]}
  return {"params": out}
