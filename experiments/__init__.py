"""absl-flag entry points, run as `python -m experiments.<name>`."""

from aigc_jax.host_memory import reuse_freed_memory

reuse_freed_memory()  # Before any other thread allocates (aigc_jax/host_memory.py says why).
