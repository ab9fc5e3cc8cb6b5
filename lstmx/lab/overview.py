"""The cross-experiment page, "Limits of LSTMs: what these runs show": one row per
limit of LSTMs (compute, overfitting, long-range dependencies, non-sequential data;
experiments probing one limit, such as compute and parallel_time, share its row),
the headline figure and finding, whether the records locate a stopping point within
the runs' budget (`stopping_point`), the positive controls' status
(`controls_text`) and the conditions under which they hold, all read from the
experiments' output directories.

    lstmx report runs/compute/quick runs/overfitting/quick \\
        runs/long_dependency/quick runs/non_sequential/quick   # -> runs/where_lstms_stop.md

Each output directory (``lstmx train FILE --preset P`` or ``python FILE --preset
P``) gives

* its headline and findings: ``report.json``, written with ``report.md`` by
  `lstmx.lab.report.write` (rewritten here first where it is missing or older
  than ``results.csv``); the headline is the experiment file's ``headline(results)``
  with the first figure and finding as defaults (`Experiment.headline_of`), its
  limit the file's ``LIMIT`` (default its ``NAME``, through `LIMIT_OF_NAME`);
* its conditions (`conditions`), computed from the finished trials' rows of
  ``results.csv`` (restricted to the headline's ``where``) with the base config of
  ``experiment.json`` for keys the sweep does not set: every ``meta.*`` axis of
  the sweep (lengths, training set sizes, models, ...), the tasks, hidden sizes,
  training steps and batch sizes, the examples each split's evaluation set holds
  (``final.SPLIT.examples``: a finite dataset's split sizes; docs/evaluation.md),
  the seeds per configuration (`aggregate.summarize`'s ``n``) and the devices JAX
  gave each trial (its ``summary.json``).

Limits are ordered as in `LIMIT_TITLES`, then the others as given; a limit not
in it is titled by the experiment's description up to its first colon.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any, Sequence

import pandas as pd

from lstmx.lab import aggregate
from lstmx.lab import report as reports
from lstmx.train.rundir import CorruptRecord, atomic_write, read_json

TITLE = "Limits of LSTMs: what these runs show"
DEFAULT_NAME = "where_lstms_stop.md"
LIMIT_TITLES = {"compute": "Compute", "overfitting": "Overfitting",
                "long_range": "Long-range dependencies", "non_sequential": "Non-sequential data"}
# The limit of an experiment whose file sets no LIMIT and whose NAME is not a limit.
LIMIT_OF_NAME = {"long_dependency": "long_range"}
SPLITS = ("train", "validation", "test")
# Settings every experiment has (override column or base config), after its meta.* axes.
SETTINGS = (("task.name", "tasks"), ("model.hidden_size", "hidden sizes"),
            ("train.steps", "training steps"), ("train.batch_size", "batch sizes"))
MAX_LISTED = 6  # more distinct values than this: "low to high (k values)"


def check_output_dir(out_dir: str, argument: str = "DIR") -> dict:
  """``out_dir/experiment.json`` of an experiment's output directory.

  Raises:
    ValueError: naming `argument` and `out_dir`, where it is not a directory or lacks
      a readable ``experiment.json`` or ``results.csv``.
  """
  expected = (f"{argument}: expected an experiment's output directory holding "
              "experiment.json and results.csv (as `lstmx train FILE --preset P` writes)")
  if not os.path.isdir(out_dir):
    raise ValueError(f"{expected}; got {out_dir!r}, which is not a directory")
  missing = [f for f in ("experiment.json", "results.csv")
             if not os.path.isfile(os.path.join(out_dir, f))]
  if missing:
    raise ValueError(f"{expected}; got {out_dir!r}, which has no {' or '.join(missing)}")
  try:
    meta = read_json(os.path.join(out_dir, "experiment.json"))
  except CorruptRecord as e:
    raise ValueError(f"{expected}; got {out_dir!r}: {e}") from None
  if not isinstance(meta, dict) or "name" not in meta:
    raise ValueError(f"{expected}; got {out_dir!r}, whose experiment.json names no "
                     "experiment")
  return meta


def load_report(out_dir: str, meta: dict, results: pd.DataFrame) -> dict:
  """``out_dir/report.json``; first rewritten (with ``report.md`` and figures) from the
  experiment file ``experiment.json`` names where it is missing or older than
  ``results.csv``.

  Raises:
    ValueError: it must be rewritten and the experiment file does not load.
  """
  path = os.path.join(out_dir, reports.REPORT_JSON)
  csv = os.path.join(out_dir, "results.csv")
  if not os.path.exists(path) or os.path.getmtime(path) < os.path.getmtime(csv):
    from lstmx.lab.experiment import load
    try:
      experiment = load(meta.get("experiment") or "")
    except (OSError, ValueError) as e:
      raise ValueError(f"DIR {out_dir!r}: its report.json is missing or older than "
                       f"results.csv, and rewriting it needs the experiment file: {e}") from None
    reports.write(experiment, out_dir, results)
  try:
    return read_json(path)
  except CorruptRecord as e:
    raise ValueError(f"DIR {out_dir!r}: {e}; rerun `lstmx report {out_dir}`") from None


def _lookup(config: dict, key: str):
  """The value at dotted `key` of a nested config dict; None where absent."""
  value = config
  for part in key.split("."):
    if not isinstance(value, dict) or part not in value:
      return None
    value = value[part]
  return value


def _missing(v) -> bool:
  return v is None or (isinstance(v, float) and math.isnan(v))


def values_of(rows: pd.DataFrame, key: str, base: dict) -> list:
  """`key`'s value in each of `rows`: its column where set, else the base config's."""
  column = rows[key] if key in rows else pd.Series([None] * len(rows), index=rows.index)
  default = _lookup(base, key)
  return [default if _missing(v) else v for v in column]


def _plain(v):
  if isinstance(v, float) and v.is_integer():
    return int(v)
  return v.item() if hasattr(v, "item") else v


def describe_values(values: Sequence) -> str | None:
  """Distinct `values` as text: ``"5, 10"``; numbers beyond `MAX_LISTED` as ``"8 to
  1024 (7 values)"``; None where there is none."""
  distinct = []
  for v in (_plain(v) for v in values if not _missing(v)):
    if v not in distinct:
      distinct.append(v)
  if not distinct:
    return None
  numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in distinct)
  if numeric:
    distinct.sort()
    if len(distinct) > MAX_LISTED:
      return f"{distinct[0]:g} to {distinct[-1]:g} ({len(distinct)} values)"
    return ", ".join(f"{v:g}" for v in distinct)
  if len(distinct) > MAX_LISTED:
    return ", ".join(map(str, distinct[:MAX_LISTED])) + f", ... ({len(distinct)} values)"
  return ", ".join(map(str, distinct))


def _devices(out_dir: str, trials: Sequence[str]) -> str | None:
  """The devices JAX gave the trials, e.g. ``"1 cpu"`` (their ``summary.json``)."""
  seen = []
  for trial in trials:
    try:
      summary = read_json(os.path.join(out_dir, "trials", str(trial), "summary.json"))
    except (OSError, CorruptRecord):
      continue
    kinds: dict[str, int] = {}
    for d in summary.get("devices") or []:
      kind = re.sub(r"[:_(].*$", "", str(d)).lower()
      kinds[kind] = kinds.get(kind, 0) + 1
    text = " + ".join(f"{n} {k}" for k, n in kinds.items())
    if text and text not in seen:
      seen.append(text)
  return "; ".join(seen) or None


def conditions(out_dir: str, meta: dict, results: pd.DataFrame,
               where: dict[str, Any] | None = None) -> list[tuple[str, str]]:
  """``[(what, values)]``: the settings under which `results`' finished trials (those
  matching `where`, ``{column: value}``) ran; see the module docstring.

  Raises:
    ValueError: `where` names a column `results` lacks.
  """
  rows = aggregate.counted(results)
  if where:
    rows = aggregate.select(rows, where)
  base = meta.get("base") if isinstance(meta.get("base"), dict) else {}
  out = []
  keys = [(c, c[len("meta."):].replace("_", " ")) for c in results.columns
          if c.startswith("meta.")]
  for key, label in [*keys, *SETTINGS]:
    values = values_of(rows, key, base)
    text = describe_values(values)
    set_in = sum(not _missing(v) for v in values)
    if text is not None and set_in < len(values):  # an axis of some trials only
      text += f" ({set_in} of {len(values)} trials)"
    if text is not None and (key.startswith("meta.") or not any(
        t == text and label.startswith(k) for k, t in out)):  # not meta.task's again
      out.append((label, text))
  examples = [f"final.{s}.examples" for s in SPLITS]
  if set(examples) <= set(rows.columns):
    sizes = [" / ".join(f"{_plain(v):g}" for v in r)
             for r in rows[examples].itertuples(index=False) if not any(map(_missing, r))]
    text = describe_values(sizes)
    if text is not None:
      out.append(("examples evaluated (train / validation / test)", text))
  if len(rows):
    summary = aggregate.summarize(rows)
    n = describe_values(summary["n"].tolist())
    out.append(("seeds per configuration", f"{n} ({len(summary)} configurations, "
                                           f"{len(rows)} finished trials)"))
    devices = _devices(out_dir, rows["trial"].tolist() if "trial" in rows else [])
    if devices:
      out.append(("devices", devices))
  out.append(("preset", str(meta.get("preset"))))
  return out


def _cell(text: str) -> str:
  """`text` for a markdown table cell: one line, pipes escaped."""
  return " ".join(str(text).split()).replace("|", "\\|")


def _link(path: str, page_dir: str) -> str:
  return os.path.relpath(path, page_dir).replace(os.sep, "/")


def _entry(out_dir: str, page_dir: str, index: int) -> dict:
  meta = check_output_dir(out_dir)
  results = pd.read_csv(os.path.join(out_dir, "results.csv"))
  rep = load_report(out_dir, meta, results)
  headline = rep.get("headline") or {}
  try:
    conds = conditions(out_dir, meta, results, headline.get("where"))
  except ValueError as e:
    raise ValueError(f"DIR {out_dir!r}: headline where: {e}") from None
  limit = rep.get("limit") or rep.get("name") or meta["name"]
  limit = LIMIT_OF_NAME.get(limit, limit) if limit == rep.get("name") else limit
  title = LIMIT_TITLES.get(limit) or (rep.get("description") or "").split(":")[0].strip()
  figure = None
  if headline.get("figure"):
    png = os.path.join(out_dir, "figures", f"{headline['figure']}.png")
    if os.path.exists(png):
      figure = (headline.get("title") or headline["figure"], _link(png, page_dir))
  counts = results["status"].value_counts().to_dict() if "status" in results else {}
  return {"index": index, "out_dir": out_dir, "meta": meta, "report": rep, "limit": limit,
          "title": title or limit, "figure": figure, "finding": headline.get("finding"),
          "conditions": conds, "counts": counts, "where": headline.get("where") or {},
          "report_md": _link(os.path.join(out_dir, "report.md"), page_dir)}


def _order(entry: dict) -> tuple:
  known = list(LIMIT_TITLES)
  return (known.index(entry["limit"]) if entry["limit"] in known else len(known),
          entry["index"])


def _by_limit(entries: list[dict]) -> list[list[dict]]:
  """`entries` grouped by limit (one row each), in `_order`."""
  groups: dict[str, list[dict]] = {}
  for e in entries:
    groups.setdefault(e["limit"], []).append(e)
  return list(groups.values())


STOP_KINDS = ("stops",)  # record kinds that locate a stopping point (lstmx.lab.solving)


def stopping_point(entry: dict) -> str:
  """Whether the experiment's records locate a stopping point within its budget: the
  kept ``stops`` records' subjects; "none within the budget" where records of a solved
  rule exist but none stops (naming the arms not solved even at the shortest value);
  "not assessed" without such records."""
  from lstmx.lab import findings
  records, _ = findings.from_json({"findings": entry["report"].get("records") or []})
  kept = [f for f in records if f.withheld_reason is None]
  stops = [f for f in kept if f.kind in STOP_KINDS]
  if stops:
    return "; ".join(findings.subject_text(f) for f in stops)
  never = [findings.subject_text(f) for f in kept if f.kind == "never_solved"]
  if any(f.quantity == "solved" for f in kept):
    return "none within the budget" + (
        f"; not solved at the shortest tried: {'; '.join(never)}" if never else "")
  if any(f.withheld_reason for f in records):
    return "withheld: a control failed"
  return "not assessed (no solved rule in its findings)"


def controls_text(entry: dict) -> str:
  """"k/n passed" over the experiment's controls, each failed one named; or none."""
  controls = entry["report"].get("controls") or []
  if not controls:
    return "none"
  failed = [c["name"] for c in controls if not c.get("passed")]
  text = f"{len(controls) - len(failed)}/{len(controls)} passed"
  seeds = sorted({int(c["seeds"]) for c in controls})
  span = "-".join(map(str, seeds[::max(1, len(seeds) - 1)]))
  text += f" ({span} seed{'' if seeds == [1] else 's'} each)"
  return text + ("; failed: " + ", ".join(failed) if failed else "")


def default_path(out_dirs: Sequence[str]) -> str:
  """`DEFAULT_NAME` in the common parent of the output directories' parents
  (``runs/`` for ``runs/NAME/PRESET`` directories)."""
  parents = [os.path.dirname(os.path.abspath(d)) for d in out_dirs]
  return os.path.join(os.path.commonpath(parents), DEFAULT_NAME)


def write(out_dirs: Sequence[str], path: str | None = None) -> str:
  """Writes the page for `out_dirs` (experiments' output directories; one named
  twice is listed once) to `path` (default `default_path`); returns its path.

  Raises:
    ValueError: no directory, or one that is not an experiment's output (naming it).
  """
  if not out_dirs:
    raise ValueError("DIR: expected at least one experiment output directory; got none")
  firsts: dict[str, str] = {}
  for d in out_dirs:
    firsts.setdefault(os.path.realpath(d), d)
  out_dirs = list(firsts.values())
  path = path or default_path(out_dirs)
  page_dir = os.path.dirname(os.path.abspath(path))
  entries = sorted((_entry(d, page_dir, i) for i, d in enumerate(out_dirs)), key=_order)
  lines = [f"# {TITLE}", "",
           "One row per limit of LSTMs, read from the experiments' output directories "
           "(results.csv, experiment.json, report.json; `lstmx report DIR DIR ...` rewrites "
           "this page): the headline figure and finding, whether a stopping point was found "
           "within the budget the runs had, the positive controls (settings a cited paper "
           "solves, trained like every arm; a finding whose control failed is withheld), "
           "and the conditions. Intervals fit their quantity (docs/statistics.md); every "
           "statement holds under its conditions and budget only.", "",
           "| Limit | Figure | Finding | Stopping point | Controls | Conditions |",
           "|---|---|---|---|---|---|"]
  for limit_entries in _by_limit(entries):
    first, many = limit_entries[0], len(limit_entries) > 1
    figure = (f"![{_cell(first['figure'][0])}]({first['figure'][1]})" if first["figure"]
              else "(no figure)")
    names = "<br>".join(f"[{e['meta']['name']}]({e['report_md']})" for e in limit_entries)

    def each(text_of):
      return "<br>".join((f"{e['meta']['name']}: " if many else "") + _cell(text_of(e))
                         for e in limit_entries)
    finding = each(lambda e: e["finding"] or "(no finding: no trial finished, or the "
                   "experiment has none)")
    conds = each(lambda e: "; ".join(f"{what}: {text}" for what, text in e["conditions"]))
    lines.append(f"| **{_cell(first['title'])}**<br>{names} | {figure} | {finding} | "
                 f"{each(stopping_point)} | {each(controls_text)} | {conds} |")
  lines.append("")
  for e in entries:
    rep = e["report"]
    counts = ", ".join(f"{v} {k}" for k, v in e["counts"].items())
    lines += [f"## {e['title']}", "", rep.get("description") or "", "",
              f"Experiment `{e['meta']['name']}`, preset `{e['meta'].get('preset')}`: "
              f"{counts} (`{_link(os.path.abspath(e['out_dir']), page_dir)}`; full report: "
              f"[report.md]({e['report_md']})).", ""]
    if e["where"]:
      lines += ["The headline's conditions are those of the trials with " + ", ".join(
          f"`{k}` = {v}" for k, v in e["where"].items()) + ".", ""]
    if rep.get("findings"):
      lines += ["Findings:", ""] + [f"- {f}" for f in rep["findings"]] + [""]
    shown = [(t, s) for t, s in rep.get("figures") or []
             if os.path.exists(os.path.join(e["out_dir"], "figures", f"{s}.png"))]
    if shown:
      lines += ["Figures: " + ", ".join(
          f"[{t}]({_link(os.path.join(e['out_dir'], 'figures', s + '.png'), page_dir)})"
          for t, s in shown) + ".", ""]
  os.makedirs(page_dir, exist_ok=True)
  atomic_write(path, "\n".join(lines) + "\n")
  return path
