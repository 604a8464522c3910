"""A user's own corpus in one plain-text file, for the character-level language model.

The file is read as UTF-8 (a byte-order mark is dropped) with Windows and old-Mac line
ends turned into "\n". A seeded `eval_fraction` of its lines is held out, half as the
"validation" split and half as "test"; the rest, in its original order, is "train". The
vocabulary is every character of the whole file, so no held-out line can hold a character
the model has no token for.
"""

from __future__ import annotations

import os

import numpy as np

from aigc_jax.data.text import TextData, TextSpec
from aigc_jax.errors import InvalidInputError, MissingInputError

SPLITS = ("train", "validation", "test")
LINE_STREAM = 4  # Random stream of the held-out lines; see images.HELD_OUT_STREAM (3).


def read_text_file(path: str | None) -> str:
  """The file's text, decoded and with "\n" line ends; fails naming what is wrong."""
  if not path or not os.path.isfile(path):
    raise MissingInputError(f"data.text_file={path!r} is not a file. Give the path of a "
                            "UTF-8 text file to train on.")
  with open(path, "rb") as f:
    raw = f.read()
  try:
    text = raw.decode("utf-8-sig")
  except UnicodeDecodeError as error:
    raise InvalidInputError(
        f"{path} is not UTF-8: byte {error.start} is {raw[error.start:error.start + 1]!r} "
        f"({error.reason}). Re-save it as UTF-8 (e.g. iconv -f LATIN1 -t UTF-8).") from None
  text = text.replace("\r\n", "\n").replace("\r", "\n")
  if not text.strip():
    raise InvalidInputError(f"{path} holds no text; give a non-empty corpus.")
  return text


def split_lines(text: str, eval_fraction: float, seed: int) -> dict[str, str]:
  """{"train", "validation", "test"}: the text's lines, a seeded share held out."""
  lines = text.split("\n")
  held = int(round(eval_fraction * len(lines)))
  order = np.random.default_rng([LINE_STREAM, seed]).permutation(len(lines))
  which = np.zeros(len(lines), np.int64)  # 0 train, 1 validation, 2 test.
  which[order[:held // 2]] = 1
  which[order[held // 2:held]] = 2
  return {name: "\n".join(line for line, w in zip(lines, which) if w == i)
          for i, name in enumerate(SPLITS)}


def load_text_file(path: str | None, split: str, *, block_size: int, eval_fraction: float,
                   seed: int) -> TextData:
  """One split of the file as tokens; the held-out splits need `eval_fraction` > 0."""
  if split not in SPLITS:
    raise InvalidInputError(f"Dataset 'text_file' has no split '{split}'; it has "
                            f"{list(SPLITS)}.")
  if split != "train" and not eval_fraction:
    raise InvalidInputError(f"The '{split}' split of a text file is a held-out share of its "
                            "lines: set --config.data.eval_fraction (e.g. 0.1).")
  text = read_text_file(path)
  part = split_lines(text, eval_fraction, seed)[split]
  if len(part) <= block_size + 1:
    raise InvalidInputError(
        f"The '{split}' split of {path} has {len(part)} characters; the model needs more "
        f"than one block of context (block_size + 1 = {block_size + 1}). Give a longer "
        "text" + (", or a larger data.eval_fraction." if split != "train" else "."))
  spec = TextSpec(vocab="".join(sorted(set(text))))
  return TextData(tokens=spec.encode(part), spec=spec, block_size=block_size)
