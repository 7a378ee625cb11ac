"""The registry owns every choice: no code outside ``attnsearch/modules/`` decides by an
attention type's name, ``none`` included (DESIGN.md §2; issue 20).

An AST scan of every package file outside ``attnsearch/modules/``: a registered type's name
(any key of the registry) as a string literal that is compared (``==``, ``!=``, ``in``),
matched (``case "se":``), looked up (``opts["none"]``, ``.get("se")``) or used as a dict
key is a decision by name, and fails the test. Naming a type as data (``SlotChoice.make(
"eca", k_size=3)`` in the papers' reference networks) is not. Search-space YAML and docs
are not scanned.
"""

from __future__ import annotations

import ast
from pathlib import Path

import attnsearch
from attnsearch import modules

PACKAGE = Path(attnsearch.__file__).parent
NAMES = frozenset(modules.REGISTRY)


def _strings(node: ast.AST | None) -> list[str]:
    """String constants of ``node`` itself, or the elements of a tuple, list or set."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [s for e in node.elts for s in _strings(e)]
    return []


def decisions_by_name(source: str, names: frozenset[str] = NAMES) -> list[tuple[int, str]]:
    """``(line, name)`` of every place ``source`` decides by one of ``names``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
        elif isinstance(node, ast.Subscript):
            operands = [node.slice]
        elif isinstance(node, ast.MatchValue):
            operands = [node.value]
        elif isinstance(node, ast.Dict):
            operands = [k for k in node.keys if k is not None]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("get", "pop", "setdefault")
            and node.args
        ):
            operands = [node.args[0]]
        else:
            continue
        found += [(node.lineno, s) for op in operands for s in _strings(op) if s in names]
    return found


def test_the_scan_finds_each_form():
    snippet = """
if choice.type == "none": pass
if t != "se" and t not in ("eca", "x"): pass
x = opts["none"][0]
y = LAYERS.get("cbam")
z = {"sa": 1}
match t:
    case "ca": pass
ok = SlotChoice.make("epsa", splits=4)
"""
    got = sorted(name for _, name in decisions_by_name(snippet))
    assert got == ["ca", "cbam", "eca", "none", "none", "sa", "se"]


def test_no_decision_by_type_name_outside_the_registry():
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "modules":
            continue
        for line, name in decisions_by_name(path.read_text()):
            offences.append(f"attnsearch/{rel}:{line}: {name!r}")
    assert not offences, "ask the registry instead:\n" + "\n".join(offences)
