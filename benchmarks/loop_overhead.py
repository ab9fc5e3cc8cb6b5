"""The training loop's overhead over the bare compiled train step, in one process.

At the long-dependency quick preset's size (an LSTM, H=64, on the copy task
with delay T=100, B=32; 1200 steps, eval_every 250, log_every 50,
checkpoint_every 250, eval_batches 4) it prints:

  - bare: the compiled ``train_step(state, batch)`` in a tight Python loop over
    pre-sampled batches (a pool of 16, reused), blocked once at the end;
  - loop k=1, k=10: `train_and_evaluate`'s training time per step (``wall_time /
    steps`` of its summary: the steps, the periodic evaluations (their compilation
    included) and checkpoints; not the train step's compilation, nor the final and
    at-best evaluations after training, printed apart as ``final_eval_time``)
    with ``train.steps_per_call`` k, after an untimed 50-step run that
    pays the process's one-time costs (imports, orbax's and tensorboardX's start);

and each loop time over the bare one (issue 15's target: at most 1.15).

    python benchmarks/loop_overhead.py              # the real measurement
    python benchmarks/loop_overhead.py --steps 100  # a quick check that it runs
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

if not __package__:  # run as a script: the repository root onto sys.path
  ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  sys.path.insert(0, ROOT)
  sys.path.insert(0, os.path.join(ROOT, "experiments"))

import jax  # noqa: E402

from lstmx import optim  # noqa: E402
from lstmx.config import override  # noqa: E402
from lstmx.lab.sweep import apply  # noqa: E402
from lstmx.train import init_state, make_train_step, train_and_evaluate  # noqa: E402
from lstmx.train.restore import build  # noqa: E402


def quick_config(steps: int):
  """The long-dependency quick preset's LSTM copy trial at T=100, H=64."""
  import long_dependency as ld
  config = apply(ld.presets()["quick"].base, ld.trial("copy", 100, "lstm", 64))
  return override(config, [f"train.steps={steps}", "train.progress=false"])


def bare_step_time(config, steps: int, pool: int = 16) -> float:
  """Seconds per step of the compiled train step over pre-sampled batches."""
  tc = config.train
  task, model = build(config)
  tx = optim.build(config.optimizer, tc.steps)
  modeldef, state = init_state(model, tx, tc.seed)
  sample = jax.jit(lambda k: task.sample(k, tc.batch_size))
  batches = [sample(jax.random.key(i)) for i in range(pool)]
  step = jax.jit(make_train_step(modeldef, task, tx), donate_argnums=0)
  step = step.lower(state, batches[0]).compile()
  for i in range(5):  # warm up
    state, metrics = step(state, batches[i % pool])
  jax.block_until_ready((state, metrics))
  t = time.perf_counter()
  for i in range(steps):
    state, metrics = step(state, batches[i % pool])
  jax.block_until_ready((state, metrics))
  return (time.perf_counter() - t) / steps


def loop_step_time(config, k: int) -> tuple[float, dict]:
  """Seconds per step of `train_and_evaluate` with ``train.steps_per_call=k``."""
  with tempfile.TemporaryDirectory() as workdir:
    summary = train_and_evaluate(override(config, [f"train.steps_per_call={k}"]), workdir)
  return summary["wall_time"] / summary["steps"], summary


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=1200,
                      help="training steps (a multiple of 50 keeps the preset's cadences)")
  parser.add_argument("--per-call", type=int, nargs="+", default=[1, 10],
                      help="train.steps_per_call values to measure")
  args = parser.parse_args(argv)
  config = quick_config(args.steps)
  print(f"long-dependency quick: LSTM H={config.model.hidden_size}, "
        f"B={config.train.batch_size}, copy delay {config.task.params['delay']}, "
        f"{args.steps} steps; devices {jax.devices()}")
  bare = bare_step_time(config, args.steps)
  loop_step_time(override(config, ["train.steps=50", "train.eval_every=50",
                                   "train.checkpoint_every=50"]), 1)  # warm-up, untimed
  print(f"bare compiled step:        {bare * 1e3:8.3f} ms/step")
  for k in args.per_call:
    per_step, summary = loop_step_time(config, k)
    print(f"train_and_evaluate k={k:<3d}:  {per_step * 1e3:8.3f} ms/step  "
          f"ratio {per_step / bare:5.2f}  (wall {summary['wall_time']:.2f} s, final eval "
          f"{summary['final_eval_time']:.2f} s, compile {summary['compile_time']:.2f} s, "
          f"status {summary['status']})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
