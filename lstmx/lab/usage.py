"""Command-line errors, one form for every ``lstmx`` command and experiment file.

A usage error (a bad option or value, a wrong combination) exits 2, as argparse's own
errors do; an error of the run itself (a failed trial, a file that cannot be written)
exits 1. Both print one line, ``PROG: message``, on stderr.
"""

from __future__ import annotations

import sys
import traceback
from typing import NoReturn

from lstmx.checks import did_you_mean  # noqa: F401 - re-exported

USAGE = 2
FAILURE = 1


def fail(prog: str, message: str, code: int = USAGE) -> NoReturn:
  """Prints ``PROG: message`` on stderr and exits with `code` (2: a usage error)."""
  print(f"{prog}: {message}", file=sys.stderr)
  sys.stdout.flush()
  raise SystemExit(code)


def fail_run(prog: str, error: BaseException) -> NoReturn:
  """A run that met a full disk, a missing permission or no memory
  (`lstmx.train.resources.OutOfResource`): ``PROG: <path and cause>; <advice>`` on
  stderr, exit 1; its traceback first only with ``LSTMX_VERBOSE=1``."""
  from lstmx.train.resources import verbose
  if verbose():
    traceback.print_exception(error)
  advice = getattr(error, "advice", "")
  fail(prog, f"{error}" + (f"; {advice}" if advice else ""), FAILURE)
