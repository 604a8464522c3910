"""The entry points as a user runs them: real processes, real signals, real MNIST."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from absl import app

from aigc_jax.data.sources import config_split
from aigc_jax.metrics.run_evaluation import EvalOptions, default_classifier_dir, evaluate_run
from aigc_jax.train.loop import train_and_evaluate
from aigc_jax.train.metric_writer import read_metrics
from experiments import cli
from experiments.configs import cgan
from tests.conftest import REPO_ROOT, on_image_folder

MLP_GAN = "experiments/configs/mlp_gan.py"


def command(module, *args):
  return [sys.executable, "-m", module, *args]


def folder_flags(image_folder, workdir, **overrides):
  flags = [f"--config={MLP_GAN}:tiny", f"--workdir={workdir}",
           "--config.data.name=image_folder", f"--config.data.image_folder={image_folder}"]
  return flags + [f"--config.{k}={v}" for k, v in overrides.items()]


def start(args, log_path, env=None):
  log = open(log_path, "w")
  return subprocess.Popen(args, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                          env={**os.environ, **(env or {})})


def saved_steps(workdir):
  folder = os.path.join(workdir, "checkpoints")
  return sorted(int(d) for d in os.listdir(folder) if d.isdigit()) if os.path.isdir(folder) else []


def wait_for_checkpoint(process, workdir, timeout_s=120):
  deadline = time.time() + timeout_s
  while not saved_steps(workdir):
    assert process.poll() is None, "training exited before its first checkpoint"
    assert time.time() < deadline, "no checkpoint appeared"
    time.sleep(0.05)


def test_unknown_config_key_fails_with_its_name(tmp_path):
  result = subprocess.run(
      command("experiments.train", f"--config={MLP_GAN}:tiny", f"--workdir={tmp_path}",
              "--config.optimizer.g_learning_rat=1e-3"),
      cwd=REPO_ROOT, capture_output=True, text=True)
  assert result.returncode != 0
  assert "Unknown config key 'optimizer.g_learning_rat'" in result.stderr
  assert "optimizer.g_learning_rate" in result.stderr  # The suggestion.


@pytest.mark.parametrize("config_args", [[f"--config={MLP_GAN}:tiny"],
                                         ["--config", f"{MLP_GAN}:tiny"]])
def test_a_misspelt_key_is_named_whichever_way_the_config_file_is_given(config_args,
                                                                        monkeypatch):
  monkeypatch.chdir(REPO_ROOT)
  with pytest.raises(app.UsageError, match="Unknown config key 'optimizer.g_learning_rat'"):
    cli.check_config_overrides(["train", *config_args, "--config.optimizer.g_learning_rat=1"])


def test_a_config_value_of_the_wrong_type_fails_with_its_name(tmp_path):
  result = subprocess.run(
      command("experiments.train", f"--config={MLP_GAN}:tiny", f"--workdir={tmp_path}",
              "--config.batch_size=1.5"),
      cwd=REPO_ROOT, capture_output=True, text=True)
  assert result.returncode != 0 and not os.listdir(tmp_path)
  assert "--config.batch_size=1.5" in result.stderr and "int" in result.stderr


def test_sigkill_then_rerun_continues_exactly(tiny_config, image_folder, tmp_path):
  workdir = str(tmp_path / "killed")
  overrides = dict(num_steps=100_000, checkpoint_every=20, log_every=10, sample_every=10_000)
  process = start(command("experiments.train", *folder_flags(image_folder, workdir,
                                                              **overrides)),
                  tmp_path / "killed.log")
  wait_for_checkpoint(process, workdir)
  process.send_signal(signal.SIGKILL)
  process.wait()
  last_saved = saved_steps(workdir)[-1]
  end = last_saved + 30
  rerun = subprocess.run(
      command("experiments.train", *folder_flags(image_folder, workdir,
                                                 **{**overrides, "num_steps": end})),
      cwd=REPO_ROOT, capture_output=True, text=True)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert f"Resumed from {os.path.join(workdir, 'checkpoints', str(last_saved))}" in rerun.stderr

  reference = str(tmp_path / "reference")
  tiny_config.update(overrides)
  tiny_config.num_steps = end
  train_and_evaluate(tiny_config, reference)
  got, want = read_metrics(workdir), read_metrics(reference)
  assert [m["step"] for m in got] == [m["step"] for m in want]
  for g, w in zip(got, want):
    g.pop("steps_per_s"), w.pop("steps_per_s")
    assert g == pytest.approx(w, rel=1e-6)


def test_sigterm_saves_and_exits_cleanly(image_folder, tmp_path):
  workdir = str(tmp_path)
  process = start(command("experiments.train", *folder_flags(
      image_folder, workdir, num_steps=1_000_000, checkpoint_every=50, log_every=10,
      sample_every=1_000_000)), tmp_path / "train.log")
  wait_for_checkpoint(process, workdir)
  process.send_signal(signal.SIGTERM)
  assert process.wait(timeout=60) == 0
  last_logged = read_metrics(workdir)[-1]["step"]
  assert saved_steps(workdir)[-1] == last_logged > 0
  assert "SIGTERM received" in (tmp_path / "train.log").read_text()


def test_conditional_gan_trains_on_mnist_and_draws_the_requested_class(
    mnist_tfds_dir, raw_data_dir, tmp_path):
  """The README path on real data: offline MNIST, a DCGAN-backed cGAN, class-wise sampling."""
  env = {**os.environ, "TFDS_DATA_DIR": mnist_tfds_dir, "AIGC_RAW_DATA_DIR": raw_data_dir}
  workdir = str(tmp_path / "run")
  train = subprocess.run(
      command("experiments.train", "--config=experiments/configs/cgan.py:tiny",
              f"--workdir={workdir}", "--config.num_steps=10", "--config.batch_size=32",
              "--config.log_every=5"),
      cwd=REPO_ROOT, capture_output=True, text=True, env=env)
  assert train.returncode == 0, train.stderr[-3000:]
  assert "on mnist (60,000 images of (28, 28, 1))" in train.stderr

  def sample(name, *flags):
    out = tmp_path / f"{name}.npy"
    result = subprocess.run(
        command("experiments.sample", f"--workdir={workdir}", "--num_samples=12",
                f"--output={out}", *flags), cwd=REPO_ROOT, capture_output=True, text=True,
        env=env)
    return result, out

  result, out = sample("sevens", "--label=7", f"--png={tmp_path / 'grid.png'}")
  assert result.returncode == 0, result.stderr[-3000:]
  images = np.load(out)
  assert images.shape == (12, 28, 28, 1) and images.dtype == np.float32
  assert 0.0 <= images.min() and images.max() <= 1.0
  assert (tmp_path / "grid.png").stat().st_size > 0
  assert np.load(tmp_path / "sevens.labels.npy").tolist() == [7] * 12
  result, _ = sample("balanced", "--labels=balanced")
  assert result.returncode == 0, result.stderr[-3000:]
  assert np.load(tmp_path / "balanced.labels.npy").tolist() == [*range(10), 0, 1]
  result, _ = sample("bad", "--label=10")
  assert result.returncode != 0 and "Label 10 is out of range" in result.stderr


def test_char_gpt_trains_and_continues_prompts_on_tiny_shakespeare(raw_data_dir, tmp_path):
  env = {**os.environ, "TFDS_DATA_DIR": str(tmp_path / "tfds"),
         "AIGC_RAW_DATA_DIR": raw_data_dir}
  workdir = str(tmp_path / "gpt")
  train = subprocess.run(
      command("experiments.train", "--config=experiments/configs/char_gpt.py:tiny",
              f"--workdir={workdir}", "--config.num_steps=6"),
      cwd=REPO_ROOT, capture_output=True, text=True, env=env)
  assert train.returncode == 0, train.stderr[-3000:]
  assert "tiny_shakespeare (1,003,854 characters, vocabulary 65)" in train.stderr
  assert any(m.get("eval/bits_per_char", 0) > 0 for m in read_metrics(workdir))
  assert open(os.path.join(workdir, "samples", "step_0000006.txt")).read().strip()
  sample = subprocess.run(
      command("experiments.sample", f"--workdir={workdir}", "--prompt=ROMEO:",
              "--prompt=JULIET:", "--num_chars=40", "--temperature=0.8", "--top_k=10",
              "--top_p=0.95", "--stop=zzz"),
      cwd=REPO_ROOT, capture_output=True, text=True, env=env)
  assert sample.returncode == 0, sample.stderr[-3000:]
  assert "=== 'ROMEO:'\nROMEO:" in sample.stdout and "=== 'JULIET:'\nJULIET:" in sample.stdout
  ensemble = subprocess.run(  # The run decoding together with itself.
      command("experiments.sample", f"--workdir={workdir}", f"--workdir={workdir}",
              "--prompt=ROMEO:", "--num_chars=20", "--combine=product"),
      cwd=REPO_ROOT, capture_output=True, text=True, env=env)
  assert ensemble.returncode == 0, ensemble.stderr[-3000:]
  assert "=== 'ROMEO:'\nROMEO:" in ensemble.stdout
  evaluate = subprocess.run(command("experiments.evaluate", f"--workdir={workdir}",
                                    "--text_samples=3", "--text_chars=30"),
                            cwd=REPO_ROOT, capture_output=True, text=True, env=env)
  assert evaluate.returncode == 0, evaluate.stderr[-3000:]
  with open(os.path.join(workdir, "eval", "step_6.json")) as f:
    report = json.load(f)
  for split in ("validation", "test"):
    assert report[f"{split}_bits_per_char"] == pytest.approx(
        report[f"{split}_loss"] / np.log(2), rel=1e-5)
  samples = report["samples"]
  assert samples["num_samples"] == 3 and 0.0 <= samples["invented_word_rate"] <= 1.0
  assert 0.0 <= samples["bleu_vs_reference"] <= 1.0


def test_evaluate_run_scores_gan_samples_in_a_saved_feature_space(image_folder, tmp_path):
  config = on_image_folder(cgan.get_config("tiny"), image_folder)
  workdir, classifier = str(tmp_path / "cgan"), str(tmp_path / "classifier")
  train_and_evaluate(config, workdir)
  options = EvalOptions(num_samples=40, classifier_dir=classifier)
  first, path = evaluate_run(workdir, options)  # Trains the classifier ...
  saved = {f: os.path.getmtime(os.path.join(classifier, f)) for f in os.listdir(classifier)}
  second, _ = evaluate_run(workdir, options)  # ... and reuses it.
  assert saved and saved == {f: os.path.getmtime(os.path.join(classifier, f))
                             for f in os.listdir(classifier)}
  assert path == os.path.join(workdir, "eval", "step_4.json")
  with open(path) as f:
    assert json.load(f) == second
  assert first["feature_classifier"]["fingerprint"] == second["feature_classifier"]["fingerprint"]
  samples = first["samples"]
  assert samples["num_samples"] == 40 and samples["fid"] >= 0
  for key in ("precision", "recall", "coverage", "class_conditional_accuracy",
              "hallucination_off_manifold", "near_copy_share"):
    assert 0.0 <= samples[key] <= 1.0, key
  assert first["samples"] == second["samples"]  # Same seed, same classifier: same numbers.
  audit = first["privacy_audit"]  # The whole split is the members; test: the same folder.
  assert set(audit["attacks"]) == {"discriminator", "nearest_sample"}
  assert "roc" not in audit["attacks"]["discriminator"]  # The summary leaves curves out.
  assert audit["attacks"]["nearest_sample"]["roc_auc"] == 0.5  # Same images on both sides.


def test_a_folder_without_test_split_is_evaluated_on_a_held_out_share(image_folder,
                                                                     tmp_path):
  config = cgan.get_config("tiny")
  config.data.update(name="image_folder", image_folder=image_folder, eval_fraction=0.25,
                     eval_split="held_out", test_split="held_out")
  train, held_out = config_split(config, "train"), config_split(config, "held_out")
  assert (len(train.images), len(held_out.images)) == (24, 8)
  pixels = lambda data: {image.tobytes() for image in data.images}
  assert not pixels(train) & pixels(held_out)  # Nothing held out is trained on.
  whole = config.copy_and_resolve_references()
  whole.data.eval_fraction = 0.0
  assert pixels(train) | pixels(held_out) == pixels(config_split(whole, "train"))
  assert np.array_equal(config_split(config, "held_out").images, held_out.images)
  workdir = str(tmp_path / "runs" / "cgan")
  train_and_evaluate(config, workdir)
  report, _ = evaluate_run(workdir, EvalOptions(num_samples=8))
  assert report["held_out"].startswith("held_out: 25% of 'train' held out of training")
  directory = report["feature_classifier"]["directory"]
  assert os.path.dirname(directory) == str(tmp_path / "runs" / "classifiers")
  assert os.path.basename(directory).startswith("image_folder-")


def test_a_cached_feature_classifier_of_other_data_is_refused(tmp_path):
  from aigc_jax.data.images import ImageData
  from aigc_jax.metrics import feature_classifier
  from aigc_jax.metrics.feature_classifier import load_or_train
  rng = np.random.default_rng(0)
  make = lambda: ImageData(rng.integers(0, 255, (40, 8, 8, 1), dtype=np.uint8),
                           rng.integers(0, 2, 40).astype(np.int32), 2)
  first, second = make(), make()
  assert feature_classifier.cache_name("image_folder", first) != feature_classifier.cache_name(
      "image_folder", second)
  monkey_settings = feature_classifier.ClassifierSettings(epochs=1, batch_size=8)
  original = feature_classifier.ClassifierSettings
  feature_classifier.ClassifierSettings = lambda: monkey_settings
  try:
    load_or_train(str(tmp_path), "image_folder", first, first, log=lambda _: None)
  finally:
    feature_classifier.ClassifierSettings = original
  load_or_train(str(tmp_path), "image_folder", first, first, log=lambda _: None)  # Reused.
  with pytest.raises(ValueError, match="trained on other image_folder data"):
    load_or_train(str(tmp_path), "image_folder", second, second, log=lambda _: None)


def test_the_default_feature_classifier_lives_beside_the_run_folder(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  want = os.path.join(str(tmp_path), "runs", "classifiers", "mnist")
  assert default_classifier_dir("runs/cgan", "mnist") == want
  assert default_classifier_dir(os.path.join(str(tmp_path), "runs", "cgan/"), "mnist") == want
