"""Overfitting: how LSTMs overfit small data, and which regularizer helps most.

Training-set size x model size x regularizer (none; dropout, variational
dropout, recurrent dropout; weight decay; zoneout; DropConnect; AR/TAR; early
stopping; an AWD-style combination) on the Shakespeare character-level
language model, a small UCR classification set (GunPoint) and a forecasting
series (sunspots). The anchor (Zaremba et al. 2014): an unregularized LSTM
language model's training loss keeps falling while its validation loss turns
up, and dropout on the non-recurrent connections closes most of the gap.

Every configuration runs over several seeds (the presets' ``seeds``: quick and
full 3, tiny 1; ``--seeds N`` overrides): figures draw the mean with its 95 %
Student t interval, and the findings say in how many seeds they hold
(`lstmx.lab.aggregate`; docs/statistics.md).

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
                                 ["none", "awd", "early_stopping"], [2000], [8]), seeds=1),
      "quick": Preset(b, sweep({"char_lm": [20000, 200000], "classify": [20],
                                "forecast": [300]}, 128, list(REGULARIZERS),
                               [20000, 200000], [64, 256]), seeds=3),
      "full": Preset(full, sweep({"char_lm": [50000, 500000, 4000000], "classify": [10, 40],
                                  "forecast": [200, 1000]}, 256, list(REGULARIZERS),
                                 [50000, 500000, 4000000], [64, 256, 1024]), seeds=3),
  }


# Reporting: means over seeds with 95 % Student t intervals (lstmx.lab.aggregate).

GAP, BEST = "gap", "best.value"  # validation - train loss at the end; best validation loss
KEYS = ["meta.task", "meta.train_size", "meta.regularizer", "model.hidden_size"]


def _with_gap(results):
  """Finished (completed or early-stopped) rows with their generalization gap."""
  df = results[results["status"].isin(["completed", "early_stopped"])].copy()
  if {"final.validation.loss", "final.train.loss"} <= set(df):
    df[GAP] = df["final.validation.loss"] - df["final.train.loss"]
  return df


def _summary(df):
  """Per task, size, regularizer and width: n and the gap's and best validation
  loss's mean and interval (those present)."""
  from lstmx.lab import aggregate
  if not set(KEYS) <= set(df):
    return None
  metrics = [m for m in (GAP, BEST) if m in df and df[m].notna().any()]
  return aggregate.summarize(df, metrics=metrics, keys=KEYS)


def _main_width(df):
  if not len(df):
    return df
  return df[df["model.hidden_size"] == df["model.hidden_size"].mode()[0]]


def _curves(out_dir: str, trial: str):
  path = os.path.join(out_dir, "trials", trial, "metrics.jsonl")
  rows = [json.loads(line) for line in open(path)] if os.path.exists(path) else []
  return ({s: ([r["step"] for r in rows if r["split"] == s],
               [r["loss"] for r in rows if r["split"] == s]) for s in ("train", "validation")})


def figures(results, fig_dir: str) -> list[tuple[str, str]]:
  import matplotlib.pyplot as plt
  import numpy as np
  from lstmx.lab.report import INTERVAL_NOTE, heatmap, plot_curves, plot_mean, save_figure
  out_dir = os.path.dirname(fig_dir)
  df = _with_gap(results)
  summary = _summary(df)
  if summary is None or not len(summary):
    return []
  main_df, main_sum = _main_width(df), _main_width(summary)
  out = []

  lm = main_df[(main_df["meta.task"] == "char_lm")]
  fig, ax = plt.subplots(figsize=(5.5, 3.6))
  if len(lm):
    smallest = lm["meta.train_size"].min()
    for reg, color in (("none", "C3"), ("dropout", "C0"), ("awd", "C2")):
      rows = lm[(lm["meta.train_size"] == smallest) & (lm["meta.regularizer"] == reg)]
      curves = [_curves(out_dir, t) for t in rows["trial"]]
      for split, ls in (("train", "--"), ("validation", "-")):
        plot_curves(ax, [c[split] for c in curves], ls=ls, color=color,
                    label=f"{reg} {split} ({len(curves)} seeds)")
    ax.set(xlabel="step", ylabel="loss (nats/char)",
           title=f"char LM, {smallest} training characters\n{INTERVAL_NOTE}")
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=7)
  save_figure(fig, fig_dir, "loss_curves")
  out.append(("Training and validation loss (Zaremba et al. 2014 anchor)", "loss_curves"))

  tasks = list(dict.fromkeys(main_sum["meta.task"]))
  regs = [r for r in REGULARIZERS if r in set(main_sum["meta.regularizer"])]
  fig, axes = plt.subplots(2, len(tasks), figsize=(4.5 * len(tasks), 6), squeeze=False)
  for j, t in enumerate(tasks):
    g = main_sum[main_sum["meta.task"] == t]
    sizes = sorted(set(g["meta.train_size"]))
    for i, (n, gg) in enumerate(g.groupby("meta.train_size")):
      gg = gg.set_index("meta.regularizer")
      gg = gg.loc[[r for r in regs if r in set(gg.index)]]
      x = np.array([regs.index(r) for r in gg.index]) + 0.2 * (i - (len(sizes) - 1) / 2)
      for row, metric in ((0, GAP), (1, BEST)):
        plot_mean(axes[row][j], gg, x, metric, style="bars", label=f"N={n}", color=f"C{i}")
    axes[0][j].set(title=t, ylabel="validation - train loss")
    axes[1][j].set(ylabel="best validation loss")
    for ax in axes[:, j]:
      ax.set_xticks(range(len(regs)), regs)
      ax.tick_params(axis="x", rotation=60, labelsize=7)
    if axes[0][j].get_legend_handles_labels()[0]:
      axes[0][j].legend(fontsize=7)
  fig.suptitle(INTERVAL_NOTE, fontsize=9)
  save_figure(fig, fig_dir, "gap_by_regularizer")
  out.append(("Generalization gap and best validation loss by regularizer", "gap_by_regularizer"))

  heat = summary[(summary["meta.task"] == "char_lm") & (summary["meta.regularizer"] == "none")]
  fig, ax = plt.subplots(figsize=(4.5, 3.4))
  if len(heat) and f"{GAP}.mean" in heat:
    table = heat.pivot_table(index="model.hidden_size", columns="meta.train_size",
                             values=f"{GAP}.mean", dropna=False)
    half = heat.assign(half=heat[f"{GAP}.ci_high"] - heat[f"{GAP}.mean"]).pivot_table(
        index="model.hidden_size", columns="meta.train_size", values="half", dropna=False)
    half = half.reindex(index=table.index, columns=table.columns)
    labels = [[f"{v:.2f}" + (f"\n+-{h:.2f}" if np.isfinite(h) else "") for v, h in zip(rv, rh)]
              for rv, rh in zip(table.values, half.values)]
    im = heatmap(ax, table, labels, xlabel="training characters", ylabel="hidden size",
                 title="mean gap (+- 95 % t), no regularization", cmap="magma_r")
    fig.colorbar(im)
  save_figure(fig, fig_dir, "gap_heatmap")
  out.append(("Generalization gap over data size x model size (char LM)", "gap_heatmap"))
  return out


def findings(results) -> list[str]:
  import numpy as np
  from lstmx.lab import aggregate
  from lstmx.lab.aggregate import mean_ci_text, seeds_phrase
  df = _with_gap(results)
  summary = _summary(df)
  if summary is None or not len(summary) or f"{BEST}.mean" not in summary:
    return []
  summary = _main_width(summary)
  lines = []
  for (t, n), g in summary.groupby(["meta.task", "meta.train_size"], sort=False):
    g = g.dropna(subset=[f"{BEST}.mean"])
    if not len(g):
      continue
    best = g.loc[g[f"{BEST}.mean"].idxmin()]
    none = g[g["meta.regularizer"] == "none"]
    seeds = int(best["n"])
    text = (f"{t}, N={n}: lowest mean best validation loss with {best['meta.regularizer']} "
            f"({mean_ci_text(best, BEST)}, {seeds} seed{'s' if seeds != 1 else ''}")
    if len(none) and best["meta.regularizer"] != "none":
      none = none.iloc[0]
      where = {"meta.task": t, "meta.train_size": n, "model.hidden_size": best[
          "model.hidden_size"]}
      k, m = aggregate.agree_paired(df, {**where, "meta.regularizer": best["meta.regularizer"]},
                                    {**where, "meta.regularizer": "none"}, BEST, np.less)
      text += (f"; below no regularization, {mean_ci_text(none, BEST)}, in "
               f"{seeds_phrase(k, m)}")
      if f"{GAP}.mean" in none:
        text += f"; unregularized gap {mean_ci_text(none, GAP)}"
    lines.append(text + ").")
  return lines


if __name__ == "__main__":
  main(sys.modules[__name__])
