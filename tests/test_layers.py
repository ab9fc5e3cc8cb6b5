"""The package's layers, read from its import graph (docs/design.md has the diagram).

Every module of `lstmx/` belongs to one layer; a module may import only modules of
its own layer or lower ones, and the module graph has no cycles. The graph is
read from the source with `ast` (every ``import`` and ``from ... import``,
including those inside functions), so a lazy import counts too.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "lstmx"

# Lowest first. A module's layer is that of the longest prefix listed here.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("lstmx.params", "lstmx.checks", "lstmx.registry", "lstmx.compile_stats",
              "lstmx._version")),
    ("kernels", ("lstmx.kernels",)),
    ("core", ("lstmx.validate", "lstmx.regularization", "lstmx.penalties", "lstmx.lstm",
              "lstmx.nn", "lstmx.interop", "lstmx.sharding", "lstmx.distributed",
              "lstmx.analysis", "lstmx.backends")),
    ("models, tasks, data", ("lstmx.models", "lstmx.tasks", "lstmx.data")),
    ("config", ("lstmx.config", "lstmx.optim")),
    ("train", ("lstmx.train",)),
    ("lab", ("lstmx.lab", "lstmx.experiment", "lstmx.__main__")),
    ("package", ("lstmx",)),  # lstmx/__init__.py re-exports the public names
]
RANK = {name: i for i, (name, _) in enumerate(LAYERS)}


def module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT.parent).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
  best = None
  for name, prefixes in LAYERS:
    for p in prefixes:
      if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[1]):
        best = (name, len(p))
  if best is None:
    raise AssertionError(f"module {module} is in no layer: add it to LAYERS")
  return best[0]


def imports(path: pathlib.Path, module: str) -> set[str]:
  """The lstmx modules `module` imports (a `from pkg import name` counts as pkg.name
  when that is a module, else pkg)."""
  tree = ast.parse(path.read_text())
  found = set()
  package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found |= {a.name for a in node.names if a.name.split(".")[0] == "lstmx"}
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                        + ([base] if base else []))
      if base.split(".")[0] != "lstmx":
        continue
      for a in node.names:
        sub = f"{base}.{a.name}"
        found.add(sub if sub in MODULES else base)
  found.discard(module)
  return found


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}
GRAPH = {m: imports(p, m) for m, p in MODULES.items()}


def test_every_module_has_a_layer():
  for m in MODULES:
    layer_of(m)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_higher_layer(module):
  higher = violations(module, GRAPH[module])
  assert not higher, f"{module} ({layer_of(module)}) imports a higher layer: {higher}"


def test_kernels_import_only_base_and_jax():
  for m, deps in GRAPH.items():
    if layer_of(m) == "kernels":
      bad = sorted(d for d in deps if layer_of(d) not in ("base", "kernels"))
      assert not bad, f"{m} imports {bad}"


def test_no_import_cycles():
  state: dict[str, int] = {}  # 1 = on the stack, 2 = done

  def visit(m, stack):
    state[m] = 1
    for d in sorted(GRAPH.get(m, ())):
      if d not in MODULES or d == "lstmx":
        continue  # the package's re-exports are the top layer, checked above
      if state.get(d) == 1:
        raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
      if state.get(d) is None:
        visit(d, stack + [d])
    state[m] = 2

  for m in sorted(MODULES):
    if state.get(m) is None:
      visit(m, [m])


def violations(module: str, deps: set[str]) -> list[str]:
  """The imports of `module` that reach a higher layer."""
  mine = RANK[layer_of(module)]
  return sorted(f"{d} ({layer_of(d)})" for d in deps if RANK[layer_of(d)] > mine)


def test_the_checker_sees_violations(tmp_path):
  """The test itself can fail: a kernel importing the training engine, the lab or the
  package is caught, and so is a cycle."""
  fake = tmp_path / "bad.py"
  fake.write_text("import jax\nfrom lstmx.train import loop\nimport lstmx.lab.cli\n"
                  "def f():\n  import lstmx\n  from lstmx.kernels import cell\n")
  deps = imports(fake, "lstmx.kernels.bad")
  assert deps == {"lstmx.train.loop", "lstmx.lab.cli", "lstmx", "lstmx.kernels.cell"}
  assert len(violations("lstmx.kernels.bad", deps)) == 3
