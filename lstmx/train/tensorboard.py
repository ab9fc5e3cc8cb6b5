"""TensorBoard event files of a run, written with tensorboardX (no TensorFlow).

Every row of ``metrics.jsonl`` also goes to ``<workdir>/tensorboard/`` as
scalars tagged ``<split>/<metric>`` (``train/loss``, ``validation/accuracy``) at
its step; counts (`COUNTS`: ``examples``, the size of the evaluation set) stay in
``metrics.jsonl`` only, as they are no curve. At the end of a run its flattened
config goes into the same run as hparams, with the final and at-best metrics
(``final/<split>/<metric>``, ``at_best/<split>/<metric>``) as scalars at the last
step. So

    tensorboard --logdir runs/NAME/PRESET/tensorboard

shows every trial of a sweep side by side under a readable name (links the
sweep's report writes: `lstmx.lab.run_names`), one run per trial, and its HPARAMS
tab compares them.

Each session of a run opens a new event file that starts with a purge marker at
the step after the checkpoint it starts from (tensorboardX's ``purge_step``): TensorBoard drops the
earlier files' points from that step on, as the resumed run drops those rows of
``metrics.jsonl``, so each step shows one value (the latest). TensorBoard keeps the
first hparams it reads in a run, so writing them takes those of earlier sessions
(an extended run's) out of their files. Only process 0 writes (the loop passes
``enabled=False`` elsewhere). `read_scalars` reads the files back without
TensorBoard.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import struct
from typing import Any

from lstmx.train.resources import named

LOGDIR = "tensorboard"
COUNTS = ("examples",)  # metrics.jsonl values that are counts, not curves
RESULTS = ("final/", "at_best/")  # the tags of the metrics written with the hparams


def _finite(value: Any) -> float | None:
  try:
    value = float(value)
  except (TypeError, ValueError):
    return None
  return value if math.isfinite(value) else None


class TensorBoard:
  """A run's event-file writer (a no-op where ``enabled`` is False).

  Args:
    workdir: the run directory; files go to ``workdir/tensorboard``.
    start: the step the run (re)starts from: points from ``start + 1`` on in earlier
      files (a session killed after its last checkpoint) are superseded.
    enabled: False on processes other than 0.
  """

  def __init__(self, workdir: str, start: int = 0, enabled: bool = True):
    self.logdir = os.path.join(workdir, LOGDIR)
    self.writer = None
    self.earlier: list[str] = []  # event files of earlier sessions
    if enabled:
      from tensorboardX import SummaryWriter
      if os.path.isdir(self.logdir):
        self.earlier = _event_files(self.logdir)
      self.writer = SummaryWriter(self.logdir, purge_step=start + 1, flush_secs=30)

  def scalars(self, step: int, split: str, metrics: dict) -> None:
    """Each finite value of `metrics` as the scalar ``split/name`` at `step`, counts
    (`COUNTS`) left out."""
    if self.writer is None:
      return
    for name, value in metrics.items():
      value = None if name in COUNTS else _finite(value)
      if value is not None:
        self.writer.add_scalar(f"{split}/{name}", value, int(step))

  def hparams(self, config: dict, results: dict, step: int) -> None:
    """The flattened `config` (``config.json``'s dict) as hparams of this run, with
    `results` (``{"final": {split: metrics}, "at_best": {...} or None}``) as their
    metrics: scalars ``kind/split/name`` at `step`. Replaces the hparams and results an
    earlier session of the run wrote (and an older lstmx's ``hparams/`` sub-run)."""
    if self.writer is None:
      return
    from tensorboardX.summary import hparams
    metrics = {}
    for kind, by_split in results.items():
      for split, values in (by_split or {}).items():
        if isinstance(values, dict):
          for name, value in values.items():
            if name not in COUNTS and _finite(value) is not None:
              metrics[f"{kind}/{split}/{name}"] = _finite(value)
    shutil.rmtree(os.path.join(self.logdir, "hparams"), ignore_errors=True)
    for path in self.earlier:
      _drop_values(path, _is_result)
    self.earlier = []
    try:
      for summary in hparams(flatten(config), metrics):  # experiment, session start, end
        self.writer.file_writer.add_summary(summary, int(step))
      for tag, value in metrics.items():
        self.writer.add_scalar(tag, value, int(step))
    except OSError as e:
      raise named(e, self.logdir) from e

  def close(self) -> None:
    """Flushes and closes the event file (again: a no-op).

    Raises:
      OSError: the file cannot be written (an `lstmx.train.resources.OutOfResource`
        naming the directory where the disk is full); the writer is closed all the same.
    """
    writer, self.writer = self.writer, None
    if writer is not None:
      try:
        writer.close()
      except OSError as e:
        _abandon(writer)
        raise named(e, self.logdir) from e


def _abandon(writer) -> None:
  """Marks a tensorboardX writer whose close failed as closed, so that its exit handler
  does not fail again (tensorboardX has no public way to)."""
  for file_writer in getattr(writer, "all_writers", {}).values():
    with contextlib.suppress(AttributeError):
      file_writer.event_writer._closed = True


def flatten(config: dict, prefix: str = "") -> dict[str, bool | int | float | str]:
  """``{"train": {"steps": 5}}`` -> ``{"train.steps": 5}``; values that are not
  bool, int, float or str (None, tuples, task parameters) as JSON text."""
  out = {}
  for key, value in config.items():
    if isinstance(value, dict) and value:
      out.update(flatten(value, f"{prefix}{key}."))
    elif isinstance(value, (bool, int, float, str)):
      out[prefix + key] = value
    else:
      out[prefix + key] = json.dumps(value, default=str)
  return out


def _event_files(logdir: str) -> list[str]:
  return [os.path.join(logdir, n) for n in sorted(os.listdir(logdir))
          if n.startswith("events.out.tfevents")]


def _is_result(value) -> bool:
  """Whether a summary value is one `TensorBoard.hparams` writes."""
  return (value.metadata.plugin_data.plugin_name == "hparams"
          or value.tag.startswith(RESULTS))


def _drop_values(path: str, drop) -> None:
  """Rewrites the event file `path` (atomically) without the summary values for which
  `drop(value)` holds; leaves it alone where there are none."""
  from tensorboardX.record_writer import masked_crc32c
  events = read_events(path)
  if not any(drop(v) for e in events for v in e.summary.value):
    return
  records = []
  for event in events:
    if event.HasField("summary"):
      kept = [v for v in event.summary.value if not drop(v)]
      if not kept:
        continue
      del event.summary.value[:]
      event.summary.value.extend(kept)
    data = event.SerializeToString()
    head = struct.pack("<Q", len(data))
    records.append(head + struct.pack("<I", masked_crc32c(head)) + data
                   + struct.pack("<I", masked_crc32c(data)))
  tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
  with open(tmp, "wb") as f:
    f.write(b"".join(records))
  os.replace(tmp, path)


def read_events(path: str) -> list:
  """The `Event` protos of one event file (TFRecord framing; CRCs not checked)."""
  from tensorboardX.proto.event_pb2 import Event
  events = []
  with open(path, "rb") as f:
    while True:
      head = f.read(12)
      if len(head) < 12:
        break
      (length,) = struct.unpack("<Q", head[:8])
      data = f.read(length)
      f.read(4)
      if len(data) < length:
        break  # a torn last record
      events.append(Event.FromString(data))
  return events


def read_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
  """``{tag: [(step, value), ...]}`` of the scalars in the event files directly in
  `logdir`, in file and write order (purge markers not applied)."""
  out: dict[str, list[tuple[int, float]]] = {}
  for path in _event_files(logdir):
    for event in read_events(path):
      for value in event.summary.value:
        if value.WhichOneof("value") == "simple_value":
          out.setdefault(value.tag, []).append((int(event.step), float(value.simple_value)))
  return out
