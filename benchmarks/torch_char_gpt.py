"""The `char_gpt.py:cpu` recipe in PyTorch, to time against on the same machine.

  pip install torch   # not a dependency of this project
  python -m benchmarks.torch_char_gpt --text=../shared/data/tiny_shakespeare/input.txt \
      [--iterations=300]

The model and loop of the well-known PyTorch CPU recipe for this dataset, written from its
description: 4 layers x 4 heads x 128 wide, context 64, batch 12, no biases, tied head,
fused causal attention (`scaled_dot_product_attention`), AdamW (lr 1e-3, betas 0.9/0.99,
weight decay 0.1 on matrices) with 100 warm-up steps and cosine decay to 1e-4 over 2000,
gradient clipping at 1.0, random windows of the first 90 % of the text. Prints the
median ms per iteration (forward, backward, clip, update, next batch and the loss fetch,
as that recipe times them) and the loss on 200 random windows of the last 10 %.

A shared VM's speed drifts by tens of percent within minutes: alternate this with
`benchmarks.train_step_speed --config=experiments/configs/char_gpt.py:cpu` to compare.
"""

from __future__ import annotations

import math
import statistics
import time

import numpy as np
from absl import app, flags

from benchmarks.torch_blocks import import_torch

_TEXT = flags.DEFINE_string("text", None, "Tiny Shakespeare's input.txt.")
_ITERATIONS = flags.DEFINE_integer("iterations", 300, "Training iterations timed.")
flags.mark_flags_as_required(["text"])

LAYERS, HEADS, WIDTH, CONTEXT, BATCH = 4, 4, 128, 64, 12
PEAK_LR, MIN_LR, WARMUP, DECAY = 1e-3, 1e-4, 100, 2000


def build_model(torch, vocab_size: int):
  nn, F = torch.nn, torch.nn.functional

  class Block(nn.Module):
    def __init__(self):
      super().__init__()
      self.norm1 = nn.LayerNorm(WIDTH, bias=False)
      self.norm2 = nn.LayerNorm(WIDTH, bias=False)
      self.qkv = nn.Linear(WIDTH, 3 * WIDTH, bias=False)
      self.attn_out = nn.Linear(WIDTH, WIDTH, bias=False)
      self.up = nn.Linear(WIDTH, 4 * WIDTH, bias=False)
      self.down = nn.Linear(4 * WIDTH, WIDTH, bias=False)

    def forward(self, x):
      b, t, c = x.shape
      heads = [z.view(b, t, HEADS, c // HEADS).transpose(1, 2)
               for z in self.qkv(self.norm1(x)).split(c, dim=2)]
      y = F.scaled_dot_product_attention(*heads, is_causal=True)
      x = x + self.attn_out(y.transpose(1, 2).reshape(b, t, c))
      return x + self.down(F.gelu(self.up(self.norm2(x))))

  class CharGPT(nn.Module):
    def __init__(self):
      super().__init__()
      self.token_embed = nn.Embedding(vocab_size, WIDTH)
      self.position_embed = nn.Embedding(CONTEXT, WIDTH)
      self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
      self.final_norm = nn.LayerNorm(WIDTH, bias=False)
      self.head = nn.Linear(WIDTH, vocab_size, bias=False)
      self.head.weight = self.token_embed.weight  # Tied.
      for module in self.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
          nn.init.normal_(module.weight, 0.0, 0.02)
      for block in self.blocks:  # GPT-2's scaled init of the residual projections.
        for layer in (block.attn_out, block.down):
          nn.init.normal_(layer.weight, 0.0, 0.02 / math.sqrt(2 * LAYERS))

    def forward(self, tokens, targets):
      x = self.token_embed(tokens) + self.position_embed(torch.arange(tokens.shape[1]))
      for block in self.blocks:
        x = block(x)
      logits = self.head(self.final_norm(x))
      return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

  return CharGPT()


def learning_rate(step: int) -> float:
  if step < WARMUP:
    return PEAK_LR * (step + 1) / (WARMUP + 1)
  progress = min((step - WARMUP) / (DECAY - WARMUP), 1.0)
  return MIN_LR + 0.5 * (1 + math.cos(math.pi * progress)) * (PEAK_LR - MIN_LR)


def main(argv):
  del argv
  torch = import_torch()
  text = open(_TEXT.value, encoding="utf-8").read()
  vocab = sorted(set(text))
  index = {c: i for i, c in enumerate(vocab)}
  data = np.array([index[c] for c in text], np.int64)
  split = int(0.9 * len(data))
  train, held_out = torch.from_numpy(data[:split]), torch.from_numpy(data[split:])
  torch.manual_seed(0)

  def batch(tokens):
    starts = torch.randint(len(tokens) - CONTEXT, (BATCH,))
    rows = torch.stack([tokens[s:s + CONTEXT + 1] for s in starts])
    return rows[:, :-1], rows[:, 1:]

  model = build_model(torch, len(vocab))
  params = list(model.parameters())
  optimizer = torch.optim.AdamW(
      [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
       {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
      lr=PEAK_LR, betas=(0.9, 0.99))
  seconds = []
  tokens, targets = batch(train)
  for step in range(_ITERATIONS.value):
    start = time.perf_counter()
    for group in optimizer.param_groups:
      group["lr"] = learning_rate(step)
    loss = model(tokens, targets)
    tokens, targets = batch(train)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    loss.item()
    seconds.append(time.perf_counter() - start)
  model.eval()
  with torch.no_grad():
    held_out_loss = statistics.mean(model(*batch(held_out)).item() for _ in range(200))
  median = statistics.median(seconds[10:])
  print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads: "
        f"{1e3 * median:.1f} ms/iteration, {BATCH * CONTEXT / median:.0f} tokens/s (median of "
        f"{len(seconds) - 10}); {sum(seconds):.1f} s for {len(seconds)} iterations; "
        f"held-out loss {held_out_loss:.3f} nats (200 random windows)")


if __name__ == "__main__":
  app.run(main)
