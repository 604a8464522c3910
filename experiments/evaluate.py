"""Evaluates a trained run on held-out data and writes DIR/eval/step_N.json.

  python -m experiments.evaluate --workdir=runs/vae_mlp [--iwae_k=1000] [--step=N]
      [--num_examples=10000] [--batch_size=100] [--num_samples=10000]
What is measured for each family: aigc_jax/metrics/run_evaluation.py and docs/metrics.md.
The feature classifier of image metrics is read from --classifier_dir (default
classifiers/DATASET beside the run folder, e.g. runs/classifiers/mnist for runs/cgan),
and trained there once if absent.

Saved images (experiments.sample --output, fused or filtered runs included) are scored the
same way, in the feature space of --workdir's dataset, into SAMPLES.eval.json:
  python -m experiments.evaluate --workdir=runs/cgan --samples=fused.npy
"""

from absl import app, flags, logging

from aigc_jax.metrics.run_evaluation import EvalOptions, evaluate_run, evaluate_samples
from experiments import cli

_DEFAULTS = EvalOptions()
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder written by experiments.train.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step; default the latest.")
_IWAE_K = flags.DEFINE_integer("iwae_k", _DEFAULTS.iwae_k, "VAE: importance samples per "
                               "example.", lower_bound=1)
_NUM = flags.DEFINE_integer("num_examples", None, "VAE: the first N held-out examples.",
                            lower_bound=1)
_BATCH = flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "VAE: examples per "
                              "jitted call.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed of the evaluation's random draws.")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", _DEFAULTS.num_samples,
                                    "Image models: samples to score (0: skip).", lower_bound=0)
_CLASSIFIER_DIR = flags.DEFINE_string("classifier_dir", None, "Feature classifier folder; "
                                      "default classifiers/DATASET beside the run folder.")
_TEXT_SAMPLES = flags.DEFINE_integer("text_samples", _DEFAULTS.text_samples,
                                     "Language models: test prompts to continue (0: skip).",
                                     lower_bound=0)
_PROMPT_CHARS = flags.DEFINE_integer("prompt_chars", _DEFAULTS.prompt_chars,
                                     "Language models: characters of each prompt.",
                                     lower_bound=1)
_TEXT_CHARS = flags.DEFINE_integer("text_chars", _DEFAULTS.text_chars, "Language models: "
                                   "characters per continuation.", lower_bound=1)
_TEMPERATURE = flags.DEFINE_float("temperature", _DEFAULTS.temperature,
                                  "Language models: sampling temperature.", lower_bound=0.0)
_SAMPLE_LABELS = flags.DEFINE_enum("sample_labels", None, ["uniform", "data"],
                                   "Conditional models: draw classes evenly or in the "
                                   "training split's shares; default the run's setting.")
_AUDIT = flags.DEFINE_integer("audit_candidates", _DEFAULTS.audit_candidates,
                              "Membership-inference audit: training members (and as many "
                              "non-members) to attack; 0 skips it (experiments.audit_privacy "
                              "has the full audit).", lower_bound=0)
_SAMPLES = flags.DEFINE_string("samples", None, "Score these saved images (.npy from "
                               "experiments.sample) instead of the run's own draws.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.setup_runtime()
  options = EvalOptions(step=_STEP.value, seed=_SEED.value, batch_size=_BATCH.value,
                        iwae_k=_IWAE_K.value, num_examples=_NUM.value,
                        num_samples=_NUM_SAMPLES.value, classifier_dir=_CLASSIFIER_DIR.value,
                        text_samples=_TEXT_SAMPLES.value, prompt_chars=_PROMPT_CHARS.value,
                        text_chars=_TEXT_CHARS.value, temperature=_TEMPERATURE.value,
                        sample_labels=_SAMPLE_LABELS.value,
                        audit_candidates=_AUDIT.value)
  if _SAMPLES.value:
    report, path = evaluate_samples(_WORKDIR.value, _SAMPLES.value, options)
  else:
    report, path = evaluate_run(_WORKDIR.value, options)
  cli.print_report(report)
  logging.info("Wrote %s.", path)


if __name__ == "__main__":
  cli.run(main)
