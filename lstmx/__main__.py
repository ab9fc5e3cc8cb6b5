"""``python -m lstmx ...``: the ``lstmx`` command line (`lstmx.lab.cli`)."""

import sys

from lstmx.lab.cli import main

if __name__ == "__main__":
  sys.exit(main())
