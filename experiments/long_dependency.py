"""Long-range dependencies: where do LSTMs stop learning them, and why?

Two sweeps (the results column ``meta.sweep``):

* ``length``: loss relative to the memoryless baseline, and solved or not,
  against the sequence length on the adding problem and copy (and selective
  copy in `full`), for an LSTM with the default init (forget-gate bias 1), an
  LSTM with chrono init (Tallec & Ollivier 2018; T_max = the task's
  ``longest_dependency``), a GRU and a two-layer causal Transformer; and
  gradient flow, ||dL/dh_t|| against the distance from the first step whose
  loss counts, at init and after training, with an exponential decay rate
  fitted per seed (``analysis.grad_decay_init``);
* ``capacity``: MQAR (Arora et al. 2023, "Zoology") over the number of
  key-value pairs x the hidden size: recall capacity against state size.

Every configuration runs over several seeds (the presets' ``seeds``: quick and
full 3, tiny 1; ``--seeds N`` overrides): figures draw the mean with its 95 %
Student t interval, and the findings say in how many seeds they hold
(`lstmx.lab.aggregate`; docs/statistics.md). Protocol, departures from the
papers and the full preset's targets: docs/experiments.md.

    python experiments/long_dependency.py --preset tiny    # CI, seconds
    python experiments/long_dependency.py --preset quick   # 2-core CPU, ~12 min (3 seeds)
    python experiments/long_dependency.py --preset full    # a GPU
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys

import jax
import numpy as np

from lstmx import tasks
from lstmx.config import Config, ModelConfig, OptimizerConfig, TaskConfig, TrainConfig
from lstmx.lab import Preset, main

NAME = "long_dependency"
LIMIT = "long_range"
LENGTH_KEY = {"copy": "delay", "adding": "length", "selective_copy": "delay", "mqar": "length"}
MODELS = {
    "lstm": {"model.kind": "lstm", "model.init": "forget_bias"},
    "lstm_chrono": {"model.kind": "lstm", "model.init": "chrono"},
    "gru": {"model.kind": "gru"},
    "transformer": {"model.kind": "transformer", "model.num_layers": 2},
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


def chrono_max_length(task: str, params: dict) -> int:
  """T_max of chrono init for a task: its longest dependency (Tallec & Ollivier
  2018 set T_max to the task's dependency range; copy: delay + S), at least 3."""
  return max(int(tasks.make(task, **params).longest_dependency), 3)


def trial(task: str, length: int, model: str, hidden: int, sweep: str = "length",
          **params) -> dict:
  """One configuration: `task` at `length` (its `LENGTH_KEY` parameter), `model`
  (a `MODELS` name) of `hidden` units; `params` are further task parameters."""
  params = {LENGTH_KEY[task]: length, **params}
  ov = {"meta.sweep": sweep, "meta.model": model, "meta.length": length, "task.name": task,
        "model.hidden_size": hidden,
        **{f"task.params.{k}": v for k, v in params.items()}, **MODELS[model]}
  if model == "lstm_chrono":
    ov["model.chrono_max_length"] = chrono_max_length(task, params)
  return ov


def length_sweep(lengths: dict[str, list[int]], models: list[str], hidden: int,
                 params: dict[str, dict] | None = None, skip: tuple = ()) -> list[dict]:
  """Every (task, length, model) at `hidden`, minus `skip` ((task, length, model))."""
  params = params or {}
  return [trial(t, n, m, hidden, **params.get(t, {})) for t, ns in lengths.items()
          for n in ns for m in models if (t, n, m) not in skip]


def capacity_sweep(pairs: list[int], hiddens: list[int], models: list[str], length: int,
                   vocab_size: int) -> list[dict]:
  """MQAR at one `length` over key-value pairs x hidden size (Zoology's figure 2 axes)."""
  return [{**trial("mqar", length, m, h, sweep="capacity", num_pairs=n, vocab_size=vocab_size),
           "meta.pairs": n} for m in models for n in pairs for h in hiddens]


def presets() -> dict[str, Preset]:
  b = base()
  tiny = dataclasses.replace(b, train=dataclasses.replace(
      b.train, steps=6, eval_every=3, log_every=3, checkpoint_every=3, eval_batches=1,
      batch_size=8))
  quick = dataclasses.replace(b, train=dataclasses.replace(b.train, steps=1200))
  full = dataclasses.replace(b, model=dataclasses.replace(b.model, hidden_size=128),
                             train=dataclasses.replace(b.train, steps=20000, batch_size=128,
                                                       eval_every=1000))
  small = {"copy": {"num_symbols": 3, "num_categories": 4},
           "selective_copy": {"num_symbols": 2, "num_categories": 4}}
  return {
      "tiny": Preset(tiny, length_sweep({"copy": [5]}, list(MODELS), 16, small)
                     + length_sweep({"adding": [8], "selective_copy": [8]},
                                    ["lstm", "lstm_chrono"], 16, small)
                     + capacity_sweep([2], [8], ["lstm"], 8, 8), seeds=1),
      # Copy and adding at the papers' settings (copy: S = 10 symbols of K = 8);
      # MQAR at a small vocabulary (one-hot inputs on a CPU). The Transformer
      # runs at the shortest lengths only: on a 2-core CPU one of its trials at
      # adding T=200 costs about as much as 40 LSTM trials at T=50 (measured
      # under load); `full` has it at every length.
      "quick": Preset(quick, length_sweep({"adding": [50, 200, 400], "copy": [20, 100]},
                                          list(MODELS), 64,
                                          skip=(("adding", 200, "transformer"),
                                                ("adding", 400, "transformer"),
                                                ("copy", 100, "transformer")))
                      + capacity_sweep([2, 4, 8], [16, 64], ["lstm"], 32, 64)
                      + capacity_sweep([2, 4, 8], [64], ["transformer"], 32, 64),
                      seeds=3),
      # Tallec & Ollivier 2018: copy T = 500 and 2000, adding T = 200 and 750;
      # Mamba's selective copy (4096 steps, 16 symbols); Zoology's MQAR figure 2
      # (vocabulary 8192, pairs 4..64, model widths 64..512) at T = 256.
      "full": Preset(full, length_sweep({"copy": [100, 500, 1000, 2000],
                                         "adding": [100, 200, 400, 750, 1000],
                                         "selective_copy": [1008, 4080]}, list(MODELS), 128)
                     + capacity_sweep([4, 8, 16, 32, 64], [64, 128, 256, 512],
                                      ["lstm", "gru", "transformer"], 256, 8192), seeds=3),
  }


def decay_rate(norms, start: int) -> tuple[float, float]:
  """(rate, r2): the least-squares fit ``log ||dL/dh_t|| ~ c - rate * d`` over the
  distances ``d = start - t`` for t = start, ..., 0 (`start`: the first step whose
  loss counts), skipping norms that underflowed (<= 1e-35); r2 is the fit's R^2.
  A rate of 0.1 means the gradient shrinks e-fold every 10 steps."""
  y = np.asarray(norms, np.float64)[:start + 1][::-1]
  d = np.arange(len(y), dtype=np.float64)
  ok = np.isfinite(y) & (y > 1e-35)
  if ok.sum() < 3:
    return math.nan, math.nan
  slope, icept = np.polyfit(d[ok], np.log(y[ok]), 1)
  resid = np.log(y[ok]) - (slope * d[ok] + icept)
  total = np.sum((np.log(y[ok]) - np.log(y[ok]).mean()) ** 2)
  return float(-slope), float(1 - np.sum(resid ** 2) / total) if total > 0 else math.nan


def analyze(config: Config, workdir: str) -> dict:
  """Gradient flow of one-layer LSTM trials of the length sweep, at init and trained,
  saved beside the run (``gradient_flow.json``), with decay rates fitted."""
  if (config.model.kind != "lstm" or config.model.num_layers != 1
      or config.task.name not in ("copy", "adding")):
    return {}
  from lstmx.analysis import hidden_gradient_norms
  from lstmx.train.restore import build, load_trained
  _, fresh = build(config)
  task, trained = load_trained(config, workdir)
  batch = task.sample(jax.random.key(123), 64)
  start = int(np.argmax(np.asarray(batch.get("recall", batch["mask"])).max(axis=0) > 0))
  curves = {"init": hidden_gradient_norms(fresh, task, batch).tolist(),
            "trained": hidden_gradient_norms(trained, task, batch).tolist(), "start": start}
  with open(os.path.join(workdir, "gradient_flow.json"), "w") as f:
    json.dump(curves, f)
  out = {}
  for stage in ("init", "trained"):
    rate, r2 = decay_rate(curves[stage], start)
    out[f"grad_decay_{stage}"], out[f"grad_fit_r2_{stage}"] = rate, r2
  return out


LOSS = "final.validation.loss_over_baseline"
ACC = "final.validation.accuracy"
SOLVED = "task.solved"
DECAY = "analysis.grad_decay_init"
R2 = "analysis.grad_fit_r2_init"
ONE_VALUE = 0.5  # adding: loss / baseline of a model that remembers one of the two values
SLOWER = 10.0  # (c): chrono's gradient decays at least this many times slower


def _sweep(df, name: str):
  """Rows (of the results or a summary) of one sweep (``meta.sweep``)."""
  if "meta.sweep" not in df:
    return df[:0]
  return df[df["meta.sweep"] == name]


def _summary(results):
  from lstmx.lab import aggregate
  metrics = [m for m in (LOSS, ACC, SOLVED, DECAY, R2, "analysis.grad_decay_trained")
             if m in results]
  return aggregate.summarize(results, metrics=metrics)


def _solved(row) -> tuple[int, int]:
  """(seeds solving, seeds) of a summary row."""
  if f"{SOLVED}.mean" not in row or not row["n"]:
    return 0, int(row["n"])
  n = int(row.get(f"{SOLVED}.n", row["n"]))
  return int(round(row[f"{SOLVED}.mean"] * n)) if n else 0, n


def _gradient_curves(out_dir: str, rows) -> dict[str, list]:
  """stage -> [(distance from the first loss step, ||dL/dh_t||)], one per seed trial."""
  curves = {"init": [], "trained": []}
  for trial_id in rows["trial"]:
    path = os.path.join(out_dir, "trials", str(trial_id), "gradient_flow.json")
    if not os.path.exists(path):
      continue
    with open(path) as f:
      flow = json.load(f)
    start = int(flow.get("start", len(flow["init"]) - 1))
    for stage in curves:
      c = np.asarray(flow[stage])[:start + 1][::-1] + 1e-30  # index = distance
      curves[stage].append((np.arange(len(c)), c))
  return curves


def _gradient_task(results) -> tuple[str, int] | None:
  """(task, length) of the gradient-flow figure and finding: the longest adding
  length of the length sweep (copy where there is no adding)."""
  from lstmx.lab import aggregate
  rows = _sweep(aggregate.counted(results), "length")
  for t in ("adding", "copy"):
    if "task.name" in rows and (rows["task.name"] == t).any():
      return t, int(rows[rows["task.name"] == t]["meta.length"].max())
  return None


def _log_ticks(ax, values) -> None:
  """Ticks of a log x axis at `values`, written as plain numbers."""
  import matplotlib.ticker
  ax.set_xticks(sorted({float(v) for v in values}))
  ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
  ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def figures(results, fig_dir: str) -> list[tuple[str, str]]:
  import matplotlib.pyplot as plt
  from lstmx.lab import aggregate
  from lstmx.lab.report import INTERVAL_NOTE, plot_curves, plot_mean, save_figure
  out = []
  summary = _summary(results)
  df = _sweep(summary, "length")
  task_names = [t for t in LENGTH_KEY if "task.name" in df and t in set(df["task.name"])]
  if task_names and f"{LOSS}.mean" in df:
    fig, axes = plt.subplots(1, len(task_names), figsize=(4 * len(task_names), 3.4),
                             squeeze=False)
    for ax, t in zip(axes[0], task_names):
      for m, g in df[df["task.name"] == t].groupby("meta.model", sort=False):
        plot_mean(ax, g, "meta.length", LOSS, label=m)
      ax.axhline(1.0, color="grey", ls="--", lw=1, label="memoryless baseline")
      if t == "adding":
        ax.axhline(ONE_VALUE, color="grey", ls=":", lw=1, label="one value remembered")
      ax.set(title=t, xlabel="sequence length T", ylabel="loss / memoryless baseline",
             xscale="log")
      _log_ticks(ax, df[df["task.name"] == t]["meta.length"])
      ax.legend(fontsize=7)
    fig.suptitle(f"{INTERVAL_NOTE} ({_n_text(df)})", fontsize=9)
    save_figure(fig, fig_dir, "loss_vs_length")
    out.append(("Loss relative to the memoryless baseline vs length", "loss_vs_length"))

  cap = _sweep(summary, "capacity")
  if len(cap) and f"{LOSS}.mean" in cap and "meta.pairs" in cap:
    models = list(dict.fromkeys(cap["meta.model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 3.4), squeeze=False,
                             sharey=True)
    vocab = int(results["task.params.vocab_size"].dropna().iloc[0])
    ln_v = math.log(vocab - vocab // 2)
    for ax, m in zip(axes[0], models):
      for h, g in cap[cap["meta.model"] == m].groupby("model.hidden_size"):
        plot_mean(ax, g, "meta.pairs", LOSS, label=f"hidden {int(h)}")
      pairs = np.array(sorted(set(cap["meta.pairs"])), float)
      ax.axhline(1.0, color="grey", ls="--", lw=1, label="ln V (memoryless)")
      ax.plot(pairs, np.log(pairs) / ln_v, color="grey", ls=":", lw=1,
              label="bag of values (ln N)")
      ax.set(title=f"MQAR, {m}", xlabel="key-value pairs N", xscale="log",
             ylabel="loss / ln V")
      _log_ticks(ax, pairs)
      ax.legend(fontsize=7)
    fig.suptitle(f"T={int(cap['meta.length'].iloc[0])}, V={vocab}; {INTERVAL_NOTE} "
                 f"({_n_text(cap)})", fontsize=9)
    save_figure(fig, fig_dir, "mqar_capacity")
    out.append(("MQAR: recall vs key-value pairs and hidden size", "mqar_capacity"))

  fig, ax = plt.subplots(figsize=(5, 3.4))
  ax.set_yscale("log")
  where = _gradient_task(results)
  if where is not None:
    t, length = where
    rows = _sweep(aggregate.counted(results), "length")
    rows = rows[(rows["task.name"] == t) & (rows["meta.length"] == length)
                & rows["meta.model"].isin(["lstm", "lstm_chrono"])]
    for m, g in rows.groupby("meta.model"):
      curves = _gradient_curves(os.path.dirname(fig_dir), g)
      for stage, ls in (("init", "--"), ("trained", "-")):
        plot_curves(ax, curves[stage], ls=ls,
                    label=f"{m} {stage} ({len(curves[stage])} seeds)")
    ax.set(xlabel="distance from the first loss step", ylabel="||dL/dh_t||",
           title=f"gradient flow, {t} T={length}")
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


def _most(k: int, n: int) -> bool:
  return n > 0 and 2 * k > n


def _length_findings(results, summary) -> list[str]:
  """Per task: the longest length each model solves; (a) default LSTM not solving
  where chrono solves; (b) the length beyond which the default LSTM stops solving."""
  from lstmx.lab import aggregate
  lines = []
  summary = summary[summary["n"] > 0]  # configurations with a finished seed
  for t in [t for t in LENGTH_KEY if t in set(summary["task.name"])]:
    rows = summary[summary["task.name"] == t]
    parts = []
    for m, g in rows.groupby("meta.model", sort=False):
      most = [(int(r["meta.length"]), *_solved(r)) for _, r in g.iterrows()
              if _most(*_solved(r))]
      parts.append(f"{m} T={max(most)[0]} ({aggregate.seeds_phrase(*max(most)[1:])})"
                   if most else f"{m} none")
    lines.append(f"{t}: longest length solved in most seeds: " + ", ".join(parts) + ".")
    if LOSS not in results:
      continue
    lstm = rows[rows["meta.model"] == "lstm"].sort_values("meta.length")
    for _, row in lstm.iterrows():
      length = int(row["meta.length"])
      where = {"meta.sweep": "length", "task.name": t, "meta.length": length}
      k, n = aggregate.agree(results, {**where, "meta.model": "lstm"}, SOLVED)
      unsolved = (n - k, n)
      chrono = aggregate.agree(results, {**where, "meta.model": "lstm_chrono"}, SOLVED)
      if not (_most(*unsolved) and _most(*chrono)):
        continue
      text = (f"{t}: at T = {length} the default-init LSTM does not solve the task "
              f"(in {aggregate.seeds_phrase(*unsolved)}; loss / baseline "
              f"{aggregate.mean_ci_text(row, LOSS, '.2f')}")
      if t == "adding":
        above = aggregate.agree(results, {**where, "meta.model": "lstm"},
                                lambda r: r[LOSS] > ONE_VALUE)
        text += (f", above the one-value plateau {ONE_VALUE} in "
                 f"{aggregate.seeds_phrase(*above)}")
      lines.append(text + f") while chrono init solves it (in "
                   f"{aggregate.seeds_phrase(*chrono)}).")
    solved = [(int(r["meta.length"]), _solved(r)) for _, r in lstm.iterrows()]
    for (short, ks), (long_, kl) in zip(solved, solved[1:]):
      if _most(*ks) and not any(_most(*k) for n, k in solved if n >= long_):
        row = lstm[lstm["meta.length"] == long_].iloc[0]
        lines.append(
            f"{t}: the default-init LSTM solves T = {short} (in "
            f"{aggregate.seeds_phrase(*ks)}) and stops solving from T = {long_} on (solved "
            f"in {aggregate.seeds_phrase(*kl)} at T = {long_}; loss / baseline "
            f"{aggregate.mean_ci_text(row, LOSS, '.2f')}).")
  return lines


def _gradient_finding(results, summary) -> list[str]:
  """(c): the decay rates of ||dL/dh_t|| at init, default vs chrono, per seed."""
  from lstmx.lab import aggregate
  where = _gradient_task(results)
  if where is None or DECAY not in results:
    return []
  t, length = where
  at = {"meta.sweep": "length", "task.name": t, "meta.length": length}
  rows = {m: aggregate.select(summary, {**at, "meta.model": m})
          for m in ("lstm", "lstm_chrono")}
  if any(not len(r) or not np.isfinite(r[f"{DECAY}.mean"].iloc[0]) for r in rows.values()):
    return []
  default, chrono = rows["lstm"].iloc[0], rows["lstm_chrono"].iloc[0]
  slower = aggregate.agree_paired(results, {**at, "meta.model": "lstm"},
                                  {**at, "meta.model": "lstm_chrono"}, DECAY,
                                  lambda a, b: a >= SLOWER * b)
  ratio = default[f"{DECAY}.mean"] / chrono[f"{DECAY}.mean"]
  return [
      f"{t} T = {length}, at init: ||dL/dh_t|| against the distance d from the loss, "
      f"log ||dL/dh_t|| = c - rate * d fitted per seed: default-init LSTM rate "
      f"{aggregate.mean_ci_text(default, DECAY, '.4f')} per step (R^2 "
      f"{aggregate.mean_ci_text(default, R2, '.2f')}; an exponential where R^2 is near 1), "
      f"chrono {aggregate.mean_ci_text(chrono, DECAY, '.4f')} (R^2 "
      f"{aggregate.mean_ci_text(chrono, R2, '.2f')}): chrono's decays {ratio:.0f}x slower "
      f"(ratio of the means), at least {SLOWER:.0f}x slower in "
      f"{aggregate.seeds_phrase(*slower)} (paired by seed)."]


def _capacity_findings(summary) -> list[str]:
  """MQAR: per model and hidden size, the most pairs solved in most seeds."""
  from lstmx.lab import aggregate
  cap = _sweep(summary, "capacity")
  cap = cap[cap["n"] > 0] if len(cap) else cap
  if not len(cap) or "meta.pairs" not in cap:
    return []
  parts = []
  for (m, h), g in cap.groupby(["meta.model", "model.hidden_size"], sort=False):
    most = [(int(r["meta.pairs"]), r) for _, r in g.iterrows() if _most(*_solved(r))]
    hardest = g.sort_values("meta.pairs").iloc[-1]
    text = f"{m} H={int(h)}: " + (f"up to N={max(most, key=lambda x: x[0])[0]}"
                                  if most else "none")
    if f"{ACC}.mean" in g:
      text += (f" (accuracy at N={int(hardest['meta.pairs'])} "
               f"{aggregate.mean_ci_text(hardest, ACC, '.2f')})")
    parts.append(text)
  return [f"MQAR at T = {int(cap['meta.length'].iloc[0])}: pairs solved in most seeds: "
          + "; ".join(parts) + "."]


def findings(results) -> list[str]:
  if not {"task.name", "meta.model", "meta.length", "meta.sweep"} <= set(results) \
      or SOLVED not in results:
    return []
  summary = _summary(results)
  return (_length_findings(results, _sweep(summary, "length"))
          + _gradient_finding(results, summary) + _capacity_findings(summary))


def headline(results) -> dict:
  """For ``lstmx report``'s page: the adding curves over length, and the length beyond
  which the default-init LSTM stops solving adding where chrono init still does."""
  lines = [line for line in findings(results) if line.startswith("adding: ")]
  stop = [line for line in lines if "stops solving" in line]
  chrono = [line for line in lines if "while chrono init solves it" in line]
  return {"figure": "loss_vs_length", "where": {"meta.sweep": "length", "task.name": "adding"},
          "finding": " ".join(stop[:1] + chrono[-1:]) or None}


if __name__ == "__main__":
  main(sys.modules[__name__])
