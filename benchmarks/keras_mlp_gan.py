"""The seed's MLP GAN in Keras 3 on TensorFlow, XLA-compiled, to time against.

  python -m benchmarks.keras_mlp_gan [--jit_compile] [--steps=500]

The model of `mlp_gan.py:mnist` as a Keras user writes it: G Dense 100 -> 128 -> 256 -> 512
-> 784 (LeakyReLU 0.01, tanh out), D Dense 784 -> 512 -> 256 -> 128 -> 1 (LeakyReLU 0.01),
non-saturating loss, Adam 2e-4 beta1 0.5 for each, batch 128, one D and one G update per
step in a `tf.function` (with `--jit_compile`, compiled by XLA as Keras does for
`jit_compile=True`). Batches come from a shuffled, batched, prefetched `tf.data` pipeline
over an in-memory uint8 array of MNIST's size, scaled to [-1, 1] inside the step.
Prints the median steps/s over timed blocks.

Alternate it with `benchmarks.train_step_speed --config=experiments/configs/mlp_gan.py:mnist`
in the same minutes (`benchmarks.peer_speed --model=mlp_gan` does): a shared VM's
speed drifts by tens of percent.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from absl import app, flags

_JIT = flags.DEFINE_bool("jit_compile", True, "Compile the train step with XLA.")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Images per step.")
_STEPS = flags.DEFINE_integer("steps", 500, "Steps per timed block.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed blocks; the median is printed.")

LATENT, SLOPE = 100, 0.01


def build_models(keras):
  layers = keras.layers
  generator = keras.Sequential(
      [keras.Input((LATENT,))]
      + [layer for width in (128, 256, 512)
         for layer in (layers.Dense(width), layers.LeakyReLU(SLOPE))]
      + [layers.Dense(784, activation="tanh")])
  discriminator = keras.Sequential(
      [keras.Input((784,))]
      + [layer for width in (512, 256, 128)
         for layer in (layers.Dense(width), layers.LeakyReLU(SLOPE))]
      + [layers.Dense(1)])
  return generator, discriminator


def main(argv):
  del argv
  import keras  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  tf.random.set_seed(0)
  generator, discriminator = build_models(keras)
  g_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
  d_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
  bce = keras.losses.BinaryCrossentropy(from_logits=True)
  b = _BATCH.value
  pixels = np.random.default_rng(0).integers(0, 256, (60_000, 784), dtype=np.uint8)
  batches = iter(tf.data.Dataset.from_tensor_slices(pixels).repeat().shuffle(10_000)
                 .batch(b, drop_remainder=True).prefetch(tf.data.AUTOTUNE))

  @tf.function(jit_compile=_JIT.value)
  def step(pixels):
    real = tf.cast(pixels, tf.float32) / 127.5 - 1.0
    z = tf.random.normal((b, LATENT))
    with tf.GradientTape() as d_tape:
      fake = generator(z, training=True)
      d_loss = (bce(tf.ones((b, 1)), discriminator(real, training=True))
                + bce(tf.zeros((b, 1)), discriminator(fake, training=True)))
    d_vars = discriminator.trainable_variables
    d_opt.apply_gradients(zip(d_tape.gradient(d_loss, d_vars), d_vars))
    with tf.GradientTape() as g_tape:
      g_loss = bce(tf.ones((b, 1)), discriminator(generator(z, training=True), training=True))
    g_vars = generator.trainable_variables
    g_opt.apply_gradients(zip(g_tape.gradient(g_loss, g_vars), g_vars))
    return d_loss, g_loss

  blocks = []
  for _ in range(_REPEATS.value + 1):  # The first block compiles and warms up.
    start = time.perf_counter()
    for _ in range(_STEPS.value):
      losses = step(next(batches))
    float(losses[0])
    blocks.append(_STEPS.value / (time.perf_counter() - start))
  print(f"Keras {keras.__version__} on TensorFlow {tf.__version__}, "
        f"{'XLA' if _JIT.value else 'graph'}, MLP GAN, batch {b}: "
        f"{statistics.median(blocks[1:]):.1f} steps/s, {b * statistics.median(blocks[1:]):.0f} "
        f"images/s (median of {_REPEATS.value} blocks of {_STEPS.value} steps; range "
        f"{min(blocks[1:]):.1f}-{max(blocks[1:]):.1f} steps/s)")


if __name__ == "__main__":
  app.run(main)
