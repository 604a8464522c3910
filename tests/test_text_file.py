"""A user's own text file: decoding, line ends, held-out lines, named errors, and a run
trained, cleaned and evaluated on it."""

import json
import os

import numpy as np
import pytest

from aigc_jax.data.sources import config_split, load_split
from aigc_jax.data.text_file import read_text_file, split_lines
from aigc_jax.errors import InvalidInputError, MissingInputError
from aigc_jax.metrics.run_evaluation import EvalOptions, evaluate_run
from aigc_jax.train.loop import train_and_evaluate
from experiments.configs import char_gpt
from tests.test_detectors import run_clean_data

LINES = [f"line {i}: the quick brown fox jumps over the lazy dog é" for i in range(200)]


@pytest.fixture
def corpus(tmp_path) -> str:
  """UTF-8 with a byte-order mark and Windows line ends."""
  path = tmp_path / "corpus.txt"
  path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(LINES).encode("utf-8"))
  return str(path)


def test_bom_and_crlf_are_normalised_and_held_out_lines_partition_the_text(corpus):
  text = read_text_file(corpus)
  assert text == "\n".join(LINES)
  parts = split_lines(text, 0.2, seed=0)
  lines = {name: part.split("\n") for name, part in parts.items()}
  assert (len(lines["train"]), len(lines["validation"]), len(lines["test"])) == (160, 20, 20)
  assert sorted(sum(lines.values(), [])) == sorted(LINES)
  assert lines["train"] == [line for line in LINES if line in set(lines["train"])]  # In order.
  assert split_lines(text, 0.2, seed=0) == parts and split_lines(text, 0.2, seed=1) != parts
  train = load_split("text_file", "train", text_file=corpus, block_size=16,
                     eval_fraction=0.2)
  assert "é" in train.spec.vocab and "\r" not in train.spec.vocab


@pytest.mark.parametrize("content,error,message", [
    (b"", InvalidInputError, "holds no text"),
    (b"caf\xe9 au lait\n" * 20, InvalidInputError, "is not UTF-8: byte 3"),
    (b"too short", InvalidInputError, "has 9 characters"),
])
def test_bad_text_files_get_named_errors(tmp_path, content, error, message):
  path = tmp_path / "bad.txt"
  path.write_bytes(content)
  with pytest.raises(error, match=message):
    load_split("text_file", "train", text_file=str(path), block_size=16)


def test_a_missing_text_file_or_held_out_split_without_a_fraction_is_named(tmp_path, corpus):
  with pytest.raises(MissingInputError, match="is not a file"):
    load_split("text_file", "train", text_file=str(tmp_path / "nope.txt"), block_size=16)
  with pytest.raises(InvalidInputError, match="set --config.data.eval_fraction"):
    load_split("text_file", "validation", text_file=corpus, block_size=16)


def test_a_language_model_trains_cleans_and_evaluates_on_a_text_file(corpus, tmp_path):
  config = char_gpt.get_config("tiny")
  config.data.update(name="text_file", text_file=corpus, eval_fraction=0.2)
  workdir = str(tmp_path / "gpt")
  train_and_evaluate(config, workdir)
  report, _ = evaluate_run(workdir, EvalOptions(text_samples=2, prompt_chars=8,
                                                text_chars=16))
  assert report["validation_bits_per_char"] > 0 and report["test_bits_per_char"] > 0
  assert 0.0 <= report["samples"]["invented_word_rate"] <= 1.0
  line_loss = report["privacy_audit"]["attacks"]["line_loss"]
  assert 0.0 <= line_loss["roc_auc"] <= 1.0
  assert "validation" in report["privacy_audit"]["nonmembers"]
  cleaned = run_clean_data("shakespeare", tmp_path / "c", "--config.data.name=text_file",
                           f"--config.data.text_file={corpus}",
                           "--config.data.corrupt=garbage_lines=0.05")
  assert cleaned["detectors"]["garbage_lines"]["vs_ground_truth"]["recall"] > 0.5
  assert np.load(tmp_path / "c" / "exclude.npy").size > 0
  assert os.path.exists(tmp_path / "c" / "flagged_lines.txt")


def test_a_private_language_model_samples_disjoint_windows(corpus, tmp_path):
  config = char_gpt.get_config("tiny")
  config.data.update(name="text_file", text_file=corpus, eval_fraction=0.2)
  config.dp.noise_multiplier, config.batch_size = 2.0, 4
  windows = config_split(config, "train").num_windows()
  scalars = train_and_evaluate(config, str(tmp_path / "gpt"))
  assert 0.0 <= scalars["clipped_share"] <= 1.0 and scalars["privacy/epsilon"] > 0
  with open(tmp_path / "gpt" / "config.json") as f:
    assert json.load(f)["config"]["dp"]["noise_multiplier"] == 2.0
  assert windows > config.batch_size
