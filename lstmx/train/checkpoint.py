"""Orbax checkpoints of a run: the latest k, and the best by the monitored metric.

Orbax finalizes a checkpoint by renaming its temporary directory, so a
checkpoint half-written when a run was killed is never listed or loaded.
Saves are synchronous: when `save` returns, the step is on disk.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpoints:
  """``<workdir>/checkpoints/latest/<step>`` and ``<workdir>/checkpoints/best/<step>``."""

  def __init__(self, workdir: str, keep: int):
    root = os.path.join(os.path.abspath(workdir), "checkpoints")
    opts = lambda k: ocp.CheckpointManagerOptions(  # noqa: E731
        max_to_keep=k, enable_async_checkpointing=False, create=True)
    self.latest = ocp.CheckpointManager(os.path.join(root, "latest"), options=opts(keep))
    self.best = ocp.CheckpointManager(os.path.join(root, "best"), options=opts(1))

  @staticmethod
  def _save(manager, step: int, state, meta: dict) -> None:
    manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                               meta=ocp.args.JsonSave(meta)), force=True)
    manager.wait_until_finished()

  def save_latest(self, step: int, state, meta: dict) -> None:
    self._save(self.latest, step, state, meta)

  def save_best(self, step: int, state, meta: dict) -> None:
    self._save(self.best, step, state, meta)

  @staticmethod
  def _restore(manager, target) -> tuple[Any, dict] | None:
    step = manager.latest_step()
    if step is None:
      return None
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    out = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    return out["state"], dict(out["meta"])

  def restore_latest(self, target):
    """(state, meta) of the newest complete checkpoint, or None."""
    return self._restore(self.latest, target)

  def restore_best(self, target):
    return self._restore(self.best, target)

  def close(self) -> None:
    self.latest.close()
    self.best.close()
