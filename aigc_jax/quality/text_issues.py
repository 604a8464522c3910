"""Dirty lines in a text: repeated boilerplate and garbage.

- repeated_lines: a line of at least `min_length` characters that occurs `min_count` times
  or more is page furniture, not prose (short repeats such as "ROMEO:" are speaker tags and
  are left alone by the length floor);
- line_surprisal: mean -log p(c_t | c_{t-1}) of a line's characters under a character
  bigram model of the whole text (add-one smoothed). Typos and random characters make
  bigrams the text rarely uses, so garbage lines and noisy lines score high; lines are
  flagged by robust z-score (outliers.robust_z) above a threshold.
"""

from __future__ import annotations

import collections

import numpy as np


def repeated_lines(lines: list[str], min_length: int = 20, min_count: int = 3) -> np.ndarray:
  """Ids of every line that is long enough and occurs at least `min_count` times."""
  counts = collections.Counter(lines)
  return np.array([i for i, line in enumerate(lines)
                   if len(line) >= min_length and counts[line] >= min_count], np.int64)


def line_surprisal(lines: list[str]) -> np.ndarray:
  """(lines,) mean bigram surprisal in nats per character; empty lines score 0."""
  text = "\n".join(lines)
  alphabet = sorted(set(text))
  index = {c: i for i, c in enumerate(alphabet)}
  codes = np.array([index[c] for c in text], np.int64)
  size = len(alphabet)
  counts = np.ones((size, size))  # Add-one smoothing.
  np.add.at(counts, (codes[:-1], codes[1:]), 1)
  log_prob = np.log(counts / counts.sum(1, keepdims=True))
  # Each line's characters scored given the character before (a line's first, given '\n').
  pair_surprisal = -log_prob[codes[:-1], codes[1:]]  # Surprisal of text[t + 1].
  starts = np.cumsum([0] + [len(line) + 1 for line in lines[:-1]])
  scores = np.zeros(len(lines))
  for i, (start, line) in enumerate(zip(starts, lines)):
    if line:
      segment = pair_surprisal[max(start - 1, 0):start + len(line) - 1]
      scores[i] = segment.mean() if len(segment) else 0.0
  return scores
