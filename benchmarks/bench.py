"""Benchmark of one LSTM layer against its peers, in one process.

For each (B, T, H) config (input size D = H) and mode (``train``: forward +
backward w.r.t. parameters and input; ``fwd``: forward only), every
implementation is built and compiled, warmed up, then timed in interleaved
rounds (each implementation once per round; `benchmarks.timing`) so that load
from other jobs hits all of them alike. Reported per implementation: median
time, GFLOP/s of the LSTM's matmuls,

    fwd FLOPs = 2 T B (D + H) 4H,        train FLOPs ~ 3 x fwd,

the fraction of the machine's peak GEMM rate (best of a float32 2048^3
``jnp.dot``, measured in the same run), the ratio to the fastest
implementation of the config, and for JAX implementations the compiled
program's memory (`lstmx.compile_stats`' ``peak_bytes``: arguments + outputs
- aliases + temps) and compile time.

    python benchmarks/bench.py                               # the default grid
    python benchmarks/bench.py --grid 32,128,256 --rounds 5 --bf16 --json o.json --markdown o.md
    python benchmarks/bench.py --memory --grid               # memory modes only
    python benchmarks/bench.py --gemm-only  # + lstmx's GEMMs without the cell math (the XLA floor)

Runnable as a script and importable (`main(argv) -> int`); as a script it puts
the repository root on ``sys.path``, so a checkout without ``pip install`` runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys

if not __package__:  # run as a script (or loaded by path): the repository root onto sys.path
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from benchmarks import peers, skeleton  # noqa: E402
from benchmarks.case import Skip  # noqa: E402
from benchmarks.timing import interleaved  # noqa: E402
from lstmx.lstm import DEFAULT_UNROLL  # noqa: E402

PROG = "python benchmarks/bench.py"
DEFAULT_GRID = ["32,128,256", "16,512,128", "64,256,512", "128,64,1024"]
GEMM_ONLY = "lstmx GEMMs only (no cell math)"


def lstm_flops(B: int, T: int, H: int, mode: str, D: int | None = None) -> float:
  """Matmul FLOPs of one layer: fwd 2 T B (D + H) 4H; a training step ~ 3x that."""
  D = H if D is None else D
  fwd = 2.0 * T * B * (D + H) * 4 * H
  return 3 * fwd if mode == "train" else fwd


def peak_gemm_gflops(n: int = 2048, repeats: int = 7) -> float:
  """Best float32 GFLOP/s of an n^3 ``jnp.dot`` on the default device (best of `repeats`)."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  dot = jax.jit(jnp.dot)
  times = interleaved({"dot": lambda: dot(a, a).block_until_ready()}, repeats, warmup=1)
  return 2 * n ** 3 / min(times["dot"]) / 1e9


def implementations(args) -> dict:
  """name -> builder(B, T, H, mode) for the lstmx variants and the peers."""
  impls = {}
  for u in args.unroll:
    impls["lstmx" if u == DEFAULT_UNROLL else f"lstmx (unroll={u})"] = (
        lambda B, T, H, mode, u=u: peers.lstmx_case(B, T, H, mode, unroll=u))
  if args.bf16:
    impls["lstmx bf16"] = lambda B, T, H, mode: peers.lstmx_case(
        B, T, H, mode, compute_dtype=jnp.bfloat16)
  if args.gemm_only:
    impls[GEMM_ONLY] = skeleton.gemm_skeleton_case
  impls.update(peers.PEERS)
  return impls


def time_config(B, T, H, mode, impls, rounds, warmup, notes) -> list[dict]:
  """Interleaved rounds over the implementations of one config; one row each."""
  cases = {}
  for name, make in impls.items():
    try:
      cases[name] = make(B, T, H, mode)
    except (Skip, ImportError) as e:
      notes.add(f"{name}: skipped ({e})")
  times = interleaved(cases, rounds, warmup)
  med = {k: statistics.median(v) for k, v in times.items()}
  fastest = min(m for k, m in med.items() if k != GEMM_ONLY)  # the skeleton is no peer
  return [dict(B=B, T=T, H=H, mode=mode, impl=k, median_ms=1e3 * m,
               min_ms=1e3 * min(times[k]), gflops=lstm_flops(B, T, H, mode) / m / 1e9,
               vs_fastest=m / fastest, compile_s=cases[k].compile_s,
               memory_mib=None if cases[k].memory_bytes is None
               else cases[k].memory_bytes / 2 ** 20)
          for k, m in med.items()]


def memory_rows(B, H, lengths, ks, time_max_T, rounds) -> list[dict]:
  """Compiled training-step memory of lstmx per memory mode and T; times up to time_max_T."""
  rows = []
  for T in lengths:
    for k in ks:
      case = peers.lstmx_case(B, T, H, "train", remat_every=k)
      ms = None
      if T <= time_max_T:
        ms = 1e3 * statistics.median(interleaved({k: case}, rounds, warmup=1)[k])
      rows.append(dict(B=B, T=T, H=H, remat_every=k, memory_mib=case.memory_bytes / 2 ** 20,
                       compile_s=case.compile_s, median_ms=ms))
  return rows


def _fmt(v, spec, missing="-"):
  return missing if v is None else format(v, spec)


def markdown(meta: dict, rows: list[dict], mem: list[dict]) -> str:
  out = [f"{meta['command']}  ",
         f"{meta['date']}; jax {meta['jax']}, {meta['versions']}; {meta['machine']}; "
         f"peak float32 GEMM {meta['peak_gflops']:.1f} GFLOP/s", ""]
  if rows:
    out += ["| mode | B | T | H | implementation | median ms | GFLOP/s | % peak | / fastest "
            "| memory MiB | compile s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
      out.append(f"| {r['mode']} | {r['B']} | {r['T']} | {r['H']} | {r['impl']} | "
                 f"{r['median_ms']:.1f} | {r['gflops']:.1f} | "
                 f"{100 * r['gflops'] / meta['peak_gflops']:.0f} | {r['vs_fastest']:.2f} | "
                 f"{_fmt(r['memory_mib'], '.0f')} | {_fmt(r['compile_s'], '.1f')} |")
  if mem:
    out += ["", "| B | T | H | remat_every | compiled memory MiB | train ms | compile s |",
            "|---|---|---|---|---|---|---|"]
    for r in mem:
      out.append(f"| {r['B']} | {r['T']} | {r['H']} | {r['remat_every'] or 'None (all)'} | "
                 f"{r['memory_mib']:.0f} | {_fmt(r['median_ms'], '.1f', 'not timed')} | "
                 f"{r['compile_s']:.1f} |")
  out += [""] + [f"- {n}" for n in meta["notes"]]
  return "\n".join(out) + "\n"


def _versions() -> str:
  parts = []
  for name in ("flax", "equinox", "torch"):
    try:
      module = __import__(name)
      parts.append(f"{name} {module.__version__}")
    except ImportError:
      parts.append(f"{name} absent")
  try:
    import torch
    parts[-1] += f" ({torch.get_num_threads()} threads)"
  except ImportError:
    pass
  return ", ".join(parts)


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
  """Runs the benchmark; `argv` without the program name (default: ``sys.argv[1:]``)."""
  argv = sys.argv[1:] if argv is None else list(argv)
  ap = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
  ap.add_argument("--grid", nargs="*", default=DEFAULT_GRID, help="B,T,H triples (D = H)")
  ap.add_argument("--modes", nargs="+", default=["train", "fwd"], choices=["train", "fwd"])
  ap.add_argument("--rounds", type=int, default=7)
  ap.add_argument("--warmup", type=int, default=2)
  ap.add_argument("--unroll", nargs="+", type=int, default=[DEFAULT_UNROLL],
                  help=f"lstmx rows, one per value (default: lstmx.lstm's, {DEFAULT_UNROLL})")
  ap.add_argument("--bf16", action="store_true", help="add lstmx with bfloat16 matmul inputs")
  ap.add_argument("--gemm-only", action="store_true",
                  help="add lstmx's GEMMs without its cell math (skeleton.gemm_skeleton): "
                       "what XLA's GEMMs alone cost here, a floor for a lax.scan kernel")
  ap.add_argument("--memory", action="store_true",
                  help="add the memory-mode table (B=32, H=256, T up to 16384)")
  ap.add_argument("--memory-lengths", nargs="+", type=int, default=[1024, 4096, 16384])
  ap.add_argument("--memory-remat", nargs="+", type=int, default=[64, 128])
  ap.add_argument("--memory-time-max-t", type=int, default=1024,
                  help="time the memory modes only up to this T")
  ap.add_argument("--torch-threads", type=int, help="torch.set_num_threads (default: torch's)")
  ap.add_argument("--json", help="write meta and rows to this JSON file")
  ap.add_argument("--markdown", help="write the tables to this markdown file")
  args = ap.parse_args(argv)
  grid = [tuple(int(v) for v in g.split(",")) for g in args.grid]
  if args.torch_threads:
    try:
      import torch
      torch.set_num_threads(args.torch_threads)
    except ImportError:
      pass
  notes: set[str] = set()
  peak = peak_gemm_gflops()
  impls = implementations(args)
  rows = []
  for B, T, H in grid:
    for mode in args.modes:
      rows += time_config(B, T, H, mode, impls, args.rounds, args.warmup, notes)
      print(f"done {mode} {B},{T},{H}", flush=True)
  mem = []
  if args.memory:
    mem = memory_rows(32, 256, args.memory_lengths, [None] + args.memory_remat,
                      args.memory_time_max_t, max(3, args.rounds // 2))
  peak = max(peak, peak_gemm_gflops())  # best of the start and the end of the run
  meta = dict(command=" ".join([prog, *argv]),
              date=datetime.date.today().isoformat(), jax=jax.__version__,
              versions=_versions(), peak_gflops=peak, notes=sorted(notes),
              machine=f"{platform.machine()}, {os.cpu_count()} cores, "
                      f"{jax.devices()[0].platform}")
  text = markdown(meta, rows, mem)
  print(text)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(dict(meta=meta, rows=rows, memory=mem), f, indent=1)
  if args.markdown:
    with open(args.markdown, "w") as f:
      f.write(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
