"""Reports: ``summary.csv``, matplotlib figures (PNG and SVG), ``report.md`` and
``report.json`` from a results table.

Called after a sweep and on demand (``lstmx report DIR``). ``summary.csv`` is the
per-configuration aggregate over seeds (`lstmx.lab.aggregate.summarize`: ``n``,
and per metric its centre and 95 % interval by its kind, `lstmx.lab.quantities`). The
experiment
(`lstmx.lab.experiment.Experiment`) supplies ``figures(results, fig_dir) ->
[(title, stem)]`` (each figure saved as ``fig_dir/stem.png`` and ``.svg``, e.g.
with `save_figure`; centres drawn with their intervals by `plot_mean` and
`plot_curves`) and ``findings(results) -> [Finding | sentence]`` and ``controls(results) -> [Control]``;
all default to none. Finding records are checked against the controls
(`lstmx.lab.findings.withhold`) and rendered (`findings.render`). ``report.json``
holds the same as data (name, ``LIMIT``, figures, the rendered findings,
``controls`` with ``passed``, the ``records`` and the experiment's headline,
`Experiment.headline_of`) for the cross-experiment page (`lstmx.lab.overview`).
"""

from __future__ import annotations

import os
import types
from typing import Any, Sequence

import numpy as np
import pandas as pd

from lstmx.lab import aggregate, quantities, run_names
from lstmx.lab import findings as fnd
from lstmx.lab.experiment import Experiment, as_experiment
from lstmx.train.rundir import atomic_write, read_json, warn, write_json

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


# What report.md's summary table and the figures show, whatever the metric's kind; a
# figure of one kind says which (`quantities.Kind.note`), the table names each column's
# method in its header (`summary_table`).
INTERVAL_NOTE = "centre over seeds with the 95 % interval its quantity's kind gets"


def log_ticks(ax, values) -> None:
  """Ticks of a log x axis at `values`, written as plain numbers."""
  import matplotlib.ticker
  ax.set_xticks(sorted({float(v) for v in values}))
  ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
  ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def seeds_text(summary: pd.DataFrame) -> str:
  """The seed counts of summary rows: "3 seeds", "1 seed" or "2-3 seeds"."""
  n = summary["n"][summary["n"] > 0] if "n" in summary else []
  if not len(n):
    return "0 seeds"
  lo, hi = int(n.min()), int(n.max())
  return f"{lo} seed{'' if lo == 1 else 's'}" if lo == hi else f"{lo}-{hi} seeds"


def colors(names: Sequence[str]) -> dict[str, str]:
  """One colour per name (a model, an arm), the same in every panel: matplotlib's
  tab10 cycle in the order given."""
  cycle = [f"C{i}" for i in range(10)]
  return {n: cycle[i % 10] for i, n in enumerate(dict.fromkeys(names))}


def plot_mean(ax, summary: pd.DataFrame, x, metric: str, *, style: str = "band",
              scale: float = 1.0, label: str | None = None, **plot_kw):
  """Draws `metric`'s centre over seeds with its interval as `summarize` gives them for
  its kind (`lstmx.lab.quantities`: a mean with its bootstrap, Clopper-Pearson or t
  interval, a timing's median with min-max, a censored count's Kaplan-Meier median
  alone), one point per row of `summary` (e.g. one model's lengths).

  Args:
    ax: the matplotlib axes.
    summary: summary rows with ``metric.mean`` (and ``.median`` where the kind's
      centre is the median), ``.ci_low``, ``.ci_high``.
    x: a column of `summary` (rows are sorted by it) or positions, one per row.
    metric: the metric's column in the results table, e.g. ``final.test.accuracy``.
    style: ``"band"`` (a line with a shaded interval) or ``"bars"`` (markers with
      error bars, no bar from zero). A configuration with one seed (NaN interval), a
      censored metric, or a metric missing from `summary` draws no interval (or
      nothing).
    scale: multiplies the values (units).
    label, plot_kw: passed to ``ax.plot`` / ``ax.errorbar``.

  Returns:
    The centre's line (a Line2D), or None where `metric` is not in `summary`.
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
  mid = aggregate.center(summary, metric).to_numpy(float) * scale
  low, high = (summary[f"{metric}.{s}"].to_numpy(float) * scale for s in ("ci_low", "ci_high"))
  if style == "bars":
    if ax.get_yscale() == "log":  # a bar reaching zero or below: drawn down to centre / 100
      low = np.where(np.isnan(low) | (low > 0), low, mid / 100)  # NaN: one seed, no bar
    yerr = np.stack([np.nan_to_num(mid - low), np.nan_to_num(high - mid)])
    plot_kw.setdefault("fmt", "o")
    plot_kw.setdefault("capsize", 3)
    return ax.errorbar(xs, mid, yerr=np.maximum(yerr, 0), label=label, **plot_kw).lines[0]
  plot_kw.setdefault("marker", "o")
  return _line_with_band(ax, xs, mid, low, high, label, plot_kw)


def _line_with_band(ax, xs, mid, low, high, label, plot_kw):
  """The centre as a line and [low, high] as a band of its colour where both are finite;
  on a log y axis a band reaching zero or below is drawn down to centre / 100."""
  if ax.get_yscale() == "log":
    low = np.where(low > 0, low, mid / 100)
  line, = ax.plot(xs, mid, label=label, **plot_kw)
  ok = np.isfinite(low) & np.isfinite(high)
  if ok.any():
    ax.fill_between(xs, np.where(ok, low, mid), np.where(ok, high, mid),
                    color=line.get_color(), alpha=0.2, lw=0)
  return line


def plot_curves(ax, curves: list[tuple], *, kind: quantities.Kind = quantities.UNBOUNDED,
                label: str | None = None, **plot_kw):
  """Draws the centre over seeds of curves ``[(steps, values), ...]`` (one per seed) at
  the steps they all share, with the band `kind` gives each step's values
  (`lstmx.lab.quantities.describe`: e.g. ``quantities.NONNEGATIVE`` for losses, a
  bootstrap band that stays above 0; ``kind_of(column)`` for a results column). The
  default, ``UNBOUNDED``, draws the mean with a Student t band: pass the kind of any
  bounded, censored or timing quantity. No band for one curve. On a log y axis a band
  reaching zero or below is drawn down to centre / 100. Returns the line, or None where
  there is no curve."""
  curves = [(np.asarray(s), np.asarray(v, float)) for s, v in curves if len(s)]
  if not curves:
    return None
  steps = curves[0][0]
  for s, _ in curves[1:]:
    steps = np.intersect1d(steps, s)
  stacked = np.array([[dict(zip(s.tolist(), v))[t] for t in steps.tolist()]
                      for s, v in curves])
  at = quantities.describe_groups(list(stacked.T), kind)
  mid, low, high = (np.array([getattr(d, f) for d in at], float)
                    for f in ("center", "low", "high"))
  return _line_with_band(ax, steps, mid, low, high, label, plot_kw)


def markdown_table(df: pd.DataFrame, max_rows: int = 200) -> str:
  """`df` as a markdown table: floats to 4 significant digits, missing values blank."""
  def fmt(v):
    if isinstance(v, float):
      return "" if np.isnan(v) else f"{v:.4g}"
    return "" if v is None else str(v)
  head = "| " + " | ".join(map(str, df.columns)) + " |"
  sep = "|" + "---|" * len(df.columns)
  rows = ["| " + " | ".join(fmt(v) for v in r) + " |" for r in df.head(max_rows).itertuples(
      index=False)]
  return "\n".join([head, sep, *rows])


FINISHED = aggregate.COUNTED
COUNTS = ("examples",)  # metrics that are the size of an evaluation set: in the CSVs only


def _blank(v) -> bool:
  return v is None or v == "" or (isinstance(v, float) and np.isnan(v))


def uninformative(table: pd.DataFrame, keep: Sequence[str] = ()) -> dict[str, Any]:
  """``{column: its one value}`` for the columns of `table` (not in `keep`) that tell its
  rows apart nowhere: blank in every row, or (over two rows or more) one value in every
  row; a blank column's value is None."""
  out = {}
  for c in table.columns:
    if c in keep:
      continue
    values = [None if _blank(v) else repr(v) for v in table[c]]
    if all(v is None for v in values):
      out[c] = None
    elif len(table) > 1 and len(set(values)) == 1:
      out[c] = table[c].iloc[0]
  return out


def implied_keys(table: pd.DataFrame, keys: Sequence[str]) -> list[str]:
  """The `keys` that the experiment's ``meta.*`` labels among them fix (one value for each
  combination of labels, e.g. ``task.params.length`` beside ``meta.length``): left out of
  the report's tables, kept in the CSVs. None where `keys` has no labels."""
  labels = [k for k in keys if k.startswith("meta.")]
  if not labels or not len(table):
    return []
  label_of = [repr(tuple(r)) for r in table[labels].itertuples(index=False)]
  implied = []
  for k in keys:
    seen: dict[str, str] = {}
    if k not in labels and all(seen.setdefault(label, repr(v)) == repr(v)
                               for label, v in zip(label_of, table[k])):
      implied.append(k)
  return implied


def tidy(table: pd.DataFrame, keep: Sequence[str] = ()) -> tuple[pd.DataFrame, str]:
  """`table` for ``report.md`` without its `uninformative` columns, and a line naming
  those with one value (empty where none)."""
  drop = uninformative(table, keep)
  same = [f"{c} = {_text(v)}" for c, v in drop.items() if v is not None]
  line = f"The same in every row: {', '.join(same)}." if same else ""
  return table.drop(columns=list(drop)), line


def _text(v) -> str:
  if isinstance(v, float):
    return f"{v:.4g}"
  return str(v)


def write_summary(out_dir: str, results: pd.DataFrame) -> pd.DataFrame:
  """Writes ``out_dir/summary.csv`` (atomically): `aggregate.summarize` of `results`.
  Returns the summary."""
  summary = aggregate.summarize(results)
  atomic_write(os.path.join(out_dir, "summary.csv"),
               lambda f: summary.to_csv(f, index=False))
  return summary


def summary_table(summary: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
  """The summary for ``report.md``: configuration keys (less those its ``meta.*`` labels
  imply: `implied_keys`), seed counts (failed and diverged where any), and each metric
  as ``centre [ci_low, ci_high]`` (the centre alone for one seed; blank for none) under
  a header naming the interval's method, e.g. ``final.validation.accuracy (percentile
  bootstrap)``."""
  keys = aggregate.summary_keys(summary)
  keys = [k for k in keys if k not in implied_keys(summary, keys)]
  counts = ["n"] + [c for c in ("n_diverged", "n_failed", "n_pending")
                    if c in summary and summary[c].any()]
  table = summary[keys + counts].copy()
  for m in metrics:
    if f"{m}.mean" in summary:
      methods = summary[f"{m}.method"].dropna() if f"{m}.method" in summary else []
      header = f"{m} ({methods.iloc[0]})" if len(methods) else m
      table[header] = ["" if _blank(aggregate.center(r, m)) else
                       aggregate.mean_ci_text(r, m, ".4g", method=False)
                       for _, r in summary.iterrows()]
  return table


def _is_count(metric: str) -> bool:
  return metric.rsplit(".", 1)[-1] in COUNTS


def sweep_trials(out_dir: str, results: pd.DataFrame) -> list[tuple[str, dict]]:
  """The sweep's ``(trial id, overrides)``: ``experiment.json``'s list (keys in the
  results table's order, the sweep's), else the results table's trial ids with their
  configuration keys and seed."""
  order = {c: i for i, c in enumerate(results.columns)}
  try:
    meta = read_json(os.path.join(out_dir, "experiment.json"))
    return [(t["trial"], dict(sorted(t["overrides"].items(),
                                     key=lambda kv: order.get(kv[0], len(order)))))
            for t in meta["trials"]]
  except (OSError, ValueError, KeyError, TypeError, AttributeError):
    pass
  if "trial" not in results:
    return []
  keys = [*aggregate.config_keys(results), aggregate.SEED_KEY]
  return [(str(r["trial"]), {k: r[k] for k in keys if k in r and not _blank(r[k])})
          for _, r in results.iterrows()]


def controls_section(controls) -> list[str]:
  """report.md's table of positive controls (none: no lines)."""
  if not controls:
    return []
  rows = pd.DataFrame([{
      "control": c.name, "setting": ", ".join(f"{k}={v}" for k, v in c.setting.items()),
      "solved": f"{c.solved}/{c.seeds}", "needed": c.required,
      "passed": "yes" if c.passed else "NO: its findings are withheld",
      "why it should pass": c.citation} for c in controls])
  return ["## Positive controls", "",
          "Settings the cited papers solve, trained like every other arm; a finding whose "
          "control did not pass is withheld.", "", markdown_table(rows), ""]


def write(experiment: Experiment | types.ModuleType, out_dir: str,
          results: pd.DataFrame) -> str:
  """Writes ``out_dir/summary.csv``, ``out_dir/report.md``, ``out_dir/report.json``
  and figures, and links the trials' TensorBoard runs under readable names in
  ``out_dir/tensorboard`` (`lstmx.lab.run_names`); returns the report's path."""
  import matplotlib
  matplotlib.use("Agg")
  exp = as_experiment(experiment)
  board = None
  try:
    board = run_names.link_tensorboard(out_dir, sweep_trials(out_dir, results))
  except OSError as e:  # e.g. a filesystem without symbolic links
    warn(f"{out_dir}: no readable TensorBoard names ({e})")
  fig_dir = os.path.join(out_dir, "figures")
  summary = write_summary(out_dir, results)
  counts = results["status"].value_counts().to_dict() if "status" in results else {}
  lines = [f"# {exp.name}", "", exp.description, "",
           f"{len(results)} trials: " + ", ".join(f"{v} {k}" for k, v in counts.items()), ""]
  if board is not None:
    lines += [f"Curves: `tensorboard --logdir {board}` (one run per trial, by its values "
              "and seed).", ""]
  figures, findings, headline, records, controls = [], [], None, [], []
  if not any(counts.get(s, 0) for s in FINISHED):
    lines += ["No trial finished, so there are no figures or findings; see the failed "
              "trials below.", ""]
  else:
    try:
      figures = [tuple(f) for f in exp.figures(results, fig_dir)]
      controls = list(exp.controls(results))
      findings, records = fnd.checked(exp.findings(results), controls)
    except Exception as e:  # noqa: BLE001 - a figure bug must not lose the report
      lines += [f"Drawing the figures or findings failed ({type(e).__name__}: {e}); the "
                "results table below is complete.", ""]
    try:
      headline = exp.headline_of(results, figures, findings, records)
    except Exception as e:  # noqa: BLE001 - nor a headline bug
      lines += [f"The headline for the cross-experiment page failed ({type(e).__name__}: "
                f"{e}); the page shows no figure or finding for this experiment.", ""]
  write_json(os.path.join(out_dir, REPORT_JSON), {
      "name": exp.name, "limit": exp.limit, "description": exp.description,
      "experiment": exp.path, "figures": [list(f) for f in figures], "findings": findings,
      "headline": headline, **fnd.report_json(records, controls)})
  lines += controls_section(controls)
  if findings:
    lines += ["## Findings", ""] + [f"- {f}" for f in findings] + [""]
  for title, stem in figures:
    lines += [f"## {title}", "", f"![{title}](figures/{stem}.png)", ""]
  shown = [m for m in aggregate.metric_columns(results) if (m.startswith(
      ("final.validation.", "at_best.test.")) or m == "task.solved") and not _is_count(m)]
  table, same = tidy(summary_table(summary, shown))
  lines += ["## Summary over seeds", "",
            f"Per configuration: n seeds and each metric's {INTERVAL_NOTE} "
            "(`summary.csv` has them all, with every configuration key; "
            "docs/statistics.md).", "", *([same, ""] if same else []),
            markdown_table(table), ""]
  keys = aggregate.config_keys(results)
  keys = [k for k in keys if k not in implied_keys(results, keys)]
  if aggregate.SEED_KEY in results:
    keys.append(aggregate.SEED_KEY)
  shown = ["trial", *keys, *[c for c in results.columns if c.startswith("final.validation.")
                             and not _is_count(c)],
           *[c for c in COST_COLUMNS if c in results.columns]]
  table, same = tidy(results[[c for c in shown if c in results]], keep=("trial",))
  lines += ["## Results", "", "One row per trial and seed (`results.csv` has every column).",
            "", *([same, ""] if same else []), markdown_table(table), ""]
  failed = results[results["status"] == "failed"] if "status" in results else results[:0]
  if len(failed):
    lines += ["## Failed trials", ""] + [f"- {r.trial}: {r.error}" for r in failed.itertuples()]
  path = os.path.join(out_dir, "report.md")
  atomic_write(path, "\n".join(lines) + "\n")
  return path
