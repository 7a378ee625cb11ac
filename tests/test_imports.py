"""The package's import structure: no cycle, no private module reached from another
package, and every module importable on its own.

The graph is read with ``ast`` from every file of ``attnsearch/``: top-level imports and
those inside functions (a function-local import hides a cycle from Python, not from this
test). An edge goes to the module named (``from a.b import c`` names ``a.b.c`` when that
is a module, else ``a.b``); the parent packages Python also imports are not edges.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "attnsearch"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, *, type_checking: bool) -> list[tuple[str, list[str], int]]:
    """``(module imported, names imported, line)`` for every import of ``module``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, list[str], int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node) and not type_checking:
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((a.name, [], node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((name, [a.name for a in node.names], node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return [f for f in found if f[0] == "attnsearch" or f[0].startswith("attnsearch.")]


def _owner(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _graph(*, type_checking: bool) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        edges = set()
        for name, names, _ in _imports(module, type_checking=type_checking):
            submodules = [f"{name}.{n}" for n in names if f"{name}.{n}" in MODULES]
            edges.update(submodules)
            if len(submodules) < len(names) or not names:
                edges.add(_owner(name))
        graph[module] = {e for e in edges if e is not None and e != module}
    return graph


def _a_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (its modules in order, the first repeated), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(v: str) -> list[str] | None:
        state[v] = 1
        path.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return path[path.index(w) :] + [w]
            if w not in state:
                found = walk(w)
                if found:
                    return found
        path.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state:
            found = walk(v)
            if found:
                return found
    return None


def test_the_graph_sees_function_local_imports():
    graph = _graph(type_checking=False)
    # _run_impl imports these only inside its functions
    assert {"attnsearch.cli._resume", "attnsearch.rundir"} <= graph["attnsearch.cli._run_impl"]
    assert _a_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _a_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    cycle = _a_cycle(_graph(type_checking=False))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_import_cycle_even_under_type_checking():
    cycle = _a_cycle(_graph(type_checking=True))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def _private_part(name: str) -> str | None:
    """The package that owns the first private module of dotted ``name``, or None."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def test_no_private_module_is_imported_from_another_package():
    found = []
    for module in MODULES:
        for name, names, line in _imports(module, type_checking=True):
            targets = [name] + [f"{name}.{n}" for n in names if f"{name}.{n}" in MODULES]
            for target in targets:
                owner = _private_part(target)
                if owner is not None and not (module == owner or module.startswith(owner + ".")):
                    found.append(f"{MODULES[module].relative_to(ROOT)}:{line} imports {target}")
    assert not found, "\n".join(found)


_ALONE = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "attnsearch" or m.startswith("attnsearch.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc().strip().splitlines()[-1])
print("\\n".join(failed))
"""


def test_every_module_imports_on_its_own():
    """Each module imported first, with no other module of the package loaded before it (one
    process: the package is dropped from ``sys.modules`` before each; torch and the other
    third-party modules stay loaded, they cannot hide an order problem of ours)."""
    names = [m for m in MODULES if m != "attnsearch.__main__"]
    proc = subprocess.run(
        [sys.executable, "-c", _ALONE, *names],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", proc.stdout


def test_settings_do_not_import_torch():
    """The settings sit at the bottom: the CLI builds its options from them before any
    command runs, and ``--help`` must not import torch (STYLE.md 7)."""
    code = (
        "import sys, attnsearch.settings, attnsearch.budget; "
        "print(sorted(m for m in ('torch', 'numpy', 'ray', 'optuna', 'yaml') if m in sys.modules)); "
        "print(sorted(m for m in sys.modules if m.startswith('attnsearch')))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    heavy, ours = proc.stdout.strip().splitlines()
    assert heavy == "[]"
    assert set(ast.literal_eval(ours)) == {
        "attnsearch",
        "attnsearch.budget",
        "attnsearch.dataset_specs",
        "attnsearch.errors",
        "attnsearch.settings",
        "attnsearch.settings._config",
        "attnsearch.settings._proxy",
    }
