"""Accept-or-reject rules for generated samples (pure numpy): judges' votes and
discriminator rejection sampling.

Both trade compute for fidelity: every rejected sample was drawn and paid for, and what
they keep is the part of the model's distribution a judge likes, which can be narrower
than the data's (docs/fusion.md measures both costs).
"""

from __future__ import annotations

import numpy as np

DRS_EPSILON = 1e-6  # Keeps log(1 - exp(.)) finite at the running maximum (Azadi et al.).


def judge_votes(judge_probs: np.ndarray, confident: float) -> np.ndarray:
  """(num_judges, N, K) probabilities -> (N, K) votes: how many judges give each class at
  least `confident`. With `confident` above 1/2 a judge votes for at most one class."""
  return np.sum(judge_probs >= confident, axis=0)


def vote_accept(judge_probs: np.ndarray, min_votes: int, confident: float,
                labels: np.ndarray | None = None) -> np.ndarray:
  """Which samples at least `min_votes` judges agree on (bool, (N,)).

  Conditional (`labels` given): agree that the sample is the class it was drawn for.
  Unconditional: agree on some one class. A judge agrees when it gives that class at
  least `confident`.
  """
  num_judges = judge_probs.shape[0]
  if not 1 <= min_votes <= num_judges:
    raise ValueError(f"min_votes={min_votes} must be between 1 and the {num_judges} judges.")
  votes = judge_votes(judge_probs, confident)
  agreeing = (votes.max(axis=1) if labels is None
              else votes[np.arange(len(votes)), np.asarray(labels)])
  return agreeing >= min_votes


def drs_scores(logits: np.ndarray, max_logit: float) -> np.ndarray:
  """F(x) of discriminator rejection sampling (Azadi et al. 2019, eq. 8).

  A D trained to optimality has logit D(x) = log p_data(x) / p_G(x), so exp(D - max D)
  is the acceptance probability of exact rejection sampling; F is its logit,
  D - M - log(1 - exp(D - M - eps)), which stays finite and ordered where exp(.) rounds
  to 1 or 0.
  """
  shifted = np.asarray(logits, np.float64) - max_logit
  return shifted - np.log1p(-np.exp(shifted - DRS_EPSILON))


def drs_accept(logits: np.ndarray, max_logit: float, gamma: float,
               uniforms: np.ndarray) -> np.ndarray:
  """Keep each sample with probability sigmoid(F(x) - gamma); `uniforms` in [0, 1) are the
  coin flips. Larger gamma keeps fewer, more D-approved samples. `max_logit` must be at
  least every logit (the running maximum)."""
  accept_prob = 1.0 / (1.0 + np.exp(-(drs_scores(logits, max_logit) - gamma)))
  return uniforms < accept_prob
