"""Reading replicated device values back to the host."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def fetch(tree: Any) -> Any:
  """Host copy of replicated arrays.

  Unlike `jax.device_get`, this also works in multi-process runs, where a replicated
  global array is not fully addressable but every process holds a full copy.
  """
  return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), tree)
