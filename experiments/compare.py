"""Compares evaluated runs: a Markdown table of their latest reports, plus PNG plots.

  python -m experiments.compare runs/cgan runs/dcgan [...] --output=comparison.md
writes comparison.md, comparison_metrics.png (metrics vs step) and
comparison_precision_recall.png. Evaluate each run first with experiments.evaluate.
"""

import os

from absl import app, flags, logging

from aigc_jax.metrics.compare_runs import load_reports, markdown_table, save_plots
from experiments import cli

_OUTPUT = flags.DEFINE_string("output", None, "Markdown file to write.")
flags.mark_flags_as_required(["output"])


def main(argv):
  run_dirs = argv[1:]
  if not run_dirs:
    raise app.UsageError("Name at least one run folder: python -m experiments.compare DIR ...")
  runs = {os.path.basename(os.path.normpath(d)): load_reports(d) for d in run_dirs}
  table = markdown_table(runs)
  stem = os.path.splitext(_OUTPUT.value)[0]
  plots = save_plots(runs, stem)
  with open(_OUTPUT.value, "w") as f:
    f.write(table + "".join(f"\n![]({os.path.basename(p)})\n" for p in plots))
  print(table)
  logging.info("Wrote %s and %s.", _OUTPUT.value, ", ".join(plots))


if __name__ == "__main__":
  cli.run(main)
