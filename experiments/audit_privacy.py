"""Membership-inference audit of a trained run: can an attacker tell its training examples
from examples it never saw?

  python -m experiments.train --config=experiments/configs/vae.py:cvae_mnist \\
      --config.data.subset=1000 --workdir=runs/cvae_1k
  python -m experiments.audit_privacy --workdir=runs/cvae_1k
Attacks per family (aigc_jax/metrics/membership_attacks.py): VAE -ELBO, GAN discriminator
logit (LOGAN), distance to the nearest generated sample (GAN-Leaks; GANs and VAEs), LM
per-line loss. Writes RUN_DIR/privacy/audit_step_N.json (ROC AUC with a bootstrap 95 %
interval, TPR at 1 % and 0.1 % FPR, ROC curves) and roc_step_N.png; docs/privacy.md.
"""

import json
import os

from absl import app, flags, logging

from aigc_jax.metrics.privacy_audit import AuditOptions, audit_run, save_roc_figure
from aigc_jax.train.restore import restore_run
from experiments import cli

_DEFAULTS = AuditOptions()
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder written by experiments.train.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step; default the latest.")
_NUM = flags.DEFINE_integer("num_candidates", _DEFAULTS.num_candidates,
                            "Training members to attack, and as many non-members.",
                            lower_bound=1)
_SEED = flags.DEFINE_integer("seed", _DEFAULTS.seed, "Draws candidates, samples, bootstrap.")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", _DEFAULTS.num_samples,
                                    "Image models: generated samples for the nearest-sample "
                                    "attack (0: skip it).", lower_bound=0)
_MIN_LINE = flags.DEFINE_integer("min_line_chars", _DEFAULTS.min_line_chars,
                                 "Language models: shortest line attacked.", lower_bound=1)
_BOOTSTRAP = flags.DEFINE_integer("bootstrap", _DEFAULTS.bootstrap,
                                  "Resamples of the AUC's confidence interval.", lower_bound=1)
flags.mark_flags_as_required(["workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.setup_runtime()
  options = AuditOptions(num_candidates=_NUM.value, seed=_SEED.value,
                         num_samples=_NUM_SAMPLES.value, min_line_chars=_MIN_LINE.value,
                         bootstrap=_BOOTSTRAP.value)
  run = restore_run(_WORKDIR.value, _STEP.value)
  audit = audit_run(run, _WORKDIR.value, options)
  folder = os.path.join(_WORKDIR.value, "privacy")
  os.makedirs(folder, exist_ok=True)
  stem = os.path.join(folder, f"audit_step_{run.step}")
  with open(stem + ".json", "w") as f:
    json.dump(audit, f, indent=2)
  save_roc_figure({os.path.basename(os.path.normpath(_WORKDIR.value)): audit},
                  os.path.join(folder, f"roc_step_{run.step}.png"))
  print(f"members: {audit['members']}\nnon-members: {audit['nonmembers']}")
  for name, report in audit["attacks"].items():
    low, high = report["roc_auc_ci95"]
    print(f"{name:>15}: AUC {report['roc_auc']:.3f} [{low:.3f}, {high:.3f}]  "
          f"TPR@1%FPR {report['tpr_at_1pct_fpr']:.3f}  "
          f"TPR@0.1%FPR {report['tpr_at_0.1pct_fpr']:.3f}")
  logging.info("Wrote %s.json and the ROC plot beside it.", stem)


if __name__ == "__main__":
  cli.run(main)
