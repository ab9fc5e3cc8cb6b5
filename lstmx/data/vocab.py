"""Character and word vocabularies: tokens <-> int32 ids.

Build a vocabulary from the train split only; tokens of other splits that it
lacks map to its `unk` token (or raise, when it has none).

Example:
  >>> v = char_vocab("hello", unk=None)
  >>> v.tokens, v.encode("hole").tolist()
  (('e', 'h', 'l', 'o'), [1, 3, 2, 0])
  >>> word_vocab("a b a <eos>".split()).tokens
  ('<unk>', '<eos>', 'a', 'b')
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Iterable, Sequence

import numpy as np

CHAR_UNK = "\ufffd"  # the Unicode replacement character
WORD_UNK = "<unk>"
EOS = "<eos>"


@dataclasses.dataclass(frozen=True)
class Vocab:
  """An ordered set of tokens; a token's id is its position.

  Attributes:
    tokens: the tokens, unique; id i is ``tokens[i]``.
    unk: the token that unknown tokens map to (it is in `tokens`), or None to
      raise on unknown tokens.
  """

  tokens: tuple[str, ...]
  unk: str | None = None
  _ids: dict = dataclasses.field(init=False, repr=False, compare=False)

  def __post_init__(self):
    object.__setattr__(self, "tokens", tuple(self.tokens))
    ids = {t: i for i, t in enumerate(self.tokens)}
    if len(ids) != len(self.tokens):
      dup = [t for t, n in collections.Counter(self.tokens).items() if n > 1]
      raise ValueError(f"tokens: expected unique tokens; got duplicates {dup[:5]}")
    if self.unk is not None and self.unk not in ids:
      raise ValueError(f"unk: expected one of the tokens; got unk={self.unk!r}")
    object.__setattr__(self, "_ids", ids)

  def __len__(self) -> int:
    return len(self.tokens)

  def __contains__(self, token: str) -> bool:
    return token in self._ids

  def id(self, token: str) -> int:
    if token in self._ids:
      return self._ids[token]
    if self.unk is None:
      raise KeyError(f"token: expected one of the {len(self)} tokens of the vocabulary "
                     f"(which has no unk); got {token!r}")
    return self._ids[self.unk]

  def encode(self, tokens: Iterable[str] | str) -> np.ndarray:
    """[N] int32 ids of `tokens` (a string is a sequence of characters)."""
    if isinstance(tokens, str) and all(len(t) == 1 for t in self.tokens):
      return self._encode_chars(tokens)
    return np.fromiter((self.id(t) for t in tokens), np.int32)

  def decode(self, ids: Sequence[int] | np.ndarray) -> list[str]:
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
      raise ValueError(f"ids: expected values in [0, {len(self)}); got min {ids.min()}, "
                       f"max {ids.max()}")
    return [self.tokens[i] for i in ids.tolist()]

  def decode_text(self, ids, sep: str = "") -> str:
    return sep.join(self.decode(ids))

  def _encode_chars(self, text: str) -> np.ndarray:
    """Vectorized encoding for single-character vocabularies."""
    codes = np.frombuffer(text.encode("utf-32-le"), np.uint32)
    table_size = max([ord(t) for t in self.tokens] + [int(codes.max()) if codes.size else 0]) + 1
    fill = -1 if self.unk is None else self._ids[self.unk]
    table = np.full(table_size, fill, np.int32)
    table[[ord(t) for t in self.tokens]] = np.arange(len(self), dtype=np.int32)
    ids = table[codes]
    if self.unk is None and ids.size and ids.min() < 0:
      bad = chr(int(codes[np.argmax(ids < 0)]))
      raise KeyError(f"token: expected one of the {len(self)} characters of the vocabulary "
                     f"(which has no unk); got {bad!r}")
    return ids


def char_vocab(text: str, *, unk: str | None = CHAR_UNK) -> Vocab:
  """A vocabulary of the distinct characters of `text`, sorted, `unk` first."""
  chars = sorted(set(text) - {unk})
  return Vocab(((unk,) if unk is not None else ()) + tuple(chars), unk)


def word_vocab(words: Iterable[str], *, unk: str | None = WORD_UNK,
               specials: Sequence[str] = (EOS,), min_count: int = 1,
               max_size: int | None = None) -> Vocab:
  """A vocabulary of words: `unk`, then `specials`, then words by frequency.

  Args:
    words: the train split's words.
    unk: the unknown-word token (id 0), or None.
    specials: tokens placed right after `unk` (ids 1, 2, ...).
    min_count: words seen fewer times map to `unk`.
    max_size: keeps at most this many tokens in all (the most frequent).

  Returns:
    A `Vocab`; ties in frequency are broken by first appearance, so the
    vocabulary is a deterministic function of the word sequence.
  """
  if min_count < 1:
    raise ValueError(f"min_count: expected >= 1; got {min_count}")
  counts = collections.Counter(words)  # insertion order = first appearance
  head = tuple(dict.fromkeys(([unk] if unk is not None else []) + list(specials)))
  rest = [w for w, n in sorted(counts.items(), key=lambda kv: -kv[1])
          if n >= min_count and w not in head]
  tokens = head + tuple(rest)
  if max_size is not None:
    if max_size < len(head):
      raise ValueError(f"max_size: expected >= {len(head)} (unk and specials); got {max_size}")
    tokens = tokens[:max_size]
  return Vocab(tokens, unk)
