"""The layering of the code (docs/ARCHITECTURE.md): the library knows no screen, and nothing imports in a circle.

Imports are read with ``ast`` from every module of ``frb``, ``app`` and ``train``, including the
ones inside functions (a deferred import is still a dependency). ``import a.b.c`` also runs the
``__init__`` of the packages ``a`` and ``a.b``, so those count too, except a module's own
ancestors (a package's ``__init__`` importing its submodules is how packages work).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("frb", "app", "train")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


MODULES = _modules()
SCRIPTS = {"app.py": ROOT / "app.py"}  # entry points outside the packages: checked, not part of the graph


def _imported(name: str, path: Path, everything: bool = False) -> set[str]:
    """The project modules ``name`` imports, as dotted names (absolute and relative imports);
    ``everything``: also the imported names that are not modules (``from frb.x import function``)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if everything and m.split(".")[0] in PACKAGES or m in MODULES}


def _edges(name: str) -> set[str]:
    edges = set()
    own_ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    for target in _imported(name, MODULES[name]):
        parts = target.split(".")
        chain = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        edges.update(m for m in chain if m in MODULES and m not in own_ancestors and m != name)
    return edges


GRAPH = {name: _edges(name) for name in MODULES}


def test_the_graph_sees_the_known_imports():
    assert "frb.models.registry" in GRAPH["frb.models"]
    assert "frb.bitwise.kernels" in GRAPH["frb.bitwise.ops"]
    assert "frb.bitwise" in GRAPH["frb.models.pretrained"]  # importing frb.bitwise.export runs its __init__
    assert "frb.bitwise" not in GRAPH["frb.bitwise.ops"]  # its own package
    assert "frb.compare" in GRAPH["app.ui"]


def _exists(dotted: str) -> bool:
    """A project module, or a name defined at the top level of one (``from frb.x import name``)."""
    if dotted in MODULES:
        return True
    module, _, attr = dotted.rpartition(".")
    if module not in MODULES:
        return False
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    defined = {getattr(n, "name", None) for n in tree.body}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        defined |= {t.id for t in targets if isinstance(t, ast.Name)}
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            defined |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return attr in defined


@pytest.mark.parametrize("name", [*MODULES, *SCRIPTS])
def test_every_project_import_names_something_that_exists(name):
    path = MODULES.get(name) or SCRIPTS[name]
    imported = _imported(name if name in MODULES else "__main__", path, everything=True)
    missing = [m for m in imported if not _exists(m) and not any(o != m and o.startswith(m + ".") for o in imported)]
    assert not missing, f"{name} imports what does not exist: {missing}"


@pytest.mark.parametrize("name", [m for m in MODULES if m.split(".")[0] in ("frb", "train")])
def test_the_library_and_training_never_import_the_app(name):
    assert not [m for m in GRAPH[name] if m.split(".")[0] == "app"]


def _cycle() -> list[str] | None:
    """One import cycle of GRAPH, or None (depth-first search with colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(GRAPH):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_nothing_imports_in_a_circle():
    cycle = _cycle()
    assert cycle is None, " -> ".join(cycle)


def test_a_circle_would_be_found(monkeypatch):
    monkeypatch.setitem(GRAPH, "frb.binarize", GRAPH["frb.binarize"] | {"frb.models"})
    assert _cycle() is not None
