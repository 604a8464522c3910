"""Differentially private training: DP-SGD (Abadi et al. 2016) with an exact accountant.

`--config.dp.epsilon=E` (or `--config.dp.noise_multiplier=S`) makes a run private at
`dp.delta`. What the guarantee rests on, and where each part lives:

* Sampling (data/batching.py `poisson_batch`): every step takes each training item
  independently with probability q = batch_size / N (Poisson sampling), and keeps at most
  `capacity` of them (a uniformly random subset when more were drawn), padded to that
  fixed shape with a mask. `batch_size` is the expected batch; the capacity sits five
  standard deviations above it, so truncation almost never happens -- and when it does,
  the accountant has already counted it.
* The gradient (`private_gradient`): each item's gradient is clipped to L2 norm
  `dp.l2_clip` (optax's `per_example_global_norm_clip`), the clipped gradients are summed
  over the whole global batch -- over microbatches and devices too, so clipping is per
  example whatever the topology -- and Gaussian noise of standard deviation
  noise_multiplier * l2_clip is added once, then the sum is divided by the expected
  batch size (a constant, so the division is post-processing).
* Accounting (`epsilon_spent`): dp-accounting's PLD accountant composes the
  truncated-Poisson-subsampled Gaussian mechanism (`TruncatedSubsampledGaussianDpEvent`)
  over the steps taken, under add/remove-one adjacency. With `dp.epsilon` the noise
  multiplier is calibrated so that all `num_steps` spend exactly that.

One item is one image (GAN discriminator, VAE) or one fixed window of block_size + 1
characters (char GPT). A GAN privatises only D, the one network that reads data; G sees
data only through D (post-processing), and draws its labels uniformly, not from the batch.
"""

from __future__ import annotations

import dataclasses
import math

import dp_accounting
import jax
import jax.numpy as jnp
import ml_collections
import optax
from dp_accounting.pld import pld_privacy_accountant

from aigc_jax.errors import InvalidInputError
from aigc_jax.train.microbatch import LossFn, split

# Standard deviations of the Poisson batch size between its mean and the capacity.
CAPACITY_SIGMAS = 5.0
# Noise multipliers searched when calibrating to a target epsilon.
NOISE_BRACKET = (0.3, 100.0)


def is_private(config: ml_collections.ConfigDict) -> bool:
  dp = config.get("dp")  # .get: runs saved before the key existed.
  return dp is not None and (dp.epsilon is not None or dp.noise_multiplier is not None)


@dataclasses.dataclass(frozen=True)
class DpPlan:
  """What one private run promises: how it samples, how much noise, over how many steps."""

  num_items: int  # N: training images, or text windows.
  sampling_rate: float  # q: each item's chance of being in a step's batch.
  capacity: int  # The most items a batch holds (its array size).
  noise_multiplier: float
  l2_clip: float
  delta: float
  num_steps: int


def batch_capacity(expected: float, multiple: int) -> int:
  """CAPACITY_SIGMAS standard deviations above the expected Poisson batch, rounded up to
  a multiple of `multiple` (devices times microbatches, so the batch splits evenly)."""
  high = math.ceil(expected + CAPACITY_SIGMAS * math.sqrt(expected))
  return -(-high // multiple) * multiple


def dp_event(plan: DpPlan, steps: int, noise_multiplier: float | None = None
             ) -> dp_accounting.DpEvent:
  sigma = plan.noise_multiplier if noise_multiplier is None else noise_multiplier
  step = dp_accounting.TruncatedSubsampledGaussianDpEvent(
      dataset_size=plan.num_items, sampling_probability=plan.sampling_rate,
      truncated_batch_size=plan.capacity, noise_multiplier=sigma)
  return dp_accounting.SelfComposedDpEvent(step, steps)


def epsilon_spent(plan: DpPlan, steps: int) -> float:
  """epsilon at plan.delta after `steps` private steps (0 before the first)."""
  if steps == 0:
    return 0.0
  accountant = pld_privacy_accountant.PLDAccountant()
  accountant.compose(dp_event(plan, steps))
  return float(accountant.get_epsilon(plan.delta))


def calibrate_noise(plan: DpPlan, epsilon: float) -> float:
  """The smallest noise multiplier whose `plan.num_steps` steps spend at most `epsilon`."""
  low, high = NOISE_BRACKET
  sigma = dp_accounting.calibrate_dp_mechanism(
      pld_privacy_accountant.PLDAccountant,
      lambda s: dp_event(plan, plan.num_steps, noise_multiplier=s), epsilon, plan.delta,
      bracket_interval=dp_accounting.ExplicitBracketInterval(low, high), tol=1e-3)
  return float(sigma)


def make_plan(config: ml_collections.ConfigDict, num_items: int, multiple: int) -> DpPlan:
  """The plan of a private run on `num_items` items; the noise calibrated when the config
  gives a target epsilon."""
  dp = config.dp
  if dp.epsilon is not None and dp.noise_multiplier is not None:
    raise InvalidInputError("Set one of --config.dp.epsilon (the noise is calibrated to it) "
                            "and --config.dp.noise_multiplier, not both.")
  if config.batch_size >= num_items:
    raise InvalidInputError(f"A private run samples batches of expected size batch_size="
                            f"{config.batch_size} from {num_items} items; lower batch_size.")
  plan = DpPlan(num_items=num_items, sampling_rate=config.batch_size / num_items,
                capacity=min(batch_capacity(config.batch_size, multiple),
                             -(-num_items // multiple) * multiple),
                noise_multiplier=dp.noise_multiplier or 0.0, l2_clip=dp.l2_clip,
                delta=dp.delta, num_steps=config.num_steps)
  if dp.epsilon is None:
    return plan
  return dataclasses.replace(plan, noise_multiplier=calibrate_noise(plan, dp.epsilon))


def check_private_config(config: ml_collections.ConfigDict) -> None:
  """Fails on a setting that would break per-example clipping or the sampling the
  accountant assumes, naming it and the fix."""
  if config.data.balance != "none":
    raise InvalidInputError(f"data.balance='{config.data.balance}' changes how batches are "
                            "drawn or weighted; a private run samples each item with the same "
                            "probability. Leave data.balance='none'.")
  if config.get("model", {}).get("d_norm") == "batch":
    raise InvalidInputError("model.d_norm='batch' mixes examples in D's BatchNorm, so no "
                            "gradient is one example's to clip. Use --config.model.d_norm="
                            "spectral (or none) in a private GAN.")
  if config.fsdp > 1:
    raise InvalidInputError("A private run keeps per-example gradients of the whole model; "
                            "use --config.fsdp=1.")


def step_settings(config: ml_collections.ConfigDict) -> dict:
  """`private_gradient`'s noise and clipping keywords for a resolved private config (the
  loop has put the calibrated noise multiplier in it)."""
  return {"l2_clip": config.dp.l2_clip, "noise_multiplier": config.dp.noise_multiplier,
          "expected_batch": config.batch_size}


def _per_example_grads(loss_fn: LossFn, params, examples, offset: jax.Array):
  """Each example's (loss, aux) and gradient: loss_fn on a batch of one, vmapped; example
  i passes index offset + i to loss_fn, for randomness of its own."""
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

  def one(example, index):
    return grad_fn(params, jax.tree.map(lambda x: x[None], example), index)

  count = jax.tree.leaves(examples)[0].shape[0]
  return jax.vmap(one)(examples, offset + jnp.arange(count))


def private_gradient(loss_fn: LossFn, params, examples, mask: jax.Array, rng: jax.Array, *,
                     l2_clip: float, noise_multiplier: float, expected_batch: int,
                     microbatches: int = 1, axis: str | None = None):
  """DP-SGD's gradient of `loss_fn` (a mean over its examples, as in microbatch.py):
  (sum of per-example gradients clipped to `l2_clip`, over rows with mask 1, plus
  N(0, (noise_multiplier * l2_clip)^2) noise) / expected_batch.

  Returns (mean loss over the masked examples, their mean aux), the gradient, and
  the share of examples whose gradient was clipped. Under pmap (`axis`) the clipped sums
  are summed over devices before the one draw of noise, which every device repeats.
  """
  weights = mask.astype(jnp.float32)

  def micro_sums(index, micro, micro_weights):
    """Sums over one microbatch: clipped gradients, weighted losses and aux, counts."""
    size = micro_weights.shape[0]
    (losses, aux), grads = _per_example_grads(loss_fn, params, micro, index * size)
    grads = jax.tree.map(
        lambda g: g * micro_weights.reshape((-1,) + (1,) * (g.ndim - 1)), grads)
    clipped, _ = optax.per_example_global_norm_clip(grads, l2_clip)
    norms = jax.vmap(optax.tree.norm)(grads)
    weighted = lambda x: jnp.tensordot(micro_weights, x, axes=1)
    return {"grads": clipped, "loss": weighted(losses), "aux": jax.tree.map(weighted, aux),
            "clipped": jnp.sum(micro_weights * (norms > l2_clip)),
            "count": jnp.sum(micro_weights)}

  k = microbatches
  micros = (jnp.arange(k), jax.tree.map(lambda x: split(x, k), examples), split(weights, k))
  zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), jax.eval_shape(
      micro_sums, *jax.tree.map(lambda x: x[0], micros)))
  # Unrolled, as in microbatch.py: XLA:CPU runs convolutions slowly inside loop bodies.
  sums, _ = jax.lax.scan(lambda carry, micro: (jax.tree.map(jnp.add, carry,
                                                            micro_sums(*micro)), None),
                         zeros, micros, unroll=True)
  if axis is not None:
    sums = jax.lax.psum(sums, axis)
  leaves, treedef = jax.tree.flatten(sums["grads"])
  keys = jax.random.split(rng, len(leaves))
  noised = [(g + noise_multiplier * l2_clip * jax.random.normal(key, g.shape, g.dtype))
            / expected_batch for g, key in zip(leaves, keys)]
  count = jnp.maximum(sums["count"], 1.0)
  mean = lambda x: x / count
  return ((mean(sums["loss"]), jax.tree.map(mean, sums["aux"])),
          jax.tree.unflatten(treedef, noised), sums["clipped"] / count)
