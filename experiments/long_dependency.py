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

Every arm trains at a learning-rate grid (`RATES`) for a budget of steps, ending once
it meets its task's solved rule (``train.stop_when_solved``); each seed's rate is
chosen on validation data (`lstmx.lab.selection`) and the chosen runs report test
metrics. Each task family has a positive control (`CONTROLS`: a setting a cited
paper solves), trained like every arm; the findings are records
(`lstmx.lab.solving`: solve rates with exact intervals, stopping points and
contrasts by Fisher's exact test, Kaplan-Meier steps to solve), withheld where
their control failed. quick and full run 5 seeds, tiny 1 (``--seeds N``). Protocol,
departures from the papers and the full preset's targets: docs/experiments.md.

    python experiments/long_dependency.py --preset tiny    # CI, seconds
    python experiments/long_dependency.py --preset quick   # 2-core CPU, ~15 min (5 seeds)
    python experiments/long_dependency.py --preset full    # a GPU
"""

from __future__ import annotations

import dataclasses
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
MODELS = {"lstm": {"model.kind": "lstm", "model.init": "forget_bias"},
          "lstm_chrono": {"model.kind": "lstm", "model.init": "chrono"},
          "gru": {"model.kind": "gru"},
          "transformer": {"model.kind": "transformer", "model.num_layers": 2}}
SHOWN = {"lstm": "LSTM", "lstm_chrono": "LSTM, chrono init", "gru": "GRU", "mqar": "MQAR",
         "transformer": "Transformer", "adding": "adding problem"}  # display names


def base() -> Config:
  return Config(
      name=NAME, model=ModelConfig(hidden_size=64), task=TaskConfig(name="copy", params={}),
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


# Learning-rate grids (log-spaced, factor ~3), each trial's rate chosen on validation:
# recurrent models' Adam rates; the Transformer's a decade lower (1e-2 fails it).
RATES = {"transformer": (3e-4, 1e-3, 3e-3)}
RECURRENT_RATES = (3e-3, 1e-2, 3e-2)


def with_rates(sweep: list[dict], steps: int) -> list[dict]:
  """Every override of `sweep` at each rate of its model's grid (`RATES`), with its
  training budget `steps` (unless it sets its own) written into the results."""
  return [{**o, "optimizer.lr": lr, "train.steps": o.get("train.steps", steps)}
          for o in sweep for lr in RATES.get(o["meta.model"], RECURRENT_RATES)]


def presets() -> dict[str, Preset]:
  b = base()
  tiny = dataclasses.replace(b, train=dataclasses.replace(b.train, steps=6, eval_every=3,
      log_every=3, checkpoint_every=3, eval_batches=1, batch_size=8))
  quick = dataclasses.replace(b, train=dataclasses.replace(  # solved: held at 2 evaluations
      b.train, steps=2000, eval_every=100, eval_batches=8, checkpoint_every=500,
      stop_when_solved=True, solved_streak=2))
  full = dataclasses.replace(b, model=dataclasses.replace(b.model, hidden_size=128),
                             train=dataclasses.replace(quick.train, steps=20000, batch_size=128,
                                                       eval_every=500, eval_batches=4))
  small = {"copy": {"num_symbols": 3, "num_categories": 4},
           "selective_copy": {"num_symbols": 2, "num_categories": 4}}
  return {
      "tiny": Preset(tiny, length_sweep({"copy": [5]}, list(MODELS), 16, small)
                     + length_sweep({"adding": [8], "selective_copy": [8]},
                                    ["lstm", "lstm_chrono"], 16, small)
                     + capacity_sweep([2], [8], ["lstm"], 8, 8), seeds=1),
      # Every arm at its learning-rate grid (RATES) for at most 2000 steps, ending
      # once solved; each task family's control (CONTROLS) trains like every arm;
      # the costliest arms first, so that the two workers end together.
      # MQAR at T = 16 (2 and 4 pairs): the Transformer control costs ~40 ms a step
      # at T = 32 on one core. The GRU, chrono on copy (0/5 like the default at T =
      # 20 in the 5-seed run), MQAR's hidden-size axis and longer lengths: `full`.
      "quick": Preset(quick, with_rates(
          [{**o, "train.batch_size": 64}
           for o in capacity_sweep([2], [64], ["transformer"], 16, 64)]
          + length_sweep({"copy": [20]}, ["transformer", "lstm"], 64)
          + length_sweep({"adding": [200, 50]}, ["lstm", "lstm_chrono"], 64)
          + capacity_sweep([2, 4], [64], ["lstm"], 16, 64), 2000), seeds=5),
      # Tallec & Ollivier 2018: copy T = 500 and 2000, adding T = 200 and 750;
      # Mamba's selective copy (4096 steps, 16 symbols); Zoology's MQAR figure 2
      # (vocabulary 8192, pairs 4..64, model widths 64..512) at T = 256.
      "full": Preset(full, with_rates(
          length_sweep({"copy": [100, 500, 1000, 2000],
                        "adding": [100, 200, 400, 750, 1000],
                        "selective_copy": [1008, 4080]}, list(MODELS), 128)
          + capacity_sweep([4, 8, 16, 32, 64], [64, 128, 256, 512],
                           ["lstm", "gru", "transformer"], 256, 8192), 20000), seeds=5),
  }


def analyze(config: Config, workdir: str) -> dict:
  """Gradient flow of one-layer LSTM trials of the length sweep, at init and trained,
  saved beside the run (``gradient_flow.json``), with decay rates fitted."""
  if (config.model.kind != "lstm" or config.model.num_layers != 1
      or config.task.name not in ("copy", "adding")):
    return {}
  from lstmx.analysis import decay_rate, hidden_gradient_norms, save_gradient_flow
  from lstmx.lab import trained as trial
  _, fresh = trial.fresh(config)
  task, trained = trial.trained(config, workdir)
  batch = task.sample(jax.random.key(123), 64)
  start = int(np.argmax(np.asarray(batch.get("recall", batch["mask"])).max(axis=0) > 0))
  curves = {"init": hidden_gradient_norms(fresh, task, batch).tolist(),
            "trained": hidden_gradient_norms(trained, task, batch).tolist(), "start": start}
  save_gradient_flow(workdir, curves)
  out = {}
  for stage in ("init", "trained"):
    rate, r2 = decay_rate(curves[stage], start)
    out[f"grad_decay_{stage}"], out[f"grad_fit_r2_{stage}"] = rate, r2
  return out


LOSS, ACC = "final.test.loss_over_baseline", "final.test.accuracy"  # of the chosen rows
SOLVED, ORDER_FREE, BASELINE = "task.solved", "task.order_free_loss", "task.baseline_loss.mean"
DECAY, R2 = "analysis.grad_decay_init", "analysis.grad_fit_r2_init"
ONE_VALUE = 0.5  # adding: loss / baseline of a model that remembers one of the two values


def _sweep(df, name: str):
  """Rows (of the results or a summary) of one sweep (``meta.sweep``)."""
  if "meta.sweep" not in df:
    return df[:0]
  return df[df["meta.sweep"] == name]


def _summary(rows):
  """Per configuration over its chosen rows (each seed's own rate: not a key)."""
  from lstmx.lab import aggregate
  metrics = [m for m in (LOSS, ACC, SOLVED, DECAY, R2, "analysis.grad_decay_trained",
                         ORDER_FREE, "task.baseline_loss") if m in rows]
  rows = rows.drop(columns=["optimizer.lr", "selected_from", "selected_by"], errors="ignore")
  return aggregate.summarize(rows, metrics=metrics)


def _gradient_task(results) -> tuple[str, int] | None:
  """(task, length) of the gradient-flow figure and finding: the longest adding
  length of the length sweep (copy where there is no adding)."""
  from lstmx.lab import aggregate
  rows = _sweep(aggregate.counted(results), "length")
  for t in ("adding", "copy"):
    if "task.name" in rows and (rows["task.name"] == t).any():
      return t, int(rows[rows["task.name"] == t]["meta.length"].max())
  return None


def figures(results, fig_dir: str) -> list[tuple[str, str]]:
  """Figures of the chosen rows (the rate chosen on validation), test metrics: loss /
  baseline vs length, MQAR vs pairs, fraction solved vs steps, and gradient flow."""
  import matplotlib.pyplot as plt
  from lstmx.analysis import gradient_flow_curves
  from lstmx.lab import report, solve_curves
  from lstmx.lab.quantities import NONNEGATIVE  # gradient norms: a bootstrap band >= 0
  rows = _chosen(results)
  out = []
  summary = _summary(rows)
  color = report.colors(MODELS)
  df = _sweep(summary, "length")
  task_names = [t for t in LENGTH_KEY if "task.name" in df and t in set(df["task.name"])]
  if task_names and f"{LOSS}.mean" in df:
    fig, axes = plt.subplots(1, len(task_names), figsize=(4 * len(task_names), 3.4),
                             squeeze=False, layout="constrained")
    for ax, t in zip(axes[0], task_names):
      mine = df[df["task.name"] == t]
      for m, g in mine.groupby("meta.model", sort=False):
        report.plot_mean(ax, g, "meta.length", LOSS, label=SHOWN.get(m, m), color=color.get(m))
      ax.axhline(1.0, color="grey", ls="--", lw=1, label="memoryless baseline")
      if t == "adding":
        ax.axhline(ONE_VALUE, color="grey", ls=":", lw=1, label="one value remembered")
      floor = f"{ORDER_FREE}.mean"
      if floor in mine and mine[floor].notna().any():
        ax.axhline(float((mine[floor] / mine[BASELINE]).mean()), color="grey", ls=":",
                   lw=1, label="order-free floor")  # both losses scale as S / T
      ax.set(title=SHOWN.get(t, t), xlabel="sequence length T",
             ylabel="test loss / memoryless baseline",
             xscale="log", ylim=(0, None))
      report.log_ticks(ax, mine["meta.length"])
      ax.legend(fontsize=7)
    fig.suptitle(f"{report.INTERVAL_NOTE} ({report.seeds_text(df)})", fontsize=9)
    report.save_figure(fig, fig_dir, "loss_vs_length")
    out.append(("Test loss relative to the memoryless baseline vs length", "loss_vs_length"))

  cap = _sweep(summary, "capacity")
  if len(cap) and f"{LOSS}.mean" in cap and "meta.pairs" in cap:
    models = list(dict.fromkeys(cap["meta.model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 3.4), squeeze=False,
                             sharey=True, layout="constrained")
    vocab = int(results["task.params.vocab_size"].dropna().iloc[0])
    ln_v = math.log(vocab - vocab // 2)
    for ax, m in zip(axes[0], models):
      for h, g in cap[cap["meta.model"] == m].groupby("model.hidden_size"):
        report.plot_mean(ax, g, "meta.pairs", LOSS, label=f"hidden {int(h)}")
      pairs = np.array(sorted(set(cap["meta.pairs"])), float)
      ax.axhline(1.0, color="grey", ls="--", lw=1, label="ln V (memoryless)")
      ax.plot(pairs, np.log(pairs) / ln_v, color="grey", ls=":", lw=1,
              label="bag of values (ln N)")
      ax.set(title=f"MQAR, {SHOWN.get(m, m)}", xlabel="key-value pairs N", xscale="log",
             ylabel="test loss / ln V", ylim=(0, None))
      report.log_ticks(ax, pairs)
      ax.legend(fontsize=7)
    fig.suptitle(f"T={int(cap['meta.length'].iloc[0])}, V={vocab}; {report.INTERVAL_NOTE} "
                 f"({report.seeds_text(cap)})", fontsize=9)
    report.save_figure(fig, fig_dir, "mqar_capacity")
    out.append(("MQAR: recall vs key-value pairs and hidden size", "mqar_capacity"))

  families = [(t, *_axis(t)) for t in LENGTH_KEY
              if "task.name" in rows and t in set(rows["task.name"])]
  if families:
    fig, axes = plt.subplots(1, len(families), figsize=(4 * len(families), 3.4),
                             squeeze=False, layout="constrained")
    for ax, (t, sweep, axis) in zip(axes[0], families):
      mine = _sweep(rows, sweep)
      mine = mine[mine["task.name"] == t]
      solve_curves.plot_arms(ax, mine, axis, colors=color, names={**NAMES, **SHOWN},
                             also=("model.hidden_size",) if sweep == "capacity" else ())
      ax.set(title=SHOWN.get(t, t), xlabel="training steps", ylabel="fraction of seeds solved")
      ax.legend(fontsize=6)
    fig.suptitle("Kaplan-Meier fraction solved (validation rule), censored at the budget; "
                 "95 % log-log bands", fontsize=9)
    report.save_figure(fig, fig_dir, "steps_to_solve")
    out.append(("Fraction of seeds solved vs training steps", "steps_to_solve"))

  fig, ax = plt.subplots(figsize=(5, 3.4), layout="constrained")
  ax.set_yscale("log")
  where = _gradient_task(results)
  if where is not None:
    t, length = where
    grad = _sweep(rows, "length")
    grad = grad[(grad["task.name"] == t) & (grad["meta.length"] == length)
                & grad["meta.model"].isin(["lstm", "lstm_chrono"])]
    for m, g in grad.groupby("meta.model"):
      curves = gradient_flow_curves(os.path.dirname(fig_dir), g["trial"])
      for stage, ls in (("init", "--"), ("trained", "-")):
        n = len(curves[stage])
        report.plot_curves(ax, curves[stage], ls=ls, color=color.get(m), kind=NONNEGATIVE,
                           label=f"{SHOWN.get(m, m)} {stage} ({n} seed{'' if n == 1 else 's'})")
    ax.set(xlabel="distance from the first loss step", ylabel="||dL/dh_t||",
           title=f"gradient flow, {t} T={length}")
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=7)
  report.save_figure(fig, fig_dir, "gradient_flow")
  out.append(("Gradient norm vs distance from the loss (mean over seeds, bootstrap band)",
              "gradient_flow"))
  return out


# Each task family's positive control: a model that the cited paper shows solving the
# task, at the family's shortest length (MQAR: fewest pairs) in the preset.
CONTROLS = {
    "adding": ("lstm", "Hochreiter & Schmidhuber 1997, experiment 4: LSTM solves the "
               "adding problem at T = 100, 500 and 1000"),
    "copy": ("transformer", "Jelassi et al. 2024 ('Repeat After Me'), section 4: "
             "Transformers learn to copy strings far longer than their state"),
    "selective_copy": ("transformer", "Jelassi et al. 2024 ('Repeat After Me'): "
                       "attention copies by retrieving each position"),
    "mqar": ("transformer", "Arora et al. 2023 (Zoology), figure 2: two-layer attention "
             "solves MQAR at every number of pairs and model width"),
}
NAMES = {"task.name": "task", "meta.model": "model", "meta.length": "T",
         "meta.pairs": "pairs", "model.hidden_size": "hidden"}


def _axis(task: str) -> tuple[str, str]:
  """(sweep, its axis column) of a task family: MQAR varies the pairs."""
  return ("capacity", "meta.pairs") if task == "mqar" else ("length", "meta.length")


def _chosen(results):
  """One row per configuration and seed, its learning rate chosen on validation."""
  from lstmx.lab import selection
  return selection.chosen(results, "optimizer.lr")


def _specs(rows) -> list:
  from lstmx.lab import solving
  return solving.family_controls(rows, CONTROLS, _axis, names=NAMES)


def controls(results) -> list:
  """Each task family's control (`CONTROLS`) with its seeds solved."""
  from lstmx.lab import solving
  rows = _chosen(results)
  return solving.controls(rows, _specs(rows)) if len(rows) else []


def findings(results) -> list:
  """Records (`lstmx.lab.findings.Finding`): per task family, the solve rate of every
  configuration, each arm's stopping point along the length (MQAR: the pairs),
  chrono against the default init, the steps to solve, and the gradient decay at
  init; each depends on its family's control."""
  from lstmx.lab import solving
  if not {"task.name", "meta.model", "meta.sweep"} <= set(results) or SOLVED not in results:
    return []
  rows = _chosen(results)
  if not len(rows):
    return []
  kw = dict(control=solving.control_by(_specs(rows)), budget=solving.budget_of(results),
            names=NAMES)
  out = []
  for sweep in ("length", "capacity"):
    part = _sweep(rows, sweep)
    if not len(part):
      continue
    axis = "meta.pairs" if sweep == "capacity" else "meta.length"
    arm = ["task.name", "meta.model"] + (["model.hidden_size"] if sweep == "capacity" else [])
    out += solving.stopping_points(part, arm, axis, **kw)
    out += solving.steps_to_solve(part, arm + [axis], cap=lambda s: kw["budget"](s)["steps"],
                                  **kw)
    for a in ("lstm_chrono", "transformer") if sweep == "length" else ("transformer",):
      out += solving.contrasts(part[part["model.hidden_size"] == 64] if sweep == "capacity"
                               else part, ["task.name", axis], "meta.model", a, "lstm", **kw)
  return out + _gradient_finding(results, rows)


def _gradient_finding(results, rows) -> list:
  """The decay rate of ||dL/dh_t|| at init, default against chrono init, paired by
  seed (a ratio of the means with its bootstrap interval, and a sign test)."""
  from lstmx.lab import per_seed
  where = _gradient_task(results)
  if where is None or DECAY not in rows:
    return []
  t, length = where
  at = {"meta.sweep": "length", "task.name": t, "meta.length": length}
  return per_seed.ratio(rows, {**at, "meta.model": "lstm"}, {**at, "meta.model": "lstm_chrono"},
                        DECAY, kind="gradient_decay", quantity="gradient decay rate",
                        subject={"task": t, "T": length, "at": "init"},
                        arms=("lstm", "lstm_chrono"))


def headline(results) -> dict:
  """For ``lstmx report``'s page: the length sweep's curves, and where the default-init
  LSTM stops solving adding, else the LSTM against the Transformer on copy."""
  return {"figure": "loss_vs_length", "where": {"meta.sweep": "length"},
          "finding": [{"kind": "stops", "task": "adding", "model": "lstm"},
                      {"kind": "contrast", "task": "copy", "arms": ("transformer", "lstm")}]}


if __name__ == "__main__":
  main(sys.modules[__name__])
