"""Compute cost: step time, tokens/s, compile time, memory vs T, H, B; LSTM vs matched Transformer.

Each trial is a short training run of the adding problem (length T, 2 inputs,
1 output) whose `analyze` rebuilds the model and measures its jitted train
step (forward, backward and Adam update) precisely:

* step time: the median of repeated calls after a warm-up call, each timed to
  ``jax.block_until_ready``; tokens/s = B * T / step time;
* compile time: ``jit(...).lower(...)`` plus ``.compile()``, wall clock, with the
  sweep's persistent compilation cache off (`lstmx.lab.compile_cache.uncached`);
* memory: XLA's memory analysis of the compiled step (`lstmx.compile_stats`,
  the one formula), peak = arguments + outputs - donated aliases +
  temporaries (``temp`` alone is the activation memory that grows with T);
* FLOPs: XLA's cost analysis of the compiled step (``flops``) beside the
  analytic matmul count (``flops_analytic``, `lstmx.flops`: LSTM
  3 x 2BT(D+H)4H, Transformer 3 x (24BTd^2 + 4BT^2d) per block; checked
  against XLA within 5 % in tests/test_flops.py). XLA counts a while loop's
  body once, so for the scanned LSTMs its number is about one step's: the
  analytic count gives their achieved FLOP/s (``gflops_per_s``).

Models: the LSTM on each backend (``scan``: fused scan with a hand-written
backward; ``reference``: a plain ``lax.scan`` of `lstm_step` differentiated
by JAX), each with ``unroll`` 1 and 4, the scan in the ``remat_every=32``
memory mode (carries saved every 32 steps, segments recomputed in the
backward), in the full preset also the ``pallas`` and ``cudnn`` kernels (a
GPU; elsewhere those trials record their failure), and a causal pre-LN
Transformer (one block, two heads) whose width is chosen by
`lstmx.models.match_size` to the LSTM's parameter count at the same H, with
its attention two ways: ``transformer`` calls `jax.nn.dot_product_attention`
(``model.attention="fused"``; jax picks the implementation, its XLA path in
jax 0.10, and the full preset adds ``transformer_cudnn``, cuDNN's fused
attention in bfloat16, on NVIDIA GPUs) and ``transformer_naive`` writes it out,
materializing the [B, heads, T, T] logits and weights. Step time is
summarized by log-log slopes in T; memory by ratios measured at the measured
lengths (one mode against another at the same T, and each model's longest T
against its shortest), never extrapolated. The crossover is the length where
the Transformer's step becomes slower than the LSTM's.
Throughput against device count: data-parallel steps (`lstmx.sharding`) on
1, 2, 4, 8 devices; as a script this file asks XLA for 8 fake CPU devices,
which share the machine's cores, so on a CPU it measures sharding overhead,
not speed-up (on a multi-GPU host it is the real scaling).

    python experiments/compute.py --preset tiny    # CI, under a minute
    python experiments/compute.py --preset quick   # 2-core CPU, ~15 min
    python experiments/compute.py --preset full    # a GPU
"""

from __future__ import annotations

import os

# Eight fake CPU devices for the device-count study; must precede importing jax.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import dataclasses  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from lstmx.compile_stats import compile_stats  # noqa: E402
from lstmx.config import (Config, ModelConfig, OptimizerConfig, TaskConfig,  # noqa: E402
                          TrainConfig)
from lstmx.lab import Preset, main, quantities  # noqa: E402
from lstmx.models import match_size, param_count  # noqa: E402

NAME = "compute"
LIMIT = "compute"
TIMED = True  # step times are measured: with --workers auto, one trial at a time on a CPU
INPUT_SIZE, OUTPUT_SIZE = 2, 1  # the adding problem's [value, marker] -> sum
DEVICE_COUNTS = (1, 2, 4, 8)
TIMING_BUDGET_S = 2.0  # timed calls per measurement: at least 3, more up to 20 within this
LSTMS = {  # label -> overrides; the Transformer is sized per hidden size (`transformer_width`)
    "lstm_scan": {"model.kind": "lstm", "model.backend": "scan", "model.unroll": 1},
    "lstm_scan_u4": {"model.kind": "lstm", "model.backend": "scan", "model.unroll": 4},
    "lstm_reference": {"model.kind": "lstm", "model.backend": "reference", "model.unroll": 1},
    "lstm_reference_u4": {"model.kind": "lstm", "model.backend": "reference",
                          "model.unroll": 4},
    # Memory mode: nested checkpointing, carries saved every 32 steps (lstmx.kernels.remat).
    "lstm_scan_remat32": {"model.kind": "lstm", "model.backend": "scan", "model.unroll": 1,
                          "model.remat_every": 32},
}
# Accelerator kernels, in the full preset only (a GPU): the Pallas fused recurrence
# (interpret mode on a CPU, which measures the interpreter) and cuDNN (NVIDIA only).
ACCELERATED = {
    "lstm_pallas": {"model.kind": "lstm", "model.backend": "pallas", "model.unroll": 1},
    "lstm_cudnn": {"model.kind": "lstm", "model.backend": "cudnn", "model.unroll": 1},
}
LSTM_VARIANTS = {**LSTMS, **ACCELERATED}
# label -> attention overrides of the matched Transformer (lstmx.models.transformer).
TRANSFORMERS = {
    "transformer": {"model.attention": "fused"},  # jax.nn.dot_product_attention
    "transformer_naive": {"model.attention": "naive"},  # materializes [B, heads, T, T]
    # cuDNN's fused attention: NVIDIA GPUs, bfloat16 only (full preset).
    "transformer_cudnn": {"model.attention": "cudnn", "model.compute_dtype": "bfloat16"},
}
MODELS = (*LSTM_VARIANTS, *TRANSFORMERS)
# Two heads: widths in steps of 2 let `match_size` meet small budgets (H=32) within 10 %.
TRANSFORMER = ModelConfig(kind="transformer", num_heads=2)


def base() -> Config:
  """Training is incidental here (two steps); `analyze` does the measuring."""
  return Config(
      name=NAME,
      model=ModelConfig(hidden_size=64),
      task=TaskConfig(name="adding", params={"length": 128}),
      optimizer=OptimizerConfig(name="adam", lr=1e-3, clip_norm=1.0),
      train=TrainConfig(steps=2, batch_size=32, log_every=1, eval_every=2, eval_batches=1,
                        checkpoint_every=1000, keep_checkpoints=1),
  )


def transformer_width(hidden: int) -> int:
  """The Transformer width whose parameter count matches a one-layer LSTM of `hidden`.

  Sinusoidal positions have no parameters, so the match holds at every T.
  """
  target = param_count(ModelConfig(kind="lstm", hidden_size=hidden), INPUT_SIZE, OUTPUT_SIZE)
  return match_size(TRANSFORMER, target, INPUT_SIZE, OUTPUT_SIZE).hidden_size


def trial(model: str, length: int, hidden: int, batch: int, devices: bool = False) -> dict:
  """Overrides of one trial; ``meta.hidden`` is the LSTM width the model's size matches."""
  ov = {"meta.model": model, "meta.length": length, "meta.hidden": hidden, "meta.batch": batch,
        "task.params.length": length, "train.batch_size": batch}
  if model in TRANSFORMERS:
    ov.update({"model.kind": "transformer", "model.num_heads": TRANSFORMER.num_heads,
               "model.hidden_size": transformer_width(hidden), **TRANSFORMERS[model]})
  else:
    ov.update({**LSTM_VARIANTS[model], "model.hidden_size": hidden})
  if devices:
    ov.update({"meta.study": "devices", "sharding.preset": "data_parallel"})
  return ov


def sweep(lengths: dict[str, list[int]], hidden: int, batch: int, *,
          hiddens: list[int] = (), batches: list[int] = (), at_length: int = 128,
          size_models: tuple[str, ...] = ("lstm_scan", "transformer"),
          device_batch: int | None = None) -> list[dict]:
  """The T study (`lengths`: model -> lengths at `hidden`, `batch`), the H and B
  studies at T = `at_length` for `size_models`, and for each of those a
  device-count trial of `device_batch` sequences."""
  out = [trial(m, n, hidden, batch) for m, ns in lengths.items() for n in ns]
  out += [trial(m, at_length, h, batch) for m in size_models for h in hiddens]
  out += [trial(m, at_length, hidden, b) for m in size_models for b in batches]
  if device_batch:
    out += [trial(m, at_length, hidden, device_batch, devices=True) for m in size_models]
  unique = {tuple(sorted(ov.items())): ov for ov in out}  # the studies share trials
  return list(unique.values())


def presets() -> dict[str, Preset]:
  b = base()
  tiny = dataclasses.replace(b, model=dataclasses.replace(b.model, hidden_size=32))
  # Quick (2-core CPU): the scan and its memory mode at five lengths, the other LSTM
  # variants at three, both attention forms of the Transformer at four.
  quick = {**{m: [8, 128, 1024] for m in LSTMS},
           **{m: [8, 32, 128, 512, 1024] for m in ("lstm_scan", "lstm_scan_remat32")},
           "transformer": [8, 32, 128, 512], "transformer_naive": [8, 32, 128, 512]}
  # Full (one GPU): the Transformer stops at 2048, where attention's B x heads x T^2
  # scores and their gradients already take about 20 GB.
  full = {**{m: [16, 64, 256, 1024, 4096] for m in LSTMS},
          "lstm_scan": [16, 64, 256, 1024, 4096, 8192, 16384],
          "lstm_scan_remat32": [16, 64, 256, 1024, 4096, 8192, 16384],
          **{m: [16, 64, 256, 1024, 4096, 8192, 16384] for m in ACCELERATED},
          "lstm_reference": [16, 64, 256, 1024, 4096, 8192, 16384],
          "transformer": [16, 64, 256, 1024, 2048],
          "transformer_naive": [16, 64, 256, 1024, 2048],
          "transformer_cudnn": [16, 64, 256, 1024, 2048, 4096, 8192]}
  return {
      "tiny": Preset(tiny, sweep({"lstm_scan": [8, 16], "lstm_scan_remat32": [16],
                                  "transformer": [8, 16], "transformer_naive": [16]}, 32, 8,
                                 at_length=8, size_models=("lstm_scan",), device_batch=8),
                     seeds=1),
      "quick": Preset(b, sweep(quick, 64, 32, hiddens=[32, 128, 256], batches=[8, 128],
                               at_length=128, device_batch=64), seeds=3),
      "full": Preset(b, sweep(full, 128, 64, hiddens=[32, 64, 256, 512, 1024],
                              batches=[8, 16, 128, 256, 512], at_length=1024,
                              device_batch=256), seeds=3),
  }


# Measuring.

def measure(step_fn, state, batch, *, min_calls: int = 3, max_calls: int = 20,
            budget_s: float = 2.0) -> dict:
  """Compiles and times a jitted ``step_fn(state, batch) -> (state, metrics)``.

  Returns:
    ``compile_time`` (s, lower + compile), ``step_time`` (s, the median of at
    least `min_calls` calls after one warm-up call, more while under
    `budget_s`), ``step_time_min``, ``calls``, the compiled program's memory
    in bytes (``temp_bytes``, ``argument_bytes``, ``output_bytes``,
    ``alias_bytes``, ``peak_bytes`` = argument + output - alias + temp) and
    ``flops`` (XLA's estimate; NaN where the backend gives none), all from
    `lstmx.compile_stats`.
  """
  from lstmx.lab.compile_cache import uncached
  with uncached():  # a seed after the first would load the sweep cache's program
    t0 = time.perf_counter()
    compiled = step_fn.lower(state, batch).compile()
    out = {"compile_time": time.perf_counter() - t0, **compile_stats(compiled)}
  state, metrics = compiled(state, batch)  # warm-up
  jax.block_until_ready((state, metrics))
  times: list[float] = []
  while len(times) < min_calls or (len(times) < max_calls and sum(times) < budget_s):
    t0 = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - t0)
  out.update(step_time=float(np.median(times)), step_time_min=float(np.min(times)),
             calls=len(times))
  return out


def analytic_flops(model: ModelConfig, B: int, T: int) -> float:
  """Matmul FLOPs of one training step of `model` on the adding problem (`lstmx.flops`)."""
  from lstmx import flops
  if model.kind == "transformer":
    return flops.transformer_flops(B, T, model.hidden_size, model.num_layers,
                                   model.ff_multiple, D=INPUT_SIZE, O=OUTPUT_SIZE)
  return flops.lstm_flops(B, T, INPUT_SIZE, model.hidden_size, model.num_layers, O=OUTPUT_SIZE)


def attention_bytes(B: int, T: int, heads: int, itemsize: int = 4) -> int:
  """Bytes of one [B, heads, T, T] array: naive attention's logits (its weights are another)."""
  return B * heads * T * T * itemsize


def analyze(config: Config, workdir: str) -> dict:
  """Step time, tokens/s, compile time and memory of the trial's train step; for
  data-parallel trials, step time and tokens/s on each device count instead."""
  del workdir  # nothing is read from the run; the step is rebuilt and measured afresh
  from lstmx import optim, sharding
  from lstmx.train.restore import build
  from lstmx.train.step import init_state, make_train_step
  task, model = build(config)
  tx = optim.build(config.optimizer, config.train.steps)
  graphdef, state = init_state(model, tx, config.train.seed)
  B = config.train.batch_size
  tokens = B * task.length
  batch = task.sample(jax.random.key(0), B)
  step = jax.jit(make_train_step(graphdef, task, tx), donate_argnums=0)
  if config.sharding.preset == "none":
    out = measure(step, state, batch, budget_s=TIMING_BUDGET_S)
    out["tokens_per_s"] = tokens / out["step_time"]
    out["flops_analytic"] = analytic_flops(config.model, B, task.length)
    out["gflops_per_s"] = out["flops_analytic"] / out["step_time"] / 1e9
    return out
  rules, host = sharding.preset(config.sharding.preset), jax.device_get(batch)
  out = {}
  for n in [n for n in DEVICE_COUNTS if n <= jax.device_count() and B % n == 0]:
    mesh = sharding.make_mesh(jax.devices()[:n])
    state = sharding.create_sharded(
        lambda: init_state(build(config)[1], tx, config.train.seed)[1], rules, mesh)
    step = jax.jit(make_train_step(graphdef, task, tx), donate_argnums=0)
    m = measure(step, state, sharding.place_batch(host, rules, mesh), budget_s=TIMING_BUDGET_S)
    out[f"step_time_dev{n}"] = m["step_time"]
    out[f"tokens_per_s_dev{n}"] = tokens / m["step_time"]
  return out


# Reporting: every measurement is a timing (lstmx.lab.quantities): figures draw its median
# over seeds (repeated measurements) with their min-max; slopes, ratios and crossovers are
# fitted to the means.

KEYS = ["meta.model", "meta.length", "meta.hidden", "meta.batch"]
_BARS = quantities.TIMING.note
MEASURED = ("analysis.step_time", "analysis.compile_time", "analysis.peak_bytes",
            "analysis.tokens_per_s", "analysis.flops", "analysis.flops_analytic",
            "analysis.gflops_per_s", "param_count")


def _single_device_rows(results):
  """Counted single-device rows with a measured step time, one per trial and seed."""
  from lstmx.lab import aggregate
  ok = aggregate.counted(results)
  if "meta.study" in ok:
    ok = ok[ok["meta.study"] != "devices"]
  if "analysis.step_time" not in ok or not set(KEYS) <= set(ok):
    return ok[:0]
  return ok.dropna(subset=["analysis.step_time"])


def _single_device(results):
  """Per model, T, H and B: n and each measurement's mean and interval over seeds."""
  from lstmx.lab import aggregate
  rows = _single_device_rows(results)
  if not len(rows):
    return rows
  metrics = [m for m in MEASURED if m in rows and rows[m].notna().any()]
  return aggregate.summarize(rows, metrics=metrics, keys=KEYS)


def _t_study(results):
  """Summary rows of the T study: the most common hidden size and batch size."""
  df = _single_device(results)
  if not len(df):
    return df
  h, b = df["meta.hidden"].mode()[0], df["meta.batch"].mode()[0]
  return df[(df["meta.hidden"] == h) & (df["meta.batch"] == b)]


def slope(x, y) -> float:
  """The log-log slope of y against x (least squares); NaN with < 2 points."""
  x, y = np.asarray(x, float), np.asarray(y, float)
  keep = (x > 0) & (y > 0) & np.isfinite(y)
  if keep.sum() < 2:
    return math.nan
  return float(np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)[0])


def _plain(v: float, _=None) -> str:
  """A tick label: 3, 0.5, 20k, 1.5M."""
  for unit, suffix in ((1e6, "M"), (1e4, "k")):
    if abs(v) >= unit:
      return f"{v / (1e3 if suffix == 'k' else unit):g}{suffix}"
  return f"{v:g}"


def _log_ticks(ax, xs) -> None:
  """Plain-number ticks on log axes: x at the measured values, y at 1-2-5."""
  import matplotlib.ticker as ticker
  xs = sorted(set(float(v) for v in xs))
  ax.set_xticks(xs, [f"{v:g}" for v in xs])
  ax.xaxis.set_minor_formatter(ticker.NullFormatter())
  ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
  ax.yaxis.set_major_formatter(ticker.FuncFormatter(_plain))
  ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def _loglog(ax, df, x: str, y: str, scale: float = 1.0, fit: bool = True) -> None:
  """Per model, `y`'s median over seeds against `x` with min-max bars (summary rows
  `df`; a timing, `lstmx.lab.quantities`), labelled with the log-log slope fitted to the
  means if `fit`."""
  from lstmx.lab.report import plot_mean
  if f"{y}.mean" not in df:
    return
  ax.set(xscale="log", yscale="log")
  for m in [m for m in MODELS if m in set(df["meta.model"])]:
    g = df[df["meta.model"] == m].sort_values(x)
    label = f"{m} (slope {slope(g[x], g[f'{y}.mean']):.2f})" if fit else m
    plot_mean(ax, g, x, y, style="bars", scale=scale, fmt="o-", ms=4, label=label)
  _log_ticks(ax, df[x])
  ax.legend(fontsize=7)


def figures(results, fig_dir: str) -> list[tuple[str, str]]:
  import matplotlib.pyplot as plt
  from lstmx.lab.report import save_figure
  out = []
  df = _t_study(results)
  if len(df):
    h, b = int(df["meta.hidden"].iloc[0]), int(df["meta.batch"].iloc[0])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    _loglog(axes[0], df, "meta.length", "analysis.step_time", 1e3)
    axes[0].set(xlabel="sequence length T", ylabel="train step time (ms)",
                title=f"step time (LSTM H={h}, matched Transformer, B={b})")
    _loglog(axes[1], df, "meta.length", "analysis.compile_time")
    axes[1].set(xlabel="sequence length T", ylabel="lower + compile time (s)",
                title="compile time")
    save_figure(fig, fig_dir, "time_vs_length")
    out.append(("Train step time and compile time vs T (log-log, slopes fitted to the means; "
                + _BARS + ")",
                "time_vs_length"))

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    _loglog(axes[0], df, "meta.length", "analysis.peak_bytes", 1 / 2**20, fit=False)
    axes[0].set(xlabel="sequence length T", ylabel="peak memory (MiB)",
                title="peak memory of the compiled step (XLA)")
    _loglog(axes[1], df, "meta.length", "analysis.tokens_per_s")
    axes[1].set(xlabel="sequence length T", ylabel="tokens / s", title="throughput")
    save_figure(fig, fig_dir, "memory_vs_length")
    out.append(("Peak memory and tokens/s vs T (log-log; tokens/s with slopes fitted to the means; "
                + _BARS + ")",
                "memory_vs_length"))

  by_h, by_b, t = _size_studies(results)
  if len(by_h) or len(by_b):
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, d, x, name in ((axes[0], by_h, "meta.hidden", "LSTM hidden size H (the budget)"),
                           (axes[1], by_b, "meta.batch", "batch size B")):
      if len(d):
        _loglog(ax, d, x, "analysis.step_time", 1e3)
      ax.set(xlabel=name, ylabel="train step time (ms)", title=f"T={t}")
    save_figure(fig, fig_dir, "time_vs_hidden_batch")
    out.append(("Train step time vs H and B (log-log, slopes fitted to the means; "
                + _BARS + ")",
                "time_vs_hidden_batch"))

  dev = _device_table(results)
  if len(dev):
    from lstmx.lab.report import plot_mean
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.set(xscale="log", yscale="log")
    for i, (m, g) in enumerate(dev.groupby("model")):
      g = g.sort_values("devices")
      line = plot_mean(ax, g, "devices", "tokens_per_s", style="bars", fmt="o-", label=m)
      from lstmx.lab.aggregate import center
      ideal = center(g, "tokens_per_s").iloc[0] * g["devices"] / g["devices"].iloc[0]
      ax.plot(g["devices"], ideal, ":", color=line.get_color(),
              label="linear scaling" if i == 0 else None)
    ax.set(xlabel="devices (data parallel)", ylabel="tokens / s",
           title="throughput vs devices")
    _log_ticks(ax, dev["devices"])
    ax.legend(fontsize=8)
    save_figure(fig, fig_dir, "throughput_vs_devices")
    out.append(("Tokens/s vs device count (data parallel; " + _BARS + ")",
                "throughput_vs_devices"))
  return out


def _size_studies(results):
  """(trials varying H, trials varying B, their T): the length at which the
  most (H, B) pairs were measured, each study keeping models with >= 2 points."""
  df, t_df = _single_device(results), _t_study(results)
  if not len(t_df):
    return df[:0], df[:0], None
  h, b = t_df["meta.hidden"].iloc[0], t_df["meta.batch"].iloc[0]
  pairs = {t: len(set(zip(g["meta.hidden"], g["meta.batch"])))
           for t, g in df.groupby("meta.length")}
  t = max(pairs, key=pairs.get)
  at = df[df["meta.length"] == t]
  by_h = at[at["meta.batch"] == b].groupby("meta.model").filter(
      lambda g: g["meta.hidden"].nunique() > 1)
  by_b = at[at["meta.hidden"] == h].groupby("meta.model").filter(
      lambda g: g["meta.batch"].nunique() > 1)
  return by_h, by_b, int(t)


def _device_table(results):
  """Per model, device count, batch and length: tokens/s's mean and interval over
  the data-parallel trials' seeds."""
  import pandas as pd
  from lstmx.lab import aggregate
  rows = []
  if "meta.study" not in results:
    return pd.DataFrame(rows)
  dev = aggregate.counted(results)
  dev = dev[dev["meta.study"] == "devices"]
  for _, r in dev.iterrows():
    for n in DEVICE_COUNTS:
      v = r.get(f"analysis.tokens_per_s_dev{n}")
      if v is not None and np.isfinite(v):
        rows.append({"model": r["meta.model"], "devices": n, "tokens_per_s": v,
                     "batch": r["meta.batch"], "length": r["meta.length"]})
  if not rows:
    return pd.DataFrame(rows)
  return aggregate.summarize(pd.DataFrame(rows), metrics=["tokens_per_s"],
                             keys=["model", "devices", "batch", "length"])


def crossover(lengths, lstm, transformer) -> float | None:
  """The first T where the Transformer's cost rises past the LSTM's, interpolated
  log-linearly between measured lengths; None if the sign never changes that way."""
  T, a, b = (np.asarray(v, float) for v in (lengths, lstm, transformer))
  r = np.log(b / a)  # > 0: the Transformer costs more
  for i in range(len(T) - 1):
    if r[i] < 0 <= r[i + 1]:
      w = -r[i] / (r[i + 1] - r[i])
      return float(np.exp(np.log(T[i]) + w * (np.log(T[i + 1]) - np.log(T[i]))))
  return None


def _crossover_line(df, rows, column: str, what: str) -> str | None:
  """One sentence: per LSTM variant, the T from which the Transformer costs more
  (from the means over seeds), and in how many seeds it costs more at the longest T."""
  from lstmx.lab.aggregate import agree_paired, seeds_phrase
  if f"{column}.mean" not in df:
    return None
  tr = df[df["meta.model"] == "transformer"].set_index("meta.length")[f"{column}.mean"]
  at = {k: df[k].iloc[0] for k in ("meta.hidden", "meta.batch")}
  parts = []
  for m in [m for m in LSTMS if m in set(df["meta.model"])]:
    ls = df[df["meta.model"] == m].set_index("meta.length")[f"{column}.mean"]
    both = sorted(set(tr.index) & set(ls.index))
    if len(both) < 2:
      continue
    a, b = ls[both].to_numpy(float), tr[both].to_numpy(float)
    t = crossover(both, a, b)
    k, n = agree_paired(rows, {**at, "meta.model": "transformer", "meta.length": both[-1]},
                        {**at, "meta.model": m, "meta.length": both[-1]}, column, np.greater)
    ratios = (f"Transformer / LSTM {b[0] / a[0]:.2f}x at T={int(both[0])}, "
              f"{b[-1] / a[-1]:.2f}x at T={int(both[-1])}, costlier there in "
              f"{seeds_phrase(k, n)}")
    if t is not None:
      parts.append(f"vs {m} at T ~ {t:.0f} ({ratios})")
    elif np.all(b >= a):
      parts.append(f"vs {m} none, the Transformer costs more at every measured T ({ratios})")
    else:
      parts.append(f"vs {m} none in T={int(both[0])}..{int(both[-1])} ({ratios})")
  if not parts:
    return None
  return f"{what} crossover, where the Transformer becomes the costlier: " + "; ".join(
      parts) + "."


def _slopes_line(df, column: str, what: str) -> str | None:
  """Log-log slopes against T per model fitted to the means over seeds, over all
  lengths and the three longest."""
  if f"{column}.mean" not in df:
    return None
  y = f"{column}.mean"
  parts = []
  for m in [m for m in MODELS if m in set(df["meta.model"])]:
    g = df[df["meta.model"] == m].sort_values("meta.length")
    part = f"{m} {slope(g['meta.length'], g[y]):.2f}"
    if len(g) >= 3:
      tail = g.tail(3)
      part += f" ({slope(tail['meta.length'], tail[y]):.2f})"
    parts.append(part)
  return (f"{what} grows as T^slope; slopes fitted to the means over seeds over "
          f"T={int(df['meta.length'].min())}..{int(df['meta.length'].max())} (over each "
          "model's three longest T): " + ", ".join(parts) + ".")


def _ratios(df, column: str, a: str, b: str) -> str | None:
  """`a`'s mean over `b`'s at each T where both were measured, e.g. '0.50x at T=8'."""
  y = f"{column}.mean"
  at = {m: df[df["meta.model"] == m].set_index("meta.length")[y] for m in (a, b)}
  both = sorted(set(at[a].index) & set(at[b].index))
  if not both:
    return None
  return f"{a} / {b} " + ", ".join(f"{at[a][t] / at[b][t]:.2f}x at T={int(t)}" for t in both)


def _bytes(n: float) -> str:
  """1.5 MiB, 12 KiB, 300 B."""
  for unit, name in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
    if n >= unit:
      return f"{n / unit:.3g} {name}"
  return f"{n:.0f} B"


def _memory_lines(df) -> list[str]:
  """Peak memory as measured ratios (means over seeds): memory modes and attention
  forms against each other at the same T, each model's longest T against its shortest,
  and the size of the [B, heads, T, T] array naive attention materializes."""
  if "analysis.peak_bytes.mean" not in df:
    return []
  y, have = "analysis.peak_bytes.mean", set(df["meta.model"])
  pairs = [(a, b) for a, b in (("lstm_scan_remat32", "lstm_scan"),
                               ("transformer_naive", "transformer"),
                               ("transformer_cudnn", "transformer"),
                               ("transformer", "lstm_scan")) if {a, b} <= have]
  parts = [p for p in (_ratios(df, "analysis.peak_bytes", a, b) for a, b in pairs) if p]
  lines = []
  if parts:
    lines.append("Peak memory, measured ratios of the means at the same T: "
                 + "; ".join(parts) + ".")
  growth = []
  for m in [m for m in MODELS if m in have]:
    g = df[df["meta.model"] == m].sort_values("meta.length")
    if len(g) >= 2:
      t0, t1 = int(g["meta.length"].iloc[0]), int(g["meta.length"].iloc[-1])
      growth.append(f"{m} {g[y].iloc[-1] / g[y].iloc[0]:.2f}x (T={t0} to {t1}; "
                    f"{_bytes(g[y].iloc[-1])} at T={t1})")
  if growth:
    lines.append("Peak memory at each model's longest measured T over its shortest: "
                 + ", ".join(growth) + ".")
  if "transformer_naive" in have:
    g = df[df["meta.model"] == "transformer_naive"]
    t, b = int(g["meta.length"].max()), int(g["meta.batch"].iloc[0])
    size = attention_bytes(b, t, TRANSFORMER.num_heads)
    lines.append(f"Naive attention materializes the [B, heads, T, T] logits and weights "
                 f"(kept for the backward): {_bytes(size)} each in float32 at B={b}, "
                 f"{TRANSFORMER.num_heads} heads, T={t}. On a CPU `jax.nn.dot_product_attention` "
                 "runs jax's XLA path, which builds the same arrays: compare their peaks "
                 "above; only a fused kernel (cuDNN, model.attention='cudnn') avoids them."
                 if jax.devices()[0].platform == "cpu" else
                 f"Naive attention materializes the [B, heads, T, T] logits and weights "
                 f"(kept for the backward): {_bytes(size)} each in float32 at B={b}, "
                 f"{TRANSFORMER.num_heads} heads, T={t}.")
  return lines


def _flops_lines(df) -> list[str]:
  """XLA's FLOP count against the analytic one, and achieved GFLOP/s, at the longest T."""
  if "analysis.flops_analytic.mean" not in df:
    return []
  parts, speed = [], []
  for m in [m for m in MODELS if m in set(df["meta.model"])]:
    g = df[df["meta.model"] == m].sort_values("meta.length")
    r = g.iloc[-1]
    if "analysis.flops.mean" in g and np.isfinite(r["analysis.flops.mean"]):
      ratio = g["analysis.flops.mean"] / g["analysis.flops_analytic.mean"]
      parts.append(f"{m} {ratio.min():.2f}-{ratio.max():.2f}")
    if "analysis.gflops_per_s.mean" in g:
      speed.append(f"{m} {r['analysis.gflops_per_s.mean']:.2f} at T={int(r['meta.length'])}")
  lines = []
  if parts:
    lines.append("XLA's FLOP count over the analytic matmul count, over the measured T: "
                 + ", ".join(parts) + " (XLA counts a while loop's body once: the "
                 "recurrent matmuls inside an LSTM's scan count for one step, so the LSTMs "
                 "fall below 1, the scan backend's whole-sequence GEMMs still counted; "
                 "tests/test_flops.py checks the counts within 5 % where XLA sees every "
                 "step).")
  if speed:
    lines.append("Achieved GFLOP/s (analytic matmul FLOPs / step time): "
                 + ", ".join(speed) + ".")
  return lines


def _fastest_line(df, rows) -> str | None:
  """Per T the model with the lowest mean step time, and in how many seeds it was
  the fastest of the models measured at that T."""
  from lstmx.lab.aggregate import SEED_KEY, seeds_phrase
  if "analysis.step_time.mean" not in df:
    return None
  at = rows[(rows["meta.hidden"] == df["meta.hidden"].iloc[0])
            & (rows["meta.batch"] == df["meta.batch"].iloc[0])]
  parts = []
  for length, g in df.groupby("meta.length"):
    best = g.loc[g["analysis.step_time.mean"].idxmin()]
    seeds = at[at["meta.length"] == length]
    by_seed = seeds.groupby(SEED_KEY) if SEED_KEY in seeds else [(0, seeds)]
    wins = [s.loc[s["analysis.step_time"].idxmin(), "meta.model"] for _, s in by_seed
            if s["meta.model"].nunique() == g["meta.model"].nunique()]
    parts.append(f"T={int(length)} {best['meta.model']} "
                 f"({best['analysis.step_time.mean'] * 1e3:.3g} ms; fastest in "
                 f"{seeds_phrase(wins.count(best['meta.model']), len(wins))})")
  return "Fastest per T (mean step time): " + ", ".join(parts) + "."


def findings(results) -> list[str]:
  df, rows = _t_study(results), _single_device_rows(results)
  lines = []
  if len(df):
    h, b = int(df["meta.hidden"].iloc[0]), int(df["meta.batch"].iloc[0])
    lo, hi = int(df["n"].min()), int(df["n"].max())
    line = (f"T study at LSTM H={h}, B={b}, {lo if lo == hi else f'{lo}-{hi}'} "
            f"seed{'' if hi == 1 else 's'} (repeated measurements) per point")
    if "param_count.mean" in df:
      line += "; parameter counts " + ", ".join(
          f"{m} {int(v)}" for m, v in df.groupby("meta.model")["param_count.mean"].first()
          .items())
    lines.append(line + ".")
    lines += [line for line in (
        _slopes_line(df, "analysis.step_time", "Step time"),
        *_memory_lines(df),
        *_flops_lines(df),
        _crossover_line(df, rows, "analysis.step_time", "Step time"),
        _crossover_line(df, rows, "analysis.peak_bytes", "Peak memory"),
        _fastest_line(df, rows)) if line]
    if "analysis.compile_time.mean" in df:
      comp = df.groupby("meta.model")["analysis.compile_time.mean"].mean()
      lines.append("Mean lower + compile time: " + ", ".join(
          f"{m} {v:.1f} s" for m, v in comp.items()) + ".")
  by_h, by_b, t = _size_studies(results)
  for d, x, what in ((by_h, "meta.hidden", "H (the LSTM width the budget matches)"),
                     (by_b, "meta.batch", "B")):
    if len(d):
      lines.append(f"Step time against {what} at T={t}, slopes fitted to the means: "
                   + ", ".join(f"{m} {slope(g[x], g['analysis.step_time.mean']):.2f}"
                               for m, g in d.groupby("meta.model")) + ".")
  dev = _device_table(results)
  for m, g in dev.groupby("model") if len(dev) else ():
    g = g.sort_values("devices")
    best = g.loc[g["tokens_per_s.mean"].idxmax()]
    one, last = g["tokens_per_s.mean"].iloc[0], g["tokens_per_s.mean"].iloc[-1]
    lines.append(f"Devices ({m}, B={int(g['batch'].iloc[0])}, T={int(g['length'].iloc[0])}, "
                 f"data parallel, mean of {int(g['n'].max())} "
                 f"seed{'' if int(g['n'].max()) == 1 else 's'}): {one:,.0f} tokens/s "
                 f"on 1 device, {last:,.0f} on {int(g['devices'].iloc[-1])} "
                 f"({last / one:.2f}x), best on {int(best['devices'])} "
                 f"({best['tokens_per_s.mean'] / one:.2f}x).")
  if len(dev) and jax.devices()[0].platform == "cpu":
    lines.append("The device counts are fake CPU devices sharing the host's cores: they "
                 "measure sharding overhead and the host's spare parallelism, not scaling.")
  return lines


def headline(results) -> dict:
  """For ``lstmx report``'s page: step time against T (the T study's sizes), its slopes
  and where the Transformer's step becomes the costlier."""
  df, rows = _t_study(results), _single_device_rows(results)
  if not len(df):
    return {}
  # lstmx's default backend against the Transformer (the report has every variant).
  pair = ["lstm_scan", "transformer"]
  df, rows = df[df["meta.model"].isin(pair)], rows[rows["meta.model"].isin(pair)]
  lines = [_slopes_line(df, "analysis.step_time", "Step time"),
           _crossover_line(df, rows, "analysis.step_time", "Step time")]
  return {"figure": "time_vs_length", "finding": " ".join(x for x in lines if x) or None,
          "where": {"meta.hidden": int(df["meta.hidden"].iloc[0]),
                    "meta.batch": int(df["meta.batch"].iloc[0])}}


if __name__ == "__main__":
  main(sys.modules[__name__])
