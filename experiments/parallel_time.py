"""Parallel in time: Newton (DEER) solves of the LSTM along training, against minLSTM.

Can Newton's method replace the LSTM's sequential scan, and does training keep
it working? And how does minLSTM, parallel by construction, compare?

Trials are training runs on adding (and copy) of a one-layer LSTM with the
default init (forget-gate bias 1), with chrono init, and minLSTM with its
width matched to the LSTM's parameter count (`lstmx.models.match_size`). Every
LSTM trial's `analyze` then

* restores every checkpoint of the run (``checkpoint_every`` steps apart, all
  kept) and counts, on a batch of the task's inputs, the Newton sweeps until
  h and c are within 1e-5 of the sequential scan (`lstmx.kernels.deer.newton_trace`)
  for quasi-DEER (diagonal Jacobian), block-DEER (per-unit 2x2) and, at
  H <= 16, full DEER; at init, along training and at the end (a count of
  ``MAX_SWEEPS + 1`` means not within MAX_SWEEPS);
* times (default-init adding trials only) one layer's forward at initial weights, for
  each T and H of `timing_grid`: the
  sequential scan backend, the three Newton backends (with their fallback;
  DEER at H <= 16) and a minLSTM layer, each the median of repeated jitted
  calls in one process (ratios to the scan are the robust numbers).

Findings compare the counts at init and at the end (with seeds, via
`lstmx.lab.aggregate`) and minLSTM's loss with the LSTM's at matched size.

    python experiments/parallel_time.py --preset tiny    # CI, seconds
    python experiments/parallel_time.py --preset quick   # 2-core CPU, ~10 min (3 seeds)
    python experiments/parallel_time.py --preset full    # a GPU
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from lstmx.config import Config, ModelConfig, OptimizerConfig, TaskConfig, TrainConfig
from lstmx.lab import Preset, main

NAME = "parallel_time"
LIMIT = "compute"
TIMED = True  # wall times are measured: with --workers auto, one trial at a time on a CPU
EPS = 1e-5  # "converged": h and c within this of the sequential scan
MAX_SWEEPS = 150
LONGER = 4  # the counts are also taken on the task at LONGER x its length
METHODS = ("quasi_deer", "block_deer", "deer")
DEER_MAX_H = 16  # full DEER's T (2H)^3 scan is out of reach beyond
LENGTH_KEY = {"copy": "delay", "adding": "length"}
TASK_FIXED = {"copy": {"num_symbols": 5, "num_categories": 8}, "adding": {}}
MODELS = {
    "lstm": {"model.kind": "lstm", "model.init": "forget_bias"},
    "lstm_chrono": {"model.kind": "lstm", "model.init": "chrono"},
    "minlstm": {"model.kind": "minlstm"},
}
# minLSTM trains with its sequential scan where there is no accelerator: the same
# function (tests/test_minrnn.py), but the associative scan's backward costs ~5x
# more on a CPU. The full preset (a GPU) trains the parallel form.
SEQUENTIAL_ON_CPU = {"model.parallel": False}
ITER = "analysis.newton.{method}.{stage}"  # stage: init | final | worst
TIME = "analysis.time."
LOSS = "final.validation.loss_over_baseline"


def base() -> Config:
  return Config(
      name=NAME,
      model=ModelConfig(hidden_size=32),
      task=TaskConfig(name="adding", params={}),
      optimizer=OptimizerConfig(name="adam", lr=3e-3, clip_norm=1.0),
      train=TrainConfig(steps=1200, batch_size=32, log_every=50, eval_every=300,
                        eval_batches=4, checkpoint_every=300, keep_checkpoints=100),
  )


def timing_grid(config: Config) -> tuple[list[int], list[int]]:
  """(lengths, widths) timed by a (default-init, adding) trial: the quick preset H and
  T 256, 1024; the full preset (batch 128) H/2, H and T up to 4096; the tiny
  preset's few-step runs H at T 64."""
  H = config.model.hidden_size
  if config.train.steps < 100:
    return [64], [H]
  if config.train.batch_size >= 128:  # the full preset
    return [256, 1024, 4096], [H // 2, H]
  return [256, 1024], [H]


def _minlstm_hidden(task: str, length: int, hidden: int) -> int:
  """minLSTM's width with the parameter count of the one-layer LSTM of width `hidden`."""
  from lstmx import tasks
  from lstmx.models import match_size, param_count
  params = {LENGTH_KEY[task]: length, **TASK_FIXED[task]}
  t = tasks.make(task, **params)
  target = param_count(ModelConfig(kind="lstm", hidden_size=hidden), t.input_size,
                       t.output_size, t.length)
  return match_size(ModelConfig(kind="minlstm"), target, t.input_size, t.output_size,
                    t.length).hidden_size


def trial(task: str, length: int, model: str, hidden: int) -> dict:
  ov = {"meta.model": model, "meta.length": length, "meta.lstm_hidden": hidden,
        "task.name": task, f"task.params.{LENGTH_KEY[task]}": length,
        **{f"task.params.{k}": v for k, v in TASK_FIXED[task].items()}, **MODELS[model],
        "model.hidden_size": hidden}
  if model == "lstm_chrono":
    ov["model.chrono_max_length"] = max(length, 3)
  if model == "minlstm":
    ov["model.hidden_size"] = _minlstm_hidden(task, length, hidden)
  return ov


def cpu(ov: dict) -> dict:
  """`ov` with minLSTM's sequential scan (`SEQUENTIAL_ON_CPU`) for a minLSTM trial."""
  return {**ov, **SEQUENTIAL_ON_CPU} if ov["model.kind"] == "minlstm" else ov


def presets() -> dict[str, Preset]:
  b = base()
  tiny = dataclasses.replace(
      b, train=dataclasses.replace(b.train, steps=6, eval_every=3, log_every=3,
                                   checkpoint_every=3, eval_batches=1, batch_size=8))
  full = dataclasses.replace(
      b, train=dataclasses.replace(b.train, steps=10000, batch_size=128, eval_every=1000,
                                   checkpoint_every=1000))
  return {
      "tiny": Preset(tiny, [trial("adding", 10, m, 8) for m in MODELS], seeds=1),
      "quick": Preset(b, [cpu(trial("adding", 100, m, 32)) for m in MODELS]
                      + [cpu(trial("copy", 20, m, 32)) for m in ("lstm", "minlstm")],
                      seeds=3),
      "full": Preset(full, [trial(t, n, m, 64) for t, ns in
                            (("adding", (100, 400, 1000)), ("copy", (50, 200)))
                            for n in ns for m in MODELS], seeds=3),
  }


@functools.partial(jax.jit, static_argnames="method")
def _trace(layer, xs, method: str):
  from lstmx.kernels.deer import newton_trace
  z = jnp.zeros((xs.shape[1], layer.w_hh.shape[0]), xs.dtype)
  return newton_trace(layer, xs, z, z, method=method, num_iter=MAX_SWEEPS)


def _sweeps(layer, xs, methods) -> dict[str, int]:
  """Sweeps to within EPS of the sequential scan (MAX_SWEEPS + 1: not within MAX_SWEEPS)."""
  from lstmx.kernels.deer import iterations_to
  out = {}
  for m in methods:
    trace = _trace(layer, xs, m)
    k = iterations_to(trace, EPS)
    out[m] = MAX_SWEEPS + 1 if k is None else k
  return out


def _median_time(f, *args, budget_s: float = 1.0) -> float:
  jax.block_until_ready(f(*args))
  times = []
  start = time.perf_counter()
  while len(times) < 3 or (len(times) < 15 and time.perf_counter() - start < budget_s):
    t0 = time.perf_counter()
    jax.block_until_ready(f(*args))
    times.append(time.perf_counter() - t0)
  return float(np.median(times))


def _timings(config: Config) -> dict[str, float]:
  """Forward wall times (seconds) of one layer per T and H: scan, Newton, minLSTM."""
  import lstmx
  from lstmx.kernels import BACKENDS, KernelOptions, LayerMasks
  from lstmx.models.minrnn import min_layer
  out = {}
  B = 16
  lengths, widths = timing_grid(config)
  for H in widths:
    params = lstmx.init_lstm(jax.random.key(config.train.seed), H, H)[0][0]
    w_min = jax.random.normal(jax.random.key(1), (H, 3 * H), jnp.float32) / np.sqrt(H)
    for T in lengths:
      xs = jax.random.normal(jax.random.key(2), (T, B, H), jnp.float32)
      h0 = jnp.zeros((B, H), jnp.float32)
      names = ["scan"] + [m for m in METHODS if m != "deer" or H <= DEER_MAX_H]
      for name in names:
        layer = BACKENDS.get(name).layer
        f = jax.jit(lambda p, x, layer=layer: layer(p, x, None, h0, h0, LayerMasks(),
                                                     KernelOptions())[0])
        out[f"time.{name}.T{T}.H{H}"] = _median_time(f, params, xs)
      valid = jnp.ones((T, B), bool)
      f = jax.jit(lambda w, x: min_layer("minlstm", x @ w, valid))
      out[f"time.minlstm.T{T}.H{H}"] = _median_time(f, w_min, xs)
  return out


def analyze(config: Config, workdir: str) -> dict:
  """Newton sweeps along training (every checkpoint) and, for default-init trials, timings."""
  if config.model.kind != "lstm" or config.model.num_layers != 1:
    return {}
  from lstmx import tasks
  from lstmx.lab import trained
  task, model = trained.fresh(config)
  H = config.model.hidden_size
  methods = [m for m in METHODS if m != "deer" or H <= DEER_MAX_H]
  # The task's own length T, and LONGER x T of the same task (at T, T sweeps are exact).
  long_task = tasks.make(config.task.name, **{
      **config.task.params,
      LENGTH_KEY[config.task.name]: LONGER * config.task.params[LENGTH_KEY[config.task.name]]})
  inputs = {}
  for where, t in (("", task), ("long_", long_task)):
    batch = t.sample(jax.random.key(123), 16)
    inputs[where] = jnp.swapaxes(jnp.asarray(batch["inputs"], jnp.float32), 0, 1)

  def sweeps(layer):
    return {f"{where}{m}": v for where, xs in inputs.items()
            for m, v in _sweeps(layer, xs, methods).items()}

  curve = {0: sweeps(model.lstm.params[0][0])}
  for step, at in trained.checkpoints(config, workdir):
    curve[step] = sweeps(at.lstm.params[0][0])
  with open(os.path.join(workdir, "newton_sweeps.json"), "w") as f:
    json.dump({str(s): v for s, v in curve.items()}, f)
  last = max(curve)
  out = {}
  for m in [f"{w}{m}" for w in inputs for m in methods]:  # (the runner prefixes "analysis.")
    out[f"newton.{m}.init"] = curve[0][m]
    out[f"newton.{m}.final"] = curve[last][m]
    out[f"newton.{m}.worst"] = max(c[m] for c in curve.values())
  if config.model.init == "forget_bias" and config.task.name == "adding":
    out.update(_timings(config))
  return out


def _curves(out_dir: str, rows, method: str) -> list[tuple]:
  curves = []
  for trial_id in rows["trial"]:
    path = os.path.join(out_dir, "trials", str(trial_id), "newton_sweeps.json")
    if os.path.exists(path):
      with open(path) as f:
        c = json.load(f)
      steps = sorted(int(s) for s in c)
      if method in c[str(steps[0])]:
        curves.append((np.array(steps), np.array([c[str(s)][method] for s in steps], float)))
  return curves


def figures(results, fig_dir: str) -> list[tuple[str, str]]:
  import matplotlib.pyplot as plt
  from lstmx.lab import aggregate, quantities
  from lstmx.lab.report import plot_curves, plot_mean, save_figure
  out = []
  rows = aggregate.counted(results)
  if not {"meta.model", "task.name"} <= set(rows):
    return out
  lstm = rows[rows["meta.model"].isin(["lstm", "lstm_chrono"])]
  pairs = sorted(set(zip(lstm["task.name"], lstm["meta.length"])))
  if pairs:
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.5 * len(pairs), 3.4), squeeze=False)
    for ax, (t, n) in zip(axes[0], pairs):
      for (model, g) in lstm[(lstm["task.name"] == t) & (lstm["meta.length"] == n)] \
          .groupby("meta.model"):
        for where, marker in (("", None), ("long_", "x")):
          for m, ls in zip(METHODS, ("-", "--", ":")):
            curves = _curves(os.path.dirname(fig_dir), g, where + m)
            if curves:
              at = f"{LONGER}T" if where else "T"
              kind = quantities.kind_of(ITER.format(method=m, stage="final"))
              plot_curves(ax, curves, kind=kind, ls=ls, marker=marker,
                          label=f"{model} {m} at {at} ({len(curves)} "
                                f"seed{'' if len(curves) == 1 else 's'})")
      ax.axhline(MAX_SWEEPS, color="grey", lw=1, ls="--")
      ax.set(title=f"{t} T={n}", xlabel="training step",
             ylabel=f"Newton sweeps to {EPS:g}", yscale="log")
      ax.legend(fontsize=6)
    save_figure(fig, fig_dir, "sweeps_vs_training")
    out.append((f"Newton sweeps to within {EPS:g} of the sequential scan along training "
                f"({quantities.NEWTON_SWEEPS.note}; {MAX_SWEEPS + 1}: not within the cap "
                f"{MAX_SWEEPS})", "sweeps_vs_training"))
  timing = [c for c in results if c.startswith(TIME)]
  if timing:
    summary = aggregate.summarize(results, metrics=timing)
    summary = summary[summary["meta.model"] == "lstm"].head(1)
    keys = sorted({(int(c.split(".")[-2][1:]), int(c.split(".")[-1][1:])) for c in timing})
    hidden = sorted({h for _, h in keys})
    fig, axes = plt.subplots(1, len(hidden), figsize=(4.5 * len(hidden), 3.4), squeeze=False)
    names = ("scan",) + METHODS + ("minlstm",)
    for ax, H in zip(axes[0], hidden):
      ax.set_yscale("log")
      for i, name in enumerate(names):
        cols = [(T, f"{TIME}{name}.T{T}.H{H}") for T, h in keys if h == H]
        cols = [(T, c) for T, c in cols if f"{c}.mean" in summary]
        for T, c in cols:
          plot_mean(ax, summary, [T], c, style="bars", scale=1e3,
                    label=name if T == cols[0][0] else None, color=f"C{i}")
      ax.set(title=f"forward, B=16, H={H}", xlabel="T", ylabel="ms", xscale="log")
      ax.legend(fontsize=7)
    save_figure(fig, fig_dir, "forward_time")
    out.append(("Forward wall time of one layer at init weights (median of calls; "
                f"{quantities.TIMING.note})", "forward_time"))
  return out


def findings(results) -> list[str]:
  from lstmx.lab import aggregate, quantities
  lines = []
  if "meta.model" not in results:
    return lines
  for model in ("lstm", "lstm_chrono"):
    for t in sorted(set(results["task.name"])):
      where = {"meta.model": model, "task.name": t}
      rows = aggregate.select(results, where)
      if not len(rows):
        continue
      parts = []
      for m in [w + m for w in ("", "long_") for m in METHODS]:
        init, final = ITER.format(method=m, stage="init"), ITER.format(method=m, stage="final")
        if init not in rows or rows[init].isna().all():
          continue
        s = aggregate.summarize(rows, metrics=[init, final]).iloc[0]
        grew = aggregate.agree(results, where, lambda r, i=init, f=final: r[f] > r[i])
        stuck = aggregate.agree(results, where,
                                lambda r, f=final: r[f] > MAX_SWEEPS)
        at = f"at {LONGER}T" if m.startswith("long_") else "at T"
        parts.append(f"{m.removeprefix('long_')} {at}: "
                     f"{aggregate.mean_ci_text(s, init, '.1f', method=False)} at init -> "
                     f"{aggregate.mean_ci_text(s, final, '.1f', method=False)} trained "
                     f"({s[f'{final}.method']}; more in "
                     f"{aggregate.seeds_phrase(*grew)}; not within {MAX_SWEEPS} in "
                     f"{aggregate.seeds_phrase(*stuck)})")
      if parts:
        lines.append(f"{t}, {model}: Newton sweeps to {EPS:g}: " + "; ".join(parts) + ".")
  if LOSS in results:
    for t in sorted(set(results["task.name"])):
      lstm = aggregate.select(results, {"meta.model": "lstm", "task.name": t})
      mini = aggregate.select(results, {"meta.model": "minlstm", "task.name": t})
      if len(lstm) and len(mini) and lstm[LOSS].notna().any() and mini[LOSS].notna().any():
        s = aggregate.summarize(results[results["task.name"] == t], metrics=[LOSS])
        text = {r["meta.model"]: aggregate.mean_ci_text(r, LOSS, ".3f")
                for _, r in s.iterrows()}
        hid = int(mini["model.hidden_size"].iloc[0])
        below = aggregate.agree_paired(results, {"meta.model": "minlstm", "task.name": t},
                                       {"meta.model": "lstm", "task.name": t}, LOSS)
        lines.append(f"{t}: loss / memoryless baseline at matched size: LSTM {text['lstm']}, "
                     f"minLSTM (H={hid}) {text['minlstm']}; minLSTM below the LSTM in "
                     f"{aggregate.seeds_phrase(*below)} (paired by seed).")
  timing = [c for c in results if c.startswith(TIME + "scan.")]
  for c in timing:
    T, H = c.split(".")[-2:]
    ratios = []
    for name in METHODS + ("minlstm",):
      other = f"{TIME}{name}.{T}.{H}"
      if other in results:
        r = (results[other] / results[c]).dropna()
        if len(r):  # a ratio of times per seed: their median and min-max, as a timing's
          d = quantities.describe(r.to_numpy(), quantities.TIMING)
          ci = f" [{d.low:.2f}, {d.high:.2f}]" if np.isfinite(d.low) else ""
          ratios.append(f"{name} {d.center:.2f}x{ci}")
    if ratios:
      n = int(results[c].notna().sum())
      lines.append(f"forward time / sequential scan at {T}, {H} (B=16, init weights, "
                   f"median [min, max] over {n} seed{'' if n == 1 else 's'}): "
                   + ", ".join(ratios) + ".")
  return lines


def headline(results) -> dict:
  """For ``lstmx report``'s page: Newton sweeps along training (does training defeat the
  parallel-in-time solvers?) and their forward time against the sequential scan."""
  lines = findings(results)
  sweeps = [line for line in lines if line.startswith("adding, lstm: ")]
  times = sorted((line for line in lines if line.startswith("forward time / sequential scan")),
                 key=lambda line: int(re.search(r" at T(\d+),", line).group(1)))
  return {"figure": "sweeps_vs_training", "finding": " ".join(sweeps[:1] + times[-1:]) or None}


if __name__ == "__main__":
  main(sys.modules[__name__])
