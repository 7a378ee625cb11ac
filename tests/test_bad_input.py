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
import os
from pathlib import Path

import pytest
from conftest import cli, one_line_exit_2

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

    def invoke(*args: str) -> tuple[int, str]:
        err = io.StringIO()
        code = 0
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            try:
                cli_main(list(args))
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
        return code, err.getvalue()

    def run(*args: str) -> tuple[int, str]:
        before = _tree(work)
        result = invoke(*args)
        assert _tree(work) == before, f"{args}: something was created"
        return result

    run.work = work
    run.invoke = invoke  # without the nothing-created check
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
    (RUN, "--checkpoint-interval", ("0",)),
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
FLOAT_OPTIONS = {
    "--width", "--cpus-per-trial", "--gpus-per-trial", "--checkpoint-interval", "--budget",
    "--max-flops",
}  # fmt: skip


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


# ---- files: empty, not UTF-8, the wrong shape, numbers that are not numbers -------------
TINY = (Path(__file__).parents[1] / "attnsearch" / "search_spaces" / "tiny.yaml").read_text()
SPACES = {
    "empty": b"",
    "not_utf8": b"\xff\xfe\x00garbage\x80",
    "a_list": b"- backbone\n- resnet18\n",
    "input_nan": TINY.replace("[3, 224, 224]", "[3, .nan, 224]").encode(),
    "input_huge": TINY.replace("[3, 224, 224]", f"[3, {HUGE}, 224]").encode(),
    "input_big": TINY.replace("[3, 224, 224]", "[3, 100000000, 224]").encode(),
    "input_negative": TINY.replace("[3, 224, 224]", "[3, -224, 224]").encode(),
    "classes_inf": TINY.replace("num_classes: 1000", "num_classes: .inf").encode(),
    "classes_zero": TINY.replace("num_classes: 1000", "num_classes: 0").encode(),
    "classes_huge": TINY.replace("num_classes: 1000", f"num_classes: {HUGE}").encode(),
    "classes_big": TINY.replace("num_classes: 1000", "num_classes: 1000000000000").encode(),
    "hparam_nan": TINY.replace("reduction: [4, 16]", "reduction: [.nan]").encode(),
    "hparam_inf": TINY.replace("reduction: [4, 16]", "reduction: [.inf]").encode(),
    "hparam_negative": TINY.replace("reduction: [4, 16]", "reduction: [-4]").encode(),
    "hparam_zero": TINY.replace("reduction: [4, 16]", "reduction: [0]").encode(),
    "hparam_huge": TINY.replace("reduction: [4, 16]", f"reduction: [{HUGE}]").encode(),
    "hparam_big": TINY.replace("reduction: [4, 16]", "reduction: [1.0e+30]").encode(),
    "slot_huge": TINY.replace("slots: all", f"slots: [{HUGE}]").encode(),
}


@pytest.mark.parametrize("case", SPACES)
def test_space_files(main, case):
    (main.work / "bad.yaml").write_bytes(SPACES[case])
    _refused(main("run", *RUN[1:3], "--space", "bad.yaml", *RUN[5:]), "bad.yaml")


def test_space_with_no_buildable_choice_at_the_proxy_width(main):
    """A slot whose every choice needs more channels than the proxy width leaves: refused
    before anything runs (not 10,000 invalid samples)."""
    space = TINY.split("choices:")[0] + "choices:\n  sa: {groups: [32]}\n"
    (main.work / "narrow.yaml").write_text(space)
    _refused(main(*RUN, "--space", "narrow.yaml", "--width", "0.0625"), "--width 0.0625")


ARCHS = {
    "empty": b"",
    "not_utf8": b"\xff\xfe\x00{}",
    "a_list": b"[1, 2]",
    "classes_nan": b'{"backbone": "resnet18", "all": "se", "num_classes": NaN}',
    "classes_inf": b'{"backbone": "resnet18", "all": "se", "num_classes": Infinity}',
    "classes_negative": b'{"backbone": "resnet18", "all": "se", "num_classes": -1}',
    "classes_huge": b'{"backbone": "resnet18", "all": "se", "num_classes": %s}' % HUGE.encode(),
    "classes_big": b'{"backbone": "resnet18", "all": "se", "num_classes": 1e30}',
    "input_nan": b'{"backbone": "resnet18", "all": "se", "input": [3, NaN, 8]}',
    "input_huge": b'{"backbone": "resnet18", "all": "se", "input": [3, %s, 8]}' % HUGE.encode(),
    "hparam_nan": b'{"backbone": "resnet18", "all": {"type": "se", "reduction": NaN}}',
    "hparam_inf": b'{"backbone": "resnet18", "all": {"type": "se", "reduction": Infinity}}',
    "hparam_zero": b'{"backbone": "resnet18", "all": {"type": "se", "reduction": 0}}',
    "hparam_huge": b'{"backbone": "resnet18", "all": {"type": "se", "reduction": %s}}'
    % HUGE.encode(),
}


@pytest.mark.parametrize("command", ["profile", "evaluate", "export"])
@pytest.mark.parametrize("case", ARCHS)
def test_architecture_files(main, case, command):
    (main.work / "bad.json").write_bytes(ARCHS[case])
    args = {
        "profile": ["profile", "bad.json"],
        "evaluate": ["evaluate", "bad.json"],
        "export": ["export", "--arch", "bad.json", "-o", "m.py"],
    }[command]
    result = main(*args)
    _refused(result, "bad.json")
    assert result[1].count("bad.json") == 1, result[1]  # the file named once, not per layer


@pytest.mark.parametrize("command", ["profile", "evaluate", "export"])
def test_architecture_file_missing(main, command):
    args = {
        "profile": ["profile", "gone.json"],
        "evaluate": ["evaluate", "gone.json"],
        "export": ["export", "--arch", "gone.json", "-o", "m.py"],
    }[command]
    _refused(main(*args), "gone.json: no such file")
    assert not (main.work / "m.py").exists()


RUN_YAML_EDITS = {
    "epochs_nan": ("epochs: 1", "epochs: .nan"),
    "trials_negative": ("trials: 2", "trials: -2"),
    "width_inf": ("width: 0.25", "width: .inf"),
    "cpus_zero": ("cpus_per_trial: 1.0", "cpus_per_trial: 0"),
    "budget_huge": ("budget: 2000000000", f"budget: {HUGE}"),
    "seed_negative": ("seed: 0", "seed: -5"),
    "lr_nan": ("lr: 0.2", "lr: .nan"),
    "empty": None,
    "not_utf8": None,
}


@pytest.mark.parametrize("command", ["resume", "pareto"])
@pytest.mark.parametrize("case", RUN_YAML_EDITS)
def test_run_yaml_fields(main, case, command):
    from conftest import make_run

    run = make_run(main.work / "results", "r", 2 * 10**9, trials=2, epochs=1, width=0.25)
    text = run.run_yaml.read_text()
    if case == "empty":
        run.run_yaml.write_text("")
    elif case == "not_utf8":
        run.run_yaml.write_bytes(b"\xff\xfe" + text.encode())
    else:
        old, new = RUN_YAML_EDITS[case]
        assert old in text, text
        run.run_yaml.write_text(text.replace(old, new))
    args = ["run", "--name", "r", "--resume"] if command == "resume" else ["pareto", "r"]
    _refused(main(*args), "run.yaml")


# ---- names and paths that leave the results folder ----------------------------------------
ESCAPES = ["../x", "..", "/tmp", "a/b", ".", ""]


@pytest.mark.parametrize("name", ESCAPES)
@pytest.mark.parametrize(
    "command",
    [
        pytest.param(lambda n: [*RUN, "--name", n], id="run"),
        pytest.param(lambda n: ["run", "--name", n, "--resume"], id="resume"),
        pytest.param(lambda n: ["pareto", n], id="pareto"),
        pytest.param(lambda n: ["export", n, "--best", "-o", "m.py"], id="export"),
        pytest.param(lambda n: ["evaluate", "arch.json", "--run", n], id="evaluate"),
    ],
)
def test_names_that_leave_the_results_folder(main, name, command):
    # a results folder one level up that a '../x' could reach
    (main.work / "results").mkdir()
    _refused(main(*command(name)), "name")


# ---- output places that are not writable folders ---------------------------------------------
def test_results_dir_that_is_a_file(main):
    (main.work / "afile").write_text("x")
    _refused(main(*RUN, "--results-dir", "afile"), "afile")


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["export", "--arch", "arch.json", "-o", "missing/m.py"], id="export"),
        pytest.param(["export", "--arch", "arch.json", "-o", "/proc/m.py"], id="export-proc"),
        pytest.param(["fidelity", "--space", "tiny", "-o", "missing/r.json"], id="fidelity"),
        pytest.param(["fidelity", "--space", "tiny", "-o", "/proc/r.json"], id="fidelity-proc"),
    ],
)
def test_output_into_a_missing_or_unwritable_folder(main, args):
    _refused(main(*args), "/")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_results_dir(main):
    ro = main.work / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        _refused(main(*RUN, "--results-dir", "ro"), "ro")
        _refused(main("export", "--arch", "arch.json", "-o", "ro/m.py"), "ro")
    finally:
        ro.chmod(0o755)


# ---- image folders with symlink loops ------------------------------------------------------
def test_image_folder_with_a_symlink_loop(main):
    from PIL import Image

    for c in ("a", "b"):
        (main.work / "imgs" / c).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8)).save(main.work / "imgs" / c / f"{i}.png")
    (main.work / "imgs" / "a" / "loop").symlink_to(main.work / "imgs")
    (main.work / "imgs" / "b" / "self").symlink_to(main.work / "imgs" / "b")
    args = ["run", "--budget", "2G", "--space", "tiny", "--dataset", "folder:imgs"]
    _refused(main(*args), "symlink")


# ---- the real process: exit 2 and one line, also outside pytest's process ---------------------
def test_a_few_cases_in_a_real_process(tmp_path):
    one_line_exit_2(cli(*RUN, "--trials", "nan", cwd=tmp_path), "--trials")
    one_line_exit_2(cli("pareto", "../x", cwd=tmp_path), "name")
    (tmp_path / "bad.yaml").write_bytes(b"\xff\xfe")
    one_line_exit_2(cli(*RUN[:3], "--space", "bad.yaml", cwd=tmp_path), "bad.yaml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


# ---- a crafted results folder cannot make an exported model.py run code -------------------
CODE = '"""\nopen("PWNED", "w").close()\n"""'


@pytest.mark.parametrize("mode", ["best", "proxy"])
def test_a_crafted_results_folder_cannot_put_code_into_model_py(main, mode):
    """Strings with ``\"\"\"`` and code planted in the study's user attributes and in the
    checkpoint are refused or land in model.py as data: importing it runs nothing."""
    import importlib.util

    import optuna
    import torch
    from conftest import make_run

    from attnsearch import Architecture
    from attnsearch.backbones import build_network
    from attnsearch.results import storage_for

    arch = Architecture.uniform("resnet18", "se")
    run = make_run(main.work / "results", "r", 10**12, width=0.25, dataset="digits")
    study = optuna.create_study(
        study_name=run.record.study_name,
        storage=storage_for(run.path),
        directions=["maximize", "minimize"],
    )
    attrs = {
        "architecture": arch.to_json(),
        "digest": CODE,
        "flops": 1000,
        "trained": True,
        "tune_trial_id": "abc",
        "node_id": CODE,
        "fail_reason": CODE,
    }
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE, values=[0.5, 1000.0], user_attrs=attrs
        )
    )
    folder = run.tune_dir / "trainable_abc_0" / "checkpoint_000000"
    folder.mkdir(parents=True)
    net = build_network(arch, stem="proxy", width=0.25, num_classes=10, in_channels=1)
    torch.save({"epoch": CODE, "model": net.state_dict()}, folder / "state.pt")
    args = ["export", "r", "-o", "m.py"]
    args += ["--best"] if mode == "best" else ["--trial", "0", "--proxy", "--weights"]
    code, err = main.invoke(*args)
    assert code == 0, err  # planted text is data: the export goes ahead
    spec = importlib.util.spec_from_file_location("crafted", main.work / "m.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.PROVENANCE["search"] == "r" and module.PROVENANCE["trial"] == 0
    if mode == "proxy":
        module.build_model()  # loads m.pt beside it
    assert not (main.work / "PWNED").exists(), "the exported file ran planted code"
