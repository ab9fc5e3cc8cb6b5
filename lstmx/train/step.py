"""The pure training step: ``train_step(state, batch) -> (state, metrics)``."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from lstmx.tasks import Batch, Task


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainState:
  """Everything a run needs to continue exactly.

  Attributes:
    step: int32 scalar, the number of updates applied.
    params: the model's `nnx.Param` state.
    opt_state: the optax state.
    key: uint32 key data of the run's PRNG key (dropout keys fold in the step).
    carry: the model state carried between steps for stream tasks (TBPTT,
      `lstmx.train.tbptt`): (h, c), each [num_layers, B, H]; None otherwise.
  """

  step: jax.Array
  params: Any
  opt_state: Any
  key: jax.Array
  carry: Any = None


@dataclasses.dataclass(frozen=True)
class ModelDef:
  """The static part of a model: its graph and its non-parameter state (e.g. RNG
  streams, unused by the step, which passes explicit keys)."""

  graphdef: Any
  rest: Any

  def merge(self, params) -> nnx.Module:
    return nnx.merge(self.graphdef, params, self.rest)


def init_state(model: nnx.Module, tx: optax.GradientTransformation, seed: int,
               carry: Any = None):
  """(ModelDef, TrainState) for a freshly built model (`carry`: a stream task's
  initial model state, see `lstmx.train.tbptt`)."""
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                     key=jax.random.key_data(jax.random.key(seed)), carry=carry)
  return ModelDef(graphdef, rest), state


def apply_model(modeldef: ModelDef, params, batch: Batch) -> jax.Array:
  """Evaluation-mode outputs [B, T, output_size]."""
  return modeldef.merge(params)(batch["inputs"], batch["lengths"])


def apply_train(modeldef: ModelDef, params, batch: Batch, key: jax.Array):
  """Training-mode (outputs, penalty): dropout masks from `key`, AR/TAR penalty."""
  model = modeldef.merge(params)  # a lstmx.models.SequenceModel
  return model.forward_train(batch["inputs"], batch["lengths"], key)


def make_train_step(modeldef: ModelDef, task: Task, tx: optax.GradientTransformation) -> Callable:
  """A pure ``train_step(state, batch) -> (state, metrics)`` (jit it yourself).

  A step whose loss or gradients are not finite leaves the state unchanged and
  reports ``finite = 0``; the loop then ends the run as diverged. For a stream
  task (`lstmx.train.tbptt`) the step carries the model state in ``state.carry``.
  """
  from lstmx.train import tbptt
  stateful = tbptt.is_stateful(task)

  def train_step(state: TrainState, batch: Batch):
    key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)

    def loss_fn(params):
      if stateful:
        return tbptt.stream_loss(modeldef, task, params, state.carry, batch, key)
      outputs, penalty = apply_train(modeldef, params, batch, key)
      loss = task.loss(outputs, batch)
      return loss + penalty, (loss, state.carry)

    (_, (loss, carry)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    # optax mixes Python floats with int32 step counts, which strict dtype
    # promotion rejects; the optimizer runs under standard promotion.
    with jax.numpy_dtype_promotion("standard"):
      updates, opt_state = tx.update(grads, state.opt_state, state.params)
      params = optax.apply_updates(state.params, updates)
    new = TrainState(step=state.step + 1, params=params, opt_state=opt_state, key=state.key,
                     carry=carry)
    # Keep the last good state on a non-finite step.
    new = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, state)
    new = dataclasses.replace(new, step=state.step + 1)
    return new, {"loss": loss, "grad_norm": grad_norm, "finite": finite.astype(jnp.float32)}

  return train_step


def guard(train_step: Callable) -> Callable:
  """``step(state, ok, batch) -> (state, ok, metrics)``: `train_step` that is a no-op
  once ``ok`` is False.

  ``ok`` (a bool scalar) is sticky: a non-finite step (which keeps its state but
  counts the step) sets it False, and every later step given that ``ok`` leaves
  the state unchanged, step counter included. So after any number of steps the
  state is the last finite one and ``state.step`` the first non-finite step's
  number, while the host reads ``finite`` only now and then (the loop, at its
  log cadence). A step after a non-finite one reports what it computed: ignore it.
  """

  def step(state: TrainState, ok: jax.Array, batch: Batch):
    new, metrics = train_step(state, batch)
    new = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, state)
    return new, ok & (metrics["finite"] > 0), metrics

  return step


def make_train_chunk(train_step: Callable, sample: Callable[[jax.Array], Batch],
                     data_key: jax.Array | None, n: int) -> Callable:
  """A pure ``chunk(state, ok) -> (state, ok, metrics)``: `n` guarded steps (`guard`)
  of `train_step`, each on the batch ``sample(fold_in(data_key, state.step))``
  (``sample(state.step)`` when `data_key` is None: batches fixed by the step, as a
  stream task's `train_window`), in one `lax.scan` (a plain call when ``n == 1``);
  jit it yourself.

  ``metrics`` are the steps' own, stacked on a leading axis of length `n`.
  """
  step = guard(train_step)

  def one(carry, _):
    state, ok = carry
    where = state.step if data_key is None else jax.random.fold_in(data_key, state.step)
    state, ok, metrics = step(state, ok, sample(where))
    return (state, ok), metrics

  def chunk(state: TrainState, ok: jax.Array):
    if n == 1:
      (state, ok), metrics = one((state, ok), None)
      return state, ok, jax.tree.map(lambda m: m[None], metrics)
    (state, ok), metrics = jax.lax.scan(one, (state, ok), None, length=n)
    return state, ok, metrics

  return chunk


def make_eval_step(modeldef: ModelDef, task: Task) -> Callable:
  """A pure ``eval_step(params, batch) -> {metric: (sum, count)}`` in evaluation mode
  (`Task.metric_sums`: sums over batches give exact metrics; see
  `lstmx.train.evaluation`)."""
  def eval_step(params, batch: Batch) -> dict[str, tuple[jax.Array, jax.Array]]:
    return task.metric_sums(apply_model(modeldef, params, batch), batch)
  return eval_step
