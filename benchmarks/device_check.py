"""The prepared device check (issue 17): on a machine with a GPU (or TPU), one command
checks lstmx's backends there against the reference, times them against the peers and
measures the training engine; it writes ``device_check.json`` and ``device_check.md``.

    pip install --no-deps -e . && python benchmarks/device_check.py --out $OUT  # GPU machine
    python benchmarks/device_check.py --quick --out /tmp/dc   # anywhere: a check that it runs

It needs only the machine's own jax, flax, optax, orbax-checkpoint and (for its rows)
torch, plus lstmx's light pure-Python needs (tensorboardX: carry its wheel where the
machine lacks it; docs/performance.md gives the whole command). Three parts:

(a) contract: every backend (``scan``, ``pallas`` and ``pallas_gpu`` compiled for the
    device, ``cudnn``) in
    float32 and with bfloat16 matmul inputs, on a plain, a packed variable-length and a
    two-layer bidirectional case: outputs and the gradients of a random projection of
    them (w.r.t. parameters and input) against ``backend="reference"`` at the highest
    matmul precision; the worst error relative to the reference's largest magnitude,
    against a tolerance (float32 1e-4, bfloat16 3e-2). A backend that cannot run the case
    is recorded with its error, never skipped silently.
(b) benchmark: lstmx's backends (and what ``auto`` picks) against ``torch.nn.LSTM``
    (cuDNN on a GPU), Flax's ``nnx.RNN(OptimizedLSTMCell)`` and ``jax.experimental.rnn``
    (cuDNN), training step and forward, at issue 17's (B, T, H) grid, float32 and bfloat16,
    with each row's ratio to the fastest of its dtype and % of the measured peak GEMM rate
    of that dtype (`benchmarks.bench`).
(c) engine: one long-dependency trial (LSTM H=64, B=32, copy T=100) through
    `train_and_evaluate`: steps per second with ``train.steps_per_call`` 1 and 10, and
    each against the bare compiled step (near 1: the device is kept busy).
(d) newton: the parallel-in-time backends (``quasi_deer``, ``block_deer``, ``deer`` at
    H = 32) against the scan, forward, at B = 16, H in {32, 128}, T in {1024, 4096, 16384}
    (issue 19), with the Newton sweeps each took at initialization.

Each part has a share of ``--budget-s`` (default 420 s, within issue 17's 8 minutes); a part
out of time records what it finished and marks the rest "not reached", and the JSON is
rewritten after every row, so a killed run keeps what it measured. The exit status is 1
when a backend ran and gave wrong values or gradients (a "FAIL" row), else 0: a backend
that cannot compile or run somewhere is an "error" row to read, not a failed check.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback

if not __package__:  # run as a script: the repository root onto sys.path
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import lstmx  # noqa: E402
from benchmarks import bench, peers  # noqa: E402
from benchmarks.case import Skip  # noqa: E402
from benchmarks.timing import interleaved  # noqa: E402
from lstmx.kernels import dispatch  # noqa: E402

PROG = "python benchmarks/device_check.py"
BACKENDS = ("scan", "pallas", "pallas_gpu", "cudnn")
DTYPES = {"float32": None, "bfloat16": jnp.bfloat16}
TOLERANCE = {"float32": 1e-4, "bfloat16": 3e-2}
GRID = [(32, 128, 256), (16, 512, 128), (64, 256, 512), (128, 64, 1024), (16, 1024, 768)]
QUICK_GRID = [(4, 16, 16)]
SHARES = {"contract": 0.2, "benchmark": 0.45, "engine": 0.15, "newton": 0.2}
NEWTON_GRID = [(16, T, H) for H in (32, 128) for T in (1024, 4096, 16384)]  # issue 19
QUICK_NEWTON_GRID = [(2, 64, 8)]


@dataclasses.dataclass(frozen=True)
class ContractCase:
  """One contract problem: x [B, T, D], `num_layers`, bidirectional, lengths or full."""

  name: str
  B: int
  T: int
  D: int
  H: int
  num_layers: int = 1
  bidirectional: bool = False
  packed: bool = False


def contract_cases(quick: bool) -> list[ContractCase]:
  B, T, D, H = (2, 8, 4, 8) if quick else (16, 64, 64, 128)
  return [ContractCase("plain", B, T, D, H),
          ContractCase("packed", B, T, D, H, packed=True),
          ContractCase("bidirectional, 2 layers, packed", B, T, D, H, num_layers=2,
                       bidirectional=True, packed=True)]


def _problem(case: ContractCase):
  k = jax.random.split(jax.random.key(0), 4)
  params = lstmx.init_lstm(k[0], case.D, case.H, num_layers=case.num_layers,
                           bidirectional=case.bidirectional)
  x = jax.random.normal(k[1], (case.B, case.T, case.D), jnp.float32)
  lengths = None
  if case.packed:  # one full-length sequence, the rest anywhere in 1..T
    lengths = jax.random.randint(k[2], (case.B,), 1, case.T + 1).at[0].set(case.T)
  dirs = 2 if case.bidirectional else 1
  cotangent = jax.random.normal(k[3], (case.B, case.T, dirs * case.H), jnp.float32)
  return params, x, lengths, cotangent


def _values_and_grads(backend: str, compute_dtype, case: ContractCase):
  params, x, lengths, cotangent = _problem(case)

  def loss(params, x):
    y, _ = lstmx.lstm(params, x, seq_lengths=lengths, backend=backend,
                      compute_dtype=compute_dtype)
    return jnp.sum(y.astype(jnp.float32) * cotangent), y

  with jax.default_matmul_precision("highest"):
    (_, y), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(params, x)
  return jax.device_get((y, grads))


def relative_error(got, want) -> float:
  """max |got - want| over every leaf, over the largest |want| of that leaf."""
  errs = [float(np.max(np.abs(np.asarray(g, np.float64) - np.asarray(w, np.float64)))
                / max(float(np.max(np.abs(np.asarray(w, np.float64)))), 1e-30))
          for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want))]
  return max(errs)


def contract(quick: bool, deadline: float, save) -> list[dict]:
  rows = []
  for case in contract_cases(quick):
    want = _values_and_grads("reference", None, case)
    for backend in BACKENDS:
      for dname, dtype in DTYPES.items():
        row = dict(backend=backend, dtype=dname, case=case.name,
                   shape=f"B={case.B} T={case.T} D={case.D} H={case.H}")
        if time.monotonic() > deadline:
          rows.append({**row, "status": "not reached"})
          continue
        t = time.perf_counter()
        why = _unsupported(backend, dtype)
        if why:
          rows.append({**row, "status": "unsupported", "message": why})
          continue
        try:
          err = relative_error(_values_and_grads(backend, dtype, case), want)
          row.update(error=err, tolerance=TOLERANCE[dname],
                     status="pass" if err <= TOLERANCE[dname] else "FAIL")
        except Exception as e:  # noqa: BLE001 - a backend that breaks is a finding
          row.update(status="error", message=_first_line(e))
        row["seconds"] = time.perf_counter() - t
        rows.append(row)
        save()
  return rows


def _unsupported(backend: str, compute_dtype) -> str | None:
  """Why the dispatcher refuses `backend` here (e.g. cuDNN without an NVIDIA GPU), or None."""
  try:
    dispatch.select(backend, dispatch.KernelOptions(compute_dtype=compute_dtype),
                    dtype=jnp.float32)
  except ValueError as e:
    return _first_line(e)
  return None


def _first_line(e: Exception) -> str:
  text = f"{type(e).__name__}: {e}".strip().splitlines()
  return text[0][:300] if text else type(e).__name__


def implementations(dtype_name: str) -> dict:
  """name -> builder(B, T, H, mode) of one dtype's rows."""
  compute = DTYPES[dtype_name]
  impls = {f"lstmx {b}": (lambda B, T, H, mode, b=b: peers.lstmx_case(
      B, T, H, mode, compute_dtype=compute, backend=b)) for b in ("auto",) + BACKENDS}
  impls["torch.nn.LSTM"] = lambda B, T, H, mode: peers.torch_case(B, T, H, mode, dtype=compute)
  impls["flax nnx.RNN(OptimizedLSTMCell)"] = (
      lambda B, T, H, mode: peers.flax_nnx_case(B, T, H, mode, dtype=compute))
  if compute is None:  # its weights are one flat float32 buffer
    impls["jax.experimental.rnn (cuDNN)"] = peers.cudnn_case
  return impls


def peak_gflops(dtype, n: int) -> float:
  """Best GFLOP/s of an n^3 ``jnp.dot`` in `dtype` on the default device."""
  a = jax.random.normal(jax.random.key(0), (n, n), dtype)
  dot = jax.jit(jnp.dot)
  times = interleaved({"dot": lambda: dot(a, a).block_until_ready()}, 5, warmup=1)
  return 2 * n ** 3 / min(times["dot"]) / 1e9


def benchmark(grid, rounds: int, deadline: float, save, notes: set, peaks: dict) -> list[dict]:
  rows = []
  for B, T, H in grid:
    for dname in DTYPES:
      for mode in ("train", "fwd"):
        where = dict(B=B, T=T, H=H, mode=mode, dtype=dname)
        if time.monotonic() > deadline:
          rows.append({**where, "impl": "*", "status": "not reached"})
          continue
        impls = implementations(dname)
        cases, failed = {}, []
        for name, make in impls.items():
          backend = name.split()[-1] if name.startswith("lstmx ") else None
          why = backend and _unsupported(backend, DTYPES[dname])
          if why:
            notes.add(f"{name}: unsupported here ({why})")
            continue
          try:
            cases[name] = make(B, T, H, mode)
          except Skip as e:
            notes.add(f"{name}: skipped ({e})")
          except Exception as e:  # noqa: BLE001 - e.g. a backend that cannot compile here
            failed.append({**where, "impl": name, "status": "error", "message": _first_line(e)})
        timed = interleaved(cases, rounds, warmup=1) if cases else {}
        med = {k: statistics.median(v) for k, v in timed.items()}
        fastest = min(med.values(), default=float("nan"))
        flops = bench.lstm_flops(B, T, H, mode)
        for name, m in med.items():
          gflops = flops / m / 1e9
          rows.append({**where, "impl": name, "status": "ok", "median_ms": 1e3 * m,
                       "gflops": gflops, "pct_peak": 100 * gflops / peaks[dname],
                       "vs_fastest": m / fastest, "compile_s": cases[name].compile_s})
        rows += failed
        save()
        print(f"benchmark {mode} {dname} {B},{T},{H}: done", flush=True)
  return rows


def engine(steps: int, deadline: float) -> dict:
  """Steps per second of the long-dependency trial, against the bare compiled step."""
  from benchmarks.loop_overhead import bare_step_time, loop_step_time
  from lstmx.config import Config, ModelConfig, OptimizerConfig, TaskConfig, TrainConfig
  config = Config(
      name="device_check", model=ModelConfig(hidden_size=64),
      task=TaskConfig(name="copy", params={"delay": 90, "num_symbols": 5, "num_categories": 8}),
      optimizer=OptimizerConfig(name="adam", lr=3e-3, clip_norm=1.0),
      train=TrainConfig(steps=steps, batch_size=32, log_every=50, eval_every=250,
                        eval_batches=4, checkpoint_every=250, keep_checkpoints=1,
                        progress=False))
  out = {"trial": "LSTM H=64, B=32, copy T=100 (the long-dependency quick trial)",
         "steps": steps}
  bare = bare_step_time(config, steps)
  out["bare_ms_per_step"] = 1e3 * bare
  for k in (1, 10):
    if time.monotonic() > deadline:
      out[f"k{k}"] = "not reached"
      continue
    cfg = dataclasses.replace(config, train=dataclasses.replace(config.train, steps_per_call=k))
    per_step, summary = loop_step_time(cfg, k)
    out[f"k{k}"] = {"steps_per_s": 1 / per_step, "ms_per_step": 1e3 * per_step,
                    "over_bare": per_step / bare, "status": summary["status"]}
  return out


def newton(grid, rounds: int, deadline: float, save) -> list[dict]:
  """Forward time of the Newton backends against the scan (B, T, H; D = H), with the
  sweeps each took at initialization (forget-bias init, random inputs; issue 19)."""
  from lstmx.kernels import deer
  rows = []
  for B, T, H in grid:
    methods = ["quasi_deer", "block_deer"] + (["deer"] if H <= 32 else [])  # T (2H)^3
    where = dict(B=B, T=T, H=H)
    if time.monotonic() > deadline:
      rows.append({**where, "impl": "*", "status": "not reached"})
      continue
    cases, sweeps = {}, {}
    params = lstmx.init_lstm(jax.random.key(0), H, H)[0][0]
    xs = jax.random.normal(jax.random.key(1), (T, B, H), jnp.float32)
    zeros = jnp.zeros((B, H), jnp.float32)
    for name in ["scan"] + methods:
      try:
        cases[name] = peers.lstmx_case(B, T, H, "fwd", backend=name)
        if name != "scan":
          result = jax.jit(lambda p, x, m=name: deer.newton_solve(
              p, x, zeros, zeros, newton=deer.NewtonOptions(method=m)))(params, xs)
          sweeps[name] = (int(result.iterations), bool(result.converged))
      except Exception as e:  # noqa: BLE001 - recorded
        rows.append({**where, "impl": name, "status": "error", "message": _first_line(e)})
    timed = interleaved(cases, rounds, warmup=1) if cases else {}
    scan = statistics.median(timed["scan"]) if "scan" in timed else float("nan")
    for name, times in timed.items():
      m = statistics.median(times)
      row = {**where, "impl": name, "status": "ok", "median_ms": 1e3 * m, "vs_scan": m / scan}
      if name in sweeps:
        row["sweeps"], row["converged"] = sweeps[name]
      rows.append(row)
    save()
    print(f"newton {B},{T},{H}: done", flush=True)
  return rows


def _table_row(r: dict, keys: tuple, width: int, cells) -> str:
  """One markdown row: `r`'s `keys`, then ``cells(r)`` where it ran, else its status and
  message in the first of `width` value columns."""
  values = list(cells(r)) if r["status"] == "ok" else (
      [f"{r['status']}: {r.get('message', '')}"] + [""] * (width - 1))
  return "| " + " | ".join([str(r[k]) for k in keys] + values) + " |"


def markdown(report: dict) -> str:
  meta = report["meta"]
  out = [f"`{meta['command']}`  ", f"{meta['date']}; {meta['device']}; jax {meta['jax']} "
         f"({meta['versions']}); peak GEMM " + ", ".join(
             f"{k} {v:.0f} GFLOP/s" for k, v in meta["peak_gflops"].items()), "",
         "### (a) backend contract (values and gradients against the reference)", "",
         "| backend | dtype | case | status | rel. error | tolerance | s |", "|---|---|---|---|---|---|---|"]
  for r in report["contract"]:
    err = f"{r['error']:.1e}" if "error" in r else r.get("message", "")
    tol = f"{r['tolerance']:.0e}" if "tolerance" in r else ""
    out.append(f"| {r['backend']} | {r['dtype']} | {r['case']} | {r['status']} | {err} | {tol} "
               f"| {r.get('seconds', 0):.1f} |")
  out += ["", "### (b) benchmark (median of interleaved rounds)", "",
          "| mode | dtype | B | T | H | implementation | ms | GFLOP/s | % peak | / fastest |",
          "|---|---|---|---|---|---|---|---|---|---|"]
  for r in report["benchmark"]:
    out.append(_table_row(r, ("mode", "dtype", "B", "T", "H", "impl"), 4, lambda r: (
        f"{r['median_ms']:.3f}", f"{r['gflops']:.0f}", f"{r['pct_peak']:.1f}",
        f"{r['vs_fastest']:.2f}")))
  e = report.get("engine") or {}
  out += ["", "### (c) training engine", ""]
  if "error" in e:
    out.append(f"error: {e['error']}")
  elif e:
    out.append(f"{e['trial']}, {e['steps']} steps: bare compiled step "
               f"{e['bare_ms_per_step']:.3f} ms")
    for k in (1, 10):
      r = e.get(f"k{k}")
      out.append(f"- steps_per_call={k}: " + (r if isinstance(r, str) else
                 f"{r['steps_per_s']:.0f} steps/s, {r['ms_per_step']:.3f} ms/step, "
                 f"{r['over_bare']:.2f}x the bare step"))
  if report.get("newton"):
    out += ["", "### (d) Newton solvers over time against the scan (forward, float32)", "",
            "| B | T | H | implementation | ms | / scan | sweeps at init | converged |",
            "|---|---|---|---|---|---|---|---|"]
    for r in report["newton"]:
      out.append(_table_row(r, ("B", "T", "H", "impl"), 4, lambda r: (
          f"{r['median_ms']:.2f}", f"{r['vs_scan']:.2f}", str(r.get("sweeps", "")),
          str(r.get("converged", "")))))
  out += [""] + [f"- {n}" for n in meta["notes"]]
  return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  ap = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
  ap.add_argument("--out", required=True, help="directory for device_check.{json,md}")
  ap.add_argument("--quick", action="store_true",
                  help="tiny shapes, two rounds, 20 engine steps: a check that it runs")
  ap.add_argument("--budget-s", type=float, default=420.0,
                  help="seconds for the three parts together (default 420)")
  ap.add_argument("--rounds", type=int, help="timed rounds per benchmark row (default 5)")
  ap.add_argument("--parts", nargs="+", choices=list(SHARES), default=list(SHARES),
                  help="the parts to run (default all; each keeps its share of the budget)")
  args = ap.parse_args(argv)
  if args.budget_s <= 0:
    ap.error(f"--budget-s: expected a positive number of seconds; got {args.budget_s}")
  os.makedirs(args.out, exist_ok=True)
  start = time.monotonic()
  ends = {}
  acc = start
  for part, share in SHARES.items():
    acc += share * args.budget_s
    ends[part] = acc
  notes: set[str] = set()
  device = jax.devices()[0]
  report = {"meta": dict(command=" ".join([PROG, *argv]), date=datetime.date.today().isoformat(),
                         jax=jax.__version__, versions=bench._versions(),
                         device=f"{device.device_kind} ({dispatch.current_platform()}), "
                                f"{platform.machine()}, {os.cpu_count()} cores",
                         auto_backend=str(dispatch.resolve("auto", dtype=jnp.float32)),
                         notes=[], peak_gflops={}),
            "contract": [], "benchmark": [], "engine": {}, "newton": []}

  def save():
    report["meta"]["notes"] = sorted(notes)
    report["meta"]["elapsed_s"] = time.monotonic() - start
    with open(os.path.join(args.out, "device_check.json"), "w") as f:
      json.dump(report, f, indent=1, default=str)
    with open(os.path.join(args.out, "device_check.md"), "w") as f:
      f.write(markdown(report))

  n = 256 if args.quick else 4096
  report["meta"]["peak_gflops"] = {name: peak_gflops(dt or jnp.float32, n)
                                   for name, dt in DTYPES.items()}
  save()
  if "contract" in args.parts:
    report["contract"] = contract(args.quick, ends["contract"], save)
    save()
  if "benchmark" in args.parts:
    report["benchmark"] = benchmark(QUICK_GRID if args.quick else GRID,
                                    args.rounds or (2 if args.quick else 5), ends["benchmark"],
                                    save, notes, report["meta"]["peak_gflops"])
    save()
  if "engine" in args.parts:
    try:
      report["engine"] = engine(20 if args.quick else 600, ends["engine"])
    except Exception as e:  # noqa: BLE001 - recorded, the other parts kept
      report["engine"] = {"error": _first_line(e), "traceback": traceback.format_exc()}
    save()
  if "newton" in args.parts:
    report["newton"] = newton(QUICK_NEWTON_GRID if args.quick else NEWTON_GRID,
                              args.rounds or (2 if args.quick else 3), ends["newton"], save)
    save()
  print(markdown(report))
  return 1 if any(r["status"] == "FAIL" for r in report["contract"]) else 0


if __name__ == "__main__":
  sys.exit(main())
