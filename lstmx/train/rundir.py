"""The run directory: ``config.json``, ``metrics.jsonl``, ``summary.json``.

``config.json`` holds the resolved config; a run resumes only with the same one
(`check_config`).

``metrics.jsonl`` holds one JSON object per logged step and split:
``{"step", "split", "wall_time", ...metrics}``. On resume, rows past the
restored step are dropped so a resumed run's log equals an uninterrupted one's
(up to wall times).

Every file of a run or sweep directory is written through `atomic_write` (a
temporary file in the same directory, flushed and fsynced, then renamed over
the target), so a reader sees the old file or the new one, never a torn one.
``metrics.jsonl`` is the one file appended to (a line per write, flushed and
fsynced): a torn last line (a kill mid-append) is skipped when read and dropped
when the run resumes (`MetricsLog.truncate_after` rewrites the log atomically).
Every JSON record is read through `read_json`, whose errors name the file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
from typing import Any, Callable, IO

import jax

from lstmx.config import Config, from_dict, to_dict
from lstmx.train.resources import named


class CorruptRecord(ValueError):
  """A file of a run or sweep directory that cannot be read (its path is `path`)."""

  def __init__(self, path: str, problem: str):
    super().__init__(f"{path}: {problem}")
    self.path = path
    self.problem = problem


def _clean(value):
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)
  return value


def atomic_write(path: str, write: Callable[[IO[str]], Any] | str) -> None:
  """Writes `path` atomically: a temporary file in its directory, flush, fsync, rename.

  Args:
    path: the file to (re)write.
    write: the text, or a function given the open text file to write to.
  """
  folder = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                             suffix=".tmp")
  try:
    with os.fdopen(fd, "w") as f:
      if callable(write):
        write(f)
      else:
        f.write(write)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException as e:
    with contextlib.suppress(OSError):
      os.unlink(tmp)
    if isinstance(e, OSError):  # a write or flush names no file: name the target
      raise named(e, path) from e
    raise
  with contextlib.suppress(OSError):  # the rename itself, on filesystems that allow it
    dfd = os.open(folder, os.O_RDONLY)
    try:
      os.fsync(dfd)
    finally:
      os.close(dfd)


def write_json(path: str, data: Any) -> None:
  """Writes `data` as JSON through `atomic_write`."""
  atomic_write(path, lambda f: json.dump(data, f, indent=1, sort_keys=True, default=str))


def read_json(path: str) -> Any:
  """The JSON value in `path`.

  Raises:
    FileNotFoundError: `path` does not exist.
    CorruptRecord: (a ValueError) the file is not JSON; the message names `path`.
  """
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except UnicodeDecodeError as e:
    raise CorruptRecord(path, f"not UTF-8 text ({e})") from None
  if not text.strip():
    raise CorruptRecord(path, "empty file, expected JSON")
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise CorruptRecord(path, f"unreadable JSON ({e})") from None


SUMMARY_STATUSES = ("completed", "early_stopped", "diverged")


def read_summary(path: str) -> dict | None:
  """The summary in `path`, or None where there is none.

  Raises:
    CorruptRecord: the file is not JSON, or not a summary (an object whose
      ``status`` is one of `SUMMARY_STATUSES`); the message names `path`.
  """
  if not os.path.exists(path):
    return None
  summary = read_json(path)
  if not isinstance(summary, dict):
    raise CorruptRecord(path, f"expected a JSON object; got {type(summary).__name__}")
  if summary.get("status") not in SUMMARY_STATUSES:
    raise CorruptRecord(path, f"status: expected one of {SUMMARY_STATUSES}; "
                        f"got {summary.get('status')!r}")
  return summary


def config_dict(config: Config) -> dict:
  """`config` as ``config.json`` holds it."""
  return json.loads(json.dumps(to_dict(config), default=str))


def config_diff(old: dict, new: dict) -> list[str]:
  """The dotted keys at which two config dicts differ, sorted.

  `old` is read with today's defaults first, so a field added to the configs
  since it was written (e.g. ``train.diverge_factor``) differs only if `new`
  sets it to something other than its default.
  """
  try:
    old = config_dict(from_dict(Config, old))
  except (TypeError, ValueError, KeyError, AttributeError):
    pass  # not a config today's classes can read: compare it as it is
  return sorted(_diff(old, new))


def read_config(workdir: str) -> dict | None:
  """``workdir/config.json``, or None where it is missing or unreadable."""
  path = os.path.join(workdir, "config.json")
  try:
    data = read_json(path)
  except (FileNotFoundError, CorruptRecord):
    return None
  return data if isinstance(data, dict) else None


def check_config(workdir: str, config: Config, force: bool) -> list[str]:
  """Writes ``workdir/config.json``; raises if it holds a different config (unless `force`).

  Returns:
    the keys at which the config it held differs (empty for a new run, the same
    config, or an unreadable ``config.json``).
  """
  path = os.path.join(workdir, "config.json")
  new = config_dict(config)
  old = read_config(workdir)
  diff = [] if old is None else config_diff(old, new)
  if diff and not force:
    raise ValueError(f"workdir {workdir!r} holds a run with a different config "
                     f"(differs at {diff}); use another workdir or force=True (--force)")
  if jax.process_index() == 0:
    write_json(path, new)
  return diff


def _diff(a, b, prefix=""):
  if isinstance(a, dict) and isinstance(b, dict):
    for k in set(a) | set(b):
      yield from _diff(a.get(k), b.get(k), f"{prefix}{k}.")
  elif a != b:
    yield prefix.rstrip(".")


class MetricsLog:
  """Appends rows to ``metrics.jsonl``; a no-op where ``enabled`` is False (non-main processes).

  With `tensorboard` (a `lstmx.train.tensorboard.TensorBoard`), each row goes there too.
  """

  def __init__(self, workdir: str, enabled: bool = True, tensorboard=None):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.enabled = enabled
    self.tensorboard = tensorboard

  def truncate_after(self, step: int) -> None:
    """Drops rows with step > `step` (written after the checkpoint we resume from) and
    unreadable lines (a torn last line), rewriting the log atomically."""
    if not self.enabled or not os.path.exists(self.path):
      return
    keep = [row for row in self.read_lines() if row["step"] <= step]
    atomic_write(self.path, "".join(json.dumps(row) + "\n" for row in keep))

  def read_lines(self) -> list[dict]:
    """The log's rows; a line that is not a row (cut by a kill, or damaged) is skipped."""
    rows = []
    with open(self.path, encoding="utf-8", errors="replace") as f:
      for line in f:
        line = line.strip()
        if not line:
          continue
        try:
          row = json.loads(line)
        except json.JSONDecodeError:
          continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
          rows.append(row)
    return rows

  def clear(self) -> None:
    if self.enabled and os.path.exists(self.path):
      os.remove(self.path)

  def write(self, step: int, split: str, wall_time: float, metrics: dict) -> None:
    if not self.enabled:
      return
    if self.tensorboard is not None:
      self.tensorboard.scalars(step, split, metrics)
    row = {"step": int(step), "split": split, "wall_time": round(wall_time, 4)}
    row.update({k: _clean(float(v)) for k, v in metrics.items()})
    line = json.dumps(row) + "\n"
    try:
      with open(self.path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() and (f.seek(-1, os.SEEK_END), f.read(1))[1] != b"\n":
          line = "\n" + line  # after a torn line: start a line of our own
        f.write(line.encode())
        f.flush()
        os.fsync(f.fileno())
    except OSError as e:  # a full disk: a torn last line at worst, dropped on resume
      raise named(e, self.path) from e


def warn(message: str) -> None:
  """Reports a damaged or set-aside file of a run directory on stderr (one line)."""
  print(f"lstmx: warning: {message}", file=sys.stderr, flush=True)
