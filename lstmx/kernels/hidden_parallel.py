"""Hidden-parallel LSTM layer: the hidden units split over a ``model`` mesh axis.

With M devices on the ``model`` axis, device k owns units
U_k = [k H/M, (k+1) H/M) and, for them, all four gates: the columns
{g H + U_k : g in i, f, g, o} of w_ih [D, 4H], w_hh [H, 4H] and b [4H]. Each
step it computes its units' pre-activations from the full h_{t-1},

    z_k = x_t @ w_ih[:, U_k] + h_{t-1} @ w_hh[:, U_k] + b[U_k]       [B, 4, H/M]

updates (h_t[U_k], c_t[U_k]) locally, and all-gathers h_t over ``model`` for
the next step. The cell state never moves; the per-step communication is that
all-gather of h_t: B x H values per step and device (B H (M-1)/M received), a
latency-bound collective on the sequential critical path, which is why this
preset pays off only when H is large enough that w_hh (H x 4H) does not fit or
the per-step GEMM dominates. The backward pass (autodiff of the scan) turns
each all-gather into a reduce-scatter of dL/dh_{t-1}.

Storage: a NamedSharding of the canonical [D, 4H] layout can only hold
contiguous column blocks, and a unit's four gates are strided columns; the
parameters are therefore stored sharded by contiguous ``gates`` blocks
(`lstmx.sharding.hidden_parallel`), and the layer views them as [D, 4, H]
sharded over the last axis, which XLA realizes with one all-to-all of the
weights per call (and its transpose for the gradients), not per step.

Batches may also be split over a ``data`` axis of the same mesh. The step's pointwise
math is `lstmx.kernels.cell.cell_forward` on the local units.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from lstmx.kernels.cell import cell_forward
from lstmx.kernels.contract import (BACKENDS, KernelOptions, LayerBackend, LayerMasks,
                                    layer_function)
from lstmx.kernels.gemm import matmul, recurrent_matmul
from lstmx.params import LSTMParams

MODEL = "model"
DATA = "data"


def model_parallel() -> bool:
  """True under an ambient mesh (`jax.set_mesh`) whose ``model`` axis has > 1 device."""
  mesh = jax.sharding.get_abstract_mesh()
  return MODEL in getattr(mesh, "axis_names", ()) and mesh.shape[MODEL] > 1


def _mesh(mesh):
  mesh = jax.sharding.get_abstract_mesh() if mesh is None else mesh
  if mesh is None or MODEL not in getattr(mesh, "axis_names", ()):
    raise ValueError("backend='hidden_parallel' needs a mesh with a 'model' axis "
                     "(pass mesh= or run under jax.set_mesh(mesh)); got mesh="
                     f"{None if mesh is None else dict(mesh.shape)}")
  return mesh


def hidden_parallel_layer(params: LSTMParams, xs, mask, h0, c0, masks: LayerMasks,
                          options: KernelOptions, *, mesh=None):
  """The layer contract (`lstmx.kernels.contract`), hidden units over ``model``.

  `mesh` defaults to the ambient mesh (`jax.set_mesh`). H must be divisible by
  the ``model`` axis size and B by the ``data`` axis size, if the mesh has one.
  """
  BACKEND.require(options, masks)
  mesh = _mesh(mesh)
  T, B, D = xs.shape
  H = h0.shape[-1]
  m = mesh.shape[MODEL]
  if H % m:
    raise ValueError(f"hidden_parallel: hidden size must be divisible by the 'model' axis "
                     f"size {m}; got hidden size {H}")
  data = DATA if DATA in mesh.axis_names and mesh.shape[DATA] > 1 else None
  if data and B % mesh.shape[DATA]:
    raise ValueError(f"hidden_parallel: batch size must be divisible by the 'data' axis "
                     f"size {mesh.shape[DATA]}; got batch size {B}")
  if mask is None:
    mask = jnp.ones((T, B), bool)
  km = masks.for_kernel(T, B, H, h0.dtype)
  cd, prec = options.compute_dtype, options.precision
  # Unit-major views: column g*H + u -> [g, u].
  w_ih = params.w_ih.reshape(D, 4, H)
  w_hh = params.w_hh.reshape(H, 4, H)
  b = params.b.reshape(4, H)

  def local(w_ih, w_hh, b, xs, mask, h0, c0, r, zh, zc):
    hl = w_ih.shape[-1]  # H / m units on this device
    k = jax.lax.axis_index(MODEL)
    units = lambda a: jax.lax.dynamic_slice_in_dim(a, k * hl, hl, axis=-1)  # noqa: E731
    w_ih, w_hh = (a.reshape(a.shape[0], 4 * hl) for a in (w_ih, w_hh))
    b = b.reshape(4 * hl)
    xp = matmul(xs, w_ih, cd, prec) + b[None, None]  # [T, B/d, 4 H/m]

    def step(carry, inp):
      h_full, c = carry
      xp_t, m_t, zh_t, zc_t = inp
      z = xp_t + recurrent_matmul(h_full, w_hh, r, cd, prec)
      valid = m_t[:, None]
      _, h, c = cell_forward(z, units(h_full), c,
                             zoneout_h=None if zh_t is None else units(zh_t),
                             zoneout_c=None if zc_t is None else units(zc_t),
                             valid=valid, fused=False)
      h_full = jax.lax.all_gather(h, MODEL, axis=1, tiled=True)
      return (h_full, c), jnp.where(valid, h, jnp.zeros((), h.dtype))

    (h_full, c_n), ys = jax.lax.scan(step, (h0, units(c0)), (xp, mask, zh, zc),
                                     reverse=options.reverse, unroll=options.unroll)
    return ys, units(h_full), c_n

  full = P(None, data, None)
  specs = (P(None, None, MODEL), P(None, None, MODEL), P(None, MODEL), full, P(None, data),
           P(data, None), P(data, None),
           None if km.recurrent is None else P(data, None),
           None if km.zoneout_h is None else full, None if km.zoneout_c is None else full)
  out = (P(None, data, MODEL), P(data, MODEL), P(data, MODEL))
  layer = jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=out, check_vma=False)
  ys, h_n, c_n = layer(w_ih, w_hh, b, xs, mask, h0, c0, km.recurrent, km.zoneout_h,
                       km.zoneout_c)
  return ys, (h_n, c_n)


# The whole contract but memory modes; needs a mesh with a ``model`` axis; ``auto``
# picks it when that axis has more than one device.
BACKEND = BACKENDS.register("hidden_parallel",
                            LayerBackend("hidden_parallel", hidden_parallel_layer))


lstm_layer_hidden_parallel = layer_function(
    hidden_parallel_layer, "lstm_layer_hidden_parallel",
    "One layer, one direction, time-major, hidden units over the ``model`` mesh axis.",
    {"mesh": "defaults to the ambient mesh (`jax.set_mesh`). H must be divisible by\n"
             "    the ``model`` axis size and B by the ``data`` axis size, if it has one."})
