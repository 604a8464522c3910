"""`audit_run(run, run_dir, options)`: how well membership-inference attacks tell the
examples a run trained on from examples it never saw (docs/privacy.md).

Members are the run's training examples: the ids in RUN_DIR/members.npy for a run trained
on `data.subset`, else the whole training split. Non-members come from the same pool when
there is one (the split's examples left out of the subset: the same distribution, so an
AUC of 0.5 is exactly chance), else from the held-out split (`data.test_split` for
images, `data.eval_split` lines for text). Equal numbers of each are drawn by a seed.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
from absl import logging

from aigc_jax.data.images import ImageData
from aigc_jax.data.sources import config_split
from aigc_jax.data.training_split import (MEMBERS_FILE, cluster_labels, clusters_per_class,
                                          prepared_split)
from aigc_jax.errors import InvalidInputError, MissingInputError
from aigc_jax.metrics.membership import attack_report, balanced_sets, roc_curve
from aigc_jax.metrics.membership_attacks import (discriminator_scores, line_loss_scores,
                                                 nearest_sample_scores, neg_elbo_scores)
from aigc_jax.plotting import pyplot
from aigc_jax.train.family import balanced_labels, is_conditional
from aigc_jax.train.restore import RestoredRun, class_count, generate_images


@dataclasses.dataclass(frozen=True)
class AuditOptions:
  """The flags of experiments.audit_privacy."""

  num_candidates: int = 1000  # Members, and as many non-members.
  seed: int = 0  # Draws the candidates, the samples and the bootstrap.
  num_samples: int = 10_000  # Generated images for the nearest-sample attack (0: skip it).
  min_line_chars: int = 20  # Text: shorter lines ("ROMEO:") say nothing about membership.
  bootstrap: int = 1000  # Resamples of the AUC's confidence interval.


def _member_ids(run: RestoredRun, run_dir: str) -> np.ndarray | None:
  """The subset's member ids, or None for a run trained on the whole split."""
  path = os.path.join(run_dir, MEMBERS_FILE)
  if not run.config.data.get("subset", 0):  # .get: runs saved before the key existed.
    return None
  if not os.path.isfile(path):
    raise MissingInputError(f"{run_dir} trained on data.subset={run.config.data.subset} but "
                            f"has no {MEMBERS_FILE}; it predates membership records. Retrain "
                            "it to audit it.")
  return np.load(path)


def _pools(run: RestoredRun, run_dir: str, num_items: int
           ) -> tuple[np.ndarray, np.ndarray | None, str, str]:
  """(member ids, non-member ids in the same pool or None, where each comes from)."""
  members = _member_ids(run, run_dir)
  split = run.config.data.split
  if members is None:
    return np.arange(num_items), None, f"all {num_items} of '{split}'", ""
  others = np.setdiff1d(np.arange(num_items), members)
  return (members, others, f"the data.subset of {len(members)} of '{split}'",
          f"the {len(others)} items of '{split}' left out of the subset")


def _pick(data: ImageData, ids: np.ndarray) -> ImageData:
  return ImageData(data.images[ids], data.labels[ids], data.num_classes)


def image_candidates(run: RestoredRun, run_dir: str, options: AuditOptions
                     ) -> tuple[ImageData, ImageData, dict]:
  """(members, non-members, a description of both) for an image run."""
  config = run.config
  pool = prepared_split(config, config_split(config, config.data.split), log=logging.info)
  members, others, member_text, other_text = _pools(run, run_dir, len(pool.images))
  other_pool = pool
  if others is None:
    other_pool = config_split(config, config.data.test_split)
    others = np.arange(len(other_pool.images))
    other_text = f"all {len(others)} of '{config.data.test_split}'"
  member_ids, other_ids = balanced_sets(members, others, options.num_candidates, options.seed)
  return (_pick(pool, member_ids), _pick(other_pool, other_ids),
          {"members": member_text, "nonmembers": other_text})


def text_candidates(run: RestoredRun, run_dir: str, options: AuditOptions
                    ) -> tuple[list[str], list[str], dict]:
  """(member lines, non-member lines, a description) for a language-model run. Lines
  shorter than `min_line_chars`, and lines whose text is in both pools, are left out: a
  line the model may have seen as a non-member too cannot tell membership."""
  config = run.config
  decode = lambda data: run.spec.decode(data.tokens).split("\n")
  pool = decode(prepared_split(config, config_split(config, config.data.split),
                               log=logging.info))
  members, others, member_text, other_text = _pools(run, run_dir, len(pool))
  other_pool = pool
  if others is None:
    other_pool = decode(config_split(config, config.data.eval_split))
    others = np.arange(len(other_pool))
    other_text = f"all {len(others)} lines of '{config.data.eval_split}'"
  member_lines = {pool[i] for i in members}
  other_lines = {other_pool[i] for i in others}
  long_enough = lambda line: len(line.strip()) >= options.min_line_chars
  members = [i for i in members if long_enough(pool[i]) and pool[i] not in other_lines]
  others = [i for i in others
            if long_enough(other_pool[i]) and other_pool[i] not in member_lines]
  if not members or not others:
    raise InvalidInputError(f"No lines of at least {options.min_line_chars} characters are in "
                            "only one pool; lower --min_line_chars.")
  member_ids, other_ids = balanced_sets(np.asarray(members), np.asarray(others),
                                        options.num_candidates, options.seed)
  rule = f"lines of >= {options.min_line_chars} characters found in one pool only"
  return ([pool[i] for i in member_ids], [other_pool[i] for i in other_ids],
          {"members": f"{member_text}; {rule}", "nonmembers": f"{other_text}; {rule}"})


def _nearest_sample_attack(run: RestoredRun, members: ImageData, others: ImageData,
                           options: AuditOptions) -> tuple[np.ndarray, np.ndarray]:
  labels = None  # A run on cluster labels draws clusters, which real images do not have.
  if is_conditional(run.config) and not cluster_labels(run.config):
    labels = np.asarray(balanced_labels(options.num_samples, class_count(run)), np.int32)
  samples = generate_images(run, options.num_samples, seed=options.seed, labels=labels)
  return (nearest_sample_scores(members, samples, labels),
          nearest_sample_scores(others, samples, labels))


def attack_scores(run: RestoredRun, run_dir: str, options: AuditOptions
                  ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict]:
  """{attack: (member scores, non-member scores)} for every attack the run's family
  admits, and the description of the candidates."""
  family = run.config.family
  if family == "lm":
    members, others, described = text_candidates(run, run_dir, options)
    return {"line_loss": (line_loss_scores(run, members), line_loss_scores(run, others))}, \
        described
  if family not in ("gan", "vae"):
    raise InvalidInputError(f"No membership attacks for family '{family}'; there are for "
                            "'gan', 'vae' and 'lm'.")
  members, others, described = image_candidates(run, run_dir, options)
  if family == "gan" and (cluster_labels(run.config) or clusters_per_class(run.config)):
    # D judges an image together with its cluster, and a held-out image has none.
    scores = {}
    described["skipped"] = "discriminator attack: D conditions on k-means cluster labels"
  elif family == "gan":
    scores = {"discriminator": (discriminator_scores(run, members),
                                discriminator_scores(run, others))}
  else:
    scores = {"neg_elbo": (neg_elbo_scores(run, members, seed=options.seed),
                           neg_elbo_scores(run, others, seed=options.seed))}
  if options.num_samples:
    scores["nearest_sample"] = _nearest_sample_attack(run, members, others, options)
  return scores, described


def audit_run(run: RestoredRun, run_dir: str, options: AuditOptions = AuditOptions()) -> dict:
  """Every attack's ROC AUC (with a bootstrap 95 % interval), TPR at 1 % and 0.1 % FPR
  and ROC curve, with how the candidates were drawn."""
  scores, described = attack_scores(run, run_dir, options)
  attacks = {}
  for name, (member, other) in scores.items():
    fpr, tpr = roc_curve(member, other)
    attacks[name] = {**attack_report(member, other, bootstrap=options.bootstrap,
                                     seed=options.seed),
                     "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()}}
  return {"step": run.step, "seed": options.seed, **described, "attacks": attacks}


def audit_summary(audit: dict) -> dict:
  """The audit without its ROC curves: what an evaluation report carries."""
  return {**audit, "attacks": {name: {k: v for k, v in report.items() if k != "roc"}
                               for name, report in audit["attacks"].items()}}


def _draw_roc(ax, audit: dict, title: str) -> None:
  """Every attack's ROC curve of `audit` on log-log axes (where the low false-positive
  rates an attacker relies on show), the chance diagonal dotted."""
  floor = 1.0 / max(report["num_nonmembers"] for report in audit["attacks"].values())
  for name, report in audit["attacks"].items():
    ax.plot(report["roc"]["fpr"], report["roc"]["tpr"],
            label=f"{name} (AUC {report['roc_auc']:.2f})")
  ax.plot([floor, 1], [floor, 1], "k:")
  ax.set(xscale="log", yscale="log", xlim=(floor, 1), ylim=(floor, 1), title=title,
         xlabel="false-positive rate")
  ax.legend(fontsize=7, loc="lower right")


def save_roc_figure(audits: dict[str, dict], path: str) -> None:
  """One ROC panel per audit (titled by its key), three to a row, saved as `path`."""
  plt = pyplot()
  columns = min(3, len(audits))
  rows = -(-len(audits) // columns)
  fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.6 * rows), squeeze=False)
  for ax, (name, audit) in zip(axes.flat, audits.items()):
    _draw_roc(ax, audit, name)
  for ax in axes[:, 0]:
    ax.set_ylabel("true-positive rate")
  for ax in axes.flat[len(audits):]:
    ax.axis("off")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
