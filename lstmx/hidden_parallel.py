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

Batches may also be split over a ``data`` axis of the same mesh.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from lstmx.cell import matmul, zoneout_mix
from lstmx.params import LSTMParams

MODEL = "model"
DATA = "data"


def _mesh(mesh):
  mesh = jax.sharding.get_abstract_mesh() if mesh is None else mesh
  if mesh is None or MODEL not in getattr(mesh, "axis_names", ()):
    raise ValueError("backend='hidden_parallel' needs a mesh with a 'model' axis "
                     "(pass mesh= or run under jax.set_mesh(mesh)); got mesh="
                     f"{None if mesh is None else dict(mesh.shape)}")
  return mesh


def lstm_layer_hidden_parallel(
    params: LSTMParams,
    xs: jax.Array,
    mask: jax.Array | None,
    h0: jax.Array,
    c0: jax.Array,
    *,
    reverse: bool = False,
    unroll: int = 1,
    compute_dtype=None,
    precision=None,
    recurrent_mask: jax.Array | None = None,
    zoneout_h: jax.Array | None = None,
    zoneout_c: jax.Array | None = None,
    mesh=None,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
  """One layer, one direction, time-major, hidden units over the ``model`` axis.

  Same contract as `lstmx.reference.lstm_layer_reference` (shapes: xs
  [T, B, D], mask [T, B], h0/c0 [B, H], ys [T, B, H]); `mesh` defaults to the
  ambient mesh (`jax.set_mesh`). H must be divisible by the ``model`` axis
  size and B by the ``data`` axis size, if the mesh has one.
  """
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
  zs = [None if z is None else jnp.broadcast_to(jnp.asarray(z, h0.dtype), (T, B, H))
        for z in (zoneout_h, zoneout_c)]
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
    xp = matmul(xs, w_ih, compute_dtype, precision) + b[None, None]  # [T, B/d, 4 H/m]

    def step(carry, inp):
      h_full, c = carry
      xp_t, m_t, zh_t, zc_t = inp
      h_in = h_full if r is None else h_full * r
      z = xp_t + matmul(h_in, w_hh, compute_dtype, precision)
      zi, zf, zg, zo = jnp.split(z, 4, axis=-1)
      c_new = jax.nn.sigmoid(zf) * c + jax.nn.sigmoid(zi) * jnp.tanh(zg)
      h_new = jax.nn.sigmoid(zo) * jnp.tanh(c_new)
      h_prev = units(h_full)
      y = zoneout_mix(None if zh_t is None else units(zh_t), h_prev, h_new)
      keep = m_t[:, None]
      h = jnp.where(keep, y, h_prev)
      c = jnp.where(keep, zoneout_mix(None if zc_t is None else units(zc_t), c, c_new), c)
      h_full = jax.lax.all_gather(h, MODEL, axis=1, tiled=True)
      return (h_full, c), jnp.where(keep, y, jnp.zeros_like(y))

    (h_full, c_n), ys = jax.lax.scan(step, (h0, units(c0)), (xp, mask, zh, zc),
                                     reverse=reverse, unroll=unroll)
    return ys, units(h_full), c_n

  full = P(None, data, None)
  specs = (P(None, None, MODEL), P(None, None, MODEL), P(None, MODEL), full, P(None, data),
           P(data, None), P(data, None),
           None if recurrent_mask is None else P(data, None),
           None if zs[0] is None else full, None if zs[1] is None else full)
  out = (P(None, data, MODEL), P(data, MODEL), P(data, MODEL))
  layer = jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=out, check_vma=False)
  ys, h_n, c_n = layer(w_ih, w_hh, b, xs, mask, h0, c0, recurrent_mask, *zs)
  return ys, (h_n, c_n)
