"""Dirty text with ground truth: reproducible corruptions of a text's lines.

The unit is a non-empty line. A spec such as "garbage_lines=0.05,boilerplate=0.02" takes
that share of the non-empty lines for each kind, without overlap (corrupt.draw_disjoint),
and leaves every other line as it was. Replacement characters come from the text's own
alphabet, so a model's vocabulary (built from the training split) does not change.

- char_noise: 15 % of the line's characters replaced by random characters (typos, OCR
  errors);
- garbage_lines: the line replaced by random characters of the same length (encoding
  debris, markup);
- boilerplate: the line replaced by one fixed sentence (scraped page furniture), so the
  same line appears over and over.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from aigc_jax.data.corrupt import (CLEAN, CORRUPTION_STREAM, GroundTruth, draw_disjoint,
                                   kind_per_item, parse_spec)
from aigc_jax.errors import InvalidInputError

BOILERPLATE = "Read more plays for free at our site; subscribe for updates!"
CHAR_NOISE_SHARE = 0.15


def _replace_chars(line: str, share: float, alphabet: np.ndarray,
                   rng: np.random.Generator) -> str:
  """Each character, with probability `share` (and at least one), becomes another one."""
  chars = np.array(list(line))
  hit = rng.random(len(chars)) < share
  hit[rng.integers(len(chars))] = True
  # A shift by 1..|alphabet|-1 places never lands on the character itself.
  positions = np.searchsorted(alphabet, chars[hit])
  chars[hit] = alphabet[(positions + rng.integers(1, len(alphabet), hit.sum()))
                        % len(alphabet)]
  return "".join(chars)


def _char_noise(line: str, alphabet: np.ndarray, rng: np.random.Generator) -> str:
  return _replace_chars(line, CHAR_NOISE_SHARE, alphabet, rng)


def _garbage_line(line: str, alphabet: np.ndarray, rng: np.random.Generator) -> str:
  return _replace_chars(line, 1.0, alphabet, rng)


def _boilerplate(line: str, alphabet: np.ndarray, rng: np.random.Generator) -> str:
  return BOILERPLATE


TEXT_CORRUPTIONS = {"char_noise": _char_noise, "garbage_lines": _garbage_line,
                    "boilerplate": _boilerplate}


@dataclasses.dataclass(frozen=True)
class CorruptedText(GroundTruth):
  """A corrupted text and the ground truth of each of its lines (no line is a copy, so
  every source is -1)."""

  text: str


def corrupt_text(text: str, spec: str, seed: int) -> CorruptedText:
  """Applies `spec` to the non-empty lines of `text` (see the module docstring)."""
  pairs = parse_spec(spec, TEXT_CORRUPTIONS)
  lines = text.split("\n")
  alphabet = np.array(sorted(set(text) - {"\n"}))
  if any(c not in set(alphabet) for c in BOILERPLATE) and "boilerplate" in dict(pairs):
    raise InvalidInputError("The boilerplate sentence uses characters the text lacks; the "
                            "vocabulary would change. Corrupt with other kinds.")
  rng = np.random.default_rng([CORRUPTION_STREAM, seed])
  non_empty = np.array([i for i, line in enumerate(lines) if line], np.int64)
  chosen, _ = draw_disjoint(non_empty, [rate for _, rate in pairs], rng, spec)
  for (name, _), ids in zip(pairs, chosen):
    for i in ids:
      lines[i] = TEXT_CORRUPTIONS[name](lines[i], alphabet, rng)
  return CorruptedText(kinds=(CLEAN, *(name for name, _ in pairs)),
                       kind=kind_per_item(chosen, len(lines)),
                       source=np.full(len(lines), -1, np.int64), text="\n".join(lines))


def drop_lines(text: str, line_ids: np.ndarray) -> str:
  """`text` without the given lines (ids as in text.split('\\n'))."""
  lines = text.split("\n")
  keep = np.ones(len(lines), bool)
  keep[np.asarray(line_ids, np.int64)] = False
  return "\n".join(line for line, kept in zip(lines, keep) if kept)
