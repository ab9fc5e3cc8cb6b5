"""Overfitting: how LSTMs overfit small data, and which regularizer helps most.

Training-set size x model size x regularizer (none; dropout, variational
dropout, recurrent dropout; weight decay; zoneout; DropConnect; AR/TAR; early
stopping; an AWD-style combination) on the Shakespeare character-level
language model, a small UCR classification set (GunPoint) and a forecasting
series (sunspots). The anchor (Zaremba et al. 2014): an unregularized LSTM
language model's training loss keeps falling while its validation loss turns
up, and dropout on the non-recurrent connections closes most of the gap.

    python experiments/overfitting.py --preset tiny    # CI, seconds
    python experiments/overfitting.py --preset quick   # 2-core CPU
    python experiments/overfitting.py --preset full    # a GPU

Needs the data extra (``pip install -e ".[data]"``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys


from lstmx.config import Config, ModelConfig, OptimizerConfig, TaskConfig, TrainConfig
from lstmx.lab import Preset, main

NAME = "overfitting"
R = "model.regularization."
REGULARIZERS = {
    "none": {},
    "dropout": {R + "output_dropout": 0.5, R + "input_dropout": 0.1},  # Zaremba: 0.5 (medium)
    "variational": {R + "output_dropout": 0.3, R + "input_dropout": 0.1,
                    R + "variational": True},
    "recurrent": {R + "recurrent_dropout": 0.25},
    "weight_decay": {"optimizer.name": "adamw", "optimizer.weight_decay": 0.1},
    "zoneout": {R + "zoneout_h": 0.05, R + "zoneout_c": 0.5},
    "dropconnect": {R + "weight_drop": 0.3},
    "ar_tar": {R + "ar": 2.0, R + "tar": 1.0},
    "early_stopping": {"train.patience": 3},
    "awd": {R + "weight_drop": 0.3, R + "output_dropout": 0.3, R + "input_dropout": 0.1,
            R + "variational": True, R + "ar": 2.0, R + "tar": 1.0,
            "optimizer.name": "adamw", "optimizer.weight_decay": 0.01},
}
TASKS = {  # task name -> (fixed params, the train-size key)
    "char_lm": ({"dataset": "shakespeare", "seq_len": 64}, "train_size"),
    "classify": ({"dataset": "gunpoint"}, "train_size"),
    "forecast": ({"dataset": "sunspots", "window": 48}, "train_size"),
}


def base() -> Config:
  return Config(name=NAME, model=ModelConfig(hidden_size=128),
                task=TaskConfig(name="char_lm", params=dict(TASKS["char_lm"][0])),
                optimizer=OptimizerConfig(name="adam", lr=3e-3),
                train=TrainConfig(steps=1000, batch_size=32, log_every=50, eval_every=100,
                                  eval_batches=4, checkpoint_every=500, keep_checkpoints=1))


def trial(task: str, size: int, hidden: int, reg: str) -> dict:
  fixed, size_key = TASKS[task]
  return {"meta.task": task, "meta.train_size": size, "meta.regularizer": reg,
          "task.name": task, "task.params": {**fixed, size_key: size},
          "model.hidden_size": hidden, **REGULARIZERS[reg]}


def sweep(sizes: dict[str, list[int]], hidden: int, regs: list[str],
          heat_sizes: list[int], heat_hidden: list[int]) -> list[dict]:
  out = [trial(t, n, hidden, r) for t, ns in sizes.items() for n in ns for r in regs]
  seen = {json.dumps(o, sort_keys=True) for o in out}
  for n in heat_sizes:
    for h in heat_hidden:
      o = trial("char_lm", n, h, "none")
      if json.dumps(o, sort_keys=True) not in seen:
        out.append(o)
  return out


def presets() -> dict[str, Preset]:
  b = base()
  tiny = dataclasses.replace(b, model=dataclasses.replace(b.model, hidden_size=16),
                             train=dataclasses.replace(b.train, steps=4, eval_every=2,
                                                       log_every=2, checkpoint_every=2,
                                                       eval_batches=1, batch_size=8))
  full = dataclasses.replace(b, train=dataclasses.replace(b.train, steps=20000, batch_size=64,
                                                          eval_every=500))
  return {
      "tiny": Preset(tiny, sweep({"char_lm": [2000], "classify": [10]}, 16,
                                 ["none", "awd", "early_stopping"], [2000], [8])),
      "quick": Preset(b, sweep({"char_lm": [20000, 200000], "classify": [20],
                                "forecast": [300]}, 128, list(REGULARIZERS),
                               [20000, 200000], [64, 256])),
      "full": Preset(full, sweep({"char_lm": [50000, 500000, 4000000], "classify": [10, 40],
                                  "forecast": [200, 1000]}, 256, list(REGULARIZERS),
                                 [50000, 500000, 4000000], [64, 256, 1024])),
  }


def _with_gap(results):
  df = results[results["status"].isin(["completed", "early_stopped"])].copy()
  df["gap"] = df["final.validation.loss"] - df["final.train.loss"]
  return df


def _curves(out_dir: str, trial: str):
  path = os.path.join(out_dir, "trials", trial, "metrics.jsonl")
  rows = [json.loads(line) for line in open(path)] if os.path.exists(path) else []
  return ({s: ([r["step"] for r in rows if r["split"] == s],
               [r["loss"] for r in rows if r["split"] == s]) for s in ("train", "validation")})


def figures(results, fig_dir: str) -> list[tuple[str, str]]:
  import matplotlib.pyplot as plt
  from lstmx.lab.report import heatmap, save_figure
  out_dir = os.path.dirname(fig_dir)
  df = _with_gap(results)
  hidden = df["model.hidden_size"].mode()[0]
  main_df = df[df["model.hidden_size"] == hidden]
  out = []

  lm = main_df[(main_df["meta.task"] == "char_lm")]
  fig, ax = plt.subplots(figsize=(5.5, 3.6))
  if len(lm):
    smallest = lm["meta.train_size"].min()
    for reg, color in (("none", "C3"), ("dropout", "C0"), ("awd", "C2")):
      rows = lm[(lm["meta.train_size"] == smallest) & (lm["meta.regularizer"] == reg)]
      for _, r in rows.iterrows():
        c = _curves(out_dir, r["trial"])
        ax.plot(*c["train"], "--", color=color, label=f"{reg} train")
        ax.plot(*c["validation"], "-", color=color, label=f"{reg} validation")
    ax.set(xlabel="step", ylabel="loss (nats/char)",
           title=f"char LM, {smallest} training characters")
    ax.legend(fontsize=7)
  save_figure(fig, fig_dir, "loss_curves")
  out.append(("Training and validation loss (Zaremba et al. 2014 anchor)", "loss_curves"))

  tasks = list(dict.fromkeys(main_df["meta.task"]))
  fig, axes = plt.subplots(2, len(tasks), figsize=(4.5 * len(tasks), 6), squeeze=False)
  for j, t in enumerate(tasks):
    g = main_df[main_df["meta.task"] == t]
    for n, gg in g.groupby("meta.train_size"):
      gg = gg.set_index("meta.regularizer")
      axes[0][j].plot(gg.index, gg["gap"], "o", label=f"N={n}")
      axes[1][j].plot(gg.index, gg["best.value"], "o", label=f"N={n}")
    axes[0][j].set(title=t, ylabel="validation - train loss")
    axes[1][j].set(ylabel="best validation loss")
    for ax in axes[:, j]:
      ax.tick_params(axis="x", rotation=60, labelsize=7)
    axes[0][j].legend(fontsize=7)
  save_figure(fig, fig_dir, "gap_by_regularizer")
  out.append(("Generalization gap and best validation loss by regularizer", "gap_by_regularizer"))

  heat = df[(df["meta.task"] == "char_lm") & (df["meta.regularizer"] == "none")]
  fig, ax = plt.subplots(figsize=(4.5, 3.4))
  if len(heat):
    table = heat.pivot_table(index="model.hidden_size", columns="meta.train_size", values="gap")
    im = heatmap(ax, table, xlabel="training characters", ylabel="hidden size",
                 title="gap, no regularization", cmap="magma_r")
    fig.colorbar(im)
  save_figure(fig, fig_dir, "gap_heatmap")
  out.append(("Generalization gap over data size x model size (char LM)", "gap_heatmap"))
  return out


def findings(results) -> list[str]:
  df = _with_gap(results)
  hidden = df["model.hidden_size"].mode()[0] if len(df) else None
  df = df[df["model.hidden_size"] == hidden]
  lines = []
  for (t, n), g in df.groupby(["meta.task", "meta.train_size"]):
    best = g.loc[g["best.value"].idxmin()]
    none = g[g["meta.regularizer"] == "none"]
    text = (f"{t}, N={n}: lowest validation loss with {best['meta.regularizer']} "
            f"({best['best.value']:.3f}")
    if len(none):
      text += f" vs {none['best.value'].iloc[0]:.3f} without regularization; " \
              f"unregularized gap {none['gap'].iloc[0]:.3f}"
    lines.append(text + ").")
  return lines


if __name__ == "__main__":
  main(sys.modules[__name__])
