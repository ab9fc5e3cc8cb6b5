"""Reports: matplotlib figures (PNG and SVG) and ``report.md`` from a results table.

Called after a sweep and on demand (``lstmx report DIR``). The experiment
(`lstmx.lab.experiment.Experiment`) supplies ``figures(results, fig_dir) ->
[(title, stem)]`` (each figure saved as ``fig_dir/stem.png`` and ``.svg``, e.g.
with `save_figure`) and ``findings(results) -> [sentences]`` computed from the
results; both default to none.
"""

from __future__ import annotations

import os
import types

import pandas as pd

from lstmx.lab.experiment import Experiment, as_experiment
from lstmx.train.rundir import atomic_write

COST_COLUMNS = ("status", "steps", "wall_time", "compile_time", "param_count")


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


FINISHED = ("completed", "early_stopped", "diverged")


def write(experiment: Experiment | types.ModuleType, out_dir: str,
          results: pd.DataFrame) -> str:
  """Writes ``out_dir/report.md`` (and figures); returns its path."""
  import matplotlib
  matplotlib.use("Agg")
  exp = as_experiment(experiment)
  fig_dir = os.path.join(out_dir, "figures")
  counts = results["status"].value_counts().to_dict() if "status" in results else {}
  lines = [f"# {exp.name}", "", exp.description, "",
           f"{len(results)} trials: " + ", ".join(f"{v} {k}" for k, v in counts.items()), ""]
  figures, findings = [], []
  if not any(counts.get(s, 0) for s in FINISHED):
    lines += ["No trial finished, so there are no figures or findings; see the failed "
              "trials below.", ""]
  else:
    try:
      figures = exp.figures(results, fig_dir)
      findings = exp.findings(results)
    except Exception as e:  # noqa: BLE001 - a figure bug must not lose the report
      lines += [f"Drawing the figures or findings failed ({type(e).__name__}: {e}); the "
                "results table below is complete.", ""]
  if findings:
    lines += ["## Findings", ""] + [f"- {f}" for f in findings] + [""]
  for title, stem in figures:
    lines += [f"## {title}", "", f"![{title}](figures/{stem}.png)", ""]
  keys = [c for c in results.columns if "." in c and not c.startswith(
      ("final.", "best.", "task.", "analysis."))]
  shown = ["trial", *keys, *[c for c in results.columns if c.startswith("final.validation.")],
           *[c for c in COST_COLUMNS if c in results.columns]]
  lines += ["## Results", "", markdown_table(results[[c for c in shown if c in results]]), ""]
  failed = results[results["status"] == "failed"] if "status" in results else results[:0]
  if len(failed):
    lines += ["## Failed trials", ""] + [f"- {r.trial}: {r.error}" for r in failed.itertuples()]
  path = os.path.join(out_dir, "report.md")
  atomic_write(path, "\n".join(lines) + "\n")
  return path
