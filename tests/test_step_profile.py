"""benchmarks/step_profile.py reads XLA:CPU's trace and compiled HLO the way it says."""

import jax
import jax.numpy as jnp

from benchmarks.step_profile import kind, thunk_microseconds, thunk_origins


def test_thunk_times_sum_per_thunk_and_leave_out_the_runtime():
  events = [{"ph": "X", "name": "ynn_fusion.3", "dur": 5},
            {"ph": "X", "name": "ynn_fusion.3", "dur": 7},
            {"ph": "X", "name": "copy_bitcast_fusion", "dur": 2},
            {"ph": "X", "name": "ThunkExecutor::Execute", "dur": 100},
            {"ph": "X", "name": "$api.py:2479 block_until_ready", "dur": 100},
            {"ph": "i", "name": "add_fusion", "dur": 9}]  # Not a complete event.
  assert thunk_microseconds(events) == {"ynn_fusion.3": 12, "copy_bitcast_fusion": 2}
  assert kind("ynn_fusion.3") == "ynn_fusion"
  assert kind("copy_bitcast_fusion") == "copy_bitcast_fusion"


def test_origins_name_each_instruction_of_a_compiled_function():
  def layer(x, w):
    return jnp.tanh(x @ w)

  x, w = jnp.ones((8, 4)), jnp.ones((4, 3))
  hlo = jax.jit(layer).lower(x, w).compile().as_text()
  origins = thunk_origins(hlo)
  shapes_and_ops = set(origins.values())
  assert any(shape.startswith("f32[8,3]") and "tanh" in op for shape, op in shapes_and_ops)
  assert any("dot_general" in op for _, op in shapes_and_ops)
