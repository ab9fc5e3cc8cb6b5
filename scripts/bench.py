"""Times one LSTM layer (training step and forward) against its peers, in one process.

Thin entry point of `lstmx.bench` (same as ``lstmx bench``); see there for
what is measured.

    python scripts/bench.py                                   # default grid, train + fwd
    python scripts/bench.py --grid 32,128,256 --rounds 5 --bf16 --json out.json
    python scripts/bench.py --grid --memory --markdown mem.md  # memory modes only
"""

import sys

from lstmx.bench import main

if __name__ == "__main__":
  sys.exit(main())
