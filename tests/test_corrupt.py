"""Dirty-data injection: exactly the flagged examples change, at the requested rates."""

import numpy as np
import pytest

from aigc_jax.data import corrupt, corrupt_text
from aigc_jax.data.images import ImageData


def _split(n=400, classes=10, seed=0):
  rng = np.random.default_rng(seed)
  return ImageData(rng.integers(0, 256, (n, 8, 8, 1), dtype=np.uint8),
                   rng.integers(0, classes, n).astype(np.int32), classes)


IMAGE_KINDS = ["pixel_noise", "blur", "occlusion", "inversion", "exact_duplicate",
               "near_duplicate", "out_of_distribution"]


@pytest.mark.parametrize("kind", IMAGE_KINDS + ["symmetric_labels", "class_labels"])
def test_each_kind_changes_exactly_its_flagged_examples(kind):
  data = _split()
  ood = np.full((50, 8, 8, 1), 7, np.uint8)
  result = corrupt.corrupt(data, f"{kind}=0.1", seed=3, ood_images=ood)
  flagged = result.ids(kind)
  assert len(flagged) == 40
  changed = np.any(result.data.images != data.images, axis=(1, 2, 3))
  relabelled = result.data.labels != data.labels
  if kind in IMAGE_KINDS:
    np.testing.assert_array_equal(np.flatnonzero(changed), flagged)
  else:
    assert not changed.any()
    np.testing.assert_array_equal(np.flatnonzero(relabelled), flagged)
  if kind not in ("exact_duplicate", "near_duplicate", "out_of_distribution"):
    assert not relabelled[result.kind == 0].any()
  assert result.summary() == {"clean": 360, kind: 40}


def test_kinds_do_not_overlap_and_copies_come_from_clean_examples():
  data = _split(1000)
  result = corrupt.corrupt(data, "symmetric_labels=0.2,exact_duplicate=0.05,"
                           "near_duplicate=0.05", seed=0)
  assert result.summary() == {"clean": 700, "symmetric_labels": 200, "exact_duplicate": 50,
                              "near_duplicate": 50}
  copies = result.ids("exact_duplicate")
  sources = result.source[copies]
  assert np.all(result.kind[sources] == 0)
  np.testing.assert_array_equal(result.data.images[copies], data.images[sources])
  np.testing.assert_array_equal(result.data.labels[copies], data.labels[sources])
  near = result.ids("near_duplicate")
  difference = np.abs(result.data.images[near].astype(int)
                      - data.images[result.source[near]].astype(int))
  assert 0 < difference.max() <= 0.1 * 255 + 5
  assert np.all(result.source[result.kind == 0] == -1)


def test_class_dependent_noise_moves_each_class_to_the_next():
  data = _split()
  result = corrupt.corrupt(data, "class_labels=0.25", seed=1)
  flagged = result.ids("class_labels")
  np.testing.assert_array_equal(result.data.labels[flagged], (data.labels[flagged] + 1) % 10)


def test_same_seed_same_corruption_and_the_input_is_untouched():
  data = _split()
  before = data.images.copy()
  a = corrupt.corrupt(data, "pixel_noise=0.3,symmetric_labels=0.2", seed=5)
  b = corrupt.corrupt(data, "pixel_noise=0.3,symmetric_labels=0.2", seed=5)
  c = corrupt.corrupt(data, "pixel_noise=0.3,symmetric_labels=0.2", seed=6)
  np.testing.assert_array_equal(a.data.images, b.data.images)
  np.testing.assert_array_equal(a.kind, b.kind)
  assert not np.array_equal(a.kind, c.kind)
  np.testing.assert_array_equal(data.images, before)


def test_ground_truth_round_trips_through_its_file(tmp_path):
  result = corrupt.corrupt(_split(), "inversion=0.1,exact_duplicate=0.1", seed=0)
  result.save(str(tmp_path / "truth.npz"))
  loaded = np.load(tmp_path / "truth.npz")
  np.testing.assert_array_equal(loaded["kind"], result.kind)
  np.testing.assert_array_equal(loaded["source"], result.source)
  assert tuple(loaded["kinds"]) == result.kinds


def test_blur_keeps_a_constant_image_and_averages_an_impulse():
  constant = np.full((1, 9, 9, 1), 5.0)
  np.testing.assert_allclose(corrupt.gaussian_blur(constant, 1.5), constant)
  impulse = np.zeros((1, 15, 15, 1))
  impulse[0, 7, 7] = 1.0
  blurred = corrupt.gaussian_blur(impulse, 1.5)
  np.testing.assert_allclose(blurred.sum(), 1.0, rtol=1e-6)
  assert blurred[0, 7, 7, 0] == blurred.max() < 0.1


@pytest.mark.parametrize("spec, message", [
    ("typo=0.1", "Unknown corruption 'typo'"),
    ("blur", "needs a rate"),
    ("blur=1.5", "not in [0, 1]"),
    ("blur=0.1,blur=0.2", "names a kind twice"),
    ("blur=0.6,inversion=0.6", "more than the whole split"),
    ("out_of_distribution=0.1", "ood_source"),
])
def test_bad_specs_name_the_problem(spec, message):
  with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
    corrupt.corrupt(_split(), spec, seed=0)


TEXT = "\n".join(["ROMEO:", "But soft, what light through yonder window breaks?", "",
                  "JULIET:", "O Romeo, Romeo! wherefore art thou Romeo?"] * 40)


@pytest.mark.parametrize("kind", ["char_noise", "garbage_lines", "boilerplate"])
def test_text_kinds_change_exactly_their_lines_within_the_alphabet(kind):
  text = TEXT + "\n" + "".join(sorted(set(corrupt_text.BOILERPLATE)))
  result = corrupt_text.corrupt_text(text, f"{kind}=0.2", seed=0)
  before, after = text.split("\n"), result.text.split("\n")
  assert len(after) == len(before)
  changed = np.flatnonzero([a != b for a, b in zip(before, after)])
  np.testing.assert_array_equal(changed, result.ids(kind))
  non_empty = sum(bool(line) for line in before)
  assert len(changed) == round(0.2 * non_empty)
  assert set(result.text) <= set(text)
  if kind == "char_noise":
    share = np.mean([np.mean([x != y for x, y in zip(before[i], after[i])]) for i in changed])
    assert 0.1 < share < 0.3
  if kind == "boilerplate":
    assert {after[i] for i in changed} == {corrupt_text.BOILERPLATE}


def test_boilerplate_refuses_characters_outside_the_text():
  with pytest.raises(ValueError, match="vocabulary would change"):
    corrupt_text.corrupt_text("abc\ndef", "boilerplate=0.5", seed=0)


def test_drop_lines_removes_only_the_named_lines():
  assert corrupt_text.drop_lines("a\nb\nc\nd", np.array([1, 3])) == "a\nc"
