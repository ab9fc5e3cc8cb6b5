"""Readable names for a sweep's trials, and the links that show them in TensorBoard.

A trial's run directory is named by a hash of its overrides (``trials/06f2bbaaf9``);
`run_names` names it by the values that tell it apart from the sweep's other trials,
then its seed: ``adding-T50-lstm_chrono-s0``. `link_tensorboard` puts a link
``OUT/tensorboard/<name>`` -> ``../trials/<id>/tensorboard`` per trial, so

    tensorboard --logdir OUT/tensorboard

lists the trials by name (each run holds its scalars and its hparams).

The values come from the sweep's ``meta.*`` labels where the experiment gives them, plus
(in the sweep's order) each other key that tells trials apart which the labels leave
alike (all keys without labels); keys with one value over the whole sweep are left out.
A string is shown as it is, a number after a short name of its key (``T`` for a length,
``H`` for a hidden size, ``B`` for a batch; else the key's last part: ``strength0.2``),
a boolean as the key's last part or ``no_`` and it. Names keep to ``[A-Za-z0-9._=+-]``;
names that would still coincide get the trial id's start.

    >>> run_names([("a1", {"meta.model": "lstm", "meta.length": 50, "train.seed": 0}),
    ...            ("b2", {"meta.model": "gru", "meta.length": 50, "train.seed": 1})])
    {'a1': 'lstm-s0', 'b2': 'gru-s1'}
"""

from __future__ import annotations

import os
import re
from typing import Any, Sequence

SEED_KEY = "train.seed"
LINKS = "tensorboard"  # OUT/tensorboard/<name>
ABBREVIATIONS = {"length": "T", "seq_len": "T", "hidden_size": "H", "hidden": "H",
                 "lstm_hidden": "H", "batch_size": "B", "batch": "B", "num_layers": "L",
                 "delay": "delay", "lr": "lr"}
MAX_LENGTH = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")

Trials = Sequence[tuple[str, dict[str, Any]]]  # (trial id, overrides), as the runner's


def value_text(key: str, value: Any) -> str:
  """One override as a name part: ``("meta.length", 50)`` -> ``"T50"``."""
  last = key.rsplit(".", 1)[-1]
  if isinstance(value, bool):
    text = last if value else f"no_{last}"
  elif isinstance(value, (int, float)):
    number = f"{value:g}" if isinstance(value, float) else str(value)
    text = f"{ABBREVIATIONS.get(last, last)}{number}"
  elif isinstance(value, (tuple, list)):
    text = f"{last}" + "x".join(str(v) for v in value)
  elif value is None:
    text = f"no_{last}"
  else:
    text = str(value)
  return _UNSAFE.sub("_", text).strip("_.") or "_"


def _varying(overrides: list[dict], keys: list[str]) -> list[str]:
  """The keys of `keys` whose value is not the same in every one of `overrides`."""
  if len(overrides) < 2:
    return keys
  return [k for k in keys if len({repr(o.get(k)) for o in overrides}) > 1]


def _names(trials: Trials, keys: list[str]) -> list[str]:
  out = []
  for _, ov in trials:
    parts = [value_text(k, ov[k]) for k in keys if k in ov]
    if SEED_KEY in ov:
      parts.append(f"s{ov[SEED_KEY]}")
    out.append("-".join(parts)[:MAX_LENGTH] or "run")
  return out


def _clashes(names: list[str]) -> int:
  return len(names) - len(set(names))


def run_names(trials: Trials) -> dict[str, str]:
  """``{trial id: readable name}``, unique and safe as a file name (module docstring)."""
  overrides = [dict(ov) for _, ov in trials]
  keys = _varying(overrides, list(dict.fromkeys(
      k for ov in overrides for k in ov if k != SEED_KEY)))
  chosen = [k for k in keys if k.startswith("meta.")] or keys
  for key in keys:  # the meta labels leave trials alike: add the keys that tell them apart
    if key not in chosen and _clashes(_names(trials, chosen)):
      if _clashes(_names(trials, chosen + [key])) < _clashes(_names(trials, chosen)):
        chosen.append(key)
  names = _names(trials, [k for k in keys if k in chosen])
  counts: dict[str, int] = {}
  for n in names:
    counts[n] = counts.get(n, 0) + 1
  return {tid: (n if counts[n] == 1 else f"{n}-{tid[:6]}")
          for (tid, _), n in zip(trials, names)}


def link_tensorboard(out_dir: str, trials: Trials) -> str:
  """Links ``out_dir/tensorboard/<name>`` -> ``../trials/<id>/tensorboard`` for each
  trial (`run_names`), replacing links of trials no longer named so; returns the
  directory. A trial without TensorBoard files yet gets its link all the same."""
  links = os.path.join(out_dir, LINKS)
  os.makedirs(links, exist_ok=True)
  wanted = {name: os.path.join("..", "trials", tid, "tensorboard")
            for tid, name in run_names(trials).items()}
  for name in os.listdir(links):
    path = os.path.join(links, name)
    if os.path.islink(path) and os.readlink(path) != wanted.get(name):
      os.unlink(path)
  for name, target in wanted.items():
    path = os.path.join(links, name)
    if not os.path.lexists(path):
      os.symlink(target, path, target_is_directory=True)
  return links
