"""Text splits: what a model must know of them (TextSpec), the split as tokens (TextData),
and its training and evaluation batches.

Training batch `s` is a pure function of (seed, s), as for images: row r of the global
batch starts at a stateless random offset drawn from key (seed, s, r). Evaluation walks
the split in consecutive windows that overlap by one character, so every character but
the first is predicted exactly once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from aigc_jax.data.batching import Batch, batches_by_step, local_batch_size, poisson_batch
from aigc_jax.errors import InvalidInputError


@dataclasses.dataclass(frozen=True)
class TextSpec:
  """What a language model must know of its data; saved with every checkpoint."""

  vocab: str  # Character i of the vocabulary is token i.

  @property
  def vocab_size(self) -> int:
    return len(self.vocab)

  def encode(self, text: str) -> np.ndarray:
    index = {c: i for i, c in enumerate(self.vocab)}
    unknown = sorted(set(text) - set(index))
    if unknown:
      raise InvalidInputError(f"Characters {unknown!r} are not in the model's vocabulary of "
                              f"{self.vocab_size}; use only characters seen in training.")
    return np.array([index[c] for c in text], np.int32)

  def decode(self, tokens) -> str:
    return "".join(self.vocab[int(t)] for t in tokens)

  def to_json(self) -> dict:
    return {"kind": "text", "vocab": self.vocab}


@dataclasses.dataclass(frozen=True)
class TextData:
  """One split as token ids, with the windows a model of context `block_size` trains on."""

  tokens: np.ndarray  # (N,) int32
  spec: TextSpec
  block_size: int

  def describe(self) -> str:
    return f"{len(self.tokens):,} characters, vocabulary {self.spec.vocab_size}"

  def train_batches(self, *, global_batch: int, seed: int, start_step: int = 0,
                    process_index: int = 0, process_count: int = 1, balance: str = "none",
                    sampling_rate: float = 0.0) -> Iterator[Batch]:
    """Endless {'tokens': int32 (L, block_size + 1)} batches from a random offset each.

    `sampling_rate` > 0 (private training): Poisson batches (batching.poisson_batch) of
    the `num_windows()` disjoint windows, so each character is in one item; `global_batch`
    is the capacity, and batches carry 'mask' (L,).
    """
    if balance != "none":
      raise InvalidInputError(f"data.balance='{balance}' balances image classes; text has "
                              "none. Leave data.balance='none'.")
    local = local_batch_size(global_batch, process_count)
    window = self.block_size + 1
    if len(self.tokens) <= window:
      raise InvalidInputError(f"The split has {len(self.tokens)} characters; it needs more than "
                              f"block_size + 1 = {window}.")
    tokens = tf.constant(self.tokens)
    offsets = tf.range(window, dtype=tf.int64)

    def poisson_batch_at(step):
      ids, mask = poisson_batch(step, num_items=self.num_windows(), rate=sampling_rate,
                                capacity=global_batch, seed=seed,
                                process_index=process_index, process_count=process_count)
      return {"tokens": tf.gather(tokens, ids[:, None] * window + offsets[None, :]),
              "mask": mask}

    def batch_at(step):
      starts = tf.random.stateless_uniform(
          [global_batch], seed=tf.stack([tf.constant(seed, tf.int64), step]),
          maxval=len(self.tokens) - window + 1, dtype=tf.int64)
      mine = starts[process_index * local:(process_index + 1) * local]
      return {"tokens": tf.gather(tokens, mine[:, None] + offsets[None, :])}

    return batches_by_step(poisson_batch_at if sampling_rate else batch_at, start_step)

  def num_windows(self) -> int:
    """Disjoint windows of block_size + 1 characters in the split: the items a private
    run samples, each character in exactly one."""
    return len(self.tokens) // (self.block_size + 1)

  def eval_batches(self, *, global_batch: int, process_index: int = 0,
                   process_count: int = 1) -> Iterator[Batch]:
    """The whole split as windows starting every block_size characters, padded and masked.

    `mask` (L, block_size) marks real targets; padding windows and the tail past the end
    of the text are masked out.
    """
    local = local_batch_size(global_batch, process_count)
    window, n = self.block_size + 1, len(self.tokens)
    starts = np.arange(0, n - 1, self.block_size)
    padded = np.concatenate([self.tokens, np.zeros(window, np.int32)])
    for first in range(0, len(starts), global_batch):
      rows = first + process_index * local + np.arange(local)
      valid_row = rows < len(starts)
      row_starts = starts[np.minimum(rows, len(starts) - 1)]
      target_pos = row_starts[:, None] + 1 + np.arange(self.block_size)[None, :]
      mask = (valid_row[:, None] & (target_pos < n)).astype(np.float32)
      tokens = padded[row_starts[:, None] + np.arange(window)[None, :]]
      yield {"tokens": tokens, "mask": mask}


def load_text(name: str, split: str, *, block_size: int, builder: tfds.core.DatasetBuilder
              ) -> TextData:
  """Loads a TFDS text dataset split; the vocabulary always comes from its 'train' split."""
  def read(which: str) -> str:
    texts = tfds.as_numpy(builder.as_dataset(split=which, batch_size=-1))["text"]
    return "".join(t.decode("utf-8") for t in texts)

  if split not in builder.info.splits:
    raise InvalidInputError(f"Dataset '{name}' has no split '{split}'; it has "
                            f"{sorted(builder.info.splits)}.")
  spec = TextSpec(vocab="".join(sorted(set(read("train")))))
  return TextData(tokens=spec.encode(read(split)), spec=spec, block_size=block_size)
