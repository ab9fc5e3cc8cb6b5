"""Structured Jacobians of the LSTM step and the linear recurrence they define.

The state of one step is s = (h, c) stored as one [..., 2H] array (h first).
A Newton sweep (`lstmx.kernels.deer`) linearizes the step around a guess and
solves the linear recurrence

    s_t = A_t s_{t-1} + b_t,      t = 0 .. T-1  (the caller folds s_{-1} into b_0)

with `lax.associative_scan` over the pairs (A_t, b_t): composing two steps is
(A_2, b_2) o (A_1, b_1) = (A_2 A_1, A_2 b_1 + b_2), an associative product, so
the T steps take O(log T) parallel depth. The three methods differ only in
how much of A_t they keep:

* ``deer``: the full Jacobian [..., 2H, 2H] (composition a matmul: T (2H)^3 work);
* ``block_deer``: per unit j the 2x2 block of d(h_j, c_j)/d(h_j, c_j), stored
  as four [..., H] arrays (a, b, c, d) = [[dh/dh, dh/dc], [dc/dh, dc/dc]];
* ``quasi_deer``: the diagonal [..., 2H] (d h_j/d h_j and d c_j/d c_j).

The block and diagonal Jacobians are exact Jacobians of the step with the
recurrent matmul's off-diagonal couplings cut (`cut_recurrent`): unit j's
pre-activations see h_j only through the diagonal entries W_hh[j, qH + j] of
the four gate blocks q. Then every unit's outputs depend on its own (h_j, c_j)
alone, and two forward-mode products, with tangents (1, 0) and (0, 1) on
(h, c), give every 2x2 block at once.

`damped_scan` is ELK's damped version of `linear_scan` (a Levenberg-Marquardt step
solved by the parallel Kalman smoother of `lstmx.kernels.kalman`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from lstmx.kernels import kalman

METHODS = ("deer", "block_deer", "quasi_deer")


@dataclasses.dataclass(frozen=True)
class Structure:
  """How one method stores, applies, composes and transposes its Jacobians.

  Attributes:
    name: one of `METHODS`.
    apply: ``apply(A, v)``: A v for v [..., 2H].
    compose: ``compose(A2, A1)``: A2 A1.
    transpose: ``transpose(A)``: A^T.
  """

  name: str
  apply: Callable
  compose: Callable
  transpose: Callable


def _halves(v):
  H = v.shape[-1] // 2
  return v[..., :H], v[..., H:]


def _block_apply(A, v):
  a, b, c, d = A
  vh, vc = _halves(v)
  return jnp.concatenate([a * vh + b * vc, c * vh + d * vc], axis=-1)


def _block_compose(A2, A1):
  a2, b2, c2, d2 = A2
  a1, b1, c1, d1 = A1
  return (a2 * a1 + b2 * c1, a2 * b1 + b2 * d1, c2 * a1 + d2 * c1, c2 * b1 + d2 * d1)


STRUCTURES = {
    "quasi_deer": Structure("quasi_deer", lambda A, v: A * v, lambda A2, A1: A2 * A1,
                            lambda A: A),
    "block_deer": Structure("block_deer", _block_apply, _block_compose,
                            lambda A: (A[0], A[2], A[1], A[3])),
    "deer": Structure("deer", lambda A, v: jnp.einsum("...ij,...j->...i", A, v),
                      lambda A2, A1: jnp.einsum("...ij,...jk->...ik", A2, A1),
                      lambda A: jnp.swapaxes(A, -1, -2)),
}


def cut_recurrent(h: jax.Array, rec: jax.Array, w_hh: jax.Array,
                  rmask: jax.Array | None) -> jax.Array:
  """The recurrent pre-activations `rec` = (r h) W_hh [..., 4H] with the same value
  but the derivative of only their diagonal part: d rec[q H + j] / d h_k is
  r_j W_hh[j, q H + j] if k == j, else 0 (q the gate block).

  Args:
    h: [..., H] the hidden state the matmul read.
    rec: [..., 4H] its value.
    w_hh: [H, 4H].
    rmask: optional recurrent-dropout mask broadcastable to h.
  """
  H = h.shape[-1]
  diag = jnp.concatenate([jnp.diagonal(w_hh[:, q * H:(q + 1) * H]) for q in range(4)])
  rh = h if rmask is None else h * rmask
  moving = rh - jax.lax.stop_gradient(rh)  # zero value, derivative of r h
  tiled = jnp.concatenate([moving] * 4, axis=-1)
  return jax.lax.stop_gradient(rec) + tiled * diag.astype(rec.dtype).reshape(
      (1,) * (tiled.ndim - 1) + (4 * H,))


def jacobian(method: str, step_jvp: Callable, primal: jax.Array):
  """The method's Jacobian from the step's forward-mode product.

  Args:
    method: one of `METHODS`.
    step_jvp: ``step_jvp(tangent [..., 2H]) -> [..., 2H]``, the linearized step
      (for the block and diagonal methods: of the cut step, see the module
      docstring).
    primal: [..., 2H], the point (only its shape and dtype are read).

  Returns:
    diag [..., 2H] | (a, b, c, d) each [..., H] | full [..., 2H, 2H].
  """
  H = primal.shape[-1] // 2
  one, zero = jnp.ones_like(primal[..., :H]), jnp.zeros_like(primal[..., :H])
  if method == "deer":
    eye = jnp.eye(2 * H, dtype=primal.dtype)
    cols = jax.vmap(lambda e: step_jvp(jnp.broadcast_to(e, primal.shape)))(eye)
    return jnp.moveaxis(cols, 0, -1)  # [..., i (output), j (input)]
  col_h = step_jvp(jnp.concatenate([one, zero], axis=-1))
  col_c = step_jvp(jnp.concatenate([zero, one], axis=-1))
  (a, c), (b, d) = _halves(col_h), _halves(col_c)
  if method == "block_deer":
    return (a, b, c, d)
  return jnp.concatenate([a, d], axis=-1)


def zero_first(A):
  """A with A_0 set to zero (s_{-1} is known: the first step has no unknown input)."""
  return jax.tree.map(lambda a: a.at[0].set(jnp.zeros((), a.dtype)), A)


def scale(A, factor):
  """factor * A (the damped Jacobian)."""
  return jax.tree.map(lambda a: a * jnp.asarray(factor, a.dtype), A)


def linear_scan(structure: Structure, A, b: jax.Array) -> jax.Array:
  """s [T, ...] of s_t = A_t s_{t-1} + b_t with s_{-1} = 0, by `lax.associative_scan`.

  Args:
    structure: the Jacobians' `Structure`.
    A: T stacked Jacobians (leading axis T in every leaf).
    b: [T, ..., 2H].
  """
  def combine(first, second):
    A1, b1 = first
    A2, b2 = second
    return structure.compose(A2, A1), structure.apply(A2, b1) + b2

  _, s = jax.lax.associative_scan(combine, (A, b))
  return s


def shift_back(a, fill=0):
  """a_{t+1} at t (the last step gets `fill`): [T, ...] -> [T, ...]."""
  return jax.tree.map(
      lambda x: jnp.concatenate([x[1:], jnp.full_like(x[:1], fill)], axis=0), a)


def reverse_linear_scan(structure: Structure, A, c: jax.Array) -> jax.Array:
  """lam [T, ...] of lam_t = A_t lam_{t+1} + c_t with lam_T = 0 (the adjoint
  recurrence), as `linear_scan` over the time-flipped arrays."""
  flip = lambda x: jnp.flip(x, axis=0)  # noqa: E731
  return flip(linear_scan(structure, jax.tree.map(flip, A), flip(c)))


def _kalman_vectors(name: str, v: jax.Array) -> jax.Array:
  """[..., 2H] -> the smoother's independent states: [..., 2H, 1] (diagonal),
  [..., H, 2] (blocks: (h_j, c_j)) or [..., 2H] (full)."""
  if name == "quasi_deer":
    return v[..., None]
  if name == "block_deer":
    return jnp.stack(_halves(v), axis=-1)
  return v


def _kalman_matrices(name: str, A):
  """The method's Jacobians as the smoother's [..., n, n] matrices (as `_kalman_vectors`)."""
  if name == "quasi_deer":
    return A[..., None, None]
  if name == "block_deer":
    a, b, c, d = A
    return jnp.stack([jnp.stack([a, b], -1), jnp.stack([c, d], -1)], -2)
  return A


def _from_kalman_vectors(name: str, x: jax.Array) -> jax.Array:
  if name == "quasi_deer":
    return x[..., 0]
  if name == "block_deer":
    return jnp.concatenate([x[..., 0], x[..., 1]], axis=-1)
  return x


def damped_scan(structure: Structure, A, b: jax.Array, y: jax.Array, lam) -> jax.Array:
  """ELK's Levenberg-Marquardt step: s [T, ..., 2H] minimizing

      sum_t |s_t - A_t s_{t-1} - b_t|^2 + lam sum_t |s_t - y_t|^2     (s_{-1} = 0, A_0 = 0)

  by the parallel Kalman smoother (`lstmx.kernels.kalman.smooth`), independently
  per coordinate (diagonal A), per unit (2x2 blocks) or jointly (full A).
  ``lam = 0`` gives `linear_scan`'s s_t = A_t s_{t-1} + b_t.

  Args:
    structure: the Jacobians' `Structure`; A: T stacked Jacobians (A_0 = 0).
    b, y: [T, ..., 2H], the offsets and the previous iterate; lam: scalar >= 0.
  """
  name = structure.name
  x = kalman.smooth(_kalman_matrices(name, A), _kalman_vectors(name, b),
                    _kalman_vectors(name, y), lam)
  return _from_kalman_vectors(name, x)
