"""Reports: ``summary.csv``, matplotlib figures (PNG and SVG), ``report.md`` and
``report.json`` from a results table.

Called after a sweep and on demand (``lstmx report DIR``). ``summary.csv`` is the
per-configuration aggregate over seeds (`lstmx.lab.aggregate.summarize`: ``n``,
and per metric mean, std and 95 % Student t interval). The experiment
(`lstmx.lab.experiment.Experiment`) supplies ``figures(results, fig_dir) ->
[(title, stem)]`` (each figure saved as ``fig_dir/stem.png`` and ``.svg``, e.g.
with `save_figure`; means drawn with their intervals by `plot_mean`) and
``findings(results) -> [sentences]`` computed from the aggregate; both default
to none. ``report.json`` holds the same as data (name, ``LIMIT``, figures,
findings and the experiment's headline, `Experiment.headline_of`) for the
cross-experiment page (`lstmx.lab.overview`).
"""

from __future__ import annotations

import os
import types

import numpy as np
import pandas as pd

from lstmx.lab import aggregate
from lstmx.lab.experiment import Experiment, as_experiment
from lstmx.train.rundir import atomic_write, write_json

COST_COLUMNS = ("status", "steps", "wall_time", "compile_time", "param_count")
REPORT_JSON = "report.json"  # what report.md shows, for the cross-experiment page


def save_figure(fig, fig_dir: str, stem: str) -> None:
  """Saves a matplotlib figure as PNG and SVG and closes it."""
  import matplotlib.pyplot as plt
  os.makedirs(fig_dir, exist_ok=True)
  for ext in ("png", "svg"):
    fig.savefig(os.path.join(fig_dir, f"{stem}.{ext}"), dpi=120, bbox_inches="tight")
  plt.close(fig)


def heatmap(ax, table: pd.DataFrame, labels=None, *, xlabel: str, ylabel: str, title: str,
            **imshow_kw):
  """Draws a pivot `table` (index -> rows, columns -> columns) as an annotated
  image on `ax`; `labels` (same shape, strings) replaces the ``.2f`` values.
  Returns the image, for a colorbar."""
  import numpy as np
  im = ax.imshow(table.values, aspect="auto", **imshow_kw)
  for (i, j), v in np.ndenumerate(table.values):
    text = f"{v:.2f}" if labels is None else labels[i][j]
    ax.text(j, i, text, ha="center", va="center", color="grey", fontsize=8)
  ax.set(xticks=range(len(table.columns)), xticklabels=table.columns,
         yticks=range(len(table.index)), yticklabels=table.index,
         xlabel=xlabel, ylabel=ylabel, title=title)
  return im


INTERVAL_NOTE = "mean over seeds with its 95 % Student t interval"


def plot_mean(ax, summary: pd.DataFrame, x, metric: str, *, style: str = "band",
              scale: float = 1.0, label: str | None = None, **plot_kw):
  """Draws `metric`'s mean over seeds with its 95 % interval, one point per row of
  `summary` (`lstmx.lab.aggregate.summarize` rows, e.g. one model's lengths).

  Args:
    ax: the matplotlib axes.
    summary: summary rows with ``metric.mean``, ``.ci_low``, ``.ci_high``.
    x: a column of `summary` (rows are sorted by it) or positions, one per row.
    metric: the metric's column in the results table, e.g. ``final.test.accuracy``.
    style: ``"band"`` (a line with a shaded interval) or ``"bars"`` (markers with
      error bars). A configuration with one seed (NaN interval) or a metric
      missing from `summary` draws no interval (or nothing).
    scale: multiplies the values (units).
    label, plot_kw: passed to ``ax.plot`` / ``ax.errorbar``.

  Returns:
    The mean's line (a Line2D), or None where `metric` is not in `summary`.
  """
  if style not in ("band", "bars"):
    raise ValueError(f"style: expected 'band' or 'bars'; got {style!r}")
  if f"{metric}.mean" not in summary or not len(summary):
    return None
  if isinstance(x, str):
    summary = summary.sort_values(x)
    xs = summary[x].to_numpy()
  else:
    xs = np.asarray(x)
    if len(xs) != len(summary):
      raise ValueError(f"x: expected {len(summary)} positions, one per summary row; "
                       f"got {len(xs)}")
  mean, low, high = (summary[f"{metric}.{s}"].to_numpy(float) * scale
                     for s in ("mean", "ci_low", "ci_high"))
  if style == "bars":
    if ax.get_yscale() == "log":  # a bar reaching zero or below: drawn down to mean / 100
      low = np.where(np.isnan(low) | (low > 0), low, mean / 100)  # NaN: one seed, no bar
    yerr = np.stack([np.nan_to_num(mean - low), np.nan_to_num(high - mean)])
    plot_kw.setdefault("fmt", "o")
    plot_kw.setdefault("capsize", 3)
    return ax.errorbar(xs, mean, yerr=np.maximum(yerr, 0), label=label, **plot_kw).lines[0]
  plot_kw.setdefault("marker", "o")
  return _line_with_band(ax, xs, mean, low, high, label, plot_kw)


def _line_with_band(ax, xs, mean, low, high, label, plot_kw):
  """The mean as a line and [low, high] as a band of its colour where both are finite;
  on a log y axis a band reaching zero or below is drawn down to mean / 100."""
  if ax.get_yscale() == "log":
    low = np.where(low > 0, low, mean / 100)
  line, = ax.plot(xs, mean, label=label, **plot_kw)
  ok = np.isfinite(low) & np.isfinite(high)
  if ok.any():
    ax.fill_between(xs, np.where(ok, low, mean), np.where(ok, high, mean),
                    color=line.get_color(), alpha=0.2, lw=0)
  return line


def plot_curves(ax, curves: list[tuple], *, label: str | None = None, **plot_kw):
  """Draws the mean over seeds of curves ``[(steps, values), ...]`` (one per seed)
  at the steps they all share, with a 95 % interval band (none for one curve).
  On a log y axis a band reaching zero or below is drawn down to mean / 100.
  Returns the line, or None where there is no curve."""
  curves = [(np.asarray(s), np.asarray(v, float)) for s, v in curves if len(s)]
  if not curves:
    return None
  steps = curves[0][0]
  for s, _ in curves[1:]:
    steps = np.intersect1d(steps, s)
  stacked = np.array([[dict(zip(s.tolist(), v))[t] for t in steps.tolist()]
                      for s, v in curves])
  mean, _, low, high = aggregate.interval_along(stacked, axis=0)
  return _line_with_band(ax, steps, mean, low, high, label, plot_kw)


def markdown_table(df: pd.DataFrame, max_rows: int = 200) -> str:
  def fmt(v):
    if isinstance(v, float):
      return f"{v:.4g}"
    return "" if v is None else str(v)
  head = "| " + " | ".join(map(str, df.columns)) + " |"
  sep = "|" + "---|" * len(df.columns)
  rows = ["| " + " | ".join(fmt(v) for v in r) + " |" for r in df.head(max_rows).itertuples(
      index=False)]
  return "\n".join([head, sep, *rows])


FINISHED = aggregate.COUNTED


def write_summary(out_dir: str, results: pd.DataFrame) -> pd.DataFrame:
  """Writes ``out_dir/summary.csv`` (atomically): `aggregate.summarize` of `results`.
  Returns the summary."""
  summary = aggregate.summarize(results)
  atomic_write(os.path.join(out_dir, "summary.csv"),
               lambda f: summary.to_csv(f, index=False))
  return summary


def summary_table(summary: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
  """The summary for ``report.md``: configuration keys, seed counts (failed and
  diverged where any), and each metric as ``mean [ci_low, ci_high]``."""
  keys = aggregate.summary_keys(summary)
  counts = ["n"] + [c for c in ("n_diverged", "n_failed", "n_pending")
                    if c in summary and summary[c].any()]
  table = summary[keys + counts].copy()
  for m in metrics:
    if f"{m}.mean" in summary:
      table[m] = [aggregate.mean_ci_text(r, m, ".4g") for _, r in summary.iterrows()]
  return table


def write(experiment: Experiment | types.ModuleType, out_dir: str,
          results: pd.DataFrame) -> str:
  """Writes ``out_dir/summary.csv``, ``out_dir/report.md``, ``out_dir/report.json``
  and figures; returns the report's path."""
  import matplotlib
  matplotlib.use("Agg")
  exp = as_experiment(experiment)
  fig_dir = os.path.join(out_dir, "figures")
  summary = write_summary(out_dir, results)
  counts = results["status"].value_counts().to_dict() if "status" in results else {}
  lines = [f"# {exp.name}", "", exp.description, "",
           f"{len(results)} trials: " + ", ".join(f"{v} {k}" for k, v in counts.items()), ""]
  figures, findings, headline = [], [], None
  if not any(counts.get(s, 0) for s in FINISHED):
    lines += ["No trial finished, so there are no figures or findings; see the failed "
              "trials below.", ""]
  else:
    try:
      figures = [tuple(f) for f in exp.figures(results, fig_dir)]
      findings = list(exp.findings(results))
    except Exception as e:  # noqa: BLE001 - a figure bug must not lose the report
      lines += [f"Drawing the figures or findings failed ({type(e).__name__}: {e}); the "
                "results table below is complete.", ""]
    try:
      headline = exp.headline_of(results, figures, findings)
    except Exception as e:  # noqa: BLE001 - nor a headline bug
      lines += [f"The headline for the cross-experiment page failed ({type(e).__name__}: "
                f"{e}); the page shows no figure or finding for this experiment.", ""]
  write_json(os.path.join(out_dir, REPORT_JSON), {
      "name": exp.name, "limit": exp.limit, "description": exp.description,
      "experiment": exp.path, "figures": [list(f) for f in figures], "findings": findings,
      "headline": headline})
  if findings:
    lines += ["## Findings", ""] + [f"- {f}" for f in findings] + [""]
  for title, stem in figures:
    lines += [f"## {title}", "", f"![{title}](figures/{stem}.png)", ""]
  shown = [m for m in aggregate.metric_columns(results) if m.startswith(
      ("final.validation.", "at_best.test.")) or m == "task.solved"]
  lines += ["## Summary over seeds", "",
            f"Per configuration: n seeds and each metric's {INTERVAL_NOTE} "
            "(`summary.csv` has them all; docs/statistics.md).", "",
            markdown_table(summary_table(summary, shown)), ""]
  keys = [*aggregate.config_keys(results)]
  if aggregate.SEED_KEY in results:
    keys.append(aggregate.SEED_KEY)
  shown = ["trial", *keys, *[c for c in results.columns if c.startswith("final.validation.")],
           *[c for c in COST_COLUMNS if c in results.columns]]
  lines += ["## Results", "", markdown_table(results[[c for c in shown if c in results]]), ""]
  failed = results[results["status"] == "failed"] if "status" in results else results[:0]
  if len(failed):
    lines += ["## Failed trials", ""] + [f"- {r.trial}: {r.error}" for r in failed.itertuples()]
  path = os.path.join(out_dir, "report.md")
  atomic_write(path, "\n".join(lines) + "\n")
  return path
