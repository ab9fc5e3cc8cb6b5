"""Newton sweeps with and without ELK damping (issue #19), at init and on trained weights.

For one LSTM layer (B = 16, D = H = 32, float32) and T in {256, 1024}: the sweeps that
quasi-DEER and block-DEER run under their own stopping rule (`newton_solve`, tol 1e-6,
at most MAX_SWEEPS), whether they converged, and the raw iterate's max |h - h_scan|,
undamped and with ELK's damping lam in LAMS, at the forget-bias and chrono inits, and on
the weights of an adding LSTM (H = 32, T = 100, experiments/parallel_time.py's
quick-preset config, trained here for --steps steps with the scan backend) fed adding
inputs of length T.

    PYTHONPATH=$PWD python benchmarks/elk_sweeps.py --steps 1200 --out /tmp/elk.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp

MAX_SWEEPS = 200
LAMS = (0.0, 1e-2, 1e-1)
METHODS = ("quasi_deer", "block_deer")


def _sweeps(layer, xs, lams=LAMS) -> dict[str, list]:
  """Per method and lam: [sweeps run, converged (the solver's own rule), max |h - h_scan|]."""
  import numpy as np

  import lstmx
  from lstmx.kernels import KernelOptions, LayerMasks
  from lstmx.kernels.deer import NewtonOptions, newton_solve
  z = jnp.zeros((xs.shape[1], layer.w_hh.shape[0]), xs.dtype)
  ref = jax.jit(lambda p, x: lstmx.kernels.reference.reference_layer(
      p, x, None, z, z, LayerMasks(), KernelOptions())[0])(layer, xs)
  out = {}
  for m in METHODS:
    for lam in lams:
      r = jax.jit(lambda p, x, m=m, lam=lam: newton_solve(p, x, z, z, newton=NewtonOptions(
          method=m, max_iter=MAX_SWEEPS, damping=lam, fallback=False)))(layer, xs)
      err = float(np.nan_to_num(np.abs(np.asarray(r.hs) - np.asarray(ref)).max(), nan=np.inf))
      out[f"{m}.lam{lam:g}"] = [int(r.iterations), bool(r.converged), float(f"{err:.2e}")]
  return out


def at_init(H: int, lengths, lams=LAMS, inits=("forget_bias", "chrono")) -> dict:
  import lstmx
  rows = {}
  for init in inits:
    for T in lengths:
      kw = {"chrono_max_length": T} if init == "chrono" else {}
      layer = lstmx.init_lstm(jax.random.key(H), H, H, init=init, **kw)[0][0]
      xs = jax.random.normal(jax.random.key(H + 1), (T, 16, H), jnp.float32)
      rows[f"init.{init}.T{T}"] = _sweeps(layer, xs, lams)
      print(json.dumps({f"init.{init}.T{T}": rows[f"init.{init}.T{T}"]}), flush=True)
  return rows


def trained(steps: int, lengths, lams=LAMS) -> dict:
  sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "experiments"))
  import parallel_time
  from lstmx import config as cfg
  from lstmx import optim, tasks
  from lstmx.train.checkpoint import Checkpoints
  from lstmx.train.loop import train_and_evaluate
  from lstmx.train.restore import build
  from lstmx.train.step import init_state
  config = parallel_time.base()
  ov = {k: v for k, v in parallel_time.trial("adding", 100, "lstm", 32).items()
        if not k.startswith("meta.")}
  config = cfg.set_many(config, list(ov.items()) + [("train.steps", steps),
                                                    ("train.checkpoint_every", steps)])
  workdir = tempfile.mkdtemp(prefix="elk_sweeps_")
  t0 = time.time()
  summary = train_and_evaluate(config, workdir)
  print(json.dumps({"trained_s": round(time.time() - t0), "status": summary.get("status"),
                    "loss_over_baseline": summary.get("final", {}).get("validation", {}).get(
                        "loss_over_baseline")}), flush=True)
  task, model = build(config)
  modeldef, target = init_state(model, optim.build(config.optimizer, steps), config.train.seed)
  ckpts = Checkpoints(workdir, config.train.keep_checkpoints)
  state, _ = Checkpoints._restore_step(ckpts.latest, max(ckpts.latest.all_steps()), target)
  ckpts.close()
  layer = modeldef.merge(state.params).lstm.params[0][0]
  rows = {}
  for T in lengths:
    t = tasks.make("adding", length=T)
    xs = jnp.swapaxes(jnp.asarray(t.sample(jax.random.key(123), 16)["inputs"], jnp.float32), 0, 1)
    rows[f"trained.T{T}"] = _sweeps(layer, xs, lams)
    print(json.dumps({f"trained.T{T}": rows[f"trained.T{T}"]}), flush=True)
  return rows


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--steps", type=int, default=1200, help="adding training steps (0: skip)")
  ap.add_argument("--lengths", type=int, nargs="+", default=[256, 1024])
  ap.add_argument("--lams", type=float, nargs="+", default=list(LAMS))
  ap.add_argument("--inits", nargs="*", default=["forget_bias", "chrono"])
  ap.add_argument("--out", default=None)
  a = ap.parse_args()
  t0 = time.time()
  rows = at_init(32, a.lengths, a.lams, a.inits)
  if a.steps:
    rows.update(trained(a.steps, a.lengths, a.lams))
  rows["wall_s"] = round(time.time() - t0)
  rows["loadavg"] = os.getloadavg()
  if a.out:
    with open(a.out, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  main()
