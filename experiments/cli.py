"""Helpers shared by the absl entry points (no flags are defined here)."""

from __future__ import annotations

import difflib
import importlib.util
import logging as std_logging
import os
import sys
from collections.abc import Callable
from typing import Any

import jax
import tensorflow as tf
from absl import app, logging

from aigc_jax.errors import UserError


def config_keys(config, prefix: str = "") -> list[str]:
  """Every key of a (nested) config, dotted: ["seed", "data", "data.name", ...]."""
  keys = []
  for key, value in config.items():
    keys.append(prefix + key)
    if hasattr(value, "items"):
      keys.extend(config_keys(value, prefix + key + "."))
  return keys


def _load_config(spec: str):
  path, _, arg = spec.partition(":")
  if not os.path.exists(path):
    raise app.UsageError(f"--config file {path} does not exist.")
  module_spec = importlib.util.spec_from_file_location("_checked_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def config_file_argument(argv: list[str]) -> str | None:
  """The value of `--config=PATH[:variant]` or `--config PATH[:variant]`, if given."""
  for i, arg in enumerate(argv):
    if arg.startswith("--config="):
      return arg.split("=", 1)[1]
    if arg == "--config" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def check_config_overrides(argv: list[str]) -> None:
  """Fails on `--config.KEY=...` for a KEY the config file does not define.

  ml_collections would fail too, but with a bare AttributeError; this names the full key
  and the nearest existing ones.
  """
  spec = config_file_argument(argv)
  if spec is None:
    return
  keys = config_keys(_load_config(spec))
  for arg in argv:
    if arg.startswith("--config."):
      key = arg[len("--config."):].split("=", 1)[0]
      if key not in keys:
        close = difflib.get_close_matches(key, keys, n=3)
        raise app.UsageError(
            f"Unknown config key '{key}' in {arg!r}."
            + (f" Did you mean {', '.join(close)}?" if close else "")
            + f" Keys of {spec}: {', '.join(sorted(keys))}.")


TRACEBACK_ENV = "AIGC_TRACEBACK"


def run(main: Callable[[list[str]], Any]) -> None:
  """`absl.app.run(main)` for the entry points: config keys checked while flags are
  parsed, and a user error (aigc_jax.errors.UserError: a bad value, flag or file) printed
  as one message with exit status 2. Any other exception is a bug and keeps its
  traceback; so does a user error when $AIGC_TRACEBACK is set."""

  def guarded(argv: list[str]) -> Any:
    try:
      return main(argv)
    except UserError as error:
      if os.environ.get(TRACEBACK_ENV):
        raise
      sys.stderr.write(f"ERROR ({type(error).__name__}): {error}\n"
                       f"(Set {TRACEBACK_ENV}=1 to see the traceback.)\n")
      sys.exit(2)

  app.run(guarded, flags_parser=parse_flags)


def parse_flags(argv: list[str]) -> list[str]:
  """absl flags parser that checks config keys first, for `app.run(flags_parser=...)`."""
  try:
    check_config_overrides(argv)
  except app.UsageError as e:
    sys.stderr.write(f"FATAL Flags parsing error: {e}\n")
    sys.exit(1)
  return app.parse_flags_with_usage(argv)


def setup_runtime() -> None:
  """Settings every entry point wants before touching data or devices."""
  logging.set_verbosity(logging.INFO)
  # Orbax logs every save phase at INFO; keep its warnings, drop the rest from our output.
  logging.get_absl_handler().python_handler.addFilter(
      lambda record: (record.levelno >= std_logging.WARNING
                      or "/orbax/" not in record.pathname))
  # tf.data only feeds the host; keep TensorFlow off any GPU so JAX gets all its memory.
  tf.config.set_visible_devices([], "GPU")
  jax.config.update("jax_threefry_partitionable", True)  # Sharding-invariant RNG.


def flat_items(report: dict, prefix: str = "") -> list[tuple[str, object]]:
  """Nested report -> [("samples.fid", 3.2), ...] for a printed table."""
  rows = []
  for key, value in report.items():
    if isinstance(value, dict):
      rows += flat_items(value, f"{prefix}{key}.")
    else:
      rows.append((f"{prefix}{key}", value))
  return rows


def print_report(report: dict) -> None:
  """A nested JSON report as two aligned columns on stdout."""
  rows = flat_items(report)
  width = max(len(k) for k, _ in rows)
  print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
