"""What the PyTorch peers share: importing torch (optional) and timing blocks of steps."""

from __future__ import annotations

import time
from typing import Callable


def import_torch():
  """torch, or an exit that says how to get it: it is not a dependency of this project."""
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as error:
    raise SystemExit("This benchmark needs PyTorch: pip install torch") from error
  return torch


def images_per_second(torch, step: Callable, examples: int, batch: int, steps: int,
                      repeats: int) -> list[float]:
  """Images/s of `repeats` blocks of `steps` training steps, after one warm-up block.

  step(order, i) trains on the i-th batch of the epoch's shuffled `order` and returns a loss
  tensor; a new order is drawn every epoch, and the last loss of a block is fetched to wait
  for its step, as a loss print would.
  """
  order, per_epoch = torch.randperm(examples), examples // batch
  blocks = []
  for block in range(repeats + 1):
    start = time.perf_counter()
    for s in range(block * steps, (block + 1) * steps):
      if s % per_epoch == 0:
        order = torch.randperm(examples)
      loss = step(order, s % per_epoch)
    float(loss.detach())
    blocks.append(batch * steps / (time.perf_counter() - start))
  return blocks[1:]
