"""The classic MNIST VAE in PyTorch eager, to time against `vae.py:mlp_mnist`.

  pip install torch   # not a dependency of this project
  python -m benchmarks.torch_vae [--steps=400] [--repeats=5]

pytorch/examples' VAE, written from its description: encoder 784 -> 400 (ReLU) -> mean
and log-variance of 20 latents, decoder 20 -> 400 (ReLU) -> 784 Bernoulli logits through a
sigmoid; the loss is the summed binary cross-entropy plus the KL term; Adam at 1e-3, batch
128. Each step draws a shuffled batch of uint8 images from an in-memory array of MNIST's
size and scales it to [0, 1] (the input pipeline's work; pixel values do not change the
speed). Prints the median images/s over timed blocks, the thread count, and the seconds a
60,000-image epoch takes at that speed.

A shared VM's speed drifts by tens of percent within minutes: compare with
`benchmarks.peer_speed --model=vae`, which alternates this with `benchmarks.train_step_speed`.
"""

from __future__ import annotations

import statistics

import numpy as np
from absl import app, flags

from benchmarks.torch_blocks import images_per_second, import_torch

_BATCH = flags.DEFINE_integer("batch_size", 128, "Images per step.")
_STEPS = flags.DEFINE_integer("steps", 400, "Steps per timed block.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed blocks; the median is printed.")

PIXELS, HIDDEN, LATENT, EXAMPLES = 784, 400, 20, 60_000


def build_model(torch):
  nn, F = torch.nn, torch.nn.functional

  class VAE(nn.Module):
    def __init__(self):
      super().__init__()
      self.hidden, self.mean = nn.Linear(PIXELS, HIDDEN), nn.Linear(HIDDEN, LATENT)
      self.log_var = nn.Linear(HIDDEN, LATENT)
      self.decode_hidden, self.decode_out = nn.Linear(LATENT, HIDDEN), nn.Linear(HIDDEN, PIXELS)

    def forward(self, x):
      h = F.relu(self.hidden(x))
      mean, log_var = self.mean(h), self.log_var(h)
      z = mean + torch.randn_like(mean) * torch.exp(0.5 * log_var)
      return torch.sigmoid(self.decode_out(F.relu(self.decode_hidden(z)))), mean, log_var

  return VAE()


def main(argv):
  del argv
  torch = import_torch()
  torch.manual_seed(0)
  model = build_model(torch)
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
  pixels = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (EXAMPLES, PIXELS),
                                                              dtype=np.uint8))
  b = _BATCH.value

  def step(order, i):
    x = pixels[order[i * b:(i + 1) * b]].float().div_(255.0)
    optimizer.zero_grad(set_to_none=True)
    reconstruction, mean, log_var = model(x)
    loss = (torch.nn.functional.binary_cross_entropy(reconstruction, x, reduction="sum")
            - 0.5 * torch.sum(1 + log_var - mean.pow(2) - log_var.exp()))
    loss.backward()
    optimizer.step()
    return loss

  blocks = images_per_second(torch, step, EXAMPLES, b, _STEPS.value, _REPEATS.value)
  speed = statistics.median(blocks)
  print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, MNIST VAE, batch "
        f"{b}: {speed:.0f} images/s ({EXAMPLES / speed:.2f} s per epoch; median of "
        f"{_REPEATS.value} blocks of {_STEPS.value} steps; range {min(blocks):.0f}-"
        f"{max(blocks):.0f})")


if __name__ == "__main__":
  app.run(main)
