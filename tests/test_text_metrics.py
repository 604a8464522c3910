"""Text metrics on crafted strings with known answers."""

import math

import pytest

from aigc_jax.metrics import text_metrics as tm

TRAIN = "To be, or not to be: that is the question.\nWhether 'tis nobler in the mind"


def test_invented_word_rate_counts_words_missing_from_training_vocabulary():
  # 'to', 'be', 'question' are known; 'zorbly' and 'quux' are made up.
  vocabulary = set(tm.words(TRAIN))
  assert tm.invented_word_rate("To be zorbly, quux question", vocabulary) == 2 / 5
  assert tm.invented_word_rate("'Tis nobler", vocabulary) == 0.0
  assert tm.invented_word_rate("", vocabulary) == 0.0


def test_copied_span_and_novelty():
  sample = "xx that is the question!yy"
  assert tm.longest_copied_span(sample, TRAIN) == " that is the question"
  assert tm.ngram_novelty("not to be", TRAIN, 4) == 0.0
  assert tm.ngram_novelty("qqqqq", TRAIN, 4) == 1.0


def test_bleu_against_hand_computed_values():
  reference = "the cat sat on the mat".split()
  assert tm.bleu(reference, [reference]) == pytest.approx(1.0)
  # Matches: unigrams 5/6, bigrams 3/5, trigrams 2/4, 4-grams 1/3; add-one for n > 1.
  candidate = "the cat sat on a mat".split()
  expected = math.exp((math.log(5 / 6) + math.log(4 / 6) + math.log(3 / 5) + math.log(2 / 4)) / 4)
  assert tm.bleu(candidate, [reference]) == pytest.approx(expected)
  # Shorter candidates pay the brevity penalty exp(1 - r/c).
  short = "the cat sat".split()
  assert tm.bleu(short, [reference]) < tm.bleu(short + "on the mat".split(), [reference])
  assert tm.self_bleu(["a b c d e", "a b c d e"]) == pytest.approx(1.0)
  assert tm.self_bleu(["a b c d e", "v w x y z"]) < 0.2


def test_text_report_keys():
  report = tm.text_report(["To be, or zorbly", "the question quux"], TRAIN,
                          references=["To be, or not", "the question."])
  assert report["num_samples"] == 2
  assert report["invented_word_rate"] == pytest.approx((1 / 4 + 1 / 3) / 2)
  assert 0.0 <= report["bleu_vs_reference"] <= 1.0
