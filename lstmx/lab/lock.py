"""One runner per output directory: `hold` takes ``OUT/.lock`` (`lstmx.train.lock`,
holding the runner's pid) for as long as the runner runs.

The kernel drops the lock when its holder dies, however it dies (SIGKILL included), so a
lock file left behind never blocks the next run. Where ``fcntl`` does not exist
(Windows) nothing is locked.
"""

from __future__ import annotations

import contextlib

from lstmx.train import lock
from lstmx.train.lock import LOCK_FILE, Held, holder  # noqa: F401 - re-exported


@contextlib.contextmanager
def hold(out_dir: str):
  """Holds `out_dir`'s lock while the block runs.

  Raises:
    ValueError: another live process holds it (naming --out and its pid).
  """
  with lock.hold(out_dir, f"--out {out_dir!r}: another runner (pid {{pid}}) is running a "
                 "sweep there; expected one runner per output directory: wait for it to "
                 "finish, or use another --out"):
    yield
