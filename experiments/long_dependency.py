"""Long-range dependencies: where do LSTMs stop learning them, and why?

Loss relative to the memoryless baseline, and solved or not, against the
sequence length on copy, adding, selective copy and MQAR, for an LSTM with the
default init (forget-gate bias 1), an LSTM with chrono init (Tallec & Ollivier
2018), a GRU and a causal Transformer; a solved heatmap over length x hidden
size for the LSTM on copy; and gradient flow, the norm of dL/dh_t against the
distance from the loss, at initialization and after training.

    python experiments/long_dependency.py --preset tiny    # CI, seconds
    python experiments/long_dependency.py --preset quick   # 2-core CPU, ~15 min
    python experiments/long_dependency.py --preset full    # a GPU
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import jax
import numpy as np

from lstmx.config import Config, ModelConfig, OptimizerConfig, TaskConfig, TrainConfig
from lstmx.lab import Preset, main

NAME = "long_dependency"
LENGTH_KEY = {"copy": "delay", "adding": "length", "selective_copy": "delay", "mqar": "length"}
TASK_FIXED = {"copy": {"num_symbols": 5, "num_categories": 8}, "adding": {},
              "selective_copy": {"num_symbols": 4, "num_categories": 8},
              "mqar": {"num_pairs": 4, "num_keys": 16, "num_values": 16}}
MODELS = {
    "lstm": {"model.kind": "lstm", "model.init": "forget_bias"},
    "lstm_chrono": {"model.kind": "lstm", "model.init": "chrono"},
    "gru": {"model.kind": "gru"},
    "transformer": {"model.kind": "transformer"},
}


def base() -> Config:
  return Config(
      name=NAME,
      model=ModelConfig(hidden_size=64),
      task=TaskConfig(name="copy", params={}),
      optimizer=OptimizerConfig(name="adam", lr=3e-3, clip_norm=1.0),
      train=TrainConfig(steps=1000, batch_size=32, log_every=50, eval_every=250,
                        eval_batches=4, checkpoint_every=250, keep_checkpoints=1),
  )


def trial(task: str, length: int, model: str, hidden: int) -> dict:
  ov = {"meta.model": model, "meta.length": length, "task.name": task,
        f"task.params.{LENGTH_KEY[task]}": length, "model.hidden_size": hidden,
        **{f"task.params.{k}": v for k, v in TASK_FIXED[task].items()}, **MODELS[model]}
  if model == "lstm_chrono":
    ov["model.chrono_max_length"] = max(length, 3)
  return ov


def sweep(lengths: dict[str, list[int]], models: list[str], hidden: int,
          heat_hidden: list[int], skip: tuple = ()) -> list[dict]:
  """Every (task, length, model) at `hidden`, minus `skip`, plus the LSTM copy heatmap."""
  out = [trial(t, n, m, hidden) for t, ns in lengths.items() for n in ns for m in models
         if (t, n, m) not in skip]
  out += [trial("copy", n, "lstm", h) for n in lengths["copy"] for h in heat_hidden
          if h != hidden]
  return out


def presets() -> dict[str, Preset]:
  b = base()
  tiny = dataclasses.replace(b, train=dataclasses.replace(
      b.train, steps=6, eval_every=3, log_every=3, checkpoint_every=3, eval_batches=1,
      batch_size=8))
  quick = dataclasses.replace(b, train=dataclasses.replace(b.train, steps=1200))
  full = dataclasses.replace(b, model=dataclasses.replace(b.model, hidden_size=128),
                             train=dataclasses.replace(b.train, steps=20000, batch_size=128,
                                                       eval_every=1000))
  return {
      "tiny": Preset(tiny, sweep({"copy": [5, 10]}, list(MODELS), 16, [8])
                     + [trial("adding", 8, "lstm", 16), trial("selective_copy", 8, "lstm", 16),
                        trial("mqar", 16, "lstm", 16)]),
      # The Transformer at T=400 alone would take as long as the rest of the
      # preset on a 2-core CPU (causal attention is T^2); `full` has it.
      "quick": Preset(quick, sweep({"copy": [20, 100], "adding": [100, 400],
                                    "selective_copy": [32], "mqar": [32]},
                                   list(MODELS), 64, [32, 128],
                                   skip=(("adding", 400, "transformer"),))),
      "full": Preset(full, sweep({"copy": [50, 100, 200, 500, 1000, 2000],
                                  "adding": [100, 200, 500, 1000, 2000],
                                  "selective_copy": [64, 256, 1024, 4096],
                                  "mqar": [64, 256, 1024]}, list(MODELS), 128,
                                 [32, 64, 256, 512])),
  }


def analyze(config: Config, workdir: str) -> dict:
  """Gradient flow of one-layer LSTM trials, at init and trained, saved beside the run."""
  if config.model.kind != "lstm" or config.model.num_layers != 1:
    return {}
  from lstmx.analysis import hidden_gradient_norms
  from lstmx.train.restore import build, load_trained
  _, fresh = build(config)
  task, trained = load_trained(config, workdir)
  batch = task.sample(jax.random.key(123), 64)
  curves = {"init": hidden_gradient_norms(fresh, task, batch).tolist(),
            "trained": hidden_gradient_norms(trained, task, batch).tolist()}
  with open(os.path.join(workdir, "gradient_flow.json"), "w") as f:
    json.dump(curves, f)
  end = len(curves["init"]) - 1
  ratio = lambda c: float(c[0] / max(c[end], 1e-30))  # noqa: E731 - earliest vs latest step
  return {"grad_ratio_init": ratio(curves["init"]), "grad_ratio_trained": ratio(curves["trained"])}


def _main_sweep(results):
  hidden = results["model.hidden_size"].mode()[0]
  return results[results["model.hidden_size"] == hidden]


def figures(results, fig_dir: str) -> list[tuple[str, str]]:
  import matplotlib.pyplot as plt
  import matplotlib.ticker
  from lstmx.lab.report import heatmap, save_figure
  out = []
  df = _main_sweep(results[results["status"] != "failed"])
  task_names = [t for t in LENGTH_KEY if t in set(df["task.name"])]
  fig, axes = plt.subplots(1, len(task_names), figsize=(4 * len(task_names), 3.4), squeeze=False)
  for ax, t in zip(axes[0], task_names):
    for m, g in df[df["task.name"] == t].groupby("meta.model"):
      g = g.sort_values("meta.length")
      ax.plot(g["meta.length"], g["final.validation.loss_over_baseline"], "o-", label=m)
    ax.axhline(1.0, color="grey", ls="--", lw=1)
    ax.set(title=t, xlabel="sequence length T", ylabel="loss / memoryless baseline", xscale="log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  axes[0][0].legend(fontsize=8)
  save_figure(fig, fig_dir, "loss_vs_length")
  out.append(("Loss relative to the memoryless baseline vs length", "loss_vs_length"))

  heat = results[(results["task.name"] == "copy") & (results["meta.model"] == "lstm")]
  if len(heat) and "task.solved" in heat:
    table = heat.pivot_table(index="model.hidden_size", columns="meta.length",
                             values="final.validation.loss_over_baseline")
    solved = heat.pivot_table(index="model.hidden_size", columns="meta.length",
                              values="task.solved", aggfunc="max")
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    labels = [["solved" if v else f"{t:.2f}" for v, t in zip(rs, rt)]
              for rs, rt in zip(solved.values, table.values)]
    im = heatmap(ax, table, labels, xlabel="delay T", ylabel="hidden size",
                 title="LSTM on copy: loss / baseline", cmap="viridis_r", vmin=0, vmax=1.2)
    fig.colorbar(im)
    save_figure(fig, fig_dir, "solved_heatmap")
    out.append(("Copy solved by length x hidden size (LSTM, default init)", "solved_heatmap"))

  fig, ax = plt.subplots(figsize=(5, 3.4))
  grads = df[(df["task.name"] == "copy") & df["meta.model"].isin(["lstm", "lstm_chrono"])]
  if len(grads):
    longest = grads["meta.length"].max()
    for _, r in grads[grads["meta.length"] == longest].iterrows():
      path = os.path.join(os.path.dirname(fig_dir), "trials", r["trial"], "gradient_flow.json")
      if not os.path.exists(path):
        continue
      with open(path) as f:
        curves = json.load(f)
      for stage, ls in (("init", "--"), ("trained", "-")):
        c = np.asarray(curves[stage])[::-1]  # index = distance from the last step
        ax.semilogy(np.arange(len(c)), c + 1e-30, ls, label=f"{r['meta.model']} {stage}")
    ax.set(xlabel="distance from the last step", ylabel="||dL/dh_t||",
           title=f"gradient flow, copy T={longest}")
    ax.legend(fontsize=7)
  save_figure(fig, fig_dir, "gradient_flow")
  out.append(("Gradient norm vs distance from the loss", "gradient_flow"))
  return out


def findings(results) -> list[str]:
  df = _main_sweep(results[results["status"] != "failed"])
  lines = []
  for t in [t for t in LENGTH_KEY if t in set(df["task.name"])]:
    parts = []
    for m, g in df[df["task.name"] == t].groupby("meta.model"):
      solved = g[g["task.solved"] == True]["meta.length"]  # noqa: E712
      parts.append(f"{m}: {int(solved.max()) if len(solved) else 'none'}")
    lines.append(f"{t}: longest length solved by " + ", ".join(parts) + ".")
    a = df[(df["task.name"] == t) & (df["meta.model"] == "lstm")]
    b = df[(df["task.name"] == t) & (df["meta.model"] == "lstm_chrono")]
    both = a.merge(b, on="meta.length", suffixes=("_d", "_c"))
    stall = both[(both["final.validation.loss_over_baseline_d"] > 0.9)
                 & (both["task.solved_c"] == True)]  # noqa: E712
    if len(stall):
      lines.append(f"{t}: at T = {', '.join(str(int(v)) for v in stall['meta.length'])} the "
                   "default-init LSTM stays at the memoryless baseline while chrono init "
                   "solves the task.")
  return lines


if __name__ == "__main__":
  main(sys.modules[__name__])
