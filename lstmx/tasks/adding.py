"""The adding problem, in its modern and original forms."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lstmx.tasks.base import Batch, Task, check_int, last_step_mask


@dataclasses.dataclass(frozen=True)
class Adding(Task):
  """The adding problem.

  ``form="le2015"`` (Le, Jaitly & Hinton 2015; the halves as in Arjovsky et
  al. 2016 and Tallec & Ollivier 2018): each of `length` steps carries
  a value in U[0, 1] and a marker; one marked step is drawn in the first half
  and one in the second; the target, read at the last step, is the sum of the
  two marked values. Predicting the mean 1 gives MSE Var(X1 + X2) = 1/6, the
  memoryless baseline. A model that remembers one of the two values (the
  later one is the easy one) but not the other stays at Var(X1) = 1/12:
  ``one_value_loss``, 0.5 x the baseline (the plateau). Solved (lstmx's
  criterion): MSE below 5 % of the baseline.

  ``form="hochreiter1997"`` (Hochreiter & Schmidhuber 1997, experiment 4):
  values in U[-1, 1]; the first marked step among the first 10, the second
  among the first length/2 - 1 (distinct); the first and last steps carry
  marker -1 when unmarked; a value marked at step 0 counts as zero. Target
  0.5 + (X1 + X2) / 4. Memoryless baseline: its variance,
  (2 - p0) / 3 / 16 with p0 = 1/10 + (9/10) / (length/2 - 2) the chance that
  one marked step is step 0 (about 0.0396 at length 100). Solved by their
  criterion: every test sequence within absolute error 0.04 (and mean
  squared error below 0.01).
  """

  name = "adding"
  kind = "regression"
  solved_rule = ("le2015: mse < 0.05 * 1/6 (lstmx); hochreiter1997: all |error| < 0.04 "
                 "and mse < 0.01 (Hochreiter & Schmidhuber 1997)")
  length: int = 100
  form: str = "le2015"

  def validate(self):
    if self.form not in ("le2015", "hochreiter1997"):
      raise ValueError(f"adding.form: expected 'le2015' or 'hochreiter1997'; got {self.form!r}")
    check_int(self.name, "length", self.length, 2 if self.form == "le2015" else 24)

  input_size = property(lambda self: 2)
  output_size = property(lambda self: 1)
  # The first marked step can be step 0, read at the last step.
  longest_dependency = property(lambda self: self.length - 1)

  @property
  def one_value_loss(self) -> float:
    """The MSE of a model that knows one marked value exactly and not the other:
    1/12 for le2015 (0.5 x the baseline); for hochreiter1997, Var(X1) / 16 with
    X1 ~ U[-1, 1], 1/48."""
    return 1.0 / 12.0 if self.form == "le2015" else 1.0 / 48.0

  @property
  def baseline_loss(self) -> float:
    if self.form == "le2015":
      return 1.0 / 6.0
    p0 = 0.1 + 0.9 / (self.length // 2 - 2)
    return (2.0 - p0) / 3.0 / 16.0

  def _draw(self, key: jax.Array, batch_size: int) -> Batch:
    T = self.length
    k_val, k1, k2 = jax.random.split(key, 3)
    t = jnp.arange(T)[None, :]
    if self.form == "le2015":
      values = jax.random.uniform(k_val, (batch_size, T))
      first = jax.random.randint(k1, (batch_size,), 0, T // 2)
      second = jax.random.randint(k2, (batch_size,), T // 2, T)
    else:
      values = jax.random.uniform(k_val, (batch_size, T), minval=-1.0, maxval=1.0)
      first = jax.random.randint(k1, (batch_size,), 0, 10)
      # Second: uniform over [0, T/2 - 1) without the first position.
      second = jax.random.randint(k2, (batch_size,), 0, T // 2 - 2)
      second = jnp.where(second >= first, second + 1, second)
    marked = (t == first[:, None]) | (t == second[:, None])
    markers = marked.astype(jnp.float32)
    if self.form == "le2015":
      target = jnp.sum(values * markers, axis=1)
    else:
      counted = jnp.where(t != 0, values * markers, 0.0)
      target = 0.5 + jnp.sum(counted, axis=1) / 4.0
      ends = ((t == 0) | (t == T - 1)) & ~marked
      markers = jnp.where(ends, -1.0, markers)
    inputs = jnp.stack([values, markers], axis=-1).astype(jnp.float32)
    lengths = jnp.full((batch_size,), T, jnp.int32)
    mask = last_step_mask(lengths, T)
    return {"inputs": inputs, "targets": mask * target[:, None],
            "mask": mask, "lengths": lengths}

  def metric_sums(self, outputs, batch):
    out = super().metric_sums(outputs, batch)
    err = jnp.abs(outputs[..., 0] - batch["targets"])
    close = (err < 0.04).astype(jnp.float32)
    out["within_0.04"] = (jnp.sum(close * batch["mask"]), jnp.sum(batch["mask"]))
    return out

  def solved(self, metrics) -> bool:
    if self.form == "le2015":
      return float(metrics["loss"]) < 0.05 * self.baseline_loss
    return float(metrics["within_0.04"]) == 1.0 and float(metrics["loss"]) < 0.01
