"""The package's structure: every module imports, imports form no circle, and no module imports from a later
stage of the data flow (the README's module map)."""

from __future__ import annotations

import ast
import importlib
import pkgutil

import pytest

import scaling
from tests.conftest import ROOT

# The README's module map, in data-flow order; a module may import from its own stage or earlier ones.
STAGES = [
    "config flops errors io logs summary",
    "grid sweepdir",
    "data corpus model optim hardware precision checkpoint distributed tracking export trainer",
    "launch probe",
    "results",
    "fit",
    "testtime",
    "cli __main__ pipeline train sweep",
]


def stage(module: str) -> int:
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else ""
    return next((i for i, names in enumerate(STAGES) if name in names.split()), -1)


def package_imports() -> dict[str, set[str]]:
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
               for p in (ROOT / "scaling").rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("scaling"):
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            edges[module] |= {n for n in names if n in modules and n != module and n != "scaling"}
    return edges


@pytest.mark.parametrize("module", sorted(m.name for m in pkgutil.walk_packages(scaling.__path__, "scaling.")))
def test_every_module_imports(module):
    importlib.import_module(module)


def test_no_import_circles_and_no_import_from_a_later_stage():
    edges = package_imports()
    assert all(stage(m) >= 0 for m in edges if m != "scaling"), [m for m in edges if stage(m) < 0]
    upward = [(a, b) for a, targets in edges.items() for b in targets if stage(b) > stage(a)]
    assert not upward
    # With every import pointing to its own stage or an earlier one, a circle could only lie inside one stage.
    seen: dict[str, int] = {}

    def visit(module: str, path: tuple[str, ...]) -> None:
        if seen.get(module) == 2:
            return
        assert seen.get(module) != 1, f"import circle: {' -> '.join(path + (module,))}"
        seen[module] = 1
        for target in edges[module]:
            visit(target, path + (module,))
        seen[module] = 2

    for module in edges:
        visit(module, ())
