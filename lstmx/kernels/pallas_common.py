"""What the two Pallas backends share: the interpret switch, ref plumbing, VJP wiring.

Both `lstmx.kernels.pallas` (whole-sequence blocks) and `lstmx.kernels.pallas_gpu`
(streamed steps) run one layer as two pallas_calls -- a forward kernel and a
hand-written backward kernel -- whose optional inputs are the kernel masks
(recurrent dropout [B, H], zoneout [T, B, H]). They differ in their loop and
layout only; this module holds the plumbing around those:

* `check_interpret` and `configured_backend`: the ``interpret`` / ``blocks``
  options, checked once with errors naming the argument;
* `per_platform`: Pallas interpret mode when lowered for CPU, the compiled kernel
  (per compiled target) elsewhere, one branch traced per target;
* `optional_inputs` and `with_absent`: the masks passed as extra refs and handed
  to a kernel that names every ref (absent ones None);
* `custom_vjp_layer`: ``_layer = custom_vjp_layer(_layer_fwd, _layer_bwd)``.
"""

from __future__ import annotations

import functools
from typing import Callable, Mapping

import jax

from lstmx.kernels.contract import LayerBackend, LayerMasks

# The compiled target for every lowering platform: one traced branch.
COMPILED_EVERYWHERE = {"default": "compiled"}


def check_interpret(interpret) -> None:
  """Raises TypeError unless ``interpret`` is None, True or False."""
  if interpret is not None and not isinstance(interpret, bool):
    raise TypeError(f"interpret: expected None, True or False; got {interpret!r}")


def configured_backend(name: str, layer: Callable, blocks_type: type, *,
                       interpret: bool | None, blocks) -> LayerBackend:
  """The backend ``name`` running ``layer(..., interpret=interpret, blocks=blocks)``.

  Raises:
    TypeError: ``interpret`` not None/True/False, or ``blocks`` not a ``blocks_type``.
  """
  check_interpret(interpret)
  if not isinstance(blocks, blocks_type):
    raise TypeError(f"blocks: expected {blocks_type.__name__}; got {type(blocks).__name__}")
  return LayerBackend(name, functools.partial(layer, interpret=interpret, blocks=blocks))


def per_platform(run: Callable, interpret: bool | None, *args,
                 compiled: Mapping[str, str] = COMPILED_EVERYWHERE):
  """``run(target, *args)``: target ``"interpret"`` or a compiled one.

  Args:
    run: ``run(target, *args)``, typically one pallas_call.
    interpret: True: ``"interpret"``; False: the compiled target of the platform
      lowered for; None: ``"interpret"`` exactly when lowered for CPU.
    *args: the arrays passed to ``run``.
    compiled: lowering platform (``"cuda"``, ``"rocm"``, ``"tpu"``, ...,
      ``"default"``) -> compiled target name passed to ``run``; platforms naming
      the same target share one traced branch.

  Each platform lowers only its own branch (`jax.lax.platform_dependent`), so an
  export for ``"cuda"`` or ``"tpu"`` holds the compiled kernel and never the
  interpreter. Used around the pallas_call alone (inside the custom VJP), so
  autodiff never sees the branches.
  """
  check_interpret(interpret)
  if interpret:
    return run("interpret", *args)
  targets = {t: functools.partial(run, t) for t in dict.fromkeys(compiled.values())}
  if interpret is False and len(targets) == 1:
    return run(next(iter(targets)), *args)
  branches = {p: targets[t] for p, t in compiled.items()}
  if interpret is None:
    branches["cpu"] = functools.partial(run, "interpret")
  return jax.lax.platform_dependent(*args, **branches)


def optional_inputs(regs: LayerMasks) -> tuple[tuple[bool, ...], list[jax.Array]]:
  """(which of recurrent, zoneout_h, zoneout_c are present, the present arrays)."""
  optional = (regs.recurrent, regs.zoneout_h, regs.zoneout_c)
  return tuple(a is not None for a in optional), [a for a in optional if a is not None]


def with_absent(kernel: Callable, n_ins: int, present: tuple[bool, ...], static) -> Callable:
  """Adapts a kernel that names every ref, the optional ones (the ``len(present)``
  inputs after the first ``n_ins``) None when absent, to pallas_call's positional refs."""
  def body(*refs):
    ins, rest = list(refs[:n_ins]), list(refs[n_ins:])
    optional = [rest.pop(0) if p else None for p in present]
    return kernel(*ins, *optional, *rest, static=static)
  return body


def at(ref, t):
  """``ref[t]``, or None for an absent ref."""
  return None if ref is None else ref[t]


def custom_vjp_layer(fwd: Callable, bwd: Callable) -> Callable:
  """``layer(static, params, xs, mask, h0, c0, regs) = fwd(...)[0]`` with VJP ``bwd``.

  Args:
    fwd: ``fwd(static, params, xs, mask, h0, c0, regs) -> (outputs, residuals)``.
    bwd: ``bwd(static, residuals, cotangents)`` -> the cotangents of (params, xs,
      mask, h0, c0, regs). ``static`` (hashable) is not differentiated.
  """
  @functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
  def layer(static, params, xs, mask, h0, c0, regs):
    out, _ = fwd(static, params, xs, mask, h0, c0, regs)
    return out

  layer.defvjp(fwd, bwd)
  return layer
