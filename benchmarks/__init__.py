"""Benchmarks of lstmx against its peers: beside the package, not in the wheel.

    python benchmarks/bench.py --grid 32,128,256 --rounds 5 --bf16

`bench` is the command, `peers` the implementations it times, `skeleton` the
GEMM floor (``--gemm-only``), `case` what every implementation is built into,
`timing` the one timer. LOG.md is the dated history of runs; docs/performance.md
the current account.
"""
