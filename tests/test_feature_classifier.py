"""The feature network: learns, saves with its card, reloads identically, refuses mix-ups."""

import json
import os

import jax
import numpy as np
import pytest

from aigc_jax.data.images import ImageData
from aigc_jax.metrics import feature_classifier as fc


def two_class_data(n=256, seed=0):
  rng = np.random.default_rng(seed)
  labels = np.arange(n) % 2
  images = rng.integers(0, 100, (n, 8, 8, 1)) + 150 * labels[:, None, None, None]
  return ImageData(images.astype(np.uint8), labels.astype(np.int32), 2)


def test_trains_saves_and_reloads_the_same_features(tmp_path):
  train, test = two_class_data(), two_class_data(seed=1)
  settings = fc.ClassifierSettings(widths=(4, 8), features=16, epochs=4, batch_size=32)
  model, params = fc.train_classifier(train, settings, log=lambda _: None)
  assert fc.accuracy(model, params, test) > 0.95
  card = {"dataset": "two_class", "settings": {**settings.__dict__},
          "fingerprint": fc.fingerprint(params), "test_accuracy": 1.0}
  fc.save(str(tmp_path), params, card)
  loaded_model, loaded, loaded_card = fc.load(str(tmp_path), 2, (8, 8, 1))
  assert loaded_card["fingerprint"] == card["fingerprint"]
  images = test.images[:10].astype(np.float32) / 255.0
  np.testing.assert_allclose(fc.features_and_probs(loaded_model, loaded, images)[0],
                             fc.features_and_probs(model, params, images)[0], rtol=1e-6)
  with pytest.raises(ValueError, match="holds the feature classifier of 'two_class'"):
    fc.load_or_train(str(tmp_path), "mnist", train, test)
  card["fingerprint"] = "0" * 16
  with open(os.path.join(tmp_path, "card.json"), "w") as f:
    json.dump(card, f)
  with pytest.raises(ValueError, match="corrupt"):
    fc.load(str(tmp_path), 2, (8, 8, 1))


def test_reloads_onto_this_machines_first_device_wherever_it_was_saved_from(tmp_path):
  """A network saved from another device (here CPU 3 of 4; in use, a CPU-trained network
  on a GPU machine) loads onto the default device instead of asking for the saver's."""
  settings = fc.ClassifierSettings(widths=(4, 8), features=16, epochs=1, batch_size=32)
  model, params = fc.train_classifier(two_class_data(), settings, log=lambda _: None)
  elsewhere = jax.device_put(params, jax.devices()[-1])
  fc.save(str(tmp_path), elsewhere, {"dataset": "two_class", "settings": {**settings.__dict__},
                                     "fingerprint": fc.fingerprint(params)})
  _, loaded, _ = fc.load(str(tmp_path), 2, (8, 8, 1))
  assert {d for leaf in jax.tree.leaves(loaded) for d in leaf.devices()} == {jax.devices()[0]}


def test_colour_images_get_the_batchnorm_network_and_it_saves_its_statistics(tmp_path):
  """Two classes told apart by hue; the colour net trains with augmentation and BatchNorm,
  and a reload gives the same features (so the running statistics were saved too)."""
  rng = np.random.default_rng(0)
  labels = np.arange(128) % 2
  images = rng.integers(0, 120, (128, 8, 8, 3))
  images[..., 0] += 130 * labels[:, None, None]
  data = ImageData(images.astype(np.uint8), labels.astype(np.int32), 2)
  assert fc.default_settings((32, 32, 3)).architecture == "colour"
  assert fc.default_settings((28, 28, 1)).architecture == "conv"
  settings = fc.dataclasses.replace(fc.COLOUR_SETTINGS, widths=(8, 16), epochs=6,
                                    batch_size=32, learning_rate=0.05)
  model, variables = fc.train_classifier(data, settings, log=lambda _: None)
  assert set(variables) == {"params", "batch_stats"}
  assert fc.accuracy(model, variables, data) > 0.95
  card = {"dataset": "hues", "settings": {**settings.__dict__},
          "fingerprint": fc.fingerprint(variables, settings.flip_average)}
  fc.save(str(tmp_path), variables, card)
  loaded_model, loaded, _ = fc.load(str(tmp_path), 2, (8, 8, 3))
  np.testing.assert_allclose(fc.features_and_probs(loaded_model, loaded, data.images)[0],
                             fc.features_and_probs(model, variables, data.images)[0],
                             rtol=1e-5, atol=1e-6)


def test_a_flip_averaged_network_cannot_tell_an_image_from_its_mirror(tmp_path):
  """The same weights with and without flip averaging: the averaged network gives an
  image and its mirror the same features and probabilities, the plain one does not,
  training (which sees one view) is the same for both, and the two feature spaces have
  different fingerprints."""
  images = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3)).astype(np.uint8)
  plain = fc.build(fc.dataclasses.replace(fc.COLOUR_SETTINGS, widths=(4, 8),
                                          flip_average=False), 3)
  averaged = plain.clone(flip_average=True)
  variables = plain.init(jax.random.key(0), fc.to_model_range(images))
  mirrors = images[:, :, ::-1]
  for got, want in zip(fc.features_and_probs(averaged, variables, images),
                       fc.features_and_probs(averaged, variables, mirrors)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  plain_features = [fc.features_and_probs(plain, variables, x)[0] for x in (images, mirrors)]
  assert not np.allclose(*plain_features, rtol=1e-3, atol=0)
  np.testing.assert_allclose(fc.features_and_probs(averaged, variables, images)[0],
                             0.5 * (plain_features[0] + plain_features[1]), rtol=1e-5,
                             atol=1e-6)
  x = fc.to_model_range(images)
  train_out = [m.apply(variables, x, train=True, mutable=["batch_stats"])[0][1]
               for m in (plain, averaged)]
  np.testing.assert_array_equal(*train_out)
  settings = fc.dataclasses.asdict(fc.dataclasses.replace(fc.COLOUR_SETTINGS, widths=(4, 8)))
  plain_print = fc.fingerprint(variables)
  assert fc.fingerprint(variables, flip_average=True) != plain_print
  fc.save(str(tmp_path), variables, {"dataset": "x", "settings": settings,
                                     "fingerprint": plain_print})
  with pytest.raises(ValueError, match="fingerprint differs"):
    fc.load(str(tmp_path), 3, (8, 8, 3))  # The card says flip-averaged: another space.


def test_probabilities_undo_the_label_smoothing_the_head_was_trained_with():
  sure = np.full((1, 10), 0.02)  # Labels smoothed by 0.2 over 10 classes: 0.82 at most.
  sure[0, 3] = 0.82
  np.testing.assert_allclose(fc.unsmoothed(sure, 0.2), np.eye(10)[[3]], atol=1e-12)
  probs = np.random.default_rng(0).dirichlet(np.ones(10), 50)
  posterior = fc.unsmoothed(probs, 0.2)
  np.testing.assert_allclose(posterior.sum(1), 1.0)
  np.testing.assert_array_equal(posterior.argmax(1), probs.argmax(1))
  assert fc.unsmoothed(probs, 0.0) is probs


def test_missing_classifier_names_the_folder_and_the_fix(tmp_path):
  with pytest.raises(FileNotFoundError, match="No feature classifier in .*nothing"):
    fc.load(str(tmp_path / "nothing"), 2, (8, 8, 1))
