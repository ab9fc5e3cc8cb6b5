"""Word-level LM corpora that users keep on disk: Penn Treebank, WikiText-2.

Neither ships in a package; pass the folder that holds the standard files:

  * ``load("ptb", split, path=DIR)``: Mikolov's ``ptb.train.txt``,
    ``ptb.valid.txt``, ``ptb.test.txt`` (``simple-examples/data``).
  * ``load("wikitext2", split, path=DIR)``: ``wiki.train.tokens``,
    ``wiki.valid.tokens``, ``wiki.test.tokens`` (``wikitext-2``, the
    tokenized, non-raw version).

Tokenization is the standard one of AWD-LSTM and the PyTorch word-LM
example: every line (blank lines included) is split on whitespace and ends
with ``<eos>``. Both corpora already replace rare words by ``<unk>``. The
vocabulary comes from the train file (`word_vocab`: ``<unk>`` id 0,
``<eos>`` id 1, then by frequency); a validation or test word that train
lacks maps to ``<unk>`` (none does in the real corpora, whose vocabularies
are closed: 10000 words for PTB, 33278 for WikiText-2).
"""

from __future__ import annotations

import functools
import os
import pathlib

import numpy as np

from lstmx.data.dataset import DataNotFoundError, Dataset
from lstmx.data.registry import register
from lstmx.data.vocab import EOS, Vocab, word_vocab

PTB_FILES = {"train": "ptb.train.txt", "validation": "ptb.valid.txt", "test": "ptb.test.txt"}
WIKITEXT2_FILES = {"train": "wiki.train.tokens", "validation": "wiki.valid.tokens",
                   "test": "wiki.test.tokens"}


def read_words(path: str | os.PathLike) -> list[str]:
  """The words of a tokenized text file, ``<eos>`` after every line."""
  words: list[str] = []
  with open(path, encoding="utf-8") as f:
    for line in f:
      words.extend(line.split())
      words.append(EOS)
  return words


def _files(dataset: str, path, files: dict[str, str]) -> dict[str, pathlib.Path]:
  if path is None:
    raise ValueError(f"path: expected the folder holding {sorted(files.values())} "
                     f"(dataset {dataset!r} is not shipped; keep it on disk); got path=None")
  folder = pathlib.Path(path)
  missing = [name for name in files.values() if not (folder / name).is_file()]
  if missing:
    raise DataNotFoundError(f"path: expected a folder holding {sorted(files.values())}; "
                            f"got {str(folder)!r}, which lacks {missing}")
  return {split: folder / name for split, name in files.items()}


@functools.lru_cache(maxsize=4)
def _vocab(train_file: pathlib.Path, mtime: float) -> Vocab:
  del mtime  # part of the cache key: a changed file gets a new vocabulary
  return word_vocab(read_words(train_file))


def _load(dataset: str, split: str, path, files: dict[str, str]) -> Dataset:
  paths = _files(dataset, path, files)
  vocab = _vocab(paths["train"].resolve(), paths["train"].stat().st_mtime)
  ids = vocab.encode(read_words(paths[split]))
  return Dataset(name=dataset, split=split, kind="lm", inputs=ids.astype(np.int32),
                 targets=None, index=None, num_classes=len(vocab), vocab=vocab)


@register("ptb", "lm", "Penn Treebank (Mikolov's word-level files, on disk): pass path=")
def load_ptb(split: str, seed: int, path: str | os.PathLike | None = None) -> Dataset:
  """Penn Treebank, word level: inputs [N] int32 word ids, ``<eos>`` per line.

  Args:
    split: "train", "validation" (ptb.valid.txt) or "test".
    seed: unused (the split is the corpus's own).
    path: folder holding ptb.train.txt, ptb.valid.txt, ptb.test.txt.
  """
  del seed
  return _load("ptb", split, path, PTB_FILES)


@register("wikitext2", "lm", "WikiText-2 (tokenized wiki.*.tokens, on disk): pass path=")
def load_wikitext2(split: str, seed: int, path: str | os.PathLike | None = None) -> Dataset:
  """WikiText-2, word level: inputs [N] int32 word ids, ``<eos>`` per line.

  Args:
    split: "train", "validation" (wiki.valid.tokens) or "test".
    seed: unused (the split is the corpus's own).
    path: folder holding wiki.train.tokens, wiki.valid.tokens, wiki.test.tokens.
  """
  del seed
  return _load("wikitext2", split, path, WIKITEXT2_FILES)
