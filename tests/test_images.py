"""The tf.data pipeline: shapes, ranges, exact shuffling, determinism, resume, splitting."""

import jax
import numpy as np
import pytest
import tensorflow as tf

from aigc_jax.data.batching import local_batch_size, stack_batches
from aigc_jax.data.images import ImageData, eval_batches, image_batches, model_inputs


def indexed_data(n: int = 48, shape=(4, 4, 1)) -> ImageData:
  """Example i has label i and every pixel equal to i, so batches reveal their indices."""
  images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, *shape))
  return ImageData(images=np.ascontiguousarray(images), labels=np.arange(n, dtype=np.int32),
                   num_classes=n)


def take(iterator, k):
  return [next(iterator) for _ in range(k)]


def test_batches_carry_stored_pixels_and_the_step_scales_them_to_the_model_range():
  batch = next(image_batches(indexed_data(), global_batch=8, seed=0))
  assert batch["image"].shape == (8, 4, 4, 1) and batch["image"].dtype == np.uint8
  assert batch["label"].shape == (8,) and batch["label"].dtype == np.int32
  np.testing.assert_array_equal(batch["image"][:, 0, 0, 0], batch["label"])
  scaled = jax.jit(model_inputs)(batch)
  assert scaled["image"].dtype == np.float32
  np.testing.assert_array_equal(scaled["label"], batch["label"])
  # 0 -> -1, 255 -> +1, exactly as the float pipeline scaled them before.
  np.testing.assert_array_equal(scaled["image"][:, 0, 0, 0],
                                batch["label"].astype(np.float32) / np.float32(127.5) - 1)
  every_value = np.arange(256, dtype=np.uint8).reshape(256, 1, 1, 1)
  by_tf = tf.cast(every_value, tf.float32) / 127.5 - 1.0  # The earlier host-side scaling.
  np.testing.assert_array_equal(jax.jit(model_inputs)({"image": every_value})["image"], by_tf)
  floats = {"image": np.zeros((2, 4, 4, 1), np.float32)}
  assert model_inputs(floats) is floats, "float (evaluation) batches pass unchanged"


def test_each_epoch_is_a_permutation_and_epochs_differ():
  batches = take(image_batches(indexed_data(48), global_batch=8, seed=3), 12)
  epoch0 = np.concatenate([b["label"] for b in batches[:6]])
  epoch1 = np.concatenate([b["label"] for b in batches[6:]])
  assert sorted(epoch0) == list(range(48)) and sorted(epoch1) == list(range(48))
  assert not np.array_equal(epoch0, np.arange(48)), "data was not shuffled"
  assert not np.array_equal(epoch0, epoch1), "every epoch had the same order"


def test_same_seed_same_batches_other_seed_other_batches():
  a = take(image_batches(indexed_data(), global_batch=8, seed=1), 5)
  b = take(image_batches(indexed_data(), global_batch=8, seed=1), 5)
  c = take(image_batches(indexed_data(), global_batch=8, seed=2), 5)
  assert all(np.array_equal(x["label"], y["label"]) for x, y in zip(a, b))
  assert not all(np.array_equal(x["label"], y["label"]) for x, y in zip(a, c))


def test_starting_at_a_step_resumes_the_same_sequence():
  full = take(image_batches(indexed_data(), global_batch=8, seed=0), 10)
  resumed = take(image_batches(indexed_data(), global_batch=8, seed=0, start_step=7), 3)
  for x, y in zip(full[7:], resumed):
    np.testing.assert_array_equal(x["label"], y["label"])


@pytest.mark.parametrize("process_count", [2, 4])
def test_processes_split_each_global_batch_disjointly(process_count):
  data = indexed_data()
  whole = take(image_batches(data, global_batch=8, seed=5), 4)
  parts = [take(image_batches(data, global_batch=8, seed=5, process_index=p,
                              process_count=process_count), 4)
           for p in range(process_count)]
  for step in range(4):
    local = [parts[p][step]["label"] for p in range(process_count)]
    assert all(len(x) == 8 // process_count for x in local)
    np.testing.assert_array_equal(np.concatenate(local), whole[step]["label"])


def test_bad_batch_sizes_are_refused_with_the_fix():
  with pytest.raises(ValueError, match="multiple of 3"):
    local_batch_size(8, 3)
  with pytest.raises(ValueError, match="fewer than one global batch"):
    image_batches(indexed_data(4), global_batch=8, seed=0)


@pytest.mark.parametrize("process_count", [1, 2])
def test_eval_batches_cover_the_split_once_with_padding_masked(process_count):
  data = indexed_data(21)
  seen = []
  for p in range(process_count):
    for batch in eval_batches(data, global_batch=8, process_index=p,
                              process_count=process_count):
      assert batch["image"].shape == (8 // process_count, 4, 4, 1)
      seen.extend(batch["label"][batch["mask"] == 1].tolist())
  assert sorted(seen) == list(range(21))


def test_stack_batches_groups_consecutive_batches():
  batches = image_batches(indexed_data(), global_batch=8, seed=0)
  reference = take(image_batches(indexed_data(), global_batch=8, seed=0), 5)
  chunks = list(stack_batches(batches, iter([3, 2])))
  assert [c["label"].shape for c in chunks] == [(3, 8), (2, 8)]
  np.testing.assert_array_equal(np.concatenate([c["label"] for c in chunks]),
                                np.stack([r["label"] for r in reference]))
