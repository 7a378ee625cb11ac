"""Source collection: copy real classes and their helpers out of the package.

The exported file holds the package's own code: the attention classes of
:mod:`attnsearch.modules` (with the registry's ``check*`` calls stripped) and the residual
block and ResNet of :mod:`attnsearch.backbones`, with the layout rules they call from
:mod:`attnsearch.resnet_layout`. :class:`Collector` walks from a class to every function,
class or constant of its own file (or of the layout) that it names, and records the import
lines it needs; a name it cannot copy (from another package) is an error, so the generated
file is standalone by construction.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from collections import OrderedDict
from typing import Any

__all__ = ["STDLIB_ORDER", "TORCH_ORDER", "Collector", "attention_source", "backbone_source"]

# Names an attention file may use from outside itself: (module, attribute) of the object the
# name must be bound to there, and the import line it needs. Anything else not defined in
# the same file is an error (the export would not be standalone).
_IMPORTS: dict[str, tuple[str, str | None, str]] = {
    "torch": ("torch", None, "import torch"),
    "nn": ("torch.nn", None, "from torch import nn"),
    "F": ("torch.nn.functional", None, "import torch.nn.functional as F"),
    "math": ("math", None, "import math"),
    "OrderedDict": ("collections", "OrderedDict", "from collections import OrderedDict"),
    "Callable": ("collections.abc", "Callable", "from collections.abc import Callable"),
}


def _import_line(module, ref: str) -> str | None:
    """The import line for ``ref`` if ``module`` binds it to the object we know by that name."""
    if ref not in _IMPORTS or ref not in module.__dict__:
        return None
    source, attr, line = _IMPORTS[ref]
    expected = importlib.import_module(source)
    if attr is not None:
        expected = getattr(expected, attr)
    return line if module.__dict__[ref] is expected else None


# modules whose functions any copied file may call: copied too (plain Python, builtins only)
_SHARED = ("attnsearch.resnet_layout",)

# the order isort (ruff's I rules) gives these lines in the generated file
STDLIB_ORDER = [
    "import math",
    "from collections import OrderedDict",
    "from collections.abc import Callable",
    "from functools import partial",
    "from pathlib import Path",
]
TORCH_ORDER = ["import torch", "import torch.nn.functional as F", "from torch import nn"]


def _is_check(name: str) -> bool:
    return name == "check" or name.startswith(("check_", "_check"))


def _global_names(tree: ast.AST) -> set[str]:
    """Names read anywhere in ``tree`` (``nn.Module`` reads ``nn``): a superset of its globals."""
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _calls(node: ast.AST, test) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and test(node.func.id)


def _strip_checks(source: str) -> str:
    """Drop statements that only call the registry's ``check*`` functions, and the
    ``if use_fast(...):`` branches to the device formulations
    (:mod:`attnsearch.modules.formulations`): the export keeps the reference form."""
    tree = ast.parse(source)
    drop: set[int] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Expr) and _calls(node.value, _is_check)) or (
            isinstance(node, ast.If)
            and not node.orelse
            and _calls(node.test, lambda name: name == "use_fast")
        ):
            drop.update(range(node.lineno, node.end_lineno + 1))
    lines = source.splitlines()
    return "\n".join(line for i, line in enumerate(lines, 1) if i not in drop) + "\n"


class Collector:
    """Walks from classes to every helper of their own file they need, in definition order."""

    def __init__(self) -> None:
        self.blocks: OrderedDict[tuple[str, str], str] = OrderedDict()
        self.imports: set[str] = set()
        self.owner: dict[str, str] = {}  # emitted name -> its module (name clashes)

    def add(self, obj: Any) -> None:
        module = inspect.getmodule(obj)
        self._add(module, obj.__name__)

    def _add(self, module, name: str) -> None:
        key = (module.__name__, name)
        if key in self.blocks:
            return
        if name in self.owner and self.owner[name] != module.__name__:
            raise RuntimeError(f"export: name {name!r} defined in two copied files")
        obj = module.__dict__[name]
        if inspect.isclass(obj) or inspect.isfunction(obj):
            source = _strip_checks(textwrap.dedent(inspect.getsource(obj)))
        elif isinstance(obj, (int, float, str)) and not isinstance(obj, bool):
            source = f"{name} = {obj!r}\n"
        else:
            raise RuntimeError(f"export: cannot copy {module.__name__}.{name} ({type(obj)})")
        self.blocks[key] = ""  # reserve (cycles)
        self.owner[name] = module.__name__
        tree = ast.parse(source)
        local = _bound_names(tree)
        for ref in sorted(_global_names(tree) - local):
            line = _import_line(module, ref)
            if line is not None:
                self.imports.add(line)
            elif ref in module.__dict__ and ref != name:  # else a builtin
                target = module.__dict__[ref]
                if _is_check(ref):
                    raise RuntimeError(f"export: {module.__name__}.{name} still uses {ref}")
                owner = getattr(target, "__module__", module.__name__)
                if owner in _SHARED and owner != module.__name__:
                    self._add(importlib.import_module(owner), ref)
                    continue
                if owner != module.__name__:
                    raise RuntimeError(f"export: {module.__name__}.{name} needs foreign {ref!r}")
                self._add(module, ref)
        self.blocks.move_to_end(key)
        self.blocks[key] = source


def _bound_names(tree: ast.AST) -> set[str]:
    """Names bound inside ``tree`` (arguments, assignments, comprehension targets, defs)."""
    bound: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.arg):
            bound.add(n.arg)
        elif isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            bound.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.ClassDef)):
            bound.add(n.name)
    top = tree.body[0] if isinstance(tree, ast.Module) and tree.body else None
    if isinstance(top, (ast.FunctionDef, ast.ClassDef)):
        bound.discard(top.name)  # a recursive reference is not a dependency
    return bound


def attention_source(collector: Collector, types: list[str]) -> str:
    """Source text of the attention classes of ``types`` (registry order), with headers."""
    from attnsearch import modules

    sections = []
    for name in types:
        spec = modules.get(name)
        before = set(collector.blocks)
        collector.add(spec.cls)
        new = [src for key, src in collector.blocks.items() if key not in before]
        paper = textwrap.wrap(f"Paper: {spec.paper}", 96, subsequent_indent="  ")
        header = "\n".join(
            [f"# ---- {name} ({spec.placement})", *(f"# {line}" for line in paper)]
            + [f"# Official code: {spec.code}", ""]
        )
        sections.append(header + "\n\n".join(new))
    return "\n\n".join(sections)


def backbone_source(collector: Collector, block: type) -> str:
    """Source text of the residual ``block`` class and the ResNet, from
    :mod:`attnsearch.backbones` (the classes that train are the classes exported)."""
    from attnsearch import backbones

    before = set(collector.blocks)
    collector.add(block)
    collector.add(backbones.ResNet)
    new = [src for key, src in collector.blocks.items() if key not in before]
    return "\n\n".join(new)
