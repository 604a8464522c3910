"""The per-dataset feature network that image metrics are measured in.

FID and its relatives need a feature space; Inception features mean nothing for 28x28
digits, and downloading weights is not allowed here. So each dataset gets a small
classifier trained by this project on its real training split, with fixed settings, and
saved once (Orbax) beside a JSON card: settings, test accuracy, and a fingerprint of the
weights. Every evaluation report copies that card, so two reports are comparable exactly
when their fingerprints match; evaluation loads the saved network and never silently
retrains one with other settings.

The network depends on the images (`default_settings`): a two-conv net for grey digits,
a deeper BatchNorm conv net trained with augmentation for colour images such as CIFAR-10
(feature_networks.py). Features are a 256-wide layer; probabilities are the softmax head.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from aigc_jax.data.images import PIXEL_VALUES, ImageData
from aigc_jax.errors import InvalidInputError, MissingInputError
from aigc_jax.metrics.feature_networks import ColourClassifier, ConvClassifier
from aigc_jax.train.checkpoint import with_shardings


@dataclasses.dataclass(frozen=True)
class ClassifierSettings:
  """Everything that determines a trained feature network (with the data and seed)."""

  architecture: str = "conv"  # "conv" or "colour" (feature_networks.py).
  widths: tuple[int, ...] = (32, 64)
  features: int = 256  # "conv" only: its dense feature layer; "colour" has widths[-1].
  epochs: int = 3
  batch_size: int = 128
  learning_rate: float = 1e-3  # "conv": Adam; "colour": peak of SGD's warm-up and decay.
  augment: bool = False  # Random horizontal flips and 2-pixel translations.
  label_smoothing: float = 0.0
  flip_average: bool = False  # "colour" only: evaluate on the image and its mirror.
  seed: int = 0


# Colour images: CIFAR-10 test accuracy 0.850 in 17.5 minutes on 2 CPU cores (docs/metrics.md).
COLOUR_SETTINGS = ClassifierSettings(architecture="colour", widths=(64, 128, 256), epochs=16,
                                     batch_size=128, learning_rate=0.1, augment=True,
                                     label_smoothing=0.2, flip_average=True)
WEIGHT_DECAY = 5e-4  # "colour" only.


def default_settings(image_shape) -> ClassifierSettings:
  """The fixed settings of a dataset's feature network: by its number of channels."""
  return COLOUR_SETTINGS if image_shape[-1] == 3 else ClassifierSettings()


def build(settings: ClassifierSettings, num_classes: int) -> nn.Module:
  if settings.architecture == "conv":
    return ConvClassifier(num_classes, settings.widths, settings.features,
                          label_smoothing=settings.label_smoothing)
  if settings.architecture == "colour":
    return ColourClassifier(num_classes, settings.widths,
                            label_smoothing=settings.label_smoothing,
                            flip_average=settings.flip_average)
  raise InvalidInputError(f"Unknown feature network '{settings.architecture}'; pick 'conv' "
                          "or 'colour'.")


def optimizer(settings: ClassifierSettings, total_steps: int) -> optax.GradientTransformation:
  """Adam for the small digit network; SGD with Nesterov momentum, a linear warm-up over
  the first fifth and a linear decay to zero, and weight decay for the colour network
  (the fast CIFAR-10 recipes' choice)."""
  if settings.architecture == "conv":
    return optax.adam(settings.learning_rate)
  warmup = max(1, total_steps // 5)
  schedule = optax.join_schedules(
      [optax.linear_schedule(0.0, settings.learning_rate, warmup),
       optax.linear_schedule(settings.learning_rate, 0.0, max(1, total_steps - warmup))],
      [warmup])
  return optax.chain(optax.add_decayed_weights(WEIGHT_DECAY),
                     optax.sgd(schedule, momentum=0.9, nesterov=True))


def augmented(images: jnp.ndarray, key: jax.Array) -> jnp.ndarray:
  """Each image flipped left-right with probability 1/2; the batch shifted by up to 2
  pixels each way (reflected edges), one shift per batch."""
  flip_key, shift_key = jax.random.split(key)
  flip = jax.random.bernoulli(flip_key, 0.5, (images.shape[0], 1, 1, 1))
  images = jnp.where(flip, images[:, :, ::-1], images)
  padded = jnp.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
  shift = jax.random.randint(shift_key, (2,), 0, 5)
  return jax.lax.dynamic_slice(padded, (0, shift[0], shift[1], 0), images.shape)


def to_model_range(images_uint8: np.ndarray) -> np.ndarray:
  return PIXEL_VALUES[images_uint8]


def train_classifier(data: ImageData, settings: ClassifierSettings = ClassifierSettings(),
                     log=print) -> tuple[nn.Module, dict]:
  """Trains on all of `data` (in memory, jitted steps); returns the model and its
  variables ({"params": ..., and "batch_stats" where the network has BatchNorm})."""
  model = build(settings, data.num_classes)
  key = jax.random.key(settings.seed)
  # Unaugmented networks initialise from the seed's key itself, as they did before
  # augmentation existed, so a retrained digit network keeps its documented fingerprint.
  init_key, augment_key = jax.random.split(key) if settings.augment else (key, key)
  variables = dict(model.init(init_key, jnp.zeros((1, *data.images.shape[1:]))))
  batch_size = min(settings.batch_size, len(data.images))  # Tiny test sets: one batch.
  steps_per_epoch = len(data.images) // batch_size
  tx = optimizer(settings, settings.epochs * steps_per_epoch)
  opt_state = tx.init(variables["params"])

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def step(variables, opt_state, images, labels, key):
    if settings.augment:
      images = augmented(images, key)

    def loss_fn(params):
      (_, logits), state = model.apply({**variables, "params": params}, images, train=True,
                                       mutable=["batch_stats"])
      if settings.label_smoothing:
        targets = optax.smooth_labels(jax.nn.one_hot(labels, data.num_classes),
                                      settings.label_smoothing)
        return optax.softmax_cross_entropy(logits, targets).mean(), state
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), state

    (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(variables["params"])
    updates, opt_state = tx.update(grads, opt_state, variables["params"])
    params = optax.apply_updates(variables["params"], updates)
    return {**variables, **state, "params": params}, opt_state, loss

  order_rng = np.random.default_rng(settings.seed)
  for epoch in range(settings.epochs):
    order = order_rng.permutation(len(data.images))
    for i in range(steps_per_epoch):
      idx = order[i * batch_size:(i + 1) * batch_size]
      variables, opt_state, loss = step(
          variables, opt_state, to_model_range(data.images[idx]), data.labels[idx],
          jax.random.fold_in(augment_key, epoch * steps_per_epoch + i))
    log(f"feature classifier epoch {epoch + 1}/{settings.epochs}: loss {float(loss):.4f}")
  return model, variables


# The model is static (flax modules hash by their fields), so every call with the same
# network and batch shape reuses one compiled forward pass.
_forward = jax.jit(lambda model, variables, x: model.apply(variables, x), static_argnums=0)


def features_and_probs(model: nn.Module, variables, images: np.ndarray,
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
    f, logits = _forward(model, variables, chunk)
    feats.append(np.asarray(f))
    probs.append(unsmoothed(np.asarray(jax.nn.softmax(logits)), model.label_smoothing))
  return np.concatenate(feats), np.concatenate(probs)


def unsmoothed(probs: np.ndarray, label_smoothing: float) -> np.ndarray:
  """Class posteriors from a head trained on labels smoothed by `label_smoothing` (e).

  Cross-entropy against smoothed labels is minimised by p = (1 - e) r + e / K, where r is
  the class posterior: a perfectly sure network says 1 - e + e / K, never 1, and every
  confidence threshold (the unassignable rate's 0.9, say) would misread it. Inverting the
  map, r = (p - e / K) / (1 - e), clipped at 0 and renormalised, gives r back; the argmax
  and the features are unchanged.
  """
  if not label_smoothing:
    return probs
  num_classes = probs.shape[-1]
  posterior = np.clip((probs - label_smoothing / num_classes) / (1 - label_smoothing), 0, None)
  return posterior / posterior.sum(-1, keepdims=True)


def fingerprint(variables, flip_average: bool = False) -> str:
  """A short hash of the weights, and of flip averaging where it is on (the same weights
  then give other features): equal fingerprints, same feature space. Networks without
  flip averaging keep the fingerprints they had before it existed."""
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(variables):
    digest.update(np.asarray(leaf, np.float32).tobytes())
  if flip_average:
    digest.update(b"flip_average")
  return digest.hexdigest()[:16]


def save(directory: str, variables, card: dict) -> None:
  """One Orbax checkpoint per variable collection (params, batch_stats), and the card."""
  directory = os.path.abspath(directory)
  with ocp.StandardCheckpointer() as checkpointer:
    for collection, tree in variables.items():
      checkpointer.save(os.path.join(directory, collection), tree, force=True)
  with open(os.path.join(directory, "card.json"), "w") as f:
    json.dump(card, f, indent=2)


def load(directory: str, num_classes: int, image_shape) -> tuple[nn.Module, dict, dict]:
  """The saved network, its variables and its card; fails naming the folder if it is not
  there."""
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
  model = build(settings, num_classes)
  # Placed on this process's first device: left to itself, Orbax restores onto the devices
  # the network was saved from, and a network trained on CPU would not load on a GPU.
  abstract = with_shardings(
      jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, *image_shape)))),
      jax.sharding.SingleDeviceSharding(jax.devices()[0]))
  with ocp.StandardCheckpointer() as checkpointer:
    variables = {collection: checkpointer.restore(os.path.join(directory, collection), tree)
                 for collection, tree in abstract.items()}
  if fingerprint(variables, settings.flip_average) != card["fingerprint"]:
    raise InvalidInputError(f"Feature classifier weights in {directory} do not match its card "
                            "(fingerprint differs): the folder is corrupt; retrain it.")
  return model, variables, card


def accuracy(model: nn.Module, variables, data: ImageData) -> float:
  _, probs = features_and_probs(model, variables, data.images)
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
                  log=print, settings: ClassifierSettings | None = None
                  ) -> tuple[nn.Module, dict, dict]:
  """The dataset's feature network from `directory`; trained there once, with `settings`
  (default: the dataset's fixed `default_settings`), if the folder has none yet. A cached
  network trained on other data (its card's dataset name or training-data fingerprint
  differ) is refused."""
  trained_on = data_fingerprint(train)
  if os.path.isfile(os.path.join(directory, "card.json")):
    model, variables, card = load(directory, train.num_classes, train.images.shape[1:])
    if card["dataset"] != dataset:
      raise InvalidInputError(f"{directory} holds the feature classifier of '{card['dataset']}', "
                              f"not '{dataset}'. Point --classifier_dir at the right folder.")
    if card.get("data_fingerprint", trained_on) != trained_on:
      raise InvalidInputError(
          f"{directory} holds a feature classifier trained on other {dataset} data "
          f"(fingerprint {card['data_fingerprint']}, this training split {trained_on}). "
          "Point --classifier_dir at a fresh folder, or the one made for this data.")
    return model, variables, card
  settings = settings or default_settings(train.images.shape[1:])
  log(f"No feature classifier in {directory}: training one on {dataset} "
      f"({dataclasses.asdict(settings)}); later evaluations reuse it.")
  start = time.perf_counter()
  model, variables = train_classifier(train, settings, log)
  card = {"dataset": dataset, "settings": dataclasses.asdict(settings),
          "test_accuracy": accuracy(model, variables, test),
          "fingerprint": fingerprint(variables, settings.flip_average),
          "train_seconds": time.perf_counter() - start, "train_examples": len(train.images),
          "data_fingerprint": trained_on}
  save(directory, variables, card)
  log(f"Feature classifier saved to {directory}: test accuracy {card['test_accuracy']:.4f}.")
  return model, variables, card
