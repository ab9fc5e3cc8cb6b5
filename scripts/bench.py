"""Times one LSTM layer's training step (forward + backward) against peers, in one process.

Peers: torch.nn.LSTM (CPU), flax ``nnx.RNN(OptimizedLSTMCell)``. Rounds are
interleaved (every implementation once per round) after a warm-up, and the
median per implementation is reported with its ratio to torch. Peers that
are not installed are skipped with a note.

    python scripts/bench.py                      # the two configs of the core issue
    python scripts/bench.py --grid 32,128,256 16,512,128 --rounds 15 --json out.json

The gradient is taken w.r.t. every parameter and the input; the loss is the
sum of the outputs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

import lstmx


def lstmx_step(B, T, H, *, unroll=1, compute_dtype=None) -> Callable[[], None]:
  params = lstmx.init_lstm(jax.random.key(0), H, H)
  x = jax.random.normal(jax.random.key(1), (B, T, H))

  @jax.jit
  def step(params, x):
    return jax.grad(lambda p, x: jnp.sum(lstmx.lstm(p, x, unroll=unroll,
                                                   compute_dtype=compute_dtype)[0]),
                    argnums=(0, 1))(params, x)
  return lambda: jax.block_until_ready(step(params, x))


def flax_nnx_step(B, T, H) -> Callable[[], None]:
  from flax import nnx
  rnn = nnx.RNN(nnx.OptimizedLSTMCell(H, H, rngs=nnx.Rngs(0)))
  x = jax.random.normal(jax.random.key(1), (B, T, H))

  @nnx.jit
  def step(rnn, x):
    return nnx.grad(lambda m, x: jnp.sum(m(x)), argnums=(0, 1))(rnn, x)
  return lambda: jax.block_until_ready(step(rnn, x))


def torch_step(B, T, H) -> Callable[[], None]:
  import torch
  module = torch.nn.LSTM(H, H, batch_first=True)
  x = torch.randn(B, T, H, requires_grad=True)

  def step():
    module.zero_grad(set_to_none=True)
    x.grad = None
    y, _ = module(x)
    y.sum().backward()
  return step


def flops(B, T, H) -> float:
  """Matmul FLOPs of a training step: 3 passes (fwd, 2x bwd) of two [.,H]x[H,4H] GEMMs."""
  return 3 * 2 * (2 * T * B * H * 4 * H)


def run(grid, rounds: int, unrolls) -> list[dict]:
  rows = []
  for B, T, H in grid:
    impls: dict[str, Callable[[], None]] = {}
    for u in unrolls:
      impls[f"lstmx(unroll={u})"] = lstmx_step(B, T, H, unroll=u)
    try:
      impls["flax nnx.RNN(OptimizedLSTMCell)"] = flax_nnx_step(B, T, H)
    except ImportError as e:
      print(f"skipping flax: {e}")
    try:
      impls["torch.nn.LSTM"] = torch_step(B, T, H)
    except ImportError:
      print("skipping torch.nn.LSTM: torch is not installed (pip install torch==2.13.0)")
    for f in impls.values():  # warm-up (and compile)
      f()
      f()
    times = {k: [] for k in impls}
    for _ in range(rounds):
      for k, f in impls.items():
        t = time.perf_counter()
        f()
        times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    ref = med.get("torch.nn.LSTM")
    for k, m in med.items():
      rows.append(dict(B=B, T=T, H=H, impl=k, median_ms=1e3 * m,
                       gflops=flops(B, T, H) / m / 1e9,
                       vs_torch=(m / ref) if ref else None))
  return rows


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--grid", nargs="+", default=["32,128,256", "16,512,128"],
                  help="B,T,H triples")
  ap.add_argument("--rounds", type=int, default=11)
  ap.add_argument("--unroll", nargs="+", type=int, default=[1, 4])
  ap.add_argument("--json", help="also write the rows to this JSON file")
  args = ap.parse_args()
  grid = [tuple(int(v) for v in g.split(",")) for g in args.grid]
  try:
    import torch
    tv = f"{torch.__version__} ({torch.get_num_threads()} threads)"
  except ImportError:
    tv = None
  import flax
  print(f"# jax {jax.__version__}, flax {flax.__version__}, torch {tv}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
  rows = run(grid, args.rounds, args.unroll)
  print("| B | T | H | implementation | median ms | GFLOP/s | time / torch |")
  print("|---|---|---|---|---|---|---|")
  for r in rows:
    ratio = f"{r['vs_torch']:.2f}" if r["vs_torch"] is not None else "-"
    print(f"| {r['B']} | {r['T']} | {r['H']} | {r['impl']} | {r['median_ms']:.1f} | "
          f"{r['gflops']:.1f} | {ratio} |")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  main()
