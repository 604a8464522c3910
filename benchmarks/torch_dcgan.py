"""The seed's DCGAN in PyTorch eager, to time against on the same machine.

  pip install torch   # not a dependency of this project
  python -m benchmarks.torch_dcgan --shape=mnist [--channels_last] [--steps=200]

The architectures of `dcgan.py` at the seed's widths, written as PyTorch users write them:
- mnist (28x28x1): G Linear 100 -> 7*7*256 (no bias), BN, ReLU, ConvT 256 -> 128 k4 s2 p1
  (no bias), BN, ReLU, ConvT 128 -> 1 k4 s2 p1, tanh; D Conv 1 -> 64 k4 s2 p1, LReLU 0.2,
  Conv 64 -> 128 k4 s2 p1 (no bias), BN, LReLU, Linear 7*7*128 -> 1.
- cifar10 (32x32x3): G from 4x4x256 through 128 and 64 to 3 channels; D 64-128-256 (BN after
  all but the first), Linear 4*4*256 -> 1.
The loop is pytorch/examples' DCGAN loop: G forward once; D on the real batch and on
fake.detach(); G through D(fake); Adam 2e-4, beta1 0.5; non-saturating loss. Each step
draws a shuffled batch of uint8 images from an in-memory array of the dataset's size and
scales it to [-1, 1] (the input pipeline's work; the pixel values do not change the speed).
Prints the median images/s over timed blocks and the thread count.

A shared VM's speed drifts by tens of percent within minutes: compare with
`benchmarks.peer_speed --model=dcgan_mnist` (or dcgan_cifar10), which alternates this
with `benchmarks.train_step_speed`.
"""

from __future__ import annotations

import statistics

import numpy as np
from absl import app, flags

from benchmarks.torch_blocks import images_per_second, import_torch

_SHAPE = flags.DEFINE_enum("shape", "mnist", ["mnist", "cifar10"], "Which seed DCGAN.")
_CHANNELS_LAST = flags.DEFINE_bool("channels_last", False, "NHWC memory format for convs.")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Images per step.")
_STEPS = flags.DEFINE_integer("steps", 100, "Steps per timed block.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed blocks; the median is printed.")

LATENT = 100
# (image side, channels, number of examples, G widths, D widths) of each seed DCGAN.
SHAPES = {"mnist": (28, 1, 60_000, (256, 128), (64, 128)),
          "cifar10": (32, 3, 50_000, (256, 128, 64), (64, 128, 256))}


def build_models(torch, side: int, channels: int, g_widths, d_widths):
  nn = torch.nn
  start = side // 2 ** len(g_widths)

  class Generator(nn.Module):
    def __init__(self):
      super().__init__()
      self.project = nn.Linear(LATENT, start * start * g_widths[0], bias=False)
      self.project_norm = nn.BatchNorm2d(g_widths[0])
      layers = []
      for inp, out in zip(g_widths, g_widths[1:]):
        layers += [nn.ConvTranspose2d(inp, out, 4, 2, 1, bias=False), nn.BatchNorm2d(out),
                   nn.ReLU()]
      layers += [nn.ConvTranspose2d(g_widths[-1], channels, 4, 2, 1), nn.Tanh()]
      self.body = nn.Sequential(*layers)

    def forward(self, z):
      x = self.project(z).view(-1, g_widths[0], start, start)
      return self.body(torch.relu(self.project_norm(x)))

  layers, inp = [], channels
  for i, out in enumerate(d_widths):
    layers.append(nn.Conv2d(inp, out, 4, 2, 1, bias=i == 0))
    layers += ([nn.BatchNorm2d(out)] if i else []) + [nn.LeakyReLU(0.2)]
    inp = out
  end = side // 2 ** len(d_widths)
  discriminator = nn.Sequential(*layers, nn.Flatten(), nn.Linear(end * end * inp, 1))
  return Generator(), discriminator


def main(argv):
  del argv
  torch = import_torch()
  torch.manual_seed(0)
  side, channels, count, g_widths, d_widths = SHAPES[_SHAPE.value]
  generator, discriminator = build_models(torch, side, channels, g_widths, d_widths)
  layout = torch.channels_last if _CHANNELS_LAST.value else torch.contiguous_format
  generator, discriminator = generator.to(memory_format=layout), discriminator.to(
      memory_format=layout)
  g_opt = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
  d_opt = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
  bce = torch.nn.BCEWithLogitsLoss()
  pixels = torch.from_numpy(np.random.default_rng(0).integers(
      0, 256, (count, channels, side, side), dtype=np.uint8))
  b = _BATCH.value
  ones, zeros = torch.ones(b, 1), torch.zeros(b, 1)

  def step(order, i):
    real = pixels[order[i * b:(i + 1) * b]].float().div_(127.5).sub_(1.0)
    real = real.contiguous(memory_format=layout)
    fake = generator(torch.randn(b, LATENT))
    d_opt.zero_grad(set_to_none=True)
    d_loss = bce(discriminator(real), ones) + bce(discriminator(fake.detach()), zeros)
    d_loss.backward()
    d_opt.step()
    g_opt.zero_grad(set_to_none=True)
    g_loss = bce(discriminator(fake), ones)
    g_loss.backward()
    g_opt.step()
    return d_loss

  blocks = images_per_second(torch, step, count, b, _STEPS.value, _REPEATS.value)
  print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, {_SHAPE.value} "
        f"DCGAN, {'channels_last' if _CHANNELS_LAST.value else 'NCHW'}, batch {b}: "
        f"{statistics.median(blocks):.0f} images/s (median of {_REPEATS.value} blocks of "
        f"{_STEPS.value} steps; range {min(blocks):.0f}-{max(blocks):.0f})")


if __name__ == "__main__":
  app.run(main)
