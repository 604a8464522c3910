"""The per-dataset feature network that image metrics are measured in.

FID and its relatives need a feature space; Inception features mean nothing for 28x28
digits, and downloading weights is not allowed here. So each dataset gets a small
classifier trained by this project on its real training split, with fixed settings, and
saved once (Orbax) beside a JSON card: settings, test accuracy, and a fingerprint of the
weights. Every evaluation report copies that card, so two reports are comparable exactly
when their fingerprints match; evaluation loads the saved network and never silently
retrains one with other settings.

Features are the 256-wide penultimate layer; probabilities are the softmax head.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from aigc_jax.data.images import ImageData
from aigc_jax.errors import InvalidInputError, MissingInputError
from aigc_jax.models.matmul_conv import MatmulConv


@dataclasses.dataclass(frozen=True)
class ClassifierSettings:
  """Everything that determines a trained feature network (with the data and seed)."""

  widths: tuple[int, ...] = (32, 64)  # 4x4 stride-2 convs.
  features: int = 256
  epochs: int = 3
  batch_size: int = 128
  learning_rate: float = 1e-3
  seed: int = 0


class FeatureClassifier(nn.Module):
  """Images in [-1, 1] (B, H, W, C) -> (features (B, F), logits (B, K))."""

  num_classes: int
  widths: tuple[int, ...] = (32, 64)
  features: int = 256

  @nn.compact
  def __call__(self, images: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    x = images
    for width in self.widths:
      x = nn.relu(MatmulConv(width, (4, 4), (2, 2))(x))
    x = nn.relu(nn.Dense(self.features)(x.reshape((x.shape[0], -1))))
    return x, nn.Dense(self.num_classes)(x)


def to_model_range(images_uint8: np.ndarray) -> np.ndarray:
  return images_uint8.astype(np.float32) / 127.5 - 1.0


def train_classifier(data: ImageData, settings: ClassifierSettings = ClassifierSettings(),
                     log=print) -> tuple[FeatureClassifier, dict]:
  """Trains on all of `data` (in memory, jitted steps); returns the model and params."""
  model = FeatureClassifier(data.num_classes, settings.widths, settings.features)
  rng = jax.random.key(settings.seed)
  params = model.init(rng, jnp.zeros((1, *data.images.shape[1:])))["params"]
  tx = optax.adam(settings.learning_rate)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, images, labels):
    def loss_fn(p):
      _, logits = model.apply({"params": p}, images)
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  order_rng = np.random.default_rng(settings.seed)
  batch_size = min(settings.batch_size, len(data.images))  # Tiny test sets: one batch.
  steps_per_epoch = len(data.images) // batch_size
  for epoch in range(settings.epochs):
    order = order_rng.permutation(len(data.images))
    for i in range(steps_per_epoch):
      idx = order[i * batch_size:(i + 1) * batch_size]
      params, opt_state, loss = step(params, opt_state, to_model_range(data.images[idx]),
                                     data.labels[idx])
    log(f"feature classifier epoch {epoch + 1}/{settings.epochs}: loss {float(loss):.4f}")
  return model, params


# The model is static (flax modules hash by their fields), so every call with the same
# network and batch shape reuses one compiled forward pass.
_forward = jax.jit(lambda model, params, x: model.apply({"params": params}, x),
                   static_argnums=0)


def features_and_probs(model: FeatureClassifier, params, images: np.ndarray,
                       batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
  """Images (N, H, W, C) -> features (N, F) and class probabilities (N, K).

  `images` are stored pixels (uint8) or samples in [0, 1] (float); each batch is scaled
  to the model's [-1, 1] on its own, so a whole split is never copied as floats.
  """
  feats, probs = [], []
  for start in range(0, len(images), batch_size):
    chunk = images[start:start + batch_size]
    chunk = (to_model_range(chunk) if chunk.dtype == np.uint8
             else np.asarray(chunk, np.float32) * 2.0 - 1.0)
    f, logits = _forward(model, params, chunk)
    feats.append(np.asarray(f))
    probs.append(np.asarray(jax.nn.softmax(logits)))
  return np.concatenate(feats), np.concatenate(probs)


def fingerprint(params) -> str:
  """A short hash of the weights: equal fingerprints, same feature space."""
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(params):
    digest.update(np.asarray(leaf, np.float32).tobytes())
  return digest.hexdigest()[:16]


def save(directory: str, params, card: dict) -> None:
  directory = os.path.abspath(directory)
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(os.path.join(directory, "params"), params, force=True)
  with open(os.path.join(directory, "card.json"), "w") as f:
    json.dump(card, f, indent=2)


def load(directory: str, num_classes: int, image_shape) -> tuple[FeatureClassifier, dict, dict]:
  """The saved network, its params and its card; fails naming the folder if it is not there."""
  directory = os.path.abspath(directory)
  card_path = os.path.join(directory, "card.json")
  if not os.path.isfile(card_path):
    raise MissingInputError(
        f"No feature classifier in {directory}. python -m experiments.evaluate trains one "
        f"there on first use (--classifier_dir={directory}); or point --classifier_dir at "
        "the folder that holds the dataset's classifier.")
  with open(card_path) as f:
    card = json.load(f)
  settings = ClassifierSettings(**{**card["settings"], "widths": tuple(card["settings"]["widths"])})
  model = FeatureClassifier(num_classes, settings.widths, settings.features)
  abstract = jax.eval_shape(lambda: model.init(jax.random.key(0),
                                               jnp.zeros((1, *image_shape)))["params"])
  with ocp.StandardCheckpointer() as checkpointer:
    params = checkpointer.restore(os.path.join(directory, "params"), abstract)
  if fingerprint(params) != card["fingerprint"]:
    raise InvalidInputError(f"Feature classifier weights in {directory} do not match its card "
                            "(fingerprint differs): the folder is corrupt; retrain it.")
  return model, params, card


def accuracy(model: FeatureClassifier, params, data: ImageData) -> float:
  _, probs = features_and_probs(model, params, data.images)
  return float(np.mean(np.argmax(probs, 1) == data.labels))


def data_fingerprint(data: ImageData) -> str:
  """A short hash of a split's pixels and labels: the identity of the data a classifier
  was trained on, whatever the dataset is called."""
  digest = hashlib.sha256(np.ascontiguousarray(data.images).tobytes())
  digest.update(np.asarray(data.labels, np.int64).tobytes())
  return digest.hexdigest()[:16]


def cache_name(dataset: str, train: ImageData) -> str:
  """The classifier cache folder's name: the dataset, and for a user's image folder also
  the content fingerprint, so two different folders never share a classifier."""
  return f"{dataset}-{data_fingerprint(train)}" if dataset == "image_folder" else dataset


def load_or_train(directory: str, dataset: str, train: ImageData, test: ImageData,
                  log=print) -> tuple[FeatureClassifier, dict, dict]:
  """The dataset's feature network from `directory`; trained there once, with the fixed
  default settings, if the folder has none yet. A cached network trained on other data
  (its card's dataset name or training-data fingerprint differ) is refused."""
  trained_on = data_fingerprint(train)
  if os.path.isfile(os.path.join(directory, "card.json")):
    model, params, card = load(directory, train.num_classes, train.images.shape[1:])
    if card["dataset"] != dataset:
      raise InvalidInputError(f"{directory} holds the feature classifier of '{card['dataset']}', "
                              f"not '{dataset}'. Point --classifier_dir at the right folder.")
    if card.get("data_fingerprint", trained_on) != trained_on:
      raise InvalidInputError(
          f"{directory} holds a feature classifier trained on other {dataset} data "
          f"(fingerprint {card['data_fingerprint']}, this training split {trained_on}). "
          "Point --classifier_dir at a fresh folder, or the one made for this data.")
    return model, params, card
  settings = ClassifierSettings()
  log(f"No feature classifier in {directory}: training one on {dataset} "
      f"({dataclasses.asdict(settings)}); later evaluations reuse it.")
  model, params = train_classifier(train, settings, log)
  card = {"dataset": dataset, "settings": dataclasses.asdict(settings),
          "test_accuracy": accuracy(model, params, test), "fingerprint": fingerprint(params),
          "train_examples": len(train.images), "data_fingerprint": trained_on}
  save(directory, params, card)
  log(f"Feature classifier saved to {directory}: test accuracy {card['test_accuracy']:.4f}.")
  return model, params, card
