"""What exact evaluation costs a preset: each trial's evaluation set sizes and the
time of one validation evaluation, against the run's evaluations in all.

    PYTHONPATH=$PWD python benchmarks/evaluation_cost.py experiments/overfitting.py quick
    PYTHONPATH=$PWD python benchmarks/evaluation_cost.py experiments/long_dependency.py quick \
        --limit 3

A trial evaluates its validation set every ``train.eval_every`` steps and all three
splits at the end (docs/evaluation.md); one line per distinct (task, model, batch
size) of the sweep: examples per split, batches per validation evaluation, the
median seconds of one validation evaluation (compiled, over --rounds), and the
estimated evaluation seconds of a whole run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax

from lstmx import optim
from lstmx.config import to_dict
from lstmx.lab import experiment as experiments
from lstmx.lab import sweep as sweeps
from lstmx.train.evaluation import eval_sizes, evaluate
from lstmx.train.restore import build
from lstmx.train.step import init_state, make_eval_step


def _key(config) -> str:
  d = to_dict(config)
  return json.dumps([d["task"], d["model"], d["train"]["batch_size"],
                     d["train"]["eval_batches"]], sort_keys=True)


def measure(config, rounds: int) -> dict:
  """Sizes and seconds of `config`'s evaluations (a freshly initialized model)."""
  tc = config.train
  task, model = build(config)
  modeldef, state = init_state(model, optim.build(config.optimizer, tc.steps), tc.seed)
  step = jax.jit(make_eval_step(modeldef, task))
  examples = tc.eval_batches * tc.batch_size
  sizes = eval_sizes(task, examples)

  def once(split):
    t0 = time.perf_counter()
    evaluate(step, state.params, task, split, tc.batch_size, examples)
    return time.perf_counter() - t0

  once("validation")  # compiles
  val = statistics.median(once("validation") for _ in range(rounds))
  per_example = val / max(sizes["validation"], 1)
  evals = tc.steps // tc.eval_every + (tc.steps % tc.eval_every != 0)
  total = evals * val + per_example * (sizes["train"] + sizes["validation"] + sizes["test"])
  return {"task": task.name, "sizes": sizes,
          "val_batches": -(-sizes["validation"] // tc.batch_size),
          "val_seconds": val, "evals": evals, "run_eval_seconds_est": total}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("experiment")
  parser.add_argument("preset", nargs="?", default="quick")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--limit", type=int, default=0, help="at most this many configs (0: all)")
  args = parser.parse_args()
  presets = experiments.load(args.experiment).presets()
  if args.preset not in presets:
    parser.error(f"preset: expected one of {sorted(presets)}; got {args.preset!r}")
  preset = presets[args.preset]
  seen = {}
  for ov in preset.sweep:
    config = sweeps.apply(preset.base, ov)
    seen.setdefault(_key(config), config)
  configs = list(seen.values())[:args.limit or None]
  for config in configs:
    row = measure(config, args.rounds)
    print(json.dumps({"trial_task": to_dict(config)["task"], **row}))


if __name__ == "__main__":
  main()
