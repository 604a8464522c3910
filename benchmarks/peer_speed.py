"""Ours against a peer framework, alternated in the same minutes, as a ratio of images/s.

  AIGC_RAW_DATA_DIR=../shared/data python -m benchmarks.peer_speed --model=dcgan_mnist \
      [--rounds=3] [--operands=float32]

Each round runs `benchmarks.train_step_speed` on one of our configs (its full loop: the
tf.data pipeline included) and then the same network in the peer framework in each of its
variants, every one in a fresh process:
- dcgan_mnist, dcgan_cifar10: the seed's DCGANs at batch 128 against PyTorch eager
  (`benchmarks.torch_dcgan`) in NCHW and channels_last layouts;
- mlp_gan: `mlp_gan.py:mnist` at its defaults against Keras 3 on TensorFlow with XLA
  (`benchmarks.keras_mlp_gan`);
- vae: `vae.py:mlp_mnist` (the classic 784-400-20 VAE) against pytorch/examples' VAE
  (`benchmarks.torch_vae`);
- char_gpt: the `char_gpt.py:cpu` recipe against the well-known PyTorch CPU recipe
  (`benchmarks.torch_char_gpt`, on $AIGC_RAW_DATA_DIR/tiny_shakespeare/input.txt), in
  tokens/s.
Ours with the configs' matmul operands (`--operands`, model.conv_operands of the DCGANs,
model.dense_operands of the MLP GAN: "auto", the default, is bf16 on a CPU with bf16
matmul units), the peer in float32.
A shared VM's speed drifts by tens of percent within minutes, so only figures from the
same round are divided: the ratios are printed per round, then their range.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from absl import app, flags

# model: (our train_step_speed flags, peer module, {peer variant: its flags}). Our configs
# are the peer's network (the seed's widths, batch 128); each run times about a minute.
_CONV_TIMING, _PEER_CONV_TIMING = ["--steps=60", "--repeats=3"], ["--steps=40", "--repeats=3"]
MODELS = {
    "dcgan_mnist": (["--config=experiments/configs/dcgan.py:mnist", "--config.batch_size=128",
                     "--config.model.g_widths=(256,128)", "--config.model.d_widths=(64,128)",
                     "--config.model.d_norm=batch", "--config.loss=non_saturating",
                     "--config.latent_dim=100", "--config.model.conditional=False",
                     "--config.model.g_conditional_norm=False",
                     "--config.data.cluster_labels=0", *_CONV_TIMING],
                    "benchmarks.torch_dcgan",
                    {"PyTorch NCHW": ["--shape=mnist", *_PEER_CONV_TIMING],
                     "PyTorch channels_last": ["--shape=mnist", "--channels_last",
                                               *_PEER_CONV_TIMING]}),
    "dcgan_cifar10": (["--config=experiments/configs/dcgan.py:cifar10", *_CONV_TIMING],
                      "benchmarks.torch_dcgan",
                      {"PyTorch NCHW": ["--shape=cifar10", *_PEER_CONV_TIMING],
                       "PyTorch channels_last": ["--shape=cifar10", "--channels_last",
                                                 *_PEER_CONV_TIMING]}),
    "mlp_gan": (["--config=experiments/configs/mlp_gan.py:mnist", "--steps=2000",
                 "--repeats=3"],
                "benchmarks.keras_mlp_gan", {"Keras-XLA": ["--jit_compile"]}),
    "vae": (["--config=experiments/configs/vae.py:mlp_mnist", "--steps=2100", "--repeats=3"],
            "benchmarks.torch_vae", {"PyTorch": ["--steps=400", "--repeats=3"]}),
    "char_gpt": (["--config=experiments/configs/char_gpt.py:cpu", "--steps=500",
                  "--repeats=3"],
                 "benchmarks.torch_char_gpt",
                 {"PyTorch": ["--text=" + os.path.join(os.environ.get("AIGC_RAW_DATA_DIR", ""),
                                                       "tiny_shakespeare", "input.txt"),
                              "--iterations=500"]}),
}
# What each model's speed is counted in (images or tokens per second).
UNITS = {"char_gpt": "tokens"}
# The config field that sets each model's matmul operands (the VAE and GPT have none).
OPERANDS_KEYS = {"dcgan_mnist": "conv_operands", "dcgan_cifar10": "conv_operands",
                 "mlp_gan": "dense_operands"}
_MODEL = flags.DEFINE_enum("model", "dcgan_mnist", list(MODELS), "What to compare.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Alternations of ours and the peer's runs.")
_OPERANDS = flags.DEFINE_enum("operands", "auto", ["auto", "float32", "bfloat16"],
                              "Our GANs' matmul operands: model.conv_operands or "
                              "dense_operands.")


def per_second(module: str, args: list[str], pattern: str) -> float:
  """Runs `python -m module args` and reads the images/s or tokens/s its output names."""
  out = subprocess.run([sys.executable, "-m", module, *args], check=True,
                       capture_output=True, text=True).stdout
  match = re.search(pattern, out, re.MULTILINE)
  if not match:
    raise RuntimeError(f"No {pattern!r} figure in the output of {module}:\n{out}")
  return float(match.group(1))


def main(argv):
  del argv
  ours_args, peer_module, variants = MODELS[_MODEL.value]
  if _MODEL.value in OPERANDS_KEYS:
    ours_args = [*ours_args, f"--config.model.{OPERANDS_KEYS[_MODEL.value]}={_OPERANDS.value}"]
  unit = UNITS.get(_MODEL.value, "images")
  ratios = {name: [] for name in variants}
  for round_ in range(_ROUNDS.value):
    ours = per_second("benchmarks.train_step_speed", ours_args,
                      rf"^full loop.*? (\d+) {unit}/s")
    line = [f"round {round_ + 1}: ours {ours:.0f} {unit}/s"]
    for name, args in variants.items():
      peer = per_second(peer_module, args, rf" (\d+) {unit}/s")
      ratios[name].append(ours / peer)
      line.append(f"{name} {peer:.0f} (ratio {ours / peer:.2f})")
    print("; ".join(line), flush=True)
  for name, values in ratios.items():
    print(f"ours / {name}: {min(values):.2f}-{max(values):.2f} over {len(values)} rounds")


if __name__ == "__main__":
  app.run(main)
