"""Sequential and permuted pixel images (Le, Jaitly & Hinton 2015).

An image is read one pixel per step (``layout="pixels"``: 64 steps for the
8x8 sklearn digits, 784 for MNIST and Fashion-MNIST once fetched) or one row
per step (``layout="rows"``); ``permuted=True`` applies one fixed random
permutation of the steps (pMNIST). Intensities are scaled to [0, 1]. The
class is predicted at the last step; see `DatasetClassification` for the
baseline (the class prior's entropy), the solved criterion (validation
accuracy >= 0.9) and ``data_seed`` (the split of MNIST-10k and digits).

Published LSTM test accuracies on full MNIST (60k training images; the
MNIST here is a 10k subset, so expect less): sequential pixels 0.982
(Arjovsky, Shah & Bengio 2016, uRNN paper) and 0.989 (Cooijmans et al. 2016,
recurrent batch normalization); permuted 0.88 and 0.902 in the same papers.
Le et al. 2015 report only ~0.65 (sequential) and ~0.36 (permuted) for their
LSTM baseline, against 0.97 and 0.82 for their IRNN.
"""

from __future__ import annotations

import dataclasses

from lstmx.tasks.datasets import DatasetClassification

DATASETS = ("digits", "mnist", "fashion_mnist")


@dataclasses.dataclass(frozen=True)
class SequentialImages(DatasetClassification):
  name = "sequential_images"
  dataset: str = "digits"
  layout: str | None = "pixels"
  scale: str = "unit"

  def validate(self):
    if self.dataset not in DATASETS:  # before the classification datasets' check
      raise ValueError(f"{self.name}.dataset: expected one of {DATASETS}; got {self.dataset!r}")
    super().validate()
    if self.layout not in ("pixels", "rows"):
      raise ValueError(f"{self.name}.layout: expected 'pixels' or 'rows'; got {self.layout!r}")
