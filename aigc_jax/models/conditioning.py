"""Pieces that make a generator or discriminator class-conditional, or Lipschitz.

Generators take the label as a learned embedding appended to the latent (Mirza & Osindero
2014, with an embedding instead of a one-hot). Discriminators use the projection of
Miyato & Koyama 2018: logit = w.h + b + <embed(y), h>, where h is D's last feature vector;
it asks "is this a real image of class y" with one extra inner product, and conditions D
far more strongly than concatenating the label to its input. A generator can also take the
label in every BatchNorm (de Vries et al. 2017; Miyato & Koyama 2018): a per-class gain and
bias after normalising, so each layer of G, not only its input, knows the class.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp


def append_label_embedding(z: jnp.ndarray, labels: jnp.ndarray | None, num_classes: int,
                           features: int) -> jnp.ndarray:
  """(B, Z) -> (B, Z + features) for a conditional model; unchanged for an unconditional one.

  Call inside a compact method: the embedding table becomes a parameter of the caller.
  """
  if num_classes == 0:
    return z
  if labels is None:
    raise ValueError("This generator is class-conditional: pass labels (B,) int32.")
  embedding = nn.Embed(num_classes, features, name="label_embedding")(labels)
  return jnp.concatenate([z, embedding.astype(z.dtype)], axis=-1)


def normalized(layer: nn.Module, norm: str, update_stats: bool
               ) -> Callable[[jnp.ndarray], jnp.ndarray]:
  """Wraps `layer` in spectral normalisation (Miyato et al. 2018) when norm == 'spectral'.

  The power-iteration vector lives in the 'batch_stats' collection and moves only when
  `update_stats`, so a step updates it and sampling/evaluation leave it alone.
  """
  if norm != "spectral":
    return layer
  spectral = nn.SpectralNorm(layer)
  return lambda x: spectral(x, update_stats=update_stats)


class ProjectionHead(nn.Module):
  """Features (B, F) [+ labels (B,)] -> one logit each, (B,)."""

  num_classes: int = 0
  norm: str = "none"  # 'spectral' normalises the linear map too.

  @nn.compact
  def __call__(self, features: jnp.ndarray, labels: jnp.ndarray | None = None,
               train: bool = True) -> jnp.ndarray:
    logits = normalized(nn.Dense(1), self.norm, train)(features)[:, 0]
    if self.num_classes == 0:
      return logits
    if labels is None:
      raise ValueError("This discriminator is class-conditional: pass labels (B,) int32.")
    class_vectors = nn.Embed(self.num_classes, features.shape[-1], name="projection")(labels)
    return logits + jnp.sum(class_vectors * features, axis=-1)


class ConditionalBatchNorm(nn.Module):
  """BatchNorm whose gain and bias are looked up by label: (B, ..., C), (B,) -> same shape.

  The class tables start at gain 1 and bias 0, so an untrained layer is plain BatchNorm.
  """

  num_classes: int
  momentum: float  # Share of the running statistics kept at each training-mode call.
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jnp.ndarray, labels: jnp.ndarray, train: bool = True) -> jnp.ndarray:
    x = nn.BatchNorm(use_running_average=not train, momentum=self.momentum, use_scale=False,
                     use_bias=False, axis_name=self.axis_name)(x)
    features = x.shape[-1]
    gain = nn.Embed(self.num_classes, features, embedding_init=nn.initializers.ones,
                    name="gain")(labels)
    bias = nn.Embed(self.num_classes, features, embedding_init=nn.initializers.zeros,
                    name="bias")(labels)
    broadcast = (x.shape[0],) + (1,) * (x.ndim - 2) + (features,)
    return x * gain.reshape(broadcast).astype(x.dtype) + bias.reshape(broadcast).astype(x.dtype)
