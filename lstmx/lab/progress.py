"""A sweep's progress: how many trials are running, done, failed and diverged, and
the estimated time left; a tqdm bar (the counts as its postfix) on a terminal, one
plain line per finished trial otherwise."""

from __future__ import annotations

import sys
import time
from typing import Callable, Iterable


def duration(seconds: float | None) -> str:
  """``1h02m``, ``3m05s``, ``42s``; ``?`` for None."""
  if seconds is None:
    return "?"
  s = int(round(seconds))
  if s >= 3600:
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
  return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class SweepProgress:
  """Counts of a sweep's trials and the time left.

  Args:
    total: the sweep's trials.
    finished: the statuses of the trials already finished (on disk) when it starts.
    enabled: False: show nothing (the counts are still kept).
    desc: the bar's or line's label.
    clock: seconds (tests pass a fake).
  """

  def __init__(self, total: int, finished: Iterable[str] = (), enabled: bool = True,
               desc: str = "trials", stream=None, clock: Callable[[], float] = time.monotonic):
    self.total, self.desc, self.enabled = total, desc, enabled
    self.stream = sys.stderr if stream is None else stream
    self.clock = clock
    self.counts = {"done": 0, "failed": 0, "diverged": 0}
    for status in finished:
      self._count(status)
    self.start_done = self.counts["done"]
    self.running = 0
    self.start = clock()
    self.bar = None
    if enabled and getattr(self.stream, "isatty", lambda: False)():
      from tqdm.auto import tqdm
      self.bar = tqdm(total=total, initial=self.counts["done"], desc=desc, dynamic_ncols=True,
                      file=self.stream)

  def _count(self, status: str) -> None:
    self.counts["done"] += 1
    if status in ("failed", "diverged"):
      self.counts[status] += 1

  def eta(self) -> float | None:
    """Seconds left at this run's rate of finished trials; None before the first."""
    finished = self.counts["done"] - self.start_done
    if finished == 0:
      return None
    return (self.clock() - self.start) / finished * (self.total - self.counts["done"])

  def text(self) -> str:
    c = self.counts
    return (f"running {self.running}, done {c['done']}/{self.total} (failed {c['failed']}, "
            f"diverged {c['diverged']}), {duration(self.eta())} left")

  def started(self, running: int) -> None:
    """Shows the counts as the trials to run start."""
    self.running = running
    self._show()

  def update(self, status: str, running: int) -> None:
    """One more trial finished with `status`; `running` are still running."""
    self._count(status)
    self.running = running
    if self.bar is not None:
      self.bar.update(1)
    self._show()

  def _show(self) -> None:
    if not self.enabled:
      return
    if self.bar is not None:
      self.bar.set_postfix_str(self.text())
    else:
      print(f"{self.desc}: {self.text()}", file=self.stream, flush=True)

  def write(self, line: str) -> None:
    """Prints `line` on the stream (above the bar on a terminal), shown or not: a
    failure is never silent."""
    if self.bar is not None:
      self.bar.write(line, file=self.stream)
    else:
      print(line, file=self.stream, flush=True)

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()
