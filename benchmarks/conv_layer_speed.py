"""Times one matmul_conv layer's forward + backward pass, after compilation.

  python -m benchmarks.conv_layer_speed --layer=transpose --input=128,7,7,256 \
      --features=128 [--operands=bfloat16] [--kernel=4] [--stride=2]

The loss is the sum of the squared outputs; its gradients with respect to the kernel and
the input are taken in one jitted call, as a train step takes them. This is the figure
matmul_conv.py's forms were chosen by (module docstring), a layer at a time, where a whole
step's profile (benchmarks.step_profile) mixes every layer and pass.
"""

import statistics
import time

import jax
import jax.numpy as jnp
from absl import app, flags

from aigc_jax.models.matmul_conv import OPERAND_DTYPES, MatmulConv, MatmulConvTranspose

_LAYER = flags.DEFINE_enum("layer", "transpose", ["transpose", "conv"],
                           "MatmulConvTranspose ('SAME', output = stride x input) or "
                           "MatmulConv ('SAME', output = input / stride).")
_INPUT = flags.DEFINE_list("input", "128,7,7,256", "Input shape B,H,W,C.")
_FEATURES = flags.DEFINE_integer("features", 128, "Output channels.")
_KERNEL = flags.DEFINE_integer("kernel", 4, "Kernel side.")
_STRIDE = flags.DEFINE_integer("stride", 2, "Stride.")
_OPERANDS = flags.DEFINE_enum("operands", "auto", list(OPERAND_DTYPES), "Matmul operands.")
_CALLS = flags.DEFINE_integer("calls", 10, "Calls per measurement.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Measurements; the median is shown.")


def main(argv):
  del argv
  module_class = MatmulConvTranspose if _LAYER.value == "transpose" else MatmulConv
  module = module_class(_FEATURES.value, (_KERNEL.value,) * 2, (_STRIDE.value,) * 2,
                        operands=_OPERANDS.value)
  x = jax.random.normal(jax.random.key(0), tuple(int(d) for d in _INPUT.value))
  params = module.init(jax.random.key(1), x)
  loss = lambda params, x: jnp.sum(jnp.square(module.apply(params, x)))
  step = jax.jit(jax.grad(loss, argnums=(0, 1)))
  jax.block_until_ready(step(params, x))
  times = []
  for _ in range(_REPEATS.value):
    start = time.perf_counter()
    for _ in range(_CALLS.value):
      grads = step(params, x)
    jax.block_until_ready(grads)
    times.append((time.perf_counter() - start) / _CALLS.value)
  print(f"{module_class.__name__} {tuple(x.shape)} -> {_FEATURES.value} channels, "
        f"{_KERNEL.value}x{_KERNEL.value} stride {_STRIDE.value}, {_OPERANDS.value} operands: "
        f"forward + backward {statistics.median(times) * 1e3:.2f} ms "
        f"(range {min(times) * 1e3:.2f}-{max(times) * 1e3:.2f})")


if __name__ == "__main__":
  app.run(main)
