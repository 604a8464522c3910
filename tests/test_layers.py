"""The library's imports run one way: data <- models <- losses <- train <- metrics <- quality.

A module may import its own package and the packages below it, never one above, and no
modules import each other in a loop (imports inside functions and under TYPE_CHECKING
count too). Modules directly in aigc_jax/ (errors.py) sit below every package and import
none of the project. The entry points, benchmarks and tests sit above everything.
"""

import ast
import os

import pytest

from tests.conftest import REPO_ROOT

LAYERS = ("data", "models", "losses", "train", "metrics", "quality")
LIBRARY = os.path.join(REPO_ROOT, "aigc_jax")


def library_modules() -> dict[str, str]:
  """Dotted module name -> file path, for every module of aigc_jax."""
  modules = {}
  for folder, _, files in os.walk(LIBRARY):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(folder, name)
        dotted = os.path.relpath(path, REPO_ROOT)[:-3].replace(os.sep, ".")
        modules[dotted.removesuffix(".__init__")] = path
  return modules


def imported_modules(path: str, known: set[str]) -> set[str]:
  """The project modules a file imports anywhere in it (`from pkg import module` too)."""
  found = set()
  for node in ast.walk(ast.parse(open(path).read(), path)):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      found.add(node.module)
      found.update(f"{node.module}.{alias.name}" for alias in node.names
                   if f"{node.module}.{alias.name}" in known)
  return {m for m in found if m.split(".")[0] in ("aigc_jax", "experiments", "benchmarks",
                                                  "tests")}


def layer(module: str) -> int | None:
  """The module's layer: its package's index, -1 for a module directly in aigc_jax/."""
  parts = module.split(".")
  if len(parts) > 1 and parts[1] in LAYERS:
    return LAYERS.index(parts[1])
  return -1 if len(parts) == 2 else None


def import_graph() -> dict[str, set[str]]:
  modules = library_modules()
  return {name: imported_modules(path, set(modules)) for name, path in modules.items()}


def test_every_library_package_has_a_layer():
  packages = {name for name in os.listdir(LIBRARY)
              if os.path.isdir(os.path.join(LIBRARY, name)) and name != "__pycache__"}
  assert packages == set(LAYERS)


def test_no_import_runs_up_the_layers_or_out_of_the_library():
  up_edges = []
  for module, imports in import_graph().items():
    for target in imports:
      if not target.startswith("aigc_jax."):
        up_edges.append(f"{module} -> {target} (outside the library)")
      elif layer(module) is not None and layer(target) is not None \
          and layer(target) > layer(module):
        up_edges.append(f"{module} -> {target}")
  assert not up_edges, "imports against the layers:\n" + "\n".join(sorted(up_edges))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """A list of modules that import each other in a loop, or None (depth-first search)."""
  state, stack = {}, []

  def visit(node):
    state[node] = "open"
    stack.append(node)
    for target in sorted(graph.get(node, ())):
      if state.get(target) == "open":
        return stack[stack.index(target):] + [target]
      if target not in state:
        cycle = visit(target)
        if cycle:
          return cycle
    stack.pop()
    state[node] = "done"
    return None

  for node in sorted(graph):
    if node not in state:
      cycle = visit(node)
      if cycle:
        return cycle
  return None


def test_no_modules_import_each_other_in_a_loop():
  graph = {m: {t for t in imports if t != m} for m, imports in import_graph().items()}
  assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


@pytest.mark.parametrize("graph,cycle", [
    ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
])
def test_the_cycle_finder_finds_a_loop_and_only_a_loop(graph, cycle):
  assert find_cycle(graph) == cycle
