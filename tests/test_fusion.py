"""Multi-model fusion: the accept rules on hand-made inputs, and fused drawing, judges and
saved-sample scoring on tiny trained runs."""

import json
import os
import subprocess

import numpy as np
import pytest

from aigc_jax.errors import InvalidInputError
from aigc_jax.metrics.run_evaluation import EvalOptions, evaluate_samples
from aigc_jax.quality import fusion
from aigc_jax.quality.fusion import FusionOptions, draw_fused, match_to_slots
from aigc_jax.quality.judges import judge_folds, judges_for_run
from aigc_jax.quality.sample_filters import drs_accept, drs_scores, vote_accept
from aigc_jax.train.loop import train_and_evaluate
from aigc_jax.train.restore import generate_images, requested_labels, restore_run
from experiments.configs import cgan, vae
from tests.conftest import REPO_ROOT, on_image_folder
from tests.test_cli import command


def test_vote_keeps_only_what_enough_judges_agree_on():
  # 3 judges x 4 samples x 3 classes; samples were asked to be classes 0, 1, 2, 0.
  probs = np.array([
      [[.9, .05, .05], [.1, .8, .1], [.2, .2, .6], [.1, .85, .05]],
      [[.8, .1, .1], [.7, .2, .1], [.1, .1, .8], [.1, .8, .1]],
      [[.95, .0, .05], [.1, .6, .3], [.3, .3, .4], [.6, .3, .1]],
  ])
  labels = np.array([0, 1, 2, 0])
  # Sample 0: all three say 0. Sample 1: two say 1. Sample 2: two say 2 (one unsure).
  # Sample 3: two say 1, one says 0 -- they disagree with the request.
  np.testing.assert_array_equal(vote_accept(probs, 3, 0.5, labels), [1, 0, 0, 0])
  np.testing.assert_array_equal(vote_accept(probs, 2, 0.5, labels), [1, 1, 1, 0])
  np.testing.assert_array_equal(vote_accept(probs, 1, 0.5, labels), [1, 1, 1, 1])
  # A stricter vote: only confident judges count.
  np.testing.assert_array_equal(vote_accept(probs, 2, 0.85, labels), [1, 0, 0, 0])
  # Unconditional: any one class that enough judges agree on (sample 3: two say 1).
  np.testing.assert_array_equal(vote_accept(probs, 2, 0.5), [1, 1, 1, 1])
  np.testing.assert_array_equal(vote_accept(probs, 3, 0.5), [1, 0, 0, 0])
  with pytest.raises(ValueError, match="min_votes=4"):
    vote_accept(probs, 4, 0.5, labels)


def test_drs_with_the_true_density_ratio_turns_model_samples_into_data_samples():
  # G draws N(0, 1); the data is N(1, 1). log p_data / p_G = x - 1/2: an optimal D's logit.
  rng = np.random.default_rng(0)
  x = rng.normal(size=400_000)
  logits = x - 0.5
  kept = x[drs_accept(logits, logits.max(), 0.0, rng.random(len(x)))]
  # With gamma 0, sigmoid(F) = exp(D - max D): exact rejection sampling.
  assert len(kept) > 2_000
  assert abs(kept.mean() - 1.0) < 0.06 and abs(kept.std() - 1.0) < 0.05
  # F rises with the logit, and a higher gamma keeps fewer.
  assert np.all(np.diff(drs_scores(np.sort(logits)[::1000], logits.max())) > 0)
  stricter = drs_accept(logits, logits.max(), 2.0, rng.random(len(x)))
  assert stricter.sum() < len(kept)


def test_match_to_slots_pairs_each_accepted_candidate_with_an_open_slot_of_its_label():
  slot_labels = np.array([3, 5, 3, 7])
  candidate_labels = np.array([3, 3, 5, 5, 3, 3, 7, 7])
  accepted = np.array([0, 1, 0, 0, 1, 1, 0, 1], bool)
  slots, candidates = match_to_slots(slot_labels, candidate_labels, accepted)
  assert sorted(slots) == [0, 2, 3]  # Slot 1 (a 5) had no accepted 5.
  np.testing.assert_array_equal(slot_labels[slots], candidate_labels[candidates])
  assert accepted[candidates].all() and len(set(candidates)) == len(candidates)


def test_judge_folds_are_disjoint_and_cover_the_split():
  folds = judge_folds(10, 3)
  assert [len(f) for f in folds] == [4, 3, 3]
  assert sorted(np.concatenate(folds)) == list(range(10))
  np.testing.assert_array_equal(judge_folds(10, 3)[1], folds[1])  # Fixed across calls.
  with pytest.raises(InvalidInputError, match="--num_judges"):
    judge_folds(2, 3)


def _folder_config(module, variant, image_folder, seed=0):
  config = on_image_folder(module.get_config(variant), image_folder)
  config.seed = seed
  return config


@pytest.fixture(scope="module")
def tiny_runs(image_folder, tmp_path_factory):
  """Two tiny cGAN runs (seeds 0 and 1) and a tiny conditional VAE on the fake folder."""
  root = tmp_path_factory.mktemp("fusion_runs")
  workdirs = {}
  for name, config in (("gan0", _folder_config(cgan, "tiny", image_folder, 0)),
                       ("gan1", _folder_config(cgan, "tiny", image_folder, 1)),
                       ("cvae", _folder_config(vae, "tiny", image_folder))):
    if name == "cvae":
      config.model.conditional = True
    workdirs[name] = str(root / name)
    train_and_evaluate(config, workdirs[name])
  return workdirs


def test_a_mixture_draws_evenly_and_keeps_the_requested_labels(tiny_runs):
  workdirs = [tiny_runs["gan0"], tiny_runs["gan1"]]
  runs = [restore_run(w) for w in workdirs]
  labels = requested_labels(runs[0], 40)
  images, report = draw_fused(runs, workdirs, 40, labels, FusionOptions(batch_size=16),
                              log=lambda _: None)
  assert images.shape == (40, 8, 8, 1) and 0.0 <= images.min() <= images.max() <= 1.0
  assert report["drawn"] == 40 and report["draws_per_kept"] == 1.0
  assert [r["kept"] for r in report["runs"]] == [20, 20]
  # The sampler compiled once per run, for every batch of every round.
  assert runs[0].sampler._cache_size() == 1


def test_vote_filtering_keeps_only_samples_the_judges_pass(tiny_runs, monkeypatch):
  """Judges that pass a sample when its mean pixel is above the median of a pilot draw:
  every kept sample passes, and the cost report counts every draw."""
  workdirs = [tiny_runs["gan0"], tiny_runs["gan1"]]
  runs = [restore_run(w) for w in workdirs]
  threshold = np.median(generate_images(runs[0], 200, seed=9).mean(axis=(1, 2, 3)))

  def judges_by_brightness(judges, images):
    del judges
    bright = images.mean(axis=(1, 2, 3)) > threshold
    votes = np.stack([bright, ~bright], axis=1).astype(float)  # Class 0 if bright.
    return np.stack([votes] * 3)

  monkeypatch.setattr(fusion, "judge_probabilities", judges_by_brightness)
  labels = np.zeros(30, np.int32)  # Every slot asks for class 0.
  images, report = draw_fused(runs, workdirs, 30, labels,
                              FusionOptions(strategy="vote", min_votes=3, batch_size=16),
                              judges=[(None, None, {"name": "brightness"})],
                              log=lambda _: None)
  assert (images.mean(axis=(1, 2, 3)) > threshold).all()
  assert report["drawn"] > 30 and report["draws_per_kept"] == report["drawn"] / 30
  assert sum(r["kept"] for r in report["runs"]) == 30
  assert report["judges"] == [{"name": "brightness"}]


def test_drs_uses_each_gan_own_discriminator_and_refuses_a_vae(tiny_runs):
  workdirs = [tiny_runs["gan0"], tiny_runs["gan1"]]
  runs = [restore_run(w) for w in workdirs]
  labels = requested_labels(runs[0], 24)
  options = FusionOptions(strategy="drs", drs_burn_in=50, batch_size=16)
  images, report = draw_fused(runs, workdirs, 24, labels, options, log=lambda _: None)
  assert images.shape[0] == 24 and report["burn_in_draws"] == 100
  assert report["drawn"] >= 24 and report["draws_per_kept"] == (report["drawn"] + 100) / 24
  vae_run = restore_run(tiny_runs["cvae"])
  with pytest.raises(InvalidInputError, match="needs each run's discriminator"):
    draw_fused([runs[0], vae_run], [workdirs[0], tiny_runs["cvae"]], 8,
               requested_labels(vae_run, 8), options, log=lambda _: None)


def test_runs_of_different_kinds_are_not_fused(tiny_runs, image_folder, tmp_path):
  config = _folder_config(cgan, "tiny", image_folder)
  config.model.conditional = False
  train_and_evaluate(config, str(tmp_path / "uncond"))
  runs = [restore_run(tiny_runs["gan0"]), restore_run(str(tmp_path / "uncond"))]
  with pytest.raises(InvalidInputError, match="Cannot fuse"):
    draw_fused(runs, [tiny_runs["gan0"], str(tmp_path / "uncond")], 8, None,
               log=lambda _: None)


def test_judges_are_trained_once_on_their_folds(tiny_runs, tmp_path):
  run = restore_run(tiny_runs["gan0"])
  judges = judges_for_run(run, tiny_runs["gan0"], 2, str(tmp_path), log=lambda _: None)
  assert [card["train_examples"] for _, _, card in judges] == [16, 16]
  assert [card["settings"]["seed"] for _, _, card in judges] == [1, 2]
  again = judges_for_run(run, tiny_runs["gan0"], 2, str(tmp_path), log=lambda _: None)
  assert [c["fingerprint"] for _, _, c in again] == [c["fingerprint"] for _, _, c in judges]


def test_saved_samples_are_scored_like_the_run_own_draws(tiny_runs, tmp_path):
  run = restore_run(tiny_runs["gan0"])
  labels = requested_labels(run, 40)
  path = str(tmp_path / "s.npy")
  np.save(path, generate_images(run, 40, seed=0, labels=labels))
  np.save(str(tmp_path / "s.labels.npy"), labels)
  options = EvalOptions(num_samples=40, classifier_dir=str(tmp_path / "classifier"))
  report, written = evaluate_samples(tiny_runs["gan0"], path, options)
  assert written == str(tmp_path / "s.eval.json")
  from aigc_jax.metrics.run_evaluation import evaluate_run
  own, _ = evaluate_run(tiny_runs["gan0"], options)
  assert report["samples"] == own["samples"]  # Same images, same labels: same numbers.
  np.save(str(tmp_path / "s.labels.npy"), labels[:5])
  with pytest.raises(InvalidInputError, match="5 labels for 40 images"):
    evaluate_samples(tiny_runs["gan0"], path, options)
  np.save(str(tmp_path / "wrong.npy"), np.zeros((4, 9, 9, 1), np.float32))
  with pytest.raises(InvalidInputError, match="shape"):
    evaluate_samples(tiny_runs["gan0"], str(tmp_path / "wrong.npy"), options)


def test_sample_and_evaluate_commands_fuse_and_score(tiny_runs, tmp_path):
  output = str(tmp_path / "fused.npy")
  result = subprocess.run(
      command("experiments.sample", f"--workdir={tiny_runs['gan0']}",
              f"--workdir={tiny_runs['gan1']}", f"--workdir={tiny_runs['cvae']}",
              "--num_samples=12", f"--output={output}", "--fusion=vote", "--num_judges=2",
              "--min_votes=1", "--confident=0", f"--judges_dir={tmp_path / 'judges'}"),
      cwd=REPO_ROOT, capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(str(tmp_path / "fused.fusion.json")) as f:
    report = json.load(f)
  assert report["strategy"] == "vote" and len(report["runs"]) == 3
  assert np.load(output).shape == (12, 8, 8, 1)
  result = subprocess.run(
      command("experiments.evaluate", f"--workdir={tiny_runs['gan0']}", f"--samples={output}",
              f"--classifier_dir={tmp_path / 'classifier'}"),
      cwd=REPO_ROOT, capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "fusion.draws_per_kept" in result.stdout
  assert os.path.isfile(str(tmp_path / "fused.eval.json"))
