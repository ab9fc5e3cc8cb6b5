"""Out of space, out of permissions, out of memory: one error naming the path and the cause.

A run that cannot write its run directory (a full disk, a quota, no permission, a
read-only filesystem) or whose device runs out of memory raises `OutOfResource` (an
OSError whose ``filename`` is the path and ``strerror`` the cause), whichever writer
failed: an atomic write or ``metrics.jsonl`` (`lstmx.train.rundir`), an orbax
checkpoint (`lstmx.train.checkpoint`; tensorstore reports ENOSPC as a ValueError
"RESOURCE_EXHAUSTED ... [os_error_code='28']"), the TensorBoard event files, or XLA.
Nothing is written half (every writer finalizes by a rename), so a rerun once the space
is freed resumes from the last checkpoint, exactly.

The writers' background threads report the same failure on stderr before it reaches
the run (orbax logs each thread's traceback, tensorstore's callbacks hit a closed event
loop, tensorboardX's thread dies, JAX warns that its compilation cache cannot be
written): `quiet_background_failures` drops those reports, the run raising the failure
itself, unless ``LSTMX_VERBOSE=1`` (`verbose`).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import sys
import threading
import warnings

VERBOSE_ENV = "LSTMX_VERBOSE"

# errno -> what the message says (os.strerror's words).
RESOURCE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS,
                   errno.ENOMEM, errno.EFBIG)
_OS_ERROR_CODE = re.compile(r"os_error_code='?(\d+)")
_PATH_IN_MESSAGE = re.compile(r'(?:Failed writing|local file|Error writing local file): "([^"]+)"')


class OutOfResource(OSError):
  """A run directory that cannot be written, or a device out of memory.

  ``filename`` is the path (the file or directory being written; the run directory for
  memory), ``strerror`` the cause, ``errno`` its errno.
  """

  def __str__(self) -> str:
    if self.errno == errno.ENOMEM:
      return f"{self.filename}: {self.strerror}"
    return f"cannot write {self.filename}: {self.strerror}"

  @property
  def advice(self) -> str:
    """What to do, in a few words."""
    if self.errno == errno.ENOMEM:
      return "use a smaller train.batch_size or model, then rerun to resume"
    if self.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
      return "free some space and rerun: the run resumes from its last checkpoint"
    return "make it writable and rerun: the run resumes from its last checkpoint"


def verbose() -> bool:
  """Whether ``LSTMX_VERBOSE`` asks for tracebacks (any value but empty, 0, false, no)."""
  return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def out_of_resource(error: BaseException, path: str) -> OutOfResource | None:
  """`error` as an `OutOfResource` naming `path` (or the file `error` names) where it
  is one: an OSError of `RESOURCE_ERRNOS`, a MemoryError, tensorstore's
  ``RESOURCE_EXHAUSTED``/``PERMISSION_DENIED`` with an os error code, XLA's
  ``RESOURCE_EXHAUSTED: Out of memory``; None for any other error."""
  if isinstance(error, OutOfResource):
    return error
  if isinstance(error, OSError):
    if error.errno not in RESOURCE_ERRNOS:
      return None
    return OutOfResource(error.errno, error.strerror or os.strerror(error.errno),
                         error.filename or path)
  if isinstance(error, MemoryError):
    return OutOfResource(errno.ENOMEM, "out of host memory", path)
  text = str(error)
  if "RESOURCE_EXHAUSTED" not in text and "PERMISSION_DENIED" not in text:
    return None
  code = _OS_ERROR_CODE.search(text)
  if code is not None and int(code.group(1)) in RESOURCE_ERRNOS:
    number = int(code.group(1))
    return OutOfResource(number, os.strerror(number), path)
  if "out of memory" in text.lower():
    first = text.strip().splitlines()[0][:200]
    return OutOfResource(errno.ENOMEM, f"the device is out of memory ({first})", path)
  return None


def named(error: OSError, path: str) -> OSError:
  """`error` (an OSError) with ``filename`` set to `path` where it names no file (a
  write or flush of an open file), as an `OutOfResource` where it is one."""
  found = out_of_resource(error, path)
  if found is not None:
    return found
  if error.filename is None:
    return OSError(error.errno, error.strerror, path)
  return error


class _Drop(logging.Filter):
  """Drops orbax's reports of a failed background write (the run raises it itself)."""

  def filter(self, record: logging.LogRecord) -> bool:
    if verbose():
      return True
    error = record.exc_info[1] if record.exc_info else None
    chain = []
    while error is not None and len(chain) < 8:
      chain.append(error)
      error = error.__cause__ or error.__context__
    text = record.getMessage()
    return not (any(_is_noise(e) for e in chain) or "RESOURCE_EXHAUSTED" in text
                or "No space left on device" in text)


def _is_noise(error: BaseException | None) -> bool:
  """A background write's resource failure, or tensorstore's callback into a loop that
  orbax closed after such a failure."""
  if error is None or verbose():
    return False
  if isinstance(error, RuntimeError) and "Event loop is closed" in str(error):
    return True
  if isinstance(error, OSError) and "handle is closed" in str(error):
    return True  # tensorboardX's thread, once its writer failed
  return out_of_resource(error, "") is not None


_installed = False


def quiet_background_failures() -> None:
  """Installs (once per process) the filters that drop the writers' background reports
  of a resource failure (see the module docstring); other errors pass untouched."""
  global _installed
  if _installed:
    return
  _installed = True
  logging.getLogger("absl").addFilter(_Drop())
  if not verbose():  # JAX's persistent compilation cache on the same full disk
    warnings.filterwarnings(
        "ignore", category=UserWarning,
        message=r"Error writing persistent compilation cache entry .*(No space left on "
        r"device|Disk quota exceeded|Permission denied|Read-only file system)")
  thread_hook, unraisable_hook = threading.excepthook, sys.unraisablehook

  def on_thread_error(args):
    if not _is_noise(args.exc_value):
      thread_hook(args)

  def on_unraisable(args):
    if not _is_noise(args.exc_value):
      unraisable_hook(args)

  threading.excepthook = on_thread_error
  sys.unraisablehook = on_unraisable
