"""One place for each decision (issue 20): the results layout, the trial schema, file sizes.

Read from the source, like a grep: the names of the results folder's files live in
``attnsearch/rundir/_names.py`` only; checkpoints are read and written in
``attnsearch/rundir/_files.py`` only; trial attributes are written through
:class:`attnsearch.rundir.TrialRecord` only, each one a declared field; no module is over
500 lines.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from attnsearch.rundir import TrialRecord
from attnsearch.rundir import _names as names

PACKAGE = Path(__file__).resolve().parents[1] / "attnsearch"
MAX_LINES = 500
FIELDS = {f.name for f in dataclasses.fields(TrialRecord)} - {"extra"}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring nodes (module, class, function): prose may name files."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _calls(tree: ast.Module, attr: str):
    for node in ast.walk(tree):
        func = node.func if isinstance(node, ast.Call) else None
        if isinstance(func, ast.Attribute) and func.attr == attr:
            yield node


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else "?"


@pytest.mark.parametrize("path", _modules(), ids=_rel)
def test_no_module_over_500_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{_rel(path)} has {lines} lines (at most {MAX_LINES})"


def test_results_file_names_live_in_one_place():
    """Every results-folder file name appears as a string in rundir/_names.py only; the
    rest ask RunDir (or import the constant)."""
    file_names = {
        v
        for k, v in vars(names).items()
        if k.isupper() and isinstance(v, str) and "." in v  # run.yaml, pareto.json, ...
    }
    assert {"run.yaml", "pareto.json", "summary.json", "state.pt", "params.json"} <= file_names
    found = []
    for path in _modules():
        if _rel(path) == "rundir/_names.py":
            continue
        tree = _tree(path)
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and text in file_names and id(node) not in skip:
                found.append(f"{_rel(path)}:{node.lineno}: {text!r}")
    assert not found, "file names outside rundir/_names.py:\n" + "\n".join(found)


def test_one_checkpoint_reader_and_writer():
    loads, saves = [], []
    for path in _modules():
        tree = _tree(path)
        loads += [_rel(path) for c in _calls(tree, "load") if _dotted(c.func) == "torch.load"]
        saves += [_rel(path) for c in _calls(tree, "save") if _dotted(c.func) == "torch.save"]
    assert loads == ["rundir/_files.py"]  # load_checkpoint, weights_only=True
    # save_checkpoint; and export's weights file (a bare state dict beside the exported code)
    assert sorted(saves) == ["export/__init__.py", "rundir/_files.py"]
    source = (PACKAGE / "rundir" / "_files.py").read_text()
    assert "weights_only=True" in source


def test_trial_attributes_only_through_trial_record():
    """``set_user_attr`` is called in the TrialRecord module only, and every attribute
    written by name (``TrialRecord.set/set_stored/attrs``) is a declared field."""
    writers, unknown, raw = [], [], []
    for path in _modules():
        tree = _tree(path)
        for attr in ("set_user_attr", "set_trial_user_attr"):
            writers += [f"{_rel(path)}:{c.lineno}" for c in _calls(tree, attr)]
        for attr in ("set", "set_stored", "attrs"):
            for c in _calls(tree, attr):
                if _dotted(c.func) != f"TrialRecord.{attr}":
                    continue
                unknown += [
                    f"{_rel(path)}:{c.lineno}: {k.arg}"
                    for k in c.keywords
                    if k.arg is not None and k.arg not in FIELDS
                ]
        for node in ast.walk(tree):  # enqueue_trial / create_trial(user_attrs=...)
            if isinstance(node, ast.Call):
                for k in node.keywords:
                    if k.arg != "user_attrs":
                        continue
                    ok = isinstance(k.value, ast.Call) and _dotted(k.value.func) == (
                        "TrialRecord.attrs"
                    )
                    if not ok:
                        raw.append(f"{_rel(path)}:{node.lineno}")
    assert sorted(writers) == [w for w in writers if w.startswith("rundir/_trial.py:")]
    assert writers, "TrialRecord.set must still write through set_user_attr"
    assert not unknown, f"attributes TrialRecord does not declare: {unknown}"
    # warm_start copies another run's attributes as stored, then adds its own through attrs()
    assert raw == [r for r in raw if r.startswith("samplers.py:")] and len(raw) <= 1, raw


def test_trial_record_refuses_an_undeclared_attribute():
    with pytest.raises(KeyError, match="no field 'made_up'"):
        TrialRecord.attrs(made_up=1)
    assert TrialRecord.attrs(over_budget=True, repaired_from=3) == {
        "over_budget": True,
        "repaired_from": 3,
    }


def test_budget_strings_are_parsed_in_one_place():
    """A budget string becomes a :class:`attnsearch.budget.Budget` at the command line
    (``cli/_numbers.py``); everything after reads that value (issue 20, item 2)."""
    parsers = {"parse_budget", "parse_cost_budget"}
    where = set()
    for path in _modules():
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
                if name in parsers:
                    where.add(_rel(path))
    assert where == {"budget.py", "cli/_numbers.py"}, where  # budget.py: one form calls the other
