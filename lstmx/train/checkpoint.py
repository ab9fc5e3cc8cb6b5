"""Orbax checkpoints of a run: the latest k, and the best by the monitored metric.

Orbax finalizes a checkpoint by renaming its temporary directory, so a
checkpoint half-written when a run was killed is never listed or loaded.
Saves are asynchronous in a single-process run (``async_save``, default: one
process): `save_latest` and `save_best` return once the arrays are copied to
host memory, and the files are written in a background thread while training
goes on; the next save, any restore, `wait` and `close` wait for it. A run
killed meanwhile loses the checkpoint being written, never an earlier finished
one. With several processes saves are synchronous: orbax's background threads
of the two managers (latest and best, saving the same step) collide on their
cross-process barriers (seen with orbax 0.12.8: "Barrier _async_write_complete.20
is already ongoing").

A checkpoint that cannot be restored (a damaged file) is reported with its path
and moved aside to ``checkpoints/corrupt/``; the run resumes from the newest one
that restores (from scratch where none does), so a damaged checkpoint costs
steps, never the run.

A save that cannot be written (a full disk, no permission) raises an
`lstmx.train.resources.OutOfResource` naming the checkpoint, at the save or, for an
asynchronous one, at the next save, wait or close; orbax writes a checkpoint into a
temporary directory and renames it when complete, so the failed one is never
listed, and a rerun resumes from the newest complete one.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from typing import Any

import jax
import orbax.checkpoint as ocp

from lstmx.train.resources import out_of_resource
from lstmx.train.rundir import CorruptRecord, warn


class Checkpoints:
  """``<workdir>/checkpoints/latest/<step>`` and ``<workdir>/checkpoints/best/<step>``."""

  def __init__(self, workdir: str, keep: int, async_save: bool | None = None):
    if async_save is None:
      async_save = jax.process_count() == 1
    root = os.path.join(os.path.abspath(workdir), "checkpoints")
    self.root = root
    self.closed = False
    opts = lambda k: ocp.CheckpointManagerOptions(  # noqa: E731
        max_to_keep=k, enable_async_checkpointing=async_save, create=True)
    self.latest = ocp.CheckpointManager(os.path.join(root, "latest"), options=opts(keep))
    self.best = ocp.CheckpointManager(os.path.join(root, "best"), options=opts(1))

  @staticmethod
  def _save(manager, step: int, state, meta: dict, wait: bool) -> None:
    with _writing(manager):  # the previous save: so that all_steps lists it
      manager.wait_until_finished()
    with _writing(manager, step):
      if step in manager.all_steps():  # a resumed run retaking a step (deterministic)
        manager.delete(step)
      manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                 meta=ocp.args.JsonSave(meta)), force=True)
      if wait:
        manager.wait_until_finished()

  def save_latest(self, step: int, state, meta: dict, wait: bool = False) -> None:
    """Saves `state` and `meta` as latest checkpoint `step`; with `wait`, on disk on return."""
    self._save(self.latest, step, state, meta, wait)

  def save_best(self, step: int, state, meta: dict, wait: bool = False) -> None:
    self._save(self.best, step, state, meta, wait)

  def wait(self) -> None:
    """Waits until every save so far is on disk."""
    for manager in (self.latest, self.best):
      with _writing(manager):
        manager.wait_until_finished()

  @staticmethod
  def _restore_step(manager, step: int, target) -> tuple[Any, dict]:
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    out = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    meta = out["meta"]
    if not isinstance(meta, dict):
      raise ValueError(f"meta: expected a JSON object; got {type(meta).__name__}")
    return out["state"], dict(meta)

  def _set_aside(self, manager, step: int, error: Exception) -> None:
    """Moves the damaged checkpoint `step` to ``checkpoints/corrupt/`` and reports it."""
    path = os.path.join(str(manager.directory), str(step))
    kind = os.path.basename(str(manager.directory))
    dest = os.path.join(self.root, "corrupt", f"{kind}-{step}-{int(time.time() * 1000)}")
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if os.path.exists(path):
      os.replace(path, dest)
    manager.reload()
    warn(f"checkpoint {path}: cannot be restored ({type(error).__name__}: {error}); "
         f"moved to {dest}")

  def restore_latest(self, target):
    """(state, meta) of the newest checkpoint that restores, or None. Checkpoints that
    do not restore are reported and set aside (`_set_aside`)."""
    self.latest.wait_until_finished()
    for step in sorted(self.latest.all_steps(), reverse=True):
      try:
        return self._restore_step(self.latest, step, target)
      except Exception as e:  # noqa: BLE001 - any damage: fall back to an older one
        self._set_aside(self.latest, step, e)
    return None

  def restore_best(self, target):
    """(state, meta) of the best checkpoint, or None where there is none.

    Raises:
      CorruptRecord: it does not restore (the message names its path).
    """
    self.best.wait_until_finished()
    step = self.best.latest_step()
    if step is None:
      return None
    try:
      return self._restore_step(self.best, step, target)
    except Exception as e:  # noqa: BLE001
      path = os.path.join(str(self.best.directory), str(step))
      raise CorruptRecord(path, f"best checkpoint cannot be restored "
                          f"({type(e).__name__}: {e})") from e

  def has_latest(self, step: int) -> bool:
    self.latest.wait_until_finished()
    return step in self.latest.all_steps()

  def close(self) -> None:
    """Waits for the saves in flight, then releases the managers (again: a no-op)."""
    if self.closed:
      return
    self.closed = True
    try:
      with _writing(self.latest):
        self.latest.close()
    finally:
      with _writing(self.best):
        self.best.close()


@contextlib.contextmanager
def _writing(manager, step: int | None = None):
  """Raises a failed write of `manager`'s (a full disk, no permission; orbax reports
  the asynchronous ones at the next wait) as an `OutOfResource` naming the checkpoint
  (its directory where the step is unknown)."""
  try:
    yield
  except Exception as e:  # noqa: BLE001 - tensorstore's errors are ValueErrors
    found = out_of_resource(e, _checkpoint_path(manager, step, e))
    if found is None:
      raise
    raise found from e


def _checkpoint_path(manager, step: int | None, error: Exception) -> str:
  """The checkpoint being written: `step`'s, else the one the error (or its causes)
  names, else `manager`'s directory."""
  directory = str(manager.directory)
  if step is not None:
    return os.path.join(directory, str(step))
  pattern = re.compile(re.escape(directory) + r"/(\d+)")
  for _ in range(8):
    found = pattern.search(str(error)) or pattern.search(getattr(error, "filename", "") or "")
    if found:
      return os.path.join(directory, found.group(1))
    error = error.__cause__ or error.__context__
    if error is None:
      break
  return directory
