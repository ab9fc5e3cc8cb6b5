"""Progress display: a tqdm bar on a terminal, plain periodic lines otherwise; each
validation as a line of its own (`Progress.validation`), and the final metrics of a run
as a short table (`final_table`)."""

from __future__ import annotations

import sys

COUNTS = ("examples",)  # evaluation-set sizes: in metrics.jsonl, not on the screen


def _metrics_text(metrics: dict) -> str:
  return " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k not in COUNTS)


class Progress:
  def __init__(self, total: int, initial: int = 0, enabled: bool = True, desc: str = "train"):
    self.enabled = enabled
    self.bar = None
    self.desc = desc
    self.total = total
    if enabled and sys.stderr.isatty():
      from tqdm.auto import tqdm
      self.bar = tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True)
    self.last = initial

  def update(self, step: int, metrics: dict) -> None:
    if not self.enabled:
      return
    text = _metrics_text(metrics)
    if self.bar is not None:
      self.bar.update(step - self.last)
      self.bar.set_postfix_str(text)
    else:
      print(f"{self.desc} step {step}/{self.total} {text}", flush=True)
    self.last = step

  def validation(self, step: int, metrics: dict) -> None:
    """Prints ``validation step S/TOTAL loss=... accuracy=...`` (above the bar, if any)."""
    if not self.enabled:
      return
    line = f"validation step {step}/{self.total} {_metrics_text(metrics)}"
    if self.bar is not None:
      self.bar.write(line)
    else:
      print(line, flush=True)

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()


def final_table(summary: dict) -> str:
  """A run's ``summary.json`` as a few lines: its status, and its final metrics as a
  table with a row per split and a column per metric (counts left out).

      completed after 200 steps (steps)
      split       loss    accuracy
      train       0.1234  0.95
      validation  0.2345  0.9
  """
  head = f"{summary.get('status')} after {summary.get('steps')} steps"
  if summary.get("stop_reason"):
    head += f" ({summary['stop_reason']})"
  final = {split: m for split, m in (summary.get("final") or {}).items() if isinstance(m, dict)}
  names = list(dict.fromkeys(k for m in final.values() for k in m if k not in COUNTS))
  if not names:
    return head
  rows = [["split", *names]] + [[split, *(_cell(m.get(k)) for k in names)]
                                for split, m in final.items()]
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
  return "\n".join([head, *lines])


def _cell(value) -> str:
  if isinstance(value, (int, float)) and not isinstance(value, bool):
    return f"{value:.4g}"
  return "" if value is None else str(value)
