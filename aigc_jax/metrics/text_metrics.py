"""Text metrics for generated continuations: memorisation, invented words, diversity, BLEU.

- n-gram novelty: the share of a sample's character n-grams that never occur in the
  training text (low novelty with long n means recitation).
- longest copied span: the longest substring of a sample found verbatim in training text.
- invented-word rate (the text hallucination proxy): the share of a sample's words that
  are absent from the training vocabulary -- a character model that "makes up" words.
- BLEU-4 (Papineni et al. 2002, add-one smoothing for n > 1, on word tokens) against a
  held-out reference, and self-BLEU (each sample against the others; Zhu et al. 2018):
  high self-BLEU means the samples repeat each other.
"""

from __future__ import annotations

import collections
import math
import re

import numpy as np

_WORD = re.compile(r"[A-Za-z']+")


def words(text: str) -> list[str]:
  return [w.lower().strip("'") for w in _WORD.findall(text) if w.strip("'")]


def ngram_novelty(sample: str, train_text: str, n: int) -> float:
  grams = [sample[i:i + n] for i in range(len(sample) - n + 1)]
  if not grams:
    return 0.0
  return sum(g not in train_text for g in grams) / len(grams)


def longest_copied_span(sample: str, train_text: str) -> str:
  """Longest substring of sample occurring in train_text (one `in` test per step)."""
  best, start = "", 0
  for end in range(1, len(sample) + 1):
    # Keep [start, end) the longest copied span ending at `end`, shrinking from the left.
    while start < end and sample[start:end] not in train_text:
      start += 1
    if end - start > len(best):
      best = sample[start:end]
  return best


def invented_word_rate(sample: str, vocabulary: set[str]) -> float:
  tokens = words(sample)
  return sum(t not in vocabulary for t in tokens) / len(tokens) if tokens else 0.0


def _ngrams(tokens: list[str], n: int) -> collections.Counter:
  return collections.Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def bleu(candidate: list[str], references: list[list[str]], max_n: int = 4) -> float:
  """Sentence BLEU-4 with clipped counts, brevity penalty and add-one smoothing for n > 1."""
  if not candidate:
    return 0.0
  log_precision = 0.0
  for n in range(1, max_n + 1):
    counts = _ngrams(candidate, n)
    max_ref = collections.Counter()
    for ref in references:
      max_ref |= _ngrams(ref, n)
    clipped = sum(min(c, max_ref[g]) for g, c in counts.items())
    total = max(sum(counts.values()), 0)
    smooth = 0 if n == 1 else 1
    if clipped + smooth == 0 or total + smooth == 0:
      return 0.0
    log_precision += math.log((clipped + smooth) / (total + smooth)) / max_n
  closest = min((abs(len(r) - len(candidate)), len(r)) for r in references)[1]
  brevity = 1.0 if len(candidate) > closest else math.exp(1 - closest / len(candidate))
  return brevity * math.exp(log_precision)


def self_bleu(samples: list[str]) -> float:
  tokenised = [words(s) for s in samples]
  if len(tokenised) < 2:
    return 0.0
  return float(np.mean([bleu(t, tokenised[:i] + tokenised[i + 1:])
                        for i, t in enumerate(tokenised)]))


def text_report(samples: list[str], train_text: str, references: list[str] | None = None
                ) -> dict:
  """Means over samples; `references[i]` is the true continuation of sample i's prompt."""
  vocabulary = set(words(train_text))
  spans = [longest_copied_span(s, train_text) for s in samples]
  invented = [invented_word_rate(s, vocabulary) for s in samples]
  report = {
      "num_samples": len(samples),
      "novelty_8gram": float(np.mean([ngram_novelty(s, train_text, 8) for s in samples])),
      "novelty_16gram": float(np.mean([ngram_novelty(s, train_text, 16) for s in samples])),
      "longest_copied_span_mean": float(np.mean([len(s) for s in spans])),
      "longest_copied_span_max": max(len(s) for s in spans),
      "longest_copied_span_example": max(spans, key=len),
      "invented_word_rate": float(np.mean(invented)),
      # Its standard error over samples: how far another draw of as many could move it.
      "invented_word_rate_se": (float(np.std(invented, ddof=1) / np.sqrt(len(invented)))
                                if len(invented) > 1 else 0.0),
      "self_bleu": self_bleu(samples),
  }
  if references is not None:
    report["bleu_vs_reference"] = float(np.mean([bleu(words(s), [words(r)])
                                                  for s, r in zip(samples, references)]))
  return report
