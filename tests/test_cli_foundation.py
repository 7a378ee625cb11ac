"""The CLI's foundation: ``--help`` everywhere, ``modules``, ``profile``, and exit code 2.

Bad input must end with exit code 2 and ONE line on stderr, never a traceback
(DESIGN.md §4). Most cases call :func:`attnsearch.cli.main` in-process (the same wrapper the
console script runs); a few run ``python -m attnsearch`` in a subprocess to pin the real
process behaviour.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

import attnsearch
from attnsearch import modules
from attnsearch.cli import _COMMANDS, cli, main

# every command the CLI must have, in listing order (extend when a command is added)
COMMANDS = (
    "run",
    "pareto",
    "export",
    "profile",
    "evaluate",
    "fidelity",
    "latency-table",
    "modules",
    "spaces",
)
SMALL_ARCH = {"backbone": "resnet18", "all": {"type": "se", "reduction": 8}}


def _run_main(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    code = info.value.code
    return (0 if code is None else code), out, err


def _python_m(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "attnsearch", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def _assert_usage_error(code: int, err: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


@pytest.fixture()
def arch_file(tmp_path):
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(SMALL_ARCH))
    return path


# --------------------------------------------------------------------------- help


def test_design_commands_are_listed():
    ctx = cli.make_context("attnsearch", [], resilient_parsing=True)
    listed = cli.list_commands(ctx)
    assert list(_COMMANDS) == list(COMMANDS), "the registry and this test disagree"
    assert listed == list(COMMANDS), "a command's file is missing"


def test_top_level_help():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    for name in COMMANDS:
        assert name in result.output


@pytest.mark.parametrize("name", COMMANDS)
def test_command_help(name):
    result = CliRunner().invoke(cli, [name, "--help"], prog_name="attnsearch")
    assert result.exit_code == 0, result.output
    assert f"attnsearch {name}" in result.output


@pytest.mark.parametrize("name", COMMANDS)
def test_command_help_through_main(capsys, name):
    code, out, err = _run_main(capsys, name, "--help")
    assert code == 0, err
    assert "Usage:" in out


_HELP_IMPORTS = """
import sys
from click.testing import CliRunner
from attnsearch.cli import cli
for name in sys.argv[1:]:
    assert CliRunner().invoke(cli, [name, "--help"]).exit_code == 0, name
print(sorted(m for m in ("torch", "ray", "optuna", "matplotlib") if m in sys.modules))
"""


def test_help_does_not_import_heavy_packages():
    """Heavy imports live inside command bodies, so ``--help`` stays instant (STYLE.md 7)."""
    proc = subprocess.run(
        [sys.executable, "-c", _HELP_IMPORTS, *COMMANDS],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_python_m_help_exits_0():
    proc = _python_m("--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout
    assert "profile" in proc.stdout


# --------------------------------------------------------------------------- modules


def test_modules_json_lists_every_type(capsys):
    code, out, err = _run_main(capsys, "modules", "--json")
    assert code == 0, err
    data = json.loads(out)
    by_name = {entry["name"]: entry for entry in data}
    assert set(by_name) == set(modules.module_names())
    for name, spec in modules.REGISTRY.items():
        entry = by_name[name]
        assert entry["kind"] == spec.kind  # "none" for the plain block
        assert [h["name"] for h in entry["hparams"]] == [h.name for h in spec.hparams]
        for h, j in zip(spec.hparams, entry["hparams"], strict=True):
            assert j["default"] == h.default
            assert j["type"] == h.type.__name__
    assert by_name["none"]["hparams"] == [] and by_name["none"]["kind"] == "none"


def test_modules_table(capsys):
    code, out, err = _run_main(capsys, "modules")
    assert code == 0, err
    for name in modules.module_names():
        assert name in out


# --------------------------------------------------------------------------- profile


def test_profile_json_equals_api(capsys, arch_file):
    code, out, err = _run_main(capsys, "profile", str(arch_file), "--json")
    assert code == 0, err
    result = json.loads(out)  # exactly one JSON object on stdout
    assert isinstance(result, dict)
    for key in ("params", "flops", "macs_conv_linear"):
        assert type(result[key]) is int, key
    assert result["input"] == [3, 224, 224]
    expected = attnsearch.profile(SMALL_ARCH)
    for key in ("params", "flops", "macs_conv_linear", "input"):
        assert result[key] == expected[key], key


def test_profile_input_option(capsys, arch_file):
    code, out, err = _run_main(capsys, "profile", str(arch_file), "--input", "3,64,64", "--json")
    assert code == 0, err
    small = json.loads(out)
    assert small["input"] == [3, 64, 64]
    expected = attnsearch.profile(SMALL_ARCH, input=(3, 64, 64))
    assert small["flops"] == expected["flops"]
    assert small["flops"] < attnsearch.profile(SMALL_ARCH, input=(3, 96, 96))["flops"]
    assert small["params"] == expected["params"]


def test_profile_table(capsys, arch_file):
    code, out, err = _run_main(capsys, "profile", str(arch_file), "--input", "3,32,32")
    assert code == 0, err
    assert "params" in out and "flops" in out


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ('{"backbone": "resnet18", "all": {"type": "gcnet"}}', "gcnet"),
        ('{"backbone": "resnet18", "all": {"type": "se", "ratio": 4}}', "ratio"),
        ('{"backbone": "resnet50", "all": {"type": "sa", "groups": 256}}', "slots[0]"),
        ('{"backbone": "resnet18", "slots": []}', "slots"),
    ],
    ids=["invalid-json", "unknown-type", "unknown-hparam", "indivisible", "slot-count"],
)
def test_profile_bad_file_content(capsys, tmp_path, content, fragment):
    path = tmp_path / "arch.json"
    path.write_text(content)
    code, out, err = _run_main(capsys, "profile", str(path), "--json")
    _assert_usage_error(code, err)
    assert fragment in err
    assert out == ""


def test_profile_missing_file(capsys, tmp_path):
    code, _, err = _run_main(capsys, "profile", str(tmp_path / "missing.json"))
    _assert_usage_error(code, err)
    assert "missing.json" in err


def test_profile_directory(capsys, tmp_path):
    code, _, err = _run_main(capsys, "profile", str(tmp_path))
    _assert_usage_error(code, err)
    assert "directory" in err


@pytest.mark.parametrize("value", ["3,x,5", "3,64", "3,0,64", "a", ""])
def test_profile_bad_input_option(capsys, arch_file, value):
    code, _, err = _run_main(capsys, "profile", str(arch_file), "--input", value)
    _assert_usage_error(code, err)
    assert "--input" in err


def test_unknown_command_and_option(capsys):
    code, _, err = _run_main(capsys, "no-such-command")
    _assert_usage_error(code, err)
    code, _, err = _run_main(capsys, "modules", "--no-such-option")
    _assert_usage_error(code, err)


@pytest.mark.parametrize(
    "args",
    [
        ["profile", "{missing}"],
        ["profile", "{invalid}"],
        ["profile", "{unknown_type}"],
        ["profile", "--input", "3,x,5", "{valid}"],
        ["profile", "{dir}"],
    ],
    ids=["missing-file", "invalid-json", "unknown-type", "bad-input", "directory"],
)
def test_python_m_bad_input_exits_2(tmp_path, args):
    files = {
        "missing": tmp_path / "missing.json",
        "invalid": tmp_path / "invalid.json",
        "unknown_type": tmp_path / "unknown.json",
        "valid": tmp_path / "valid.json",
        "dir": tmp_path,
    }
    files["invalid"].write_text("{not json")
    files["unknown_type"].write_text('{"backbone": "resnet18", "all": {"type": "gcnet"}}')
    files["valid"].write_text(json.dumps(SMALL_ARCH))
    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
    proc = _python_m(*argv)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stdout == ""
