"""Progress display: a tqdm bar on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import sys


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
    text = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
    if self.bar is not None:
      self.bar.update(step - self.last)
      self.bar.set_postfix_str(text)
    else:
      print(f"{self.desc} step {step}/{self.total} {text}", flush=True)
    self.last = step

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()
