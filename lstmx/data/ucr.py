"""UCR time-series classification sets bundled with sktime (no download).

  * ``gunpoint``: GunPoint, 50 train / 150 test series of 150 steps, 2 classes.
  * ``italy_power_demand``: ItalyPowerDemand, 67 / 1029 series of 24 steps,
    2 classes.
  * ``arrowhead``: ArrowHead, 36 / 175 series of 251 steps, 3 classes.

Their train sets are tiny: good for overfitting studies. Splits: "test" is
the official UCR test set; "validation" is a stratified 20% of the official
train set chosen by `seed` (`UCR_VALIDATION_FRACTION`, rounded per class: 10
of GunPoint's 50, 14 of ItalyPowerDemand's 67, 6 of ArrowHead's 36), "train"
the rest. Values are as distributed (UCR series are z-normalized per series).

Needs ``sktime==1.2.0`` (``pip install sktime==1.2.0``).
"""

from __future__ import annotations

import functools

import numpy as np

from lstmx.data.dataset import Dataset, class_ids, stratified_split
from lstmx.data.registry import register, require

SKTIME = "sktime==1.2.0"
# Validation share of the official (tiny) train sets, larger than the usual 1/12
# so that every class has validation series.
UCR_VALIDATION_FRACTION = 0.2
_UCR_NAMES = {"gunpoint": "GunPoint", "italy_power_demand": "ItalyPowerDemand",
              "arrowhead": "ArrowHead"}


@functools.lru_cache(maxsize=None)
def _source(name: str):
  """(x_train [N, T, 1], y_train, x_test, y_test, num_classes), from sktime's files."""
  datasets = require("sktime.datasets", SKTIME, name)
  parts = {}
  for split in ("train", "test"):
    x, y = datasets.load_UCR_UEA_dataset(_UCR_NAMES[name], split=split,
                                         return_type="numpy3D")
    parts[split] = (np.transpose(np.asarray(x, np.float32), (0, 2, 1)), np.asarray(y))
  labels, classes = class_ids(np.concatenate([parts["train"][1], parts["test"][1]]))
  n_train = len(parts["train"][1])
  out = (parts["train"][0], labels[:n_train], parts["test"][0], labels[n_train:],
         len(classes))
  for a in out[:4]:
    a.flags.writeable = False
  return out


def _load(name: str, split: str, seed: int) -> Dataset:
  x_train, y_train, x_test, y_test, num_classes = _source(name)
  if split == "test":
    x, y, rows = x_test, y_test, np.arange(len(y_test), dtype=np.int64)
    index = rows + len(y_train)  # source rows: official train, then test
  else:
    train, validation = stratified_split(
        y_train, (1.0 - UCR_VALIDATION_FRACTION, UCR_VALIDATION_FRACTION), seed)
    rows = train if split == "train" else validation
    x, y, index = x_train, y_train, rows
  return Dataset(name=name, split=split, kind="classification", inputs=x[rows],
                 targets=y[rows], index=index, num_classes=num_classes)


_DOC = """UCR series {ucr}: inputs [N, T, 1] float32, targets [N] int32.

  Args:
    split: "train", "validation" (from the official train set) or "test"
      (the official test set).
    seed: seeds the train/validation split.
  """


@register("gunpoint", "classification", "UCR GunPoint via sktime: 50/150 x 150 steps, "
          "2 classes", (SKTIME,))
def load_gunpoint(split: str, seed: int) -> Dataset:
  return _load("gunpoint", split, seed)


@register("italy_power_demand", "classification", "UCR ItalyPowerDemand via sktime: "
          "67/1029 x 24 steps, 2 classes", (SKTIME,))
def load_italy_power_demand(split: str, seed: int) -> Dataset:
  return _load("italy_power_demand", split, seed)


@register("arrowhead", "classification", "UCR ArrowHead via sktime: 36/175 x 251 steps, "
          "3 classes", (SKTIME,))
def load_arrowhead(split: str, seed: int) -> Dataset:
  return _load("arrowhead", split, seed)


for _fn, _ucr in ((load_gunpoint, "GunPoint"), (load_italy_power_demand, "ItalyPowerDemand"),
                  (load_arrowhead, "ArrowHead")):
  _fn.__doc__ = _DOC.format(ucr=_ucr)
