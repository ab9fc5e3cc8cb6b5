"""One writer per directory: `hold` takes an exclusive ``flock`` on ``DIR/.lock``
(holding the writer's pid) for as long as the writer runs.

Every run takes its run directory's lock (`lstmx.train.session.open_session`), and a
sweep runner its output directory's (`lstmx.lab.lock`). The kernel drops the lock when
its holder dies, however it dies (SIGKILL included), so a lock file left behind never
blocks the next writer. Where ``fcntl`` does not exist (Windows) nothing is locked.
"""

from __future__ import annotations

import contextlib
import os
import sys

try:
  import fcntl
except ImportError:  # pragma: no cover - Windows
  fcntl = None

LOCK_FILE = ".lock"


class Held(ValueError):
  """Another live process holds the directory's lock (its pid is `pid`)."""

  def __init__(self, message: str, pid: str):
    super().__init__(message)
    self.pid = pid


def holder(directory: str) -> str:
  """The pid written in `directory`'s lock file ("unknown" where unreadable)."""
  try:
    with open(os.path.join(directory, LOCK_FILE)) as f:
      return f.read().strip() or "unknown"
  except OSError:
    return "unknown"


@contextlib.contextmanager
def hold(directory: str, refused: str, *, wait: bool = False):
  """Holds `directory`'s lock while the block runs.

  Args:
    directory: an existing directory.
    refused: the error message where another process holds it; ``{pid}`` in it is
      replaced by the holder's pid.
    wait: wait for the holder to finish (a line on stderr says so) instead of refusing.

  Raises:
    Held: (a ValueError) another live process holds it, and not `wait`.
  """
  if fcntl is None:
    yield
    return
  fd = os.open(os.path.join(directory, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      pid = holder(directory)
      if not wait:
        raise Held(refused.replace("{pid}", pid), pid) from None
      print(f"lstmx: {directory}: waiting for pid {pid}, which writes there, to finish",
            file=sys.stderr, flush=True)
      fcntl.flock(fd, fcntl.LOCK_EX)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    yield
  finally:
    os.close(fd)
