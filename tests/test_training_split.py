"""The training split a config asks for: corrupted by config, cleaned by an exclude file."""

import os

import numpy as np
import pytest

from aigc_jax.data.corrupt import GroundTruth
from aigc_jax.data.images import ImageData
from aigc_jax.data.text import TextData, TextSpec
from aigc_jax.data.training_split import (GROUND_TRUTH_FILE, MEMBERS_FILE, shaped_like,
                                          subset_members, training_split)
from aigc_jax.errors import InvalidInputError
from aigc_jax.quality.clean import TARGETS, truth_ids
from aigc_jax.train.loop import train_and_evaluate
from experiments.configs import mlp_gan


def _config(corrupt="", exclude=None):
  config = mlp_gan.get_config("tiny")
  config.data.corrupt = corrupt
  config.data.corrupt_seed = 4
  config.data.exclude = exclude
  return config


def _images(n=100):
  rng = np.random.default_rng(0)
  return ImageData(rng.integers(0, 256, (n, 4, 4, 1), dtype=np.uint8),
                   rng.integers(0, 3, n).astype(np.int32), 3)


def test_no_keys_set_leaves_the_split_as_stored():
  data = _images()
  assert training_split(_config(), data) is data


def test_corruption_then_exclusion_drops_the_corrupted_examples(tmp_path):
  data = _images()
  corrupted = training_split(_config("inversion=0.2"), data, str(tmp_path), log=lambda _: None)
  truth = np.load(tmp_path / GROUND_TRUTH_FILE)
  flagged = np.flatnonzero(truth["kind"] == 1)
  assert len(flagged) == 20
  np.testing.assert_array_equal(corrupted.images[flagged], 255 - data.images[flagged])
  np.save(tmp_path / "exclude.npy", flagged)
  cleaned = training_split(_config("inversion=0.2", str(tmp_path / "exclude.npy")), data,
                           log=lambda _: None)
  keep = np.setdiff1d(np.arange(100), flagged)
  np.testing.assert_array_equal(cleaned.images, data.images[keep])
  np.testing.assert_array_equal(cleaned.labels, data.labels[keep])


def test_text_lines_are_corrupted_and_excluded_by_line_id(tmp_path):
  text = "\n".join(f"line number {i}" for i in range(50))
  spec = TextSpec("".join(sorted(set(text))))
  data = TextData(spec.encode(text), spec, block_size=8)
  dirty = training_split(_config("garbage_lines=0.1"), data, str(tmp_path), log=lambda _: None)
  garbage = np.flatnonzero(np.load(tmp_path / GROUND_TRUTH_FILE)["kind"] == 1)
  dirty_lines = spec.decode(dirty.tokens).split("\n")
  assert all(dirty_lines[i] != f"line number {i}" for i in garbage)
  np.save(tmp_path / "exclude.npy", garbage)
  cleaned = training_split(_config("garbage_lines=0.1", str(tmp_path / "exclude.npy")), data,
                           log=lambda _: None)
  expected = [f"line number {i}" for i in range(50) if i not in set(garbage)]
  assert spec.decode(cleaned.tokens).split("\n") == expected


@pytest.mark.parametrize("ids, message", [
    (np.array([0.5]), "integer example ids"),
    (np.array([100]), "split has 100 items"),
])
def test_bad_exclude_files_name_the_problem(tmp_path, ids, message):
  np.save(tmp_path / "exclude.npy", ids)
  with pytest.raises(ValueError, match=message):
    training_split(_config(exclude=str(tmp_path / "exclude.npy")), _images())


def test_missing_exclude_file_names_the_tool_that_writes_one(tmp_path):
  with pytest.raises(FileNotFoundError, match="experiments.clean_data"):
    training_split(_config(exclude=str(tmp_path / "nope.npy")), _images())


def test_grey_foreign_images_are_resized_and_repeated_into_the_colour_shape():
  grey = np.random.default_rng(0).integers(0, 256, (5, 28, 28, 1)).astype(np.uint8)
  colour = shaped_like(grey, (32, 32, 3))
  assert colour.shape == (5, 32, 32, 3) and colour.dtype == np.uint8
  np.testing.assert_array_equal(colour[..., 0], colour[..., 2])
  assert shaped_like(grey, (28, 28, 1)) is grey
  with pytest.raises(ValueError, match="3 channels, the data 1"):
    shaped_like(colour, (28, 28, 1))


def _label_file(tmp_path, labels) -> str:
  path = str(tmp_path / "labels.npy")
  np.save(path, labels)
  return path


def test_a_label_file_relabels_and_its_changes_are_the_label_errors(tmp_path):
  data = _images()
  labels = data.labels.copy()
  labels[[3, 50, 97]] = (labels[[3, 50, 97]] + 1) % 3
  config = _config("inversion=0.2")
  config.data.label_file = _label_file(tmp_path, labels.astype(np.int64))
  dirty = training_split(config, data, str(tmp_path), log=lambda _: None)
  truth = np.load(tmp_path / GROUND_TRUTH_FILE)
  assert tuple(truth["kinds"]) == ("clean", "label_file", "inversion")
  inverted = np.flatnonzero(truth["kind"] == 2)
  assert len(inverted) == 20
  np.testing.assert_array_equal(dirty.labels, labels)  # Inversion keeps labels.
  relabelled = np.setdiff1d([3, 50, 97], inverted)  # An inverted one counts as inverted.
  np.testing.assert_array_equal(np.flatnonzero(truth["kind"] == 1), relabelled)
  ground_truth = GroundTruth(tuple(truth["kinds"]), truth["kind"], truth["source"])
  np.testing.assert_array_equal(truth_ids(ground_truth, TARGETS["label_issues"]), relabelled)


@pytest.mark.parametrize("labels, error, message", [
    (np.zeros(99, np.int64), ValueError, r"\(99,\) labels, but the split has \(100,\)"),
    (np.full(100, 3), ValueError, r"100 labels outside \[0, 3\)"),
    (np.zeros(100, np.float32), ValueError, "holds float32; a label file holds integer"),
    (None, FileNotFoundError, "does not exist"),
])
def test_bad_label_files_name_the_problem(tmp_path, labels, error, message):
  config = _config()
  config.data.label_file = (str(tmp_path / "none.npy") if labels is None
                            else _label_file(tmp_path, labels))
  with pytest.raises(error, match=message):
    training_split(config, _images())


def test_a_training_run_on_dirty_data_saves_its_ground_truth(tiny_config, tmp_path):
  tiny_config.data.corrupt = "symmetric_labels=0.25"
  train_and_evaluate(tiny_config, str(tmp_path))
  truth = np.load(tmp_path / GROUND_TRUTH_FILE)
  assert tuple(truth["kinds"]) == ("clean", "symmetric_labels")
  assert np.sum(truth["kind"] == 1) == 8  # A quarter of the fake folder's 32 images.
  assert os.path.isdir(tmp_path / "checkpoints")


def test_a_subset_run_trains_on_its_saved_members_only(tmp_path):
  data = _images()
  exclude = str(tmp_path / "exclude.npy")
  np.save(exclude, np.arange(10))  # Members are ids of the split left after exclusion.
  config = _config(exclude=exclude)
  config.data.subset, config.data.subset_seed = 30, 2
  split = training_split(config, data, str(tmp_path / "run"), log=lambda _: None)
  members = np.load(tmp_path / "run" / MEMBERS_FILE)
  assert len(members) == 30 and len(set(members)) == 30 and members.max() < 90
  np.testing.assert_array_equal(split.images, data.images[10:][members])
  np.testing.assert_array_equal(split.labels, data.labels[10:][members])
  again = training_split(config, data, log=lambda _: None)
  np.testing.assert_array_equal(again.images, split.images)  # The same seed, the same members.
  config.data.subset_seed = 3
  assert not np.array_equal(training_split(config, data, log=lambda _: None).images,
                            split.images)
  config.data.subset = 91
  with pytest.raises(InvalidInputError, match="data.subset=91"):
    training_split(config, data, log=lambda _: None)


def test_a_subset_of_text_keeps_the_member_lines():
  spec = TextSpec(vocab="\nabc")
  text = "\n".join(["a" * (i % 3 + 1) + "b" * i for i in range(6)])
  data = TextData(spec.encode(text), spec, block_size=4)
  config = _config()
  config.data.subset = 2
  kept = spec.decode(training_split(config, data, log=lambda _: None).tokens).split("\n")
  lines = text.split("\n")
  members = subset_members(len(lines), 2, 0)
  assert kept == [lines[i] for i in members]
