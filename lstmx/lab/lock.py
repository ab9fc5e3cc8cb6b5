"""One runner per output directory: `hold` takes an exclusive ``flock`` on
``OUT/.lock`` (holding the runner's pid) for as long as the runner runs.

The kernel drops the lock when its holder dies, however it dies (SIGKILL
included), so a lock file left behind never blocks the next run. Where ``fcntl``
does not exist (Windows) nothing is locked.
"""

from __future__ import annotations

import contextlib
import os

try:
  import fcntl
except ImportError:  # pragma: no cover - Windows
  fcntl = None

LOCK_FILE = ".lock"


class Held(ValueError):
  """The output directory is held by another runner (a conflict, not a usage error)."""


def holder(out_dir: str) -> str:
  """The pid written in `out_dir`'s lock file ("unknown" where unreadable)."""
  try:
    with open(os.path.join(out_dir, LOCK_FILE)) as f:
      return f.read().strip() or "unknown"
  except OSError:
    return "unknown"


@contextlib.contextmanager
def hold(out_dir: str):
  """Holds `out_dir`'s lock while the block runs.

  Raises:
    ValueError: another live process holds it (naming --out and its pid).
  """
  if fcntl is None:
    yield
    return
  fd = os.open(os.path.join(out_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise Held(
          f"--out {out_dir!r}: another runner (pid {holder(out_dir)}) is running a sweep "
          "there; expected one runner per output directory: wait for it to finish, or use "
          "another --out") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    yield
  finally:
    os.close(fd)
