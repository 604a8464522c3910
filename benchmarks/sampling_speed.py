"""Times batched text generation from a trained language model, after compilation.

  python -m benchmarks.sampling_speed --workdir=runs/gpt_cpu [--num_prompts=8] [--num_chars=500]

Prints the compile time and the median wall time of generating `num_chars` characters
for `num_prompts` prompts at once (one jitted decoding loop with a key/value cache).
"""

import statistics
import time

from absl import app, flags

from aigc_jax.train.restore import generate_text, restore_run
from experiments import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder of a trained language model.")
_PROMPTS = flags.DEFINE_integer("num_prompts", 8, "Prompts continued at once.")
_CHARS = flags.DEFINE_integer("num_chars", 500, "Characters generated per prompt.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed generations; the median is shown.")
flags.mark_flags_as_required(["workdir"])

PROMPTS = ["ROMEO:", "JULIET:", "KING RICHARD III:", "First Citizen:", "MENENIUS:",
           "To be, or not", "O, ", "\n"]


def main(argv):
  del argv
  cli.setup_runtime()
  run = restore_run(_WORKDIR.value)
  prompts = [PROMPTS[i % len(PROMPTS)] for i in range(_PROMPTS.value)]
  times = []
  for i in range(_REPEATS.value + 1):
    start = time.perf_counter()
    generate_text(run, prompts, _CHARS.value, seed=i, temperature=0.8, top_k=40, top_p=0.95)
    times.append(time.perf_counter() - start)
  print(f"{_PROMPTS.value} prompts x {_CHARS.value} characters: first call (compiles) "
        f"{times[0]:.2f} s; after compilation median {statistics.median(times[1:]):.3f} s "
        f"({_PROMPTS.value * _CHARS.value / statistics.median(times[1:]):.0f} characters/s)")


if __name__ == "__main__":
  app.run(main)
