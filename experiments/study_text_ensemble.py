"""The text half of the fusion study: character GPTs decoding together (docs/fusion.md).

  python -m experiments.study_text_ensemble --workdir=runs/text/gpt_s0 \\
      --workdir=runs/text/gpt_s1 --workdir=runs/text/gpt_s2 --output_dir=runs/text/study

Rows: every --workdir alone, then all of them as one ensemble combined by 'mixture'
(average of next-character probabilities) and by 'product' (average of log-probabilities).
Each row: validation bits per character of the (combined) next-character distribution,
and --text_samples continuations of test-split prompts at the same temperature, scored
like experiments.evaluate's language-model samples (invented-word rate, n-gram novelty,
longest copied span, self-BLEU, BLEU against the true continuation). The invented-word
rate's standard error over continuations (text_metrics.text_report) stands beside it, so
an effect can be read against it and against the spread of the single models. Writes
rows.json and table.md.
"""

from __future__ import annotations

import json
import os

from absl import app, flags, logging

from aigc_jax.data.sources import config_split
from aigc_jax.metrics.lm_ensemble import ensemble_bits_per_char
from aigc_jax.metrics.run_evaluation import EvalOptions, text_sample_metrics
from aigc_jax.train.restore import restore_run
from experiments import cli
from experiments.study_report import markdown_table

_WORKDIRS = flags.DEFINE_multi_string("workdir", None, "Language-model runs (2 or more).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where rows.json and table.md go.")
_TEXT_SAMPLES = flags.DEFINE_integer("text_samples", 200, "Test prompts continued per row.",
                                     lower_bound=2)
_TEXT_CHARS = flags.DEFINE_integer("text_chars", 300, "Characters per continuation.",
                                   lower_bound=1)
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "Sampling temperature of every row.",
                                  lower_bound=0.0)
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
flags.mark_flags_as_required(["workdir", "output_dir"])

COLUMNS = ("row", "validation_bits_per_char", "invented_word_rate", "invented_word_rate_se",
           "novelty_8gram", "novelty_16gram", "longest_copied_span_mean", "self_bleu",
           "bleu_vs_reference")


def study_row(name: str, runs, combine: str, options: EvalOptions) -> dict:
  config = runs[0].config
  validation = config_split(config, config.data.eval_split)
  bits = ensemble_bits_per_char(tuple(r.model for r in runs),
                                tuple(r.state.params for r in runs), validation, combine)
  samples = text_sample_metrics(runs[0], options, ensemble=runs, combine=combine)["samples"]
  row = {"row": name, "validation_bits_per_char": bits,
         **{k: samples[k] for k in COLUMNS if k in samples},
         "longest_copied_span_example": samples["longest_copied_span_example"]}
  logging.info("%s", row)
  return row


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if len(_WORKDIRS.value) < 2:
    raise app.UsageError("An ensemble needs at least two --workdir runs.")
  cli.setup_runtime()
  os.makedirs(_OUTPUT_DIR.value, exist_ok=True)
  runs = [restore_run(w) for w in _WORKDIRS.value]
  options = EvalOptions(seed=_SEED.value, text_samples=_TEXT_SAMPLES.value,
                        text_chars=_TEXT_CHARS.value, temperature=_TEMPERATURE.value)
  rows = [study_row(f"seed{i}", [run], "mixture", options) for i, run in enumerate(runs)]
  rows += [study_row(f"all{len(runs)}_{combine}", runs, combine, options)
           for combine in ("mixture", "product")]
  with open(os.path.join(_OUTPUT_DIR.value, "rows.json"), "w") as f:
    json.dump(rows, f, indent=2)
  table = markdown_table(rows, COLUMNS)
  with open(os.path.join(_OUTPUT_DIR.value, "table.md"), "w") as f:
    f.write(table)
  print(table)


if __name__ == "__main__":
  cli.run(main)
