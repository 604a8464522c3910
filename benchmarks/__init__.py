"""Speed and peer benchmarks, run as `python -m benchmarks.<name>`."""

from aigc_jax.host_memory import reuse_freed_memory

reuse_freed_memory()  # As the entry points do (aigc_jax/host_memory.py): timings match.
