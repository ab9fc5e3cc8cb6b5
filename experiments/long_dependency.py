"""Long-range dependencies: where do LSTMs stop learning them, and why?

Loss relative to the memoryless baseline, and solved or not, against the
sequence length on copy, adding, selective copy and MQAR, for an LSTM with the
default init (forget-gate bias 1), an LSTM with chrono init (Tallec & Ollivier
2018), a GRU and a causal Transformer; a solved heatmap over length x hidden
size for the LSTM on copy; and gradient flow, the norm of dL/dh_t against the
distance from the loss, at initialization and after training.

Every configuration runs over several seeds (the presets' ``seeds``: quick and
full 3, tiny 1; ``--seeds N`` overrides): figures draw the mean with its 95 %
Student t interval, and the findings say in how many seeds they hold
(`lstmx.lab.aggregate`; docs/statistics.md).

    python experiments/long_dependency.py --preset tiny    # CI, seconds
    python experiments/long_dependency.py --preset quick   # 2-core CPU, ~12 min (3 seeds)
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
                        trial("mqar", 16, "lstm", 16)], seeds=1),
      # The Transformer at T=400 alone would take as long as the rest of the
      # preset on a 2-core CPU (causal attention is T^2); `full` has it.
      "quick": Preset(quick, sweep({"copy": [20, 100], "adding": [100, 400],
                                    "selective_copy": [32], "mqar": [32]},
                                   list(MODELS), 64, [32, 128],
                                   skip=(("adding", 400, "transformer"),)), seeds=3),
      "full": Preset(full, sweep({"copy": [50, 100, 200, 500, 1000, 2000],
                                  "adding": [100, 200, 500, 1000, 2000],
                                  "selective_copy": [64, 256, 1024, 4096],
                                  "mqar": [64, 256, 1024]}, list(MODELS), 128,
                                 [32, 64, 256, 512]), seeds=3),
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


LOSS = "final.validation.loss_over_baseline"
SOLVED = "task.solved"
STALLED = 0.9  # loss / baseline above this: the model has not left the memoryless baseline


def _main_sweep(df):
  """Rows (of the results or the summary) at the most common hidden size."""
  if not len(df) or "model.hidden_size" not in df:
    return df[:0]
  hidden = df["model.hidden_size"].mode()[0]
  return df[df["model.hidden_size"] == hidden]


def _summary(results):
  from lstmx.lab import aggregate
  return aggregate.summarize(results, metrics=[m for m in (LOSS, SOLVED) if m in results])


def _solved(row) -> tuple[int, int]:
  """(seeds solving, seeds) of a summary row."""
  if f"{SOLVED}.mean" not in row or not row["n"]:
    return 0, int(row["n"])
  n = int(row.get(f"{SOLVED}.n", row["n"]))
  return int(round(row[f"{SOLVED}.mean"] * n)) if n else 0, n


def _gradient_curves(out_dir: str, rows) -> dict[str, list]:
  """stage -> [(distance from the last step, ||dL/dh_t||)], one per seed trial."""
  curves = {"init": [], "trained": []}
  for trial in rows["trial"]:
    path = os.path.join(out_dir, "trials", str(trial), "gradient_flow.json")
    if not os.path.exists(path):
      continue
    with open(path) as f:
      flow = json.load(f)
    for stage in curves:
      c = np.asarray(flow[stage])[::-1] + 1e-30  # index = distance from the last step
      curves[stage].append((np.arange(len(c)), c))
  return curves


def figures(results, fig_dir: str) -> list[tuple[str, str]]:
  import matplotlib.pyplot as plt
  import matplotlib.ticker
  from lstmx.lab import aggregate
  from lstmx.lab.report import INTERVAL_NOTE, heatmap, plot_curves, plot_mean, save_figure
  out = []
  summary = _summary(results)
  df = _main_sweep(summary)
  task_names = [t for t in LENGTH_KEY if "task.name" in df and t in set(df["task.name"])]
  if task_names and f"{LOSS}.mean" in df:
    fig, axes = plt.subplots(1, len(task_names), figsize=(4 * len(task_names), 3.4),
                             squeeze=False)
    for ax, t in zip(axes[0], task_names):
      for m, g in df[df["task.name"] == t].groupby("meta.model"):
        plot_mean(ax, g, "meta.length", LOSS, label=m)
      ax.axhline(1.0, color="grey", ls="--", lw=1)
      ax.set(title=t, xlabel="sequence length T", ylabel="loss / memoryless baseline",
             xscale="log")
      ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
      ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{INTERVAL_NOTE} ({_n_text(df)})", fontsize=9)
    save_figure(fig, fig_dir, "loss_vs_length")
    out.append(("Loss relative to the memoryless baseline vs length", "loss_vs_length"))

  heat = summary[(summary["task.name"] == "copy") & (summary["meta.model"] == "lstm")] \
      if {"task.name", "meta.model"} <= set(summary) else summary[:0]
  if len(heat) and f"{LOSS}.mean" in heat:
    table = heat.pivot_table(index="model.hidden_size", columns="meta.length",
                             values=f"{LOSS}.mean", dropna=False)
    cells = {(r["model.hidden_size"], r["meta.length"]): _solved(r) for _, r in heat.iterrows()}
    labels = []
    for h, row in zip(table.index, table.values):
      labels.append([])
      for length, v in zip(table.columns, row):
        k, n = cells.get((h, length), (0, 0))
        text = "" if not np.isfinite(v) else f"{v:.2f}"
        labels[-1].append("solved" if n and k == n else f"{text}\n{k}/{n} solved" if k
                          else text)
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    im = heatmap(ax, table, labels, xlabel="delay T", ylabel="hidden size",
                 title="LSTM on copy: mean loss / baseline", cmap="viridis_r", vmin=0, vmax=1.2)
    fig.colorbar(im)
    save_figure(fig, fig_dir, "solved_heatmap")
    out.append(("Copy solved by length x hidden size (LSTM, default init; mean over seeds, "
                "seeds solving where not all)", "solved_heatmap"))

  fig, ax = plt.subplots(figsize=(5, 3.4))
  ax.set_yscale("log")
  grads = aggregate.counted(results)
  if {"task.name", "meta.model", "meta.length"} <= set(grads):
    grads = _main_sweep(grads[(grads["task.name"] == "copy")
                              & grads["meta.model"].isin(["lstm", "lstm_chrono"])])
  else:
    grads = grads[:0]
  if len(grads):
    longest = grads["meta.length"].max()
    for m, g in grads[grads["meta.length"] == longest].groupby("meta.model"):
      curves = _gradient_curves(os.path.dirname(fig_dir), g)
      for stage, ls in (("init", "--"), ("trained", "-")):
        plot_curves(ax, curves[stage], ls=ls,
                    label=f"{m} {stage} ({len(curves[stage])} seeds)")
    ax.set(xlabel="distance from the last step", ylabel="||dL/dh_t||",
           title=f"gradient flow, copy T={longest}")
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=7)
  save_figure(fig, fig_dir, "gradient_flow")
  out.append(("Gradient norm vs distance from the loss (mean over seeds, 95 % t band)",
              "gradient_flow"))
  return out


def _n_text(summary) -> str:
  """The seed counts of summary rows: "3 seeds" or "2-3 seeds"."""
  n = summary["n"][summary["n"] > 0] if "n" in summary else []
  if not len(n):
    return "0 seeds"
  lo, hi = int(n.min()), int(n.max())
  return f"{lo} seeds" if lo == hi else f"{lo}-{hi} seeds"


def findings(results) -> list[str]:
  from lstmx.lab import aggregate
  if not {"task.name", "meta.model", "meta.length"} <= set(results) or SOLVED not in results:
    return []
  summary = _main_sweep(_summary(results))
  lines = []
  for t in [t for t in LENGTH_KEY if t in set(summary["task.name"])]:
    parts = []
    for m, g in summary[summary["task.name"] == t].groupby("meta.model", sort=False):
      solved = [(int(r["meta.length"]), *_solved(r)) for _, r in g.iterrows()]
      most = [s for s in solved if s[2] and 2 * s[1] > s[2]]
      if most:
        length, k, n = max(most)
        parts.append(f"{m} T={length} ({aggregate.seeds_phrase(k, n)})")
      else:
        parts.append(f"{m} none")
    lines.append(f"{t}: longest length solved in most seeds: " + ", ".join(parts) + ".")
    if LOSS not in results:
      continue
    hidden = summary["model.hidden_size"].iloc[0]
    for length in sorted(set(summary[summary["task.name"] == t]["meta.length"])):
      where = {"task.name": t, "meta.length": length, "model.hidden_size": hidden}
      stuck = aggregate.agree(results, {**where, "meta.model": "lstm"},
                              lambda r: r[LOSS] > STALLED)
      chrono = aggregate.agree(results, {**where, "meta.model": "lstm_chrono"}, SOLVED)
      if stuck[1] and chrono[1] and 2 * stuck[0] > stuck[1] and 2 * chrono[0] > chrono[1]:
        row = summary[(summary["task.name"] == t) & (summary["meta.length"] == length)
                      & (summary["meta.model"] == "lstm")].iloc[0]
        lines.append(
            f"{t}: at T = {int(length)} the default-init LSTM stays at the memoryless "
            f"baseline (loss / baseline {aggregate.mean_ci_text(row, LOSS, '.2f')}, above "
            f"{STALLED} in {aggregate.seeds_phrase(*stuck)}) while chrono init solves the "
            f"task (in {aggregate.seeds_phrase(*chrono)}).")
  return lines


if __name__ == "__main__":
  main(sys.modules[__name__])
