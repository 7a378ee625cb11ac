"""Bad input, the project's own list (issue 12): every case ends at once with exit 2, one line
naming the problem, no traceback, and nothing created.

Table-driven over the CLI's entry point (``attnsearch.cli.main``, in this process so that the
whole table stays fast; a few cases also go through a real subprocess). The work a command
would do once its input is accepted (the search, training) is replaced by a tripwire: a
value that slips through validation fails the test instead of starting Ray.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

HUGE = "9" * 5000  # an integer of thousands of digits
RUN = ["run", "--budget", "2G", "--space", "tiny", "--dataset", "synthetic", "--limit", "64"]
ARCH = {"backbone": "resnet18", "all": "se"}


class Tripwire(Exception):
    """The command got past validation."""


@pytest.fixture
def main(tmp_path, monkeypatch):
    """``main(*args)`` → (exit code, stderr), run in a fresh folder; the heavy work is a
    tripwire; afterwards nothing but the case's own inputs may exist there."""
    import attnsearch.evaluation
    import attnsearch.fidelity
    import attnsearch.search
    from attnsearch.cli import main as cli_main

    def tripwire(*args, **kwargs):
        raise Tripwire

    monkeypatch.setattr(attnsearch.search, "run_search", tripwire, raising=False)
    monkeypatch.setattr(attnsearch.evaluation, "evaluate_architecture", tripwire)
    monkeypatch.setattr(attnsearch.fidelity, "run_fidelity", tripwire)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "arch.json").write_text(json.dumps(ARCH))

    def run(*args: str) -> tuple[int, str]:
        before = _tree(work)
        err = io.StringIO()
        code = 0
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            try:
                cli_main(list(args))
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
        assert _tree(work) == before, f"{args}: something was created"
        return code, err.getvalue()

    run.work = work
    return run


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _refused(result: tuple[int, str], needle: str) -> None:
    code, err = result
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], err


# ---- numbers that are not numbers, in every numeric option ------------------------------
NOT_NUMBERS = ["nan", "inf", "-inf", "-1", "0", "1e30", HUGE, "1e5000", "x"]
INTS = ["1.5"]  # and, for integer options, a fraction

# (command prefix, option, values that are valid there and so are skipped)
OPTIONS = [
    (RUN, "--trials", ()),
    (RUN, "--epochs", ()),
    (RUN, "--concurrency", ()),
    (RUN, "--batch-size", ()),
    (RUN, "--limit", ()),
    (RUN, "--resolution", ()),
    (RUN, "--seed", ("0",)),
    (RUN, "--width", ()),
    (RUN, "--cpus-per-trial", ()),
    (RUN, "--gpus-per-trial", ("0",)),
    (["run", "--space", "tiny"], "--budget", ("1e30",)),
    (["evaluate", "arch.json"], "--seeds", ()),
    (["evaluate", "arch.json"], "--first-seed", ("0",)),
    (["evaluate", "arch.json"], "--epochs", ()),
    (["evaluate", "arch.json"], "--width", ()),
    (["evaluate", "arch.json"], "--resolution", ()),
    (["evaluate", "arch.json"], "--batch-size", ()),
    (["evaluate", "arch.json"], "--limit", ()),
    (["evaluate", "arch.json"], "--seed", ("0",)),
    (["evaluate", "arch.json"], "--threads", ()),
    (["fidelity", "--space", "tiny"], "--panel", ()),
    (["fidelity", "--space", "tiny"], "--panel-seed", ("0",)),
    (["fidelity", "--space", "tiny"], "--proxy-seeds", ()),
    (["fidelity", "--space", "tiny"], "--reference-factor", ()),
    (["fidelity", "--space", "tiny"], "--reference-seeds", ()),
    (["fidelity", "--space", "tiny"], "--workers", ()),
    (["fidelity", "--space", "tiny"], "--budget", ("1e30",)),
    (["fidelity", "--space", "tiny"], "--epochs", ()),
    (["fidelity", "--space", "tiny"], "--width", ()),
    (["export", "--arch", "arch.json", "-o", "m.py"], "--trial", ("0",)),
    (["export", "x", "--best"], "--max-flops", ("1e30",)),
]
FLOAT_OPTIONS = {"--width", "--cpus-per-trial", "--gpus-per-trial", "--budget", "--max-flops"}


def _numeric_cases():
    for prefix, option, valid in OPTIONS:
        values = NOT_NUMBERS + ([] if option in FLOAT_OPTIONS else INTS)
        for value in values:
            if value not in valid:
                yield pytest.param(prefix, option, value, id=f"{prefix[0]}{option}={value[:8]}")


@pytest.mark.parametrize(("prefix", "option", "value"), list(_numeric_cases()))
def test_numeric_options_refuse_non_numbers(main, prefix, option, value):
    _refused(main(*prefix, f"{option}={value}"), option)


@pytest.mark.parametrize(
    "shape", ["3,nan,8", "3,inf,8", "3,-1,8", "0,8,8", f"3,{HUGE},8", "3,100000000,8", "3,8"]
)
def test_profile_input_refuses_non_shapes(main, shape):
    _refused(main("profile", "arch.json", "--input", shape), "--input")
