"""The metric-sensitivity table: each degradation does what it says and moves FID."""

import numpy as np

from aigc_jax.metrics import sensitivity


def _images(n, seed):
  return np.random.default_rng(seed).integers(100, 156, (n, 6, 6, 1)).astype(np.uint8)


def test_one_image_repeated_replaces_exactly_the_share():
  images = _images(200, 0)
  out = sensitivity.one_image_repeated(images, 0.1, np.random.default_rng(1))
  changed = np.any(out != images, axis=(1, 2, 3))
  assert 19 <= changed.sum() <= 20  # 20 chosen; one may be the repeated image itself.
  assert len(np.unique(out[changed].reshape(changed.sum(), -1), axis=0)) == 1


def test_every_degradation_scores_worse_than_the_real_floor():
  embed = lambda x: (x.reshape(len(x), -1).astype(np.float64) / 255, None)
  table = sensitivity.sensitivity_table(embed, _images(600, 0), _images(600, 1))
  floor = table.pop("none (the real floor)")
  assert set(table) == {"gaussian blur sigma=1", "additive noise sigma=0.1",
                        "10% replaced by one image"}
  for name, row in table.items():
    assert row["fid"] > 1.5 * floor["fid"], name
