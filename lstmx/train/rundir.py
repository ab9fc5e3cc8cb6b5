"""The run directory: ``config.json``, ``metrics.jsonl``, ``summary.json``.

``config.json`` holds the resolved config; a run resumes only with the same one
(`check_config`).

``metrics.jsonl`` holds one JSON object per logged step and split:
``{"step", "split", "wall_time", ...metrics}``. On resume, rows past the
restored step are dropped so a resumed run's log equals an uninterrupted one's
(up to wall times).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import jax

from lstmx.config import Config, to_dict


def _clean(value):
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)
  return value


def write_json(path: str, data: Any) -> None:
  """Writes atomically: a temporary file, then a rename."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(data, f, indent=1, sort_keys=True, default=str)
  os.replace(tmp, path)


def read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def check_config(workdir: str, config: Config, force: bool) -> None:
  """Writes ``workdir/config.json``; raises if it holds a different config (unless `force`)."""
  path = os.path.join(workdir, "config.json")
  new = json.loads(json.dumps(to_dict(config), default=str))
  if os.path.exists(path) and not force:
    old = read_json(path)
    if old != new:
      diff = sorted(_diff(old, new))
      raise ValueError(f"workdir {workdir!r} holds a run with a different config "
                       f"(differs at {diff}); use another workdir or force=True (--force)")
  if jax.process_index() == 0:
    write_json(path, new)


def _diff(a, b, prefix=""):
  if isinstance(a, dict) and isinstance(b, dict):
    for k in set(a) | set(b):
      yield from _diff(a.get(k), b.get(k), f"{prefix}{k}.")
  elif a != b:
    yield prefix.rstrip(".")


class MetricsLog:
  """Appends rows to ``metrics.jsonl``; a no-op where ``enabled`` is False (non-main processes)."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.enabled = enabled

  def truncate_after(self, step: int) -> None:
    """Drops rows with step > `step` (written after the checkpoint we resume from)."""
    if not self.enabled or not os.path.exists(self.path):
      return
    keep = [line for line in self.read_lines() if line["step"] <= step]
    tmp = self.path + ".tmp"
    with open(tmp, "w") as f:
      for row in keep:
        f.write(json.dumps(row) + "\n")
    os.replace(tmp, self.path)

  def read_lines(self) -> list[dict]:
    rows = []
    with open(self.path) as f:
      for line in f:
        line = line.strip()
        if line:
          try:
            rows.append(json.loads(line))
          except json.JSONDecodeError:  # a line cut by a kill
            break
    return rows

  def write(self, step: int, split: str, wall_time: float, metrics: dict) -> None:
    if not self.enabled:
      return
    row = {"step": int(step), "split": split, "wall_time": round(wall_time, 4)}
    row.update({k: _clean(float(v)) for k, v in metrics.items()})
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")
