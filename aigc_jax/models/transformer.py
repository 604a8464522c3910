"""Decoder-only Transformer for character-level language modelling (GPT-2 layout).

Token + learned position embeddings, pre-LayerNorm blocks of causal multi-head
self-attention and a 4x MLP, a final LayerNorm, and an output head tied to the token
embedding. With `decode=True` the attention layers keep a key/value cache in the
"cache" collection, so generation feeds one token per call instead of the whole context.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from aigc_jax.errors import InvalidInputError
from aigc_jax.models.attention import attend
from aigc_jax.models.dense import Dense
from aigc_jax.models.layer_norm import LayerNorm

# GPT-2's initialisation: N(0, 0.02) for every matrix and the (tied) token embedding.
_INIT = nn.initializers.normal(0.02)


class CausalSelfAttention(nn.Module):
  num_heads: int
  max_len: int
  dropout: float = 0.0
  dtype: jnp.dtype = jnp.float32
  use_bias: bool = True
  operands: str = "float32"  # Dense layers' matmul operands (dense.Dense).

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, decode: bool) -> jax.Array:
    batch, length, width = x.shape
    head_dim = width // self.num_heads
    qkv = Dense(3 * width, self.use_bias, self.dtype, kernel_init=_INIT,
                operands=self.operands, name="qkv")(x)
    q, k, v = jnp.split(qkv.reshape((batch, length, 3 * self.num_heads, head_dim)), 3,
                        axis=2)  # each (B, T, H, D)
    positions = jnp.arange(length)
    key_positions = positions
    if decode:
      # The cache is created (zeros, index 0) on the first, initialising call; later calls
      # write this call's keys/values at `index` and attend over everything cached.
      initialised = self.has_variable("cache", "key")
      shape = (batch, self.max_len, self.num_heads, head_dim)
      cached_k = self.variable("cache", "key", jnp.zeros, shape, k.dtype)
      cached_v = self.variable("cache", "value", jnp.zeros, shape, v.dtype)
      index = self.variable("cache", "index", lambda: jnp.zeros((), jnp.int32))
      if initialised:
        start = index.value
        cached_k.value = jax.lax.dynamic_update_slice(cached_k.value, k, (0, start, 0, 0))
        cached_v.value = jax.lax.dynamic_update_slice(cached_v.value, v, (0, start, 0, 0))
        index.value = start + length
        k, v = cached_k.value, cached_v.value
        positions = start + positions
        key_positions = jnp.arange(self.max_len)
    # Causal mask as an additive bias, queries pre-scaled: on XLA:CPU this is 1.6x faster
    # through the backward pass than a `where` on the scaled scores.
    bias = jnp.where(key_positions[None, :] <= positions[:, None], 0.0, -1e30)  # (T, S)
    keep = None
    if train and self.dropout > 0:  # Dropout on the attention weights, as a mask.
      keep = nn.Dropout(self.dropout)(jnp.ones((batch, self.num_heads, *bias.shape)),
                                      deterministic=False)
    out = attend(q * head_dim**-0.5, k, v, bias, keep).reshape((batch, length, width))
    return Dense(width, self.use_bias, self.dtype, kernel_init=_INIT, operands=self.operands,
                 name="proj")(out)


class Block(nn.Module):
  num_heads: int
  max_len: int
  dropout: float = 0.0
  dtype: jnp.dtype = jnp.float32
  use_bias: bool = True
  operands: str = "float32"

  @nn.compact
  def __call__(self, x, *, train: bool, decode: bool):
    width = x.shape[-1]
    h = LayerNorm(dtype=self.dtype, use_bias=self.use_bias)(x)
    h = CausalSelfAttention(self.num_heads, self.max_len, self.dropout, self.dtype,
                            self.use_bias, self.operands)(h, train=train, decode=decode)
    x = x + nn.Dropout(self.dropout)(h, deterministic=not train)
    h = LayerNorm(dtype=self.dtype, use_bias=self.use_bias)(x)
    h = Dense(4 * width, self.use_bias, self.dtype, kernel_init=_INIT, operands=self.operands)(h)
    h = Dense(width, self.use_bias, self.dtype, kernel_init=_INIT,
              operands=self.operands)(nn.gelu(h))
    return x + nn.Dropout(self.dropout)(h, deterministic=not train)


class CharTransformer(nn.Module):
  """tokens (B, T) int -> next-token logits (B, T, vocab) float32."""

  vocab_size: int
  num_layers: int
  num_heads: int
  width: int
  block_size: int  # Longest context, and the size of the decode cache.
  dropout: float = 0.0
  dtype: jnp.dtype = jnp.float32  # Compute dtype; parameters stay float32.
  use_bias: bool = True  # Biases in dense layers and LayerNorms.
  # The blocks' Dense matmul operands: "float32", "bfloat16" (float32 sums) or "auto" (bf16
  # on a CPU with bf16 matmul units); embeddings, attention and the head stay in `dtype`.
  dense_operands: str = "float32"

  @nn.compact
  def __call__(self, tokens: jax.Array, *, train: bool = False, decode: bool = False,
               positions: jax.Array | None = None) -> jax.Array:
    """`positions` (T,) are the tokens' absolute positions; default 0..T-1."""
    if self.width % self.num_heads:
      raise InvalidInputError(f"width {self.width} is not divisible by num_heads {self.num_heads}.")
    embed = nn.Embed(self.vocab_size, self.width, dtype=self.dtype, embedding_init=_INIT,
                     name="token_embed")
    position_embed = self.param("position_embed", nn.initializers.normal(0.02),
                                (self.block_size, self.width))
    # A slice, not a gather, when positions start at 0: its gradient is a pad, where a
    # gather's is a scatter-add, which XLA:CPU runs slowly.
    position_vectors = (position_embed[:tokens.shape[1]] if positions is None
                        else position_embed[positions])
    # One-hot matmul instead of a table lookup, for the same reason (vocabularies are small).
    one_hot = jax.nn.one_hot(tokens, self.vocab_size, dtype=self.dtype)
    x = one_hot @ embed.embedding.astype(self.dtype) + position_vectors.astype(self.dtype)
    x = nn.Dropout(self.dropout)(x, deterministic=not train)
    for i in range(self.num_layers):
      x = Block(self.num_heads, self.block_size, self.dropout, self.dtype, self.use_bias,
                self.dense_operands, name=f"block_{i}")(x, train=train, decode=decode)
    x = LayerNorm(dtype=self.dtype, use_bias=self.use_bias, name="final_norm")(x)
    return embed.attend(x).astype(jnp.float32)  # Weight-tied head: (B, T, vocab)
