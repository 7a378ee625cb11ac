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
    "budget_huge": ("value: 2000000000", f"value: {HUGE}"),
    "budget_kind": ("kind: flops", "kind: joules"),
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


# ---- hostile results folders (issue 18): nothing read from one is opened as a path, waited
# on, followed out of the folder or built without bound; one line and exit 2 -------------------
def _hostile_run(work: Path, **attrs):
    """``results/r``: one trained search trial (attributes overridable), a stale trials.csv
    (``old``) that a refused ``pareto`` must leave alone, and ``outside.txt`` beside it."""
    import optuna
    from conftest import make_run

    from attnsearch import Architecture
    from attnsearch.results import storage_for

    arch = Architecture.uniform("resnet18", "se")
    run = make_run(work / "results", "r", 10**12, width=0.25, dataset="synthetic", limit=64)
    study = optuna.create_study(
        study_name=run.record.study_name,
        storage=storage_for(run.path),
        directions=["maximize", "minimize"],
    )
    user_attrs = {
        "architecture": arch.to_json(),
        "digest": arch.digest(),
        "flops": 1000,
        "trained": True,
        "tune_trial_id": "abc",
        **attrs,
    }
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE, values=[0.5, 1000.0], user_attrs=user_attrs
        )
    )
    (run.path / "trials.csv").write_text("old\n")
    (work / "outside.txt").write_text("keep\n")
    return run


def _fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def _deep(n: int = 5000) -> str:
    return "[" * n + "]" * n


def _checkpoint(run, name: str = "trainable_abc_0") -> Path:
    folder = run.tune_dir / name / "checkpoint_000000"
    folder.mkdir(parents=True)
    return folder / "state.pt"


YAML_BOMB = "space_file:\n  a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"  {n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n"
    for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)

PARETO = ["pareto", "r"]
BEST = ["export", "r", "--best", "-o", "m.py"]
TRIAL = ["export", "r", "--trial", "0", "-o", "m.py"]
PROXY = ["export", "r", "--trial", "0", "--proxy", "-o", "m.py"]
RESUME = ["run", "--name", "r", "--resume"]

# id -> (attributes of the trial, edit(run, work), commands, what the one line names)
HOSTILE = {
    # writes that follow symlinks planted in the folder
    "lock_symlink": (
        {},
        lambda run, work: (run.path / "lock").symlink_to(work / "outside.txt"),
        [RESUME],
        "lock file is a symlink",
    ),
    "trials_csv_symlink": (
        {},
        lambda run, work: (
            (run.path / "trials.csv").unlink(),
            (run.path / "trials.csv").symlink_to(work / "outside.txt"),
        ),
        [PARETO],
        "trials.csv: is a symlink",
    ),
    # an architecture that is a string is never opened as a file path
    "architecture_names_a_file": (
        {"architecture": "arch.json"},
        None,
        [PARETO, BEST, TRIAL],
        "'architecture' is 'arch.json'",
    ),  # fmt: skip
    "architecture_names_a_fifo": (
        {"architecture": "fifo.json"},
        lambda run, work: _fifo(work / "fifo.json"),
        [PARETO, BEST, TRIAL],
        "'architecture' is 'fifo.json'",
    ),  # fmt: skip
    "architecture_names_dev_zero": (
        {"architecture": "/dev/zero"},
        None,
        [PARETO, TRIAL],
        "architecture",
    ),  # fmt: skip
    "architecture_a_list": ({"architecture": [1, 2]}, None, [PARETO, TRIAL], "architecture"),
    "architecture_nested": (
        {"architecture": {"backbone": json.loads(_deep(200))}},
        None,
        [PARETO],
        "architecture",
    ),  # fmt: skip
    # values of the wrong type or range in the journal's user attributes
    "flops_a_word": ({"flops": "many"}, None, [PARETO, BEST], "'flops'"),
    "flops_negative": ({"flops": -5}, None, [PARETO, BEST], "'flops'"),
    "latency_a_word": ({"latency_ms": "fast"}, None, [PARETO], "'latency_ms'"),
    "trained_a_word": ({"trained": "yes"}, None, [PARETO, TRIAL], "'trained'"),
    "journal_nested": (
        {},
        lambda run, work: run.journal.write_bytes(
            run.journal.read_bytes() + b'{"op_code": ' + _deep().encode() + b"}\n"
        ),
        [PARETO, TRIAL],
        "study.journal",
    ),
    "journal_symlink": (
        {},
        lambda run, work: (
            (work / "outside.txt").write_bytes(run.journal.read_bytes()),
            run.journal.unlink(),
            run.journal.symlink_to(work / "outside.txt"),
        ),
        [PARETO, RESUME],
        "study.journal is not a regular file",
    ),
    # run.yaml: nested, an alias bomb, a FIFO
    "run_yaml_nested": (
        {},
        lambda run, work: run.run_yaml.write_text(f"budget: 1\nstudy_name: x\na: {_deep()}\n"),
        [PARETO, RESUME],
        "run.yaml",
    ),
    "run_yaml_alias_bomb": (
        {},
        lambda run, work: run.run_yaml.write_text(
            run.run_yaml.read_text().replace("space_file: null\n", YAML_BOMB)
        ),
        [PARETO, RESUME],
        "aliases expand",
    ),
    "run_yaml_fifo": ({}, lambda run, work: _fifo(run.run_yaml), [PARETO, RESUME], "run.yaml"),
    # pareto.json (export --best reads it): wrong types, nested, a FIFO
    "pareto_json_trial_a_word": (
        {},
        lambda run, work: (run.path / "pareto.json").write_text(
            '[{"trial": "x", "accuracy": 0.5, "flops": 1000}]'
        ),
        [BEST],
        "pareto.json",
    ),
    "pareto_json_accuracy_a_word": (
        {},
        lambda run, work: (run.path / "pareto.json").write_text(
            '[{"trial": 0, "accuracy": "high", "flops": 1000}]'
        ),
        [BEST],
        "pareto.json",
    ),
    "pareto_json_nested": (
        {},
        lambda run, work: (run.path / "pareto.json").write_text(_deep()),
        [BEST],
        "pareto.json",
    ),
    "pareto_json_fifo": (
        {},
        lambda run, work: _fifo(run.path / "pareto.json"),
        [BEST],
        "pareto.json",
    ),  # fmt: skip
    # the trial's Tune folder: FIFOs where params.json and the checkpoint should be
    "tune_params_fifo": (
        {"tune_trial_id": "zzz"},
        lambda run, work: (
            _checkpoint(run, "trainable_other_0"),
            _fifo(run.tune_dir / "trainable_other_0" / "params.json"),
        ),
        [PROXY],
        "no checkpoint of trial 0",
    ),
    "checkpoint_fifo": ({}, lambda run, work: _fifo(_checkpoint(run)), [PROXY], "state.pt"),
}


def _hostile_cases():
    for case, (_, _, commands, _) in HOSTILE.items():
        for command in commands:
            yield pytest.param(case, command, id=f"{case}-{'-'.join(command[:3:2])}")


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("case", "command"), list(_hostile_cases()))
def test_hostile_results_folders(main, case, command):
    """Refused in one line, exit 2, nothing written outside the folder, trials.csv as it was
    (``pareto`` checks everything before its first write), nothing created."""
    attrs, edit, _, needle = HOSTILE[case]
    run = _hostile_run(main.work, **attrs)
    if edit is not None:
        edit(run, main.work)
    _refused(main(*command), needle)
    assert (main.work / "outside.txt").read_bytes() in (b"keep\n", run.journal.read_bytes())
    csv = run.path / "trials.csv"
    if csv.is_file() and not csv.is_symlink():
        assert csv.read_text() == "old\n"


# planted where the previous version put its temporary files: never followed now
PLANTED_TMP = ["trials.csv.tmp", "pareto.json.tmp", "pareto.csv.tmp", "summary.json.tmp",
               "profiles.json.tmp", "pareto.tmp.png"]  # fmt: skip


def test_pareto_never_writes_through_planted_temporary_files(main):
    run = _hostile_run(main.work)
    for name in PLANTED_TMP:
        (run.path / name).symlink_to(main.work / "outside.txt")
    code, err = main.invoke("pareto", "r")
    assert code == 0, err
    assert (main.work / "outside.txt").read_text() == "keep\n"
    assert all((run.path / name).is_symlink() for name in PLANTED_TMP)
    assert json.loads((run.path / "pareto.json").read_text())[0]["trial"] == 0
    assert (run.path / "pareto.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "profiles",
    [
        pytest.param(lambda d: {d: {"params": "x", "macs_conv_linear": 1, "flops": 1}}, id="types"),
        pytest.param(lambda d: {d: {"params": -1, "macs_conv_linear": 1, "flops": 1}}, id="range"),
        pytest.param(lambda d: [1, 2], id="a_list"),
        pytest.param(lambda d: json.loads(_deep(500)), id="nested"),
    ],
)
def test_a_bad_profiles_cache_is_measured_again(main, profiles):
    """profiles.json is a cache: entries of the wrong type or shape are measured again."""
    run = _hostile_run(main.work)
    digest = _hostile_digest()
    (run.path / "profiles.json").write_text(json.dumps(profiles(digest)))
    code, err = main.invoke("pareto", "r")
    assert code == 0, err
    member = json.loads((run.path / "pareto.json").read_text())[0]
    assert isinstance(member["params"], int) and member["params"] > 0
    assert json.loads((run.path / "profiles.json").read_text())[digest]["params"] > 0


def _hostile_digest() -> str:
    from attnsearch import Architecture

    return Architecture.uniform("resnet18", "se").digest()


def test_execution_log_never_follows_a_symlink(tmp_path):
    from attnsearch.rundir import read_executions, record_execution

    outside = tmp_path / "outside"
    outside.write_text("keep\n")
    log = tmp_path / "executions.jsonl"
    log.symlink_to(outside)
    record_execution(log, 0, "node", 0, "d")  # best effort: skipped, never through the link
    assert outside.read_text() == "keep\n"
    log.unlink()
    _fifo(log)
    record_execution(log, 0, "node", 0, "d")  # a FIFO without reader: skipped, not waited on
    assert read_executions(log) == []


def test_export_output_that_is_a_symlink(main):
    (main.work / "outside.txt").write_text("keep\n")
    (main.work / "m.py").symlink_to(main.work / "outside.txt")
    _refused(main("export", "--arch", "arch.json", "-o", "m.py", "--force"), "symlink")
    assert (main.work / "outside.txt").read_text() == "keep\n"


def test_export_is_atomic(main, monkeypatch):
    """Interrupted while writing the weights: neither model.py nor the weights are left."""
    import torch

    from attnsearch import Architecture
    from attnsearch.backbones import build_network

    run = _hostile_run(main.work)
    arch = Architecture.uniform("resnet18", "se")
    net = build_network(arch, stem="proxy", width=0.25, num_classes=4, in_channels=3)
    torch.save({"epoch": 1, "model": net.state_dict()}, _checkpoint(run))
    real_save = torch.save

    def save_then_die(obj, f, *args, **kwargs):
        if isinstance(f, str | os.PathLike):
            Path(f).write_bytes(b"half")
        else:
            f.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", save_then_die)
    code, _ = main.invoke("export", "r", "--trial", "0", "--proxy", "--weights", "-o", "m.py")
    monkeypatch.setattr(torch, "save", real_save)
    assert code == 130
    assert sorted(p.name for p in main.work.iterdir() if p.suffix in (".py", ".pt")) == []
    assert not [p for p in main.work.iterdir() if p.name.endswith(".tmp")]


# ---- spaces, architectures and latency tables: nested, alias bombs, FIFOs ------------------
SPACES_MORE = {
    "nested": TINY.replace("num_classes: 1000", f"num_classes: {_deep()}").encode(),
    "alias_bomb": (TINY + "\n" + YAML_BOMB.replace("space_file:", "description:")).encode(),
    "block_nested": (TINY + "x:\n" + "".join(" " * i + "-\n" for i in range(1, 300))).encode(),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", [*SPACES_MORE, "fifo"])
def test_space_files_nested_bombs_fifos(main, case):
    if case == "fifo":
        _fifo(main.work / "bad.yaml")
    else:
        (main.work / "bad.yaml").write_bytes(SPACES_MORE[case])
    _refused(main("run", *RUN[1:3], "--space", "bad.yaml", *RUN[5:]), "bad.yaml")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", ["nested", "fifo", "dev_zero"])
@pytest.mark.parametrize("command", ["profile", "export"])
def test_architecture_files_nested_fifos_devices(main, case, command):
    path = "/dev/zero" if case == "dev_zero" else "bad.json"
    if case == "fifo":
        _fifo(main.work / path)
    elif case == "nested":
        (main.work / path).write_text('{"backbone": "resnet18", "all": ' + _deep() + "}")
    args = ["profile", path] if command == "profile" else ["export", "--arch", path, "-o", "m.py"]
    _refused(main(*args), path)


def _latency_table() -> dict:
    from attnsearch.architecture import SlotChoice
    from attnsearch.latency import FORMAT_VERSION, choice_key

    none = choice_key(SlotChoice("none", ()))
    return {
        "format": FORMAT_VERSION, "backbone": "resnet18", "num_classes": 1000,
        "device": "cpu", "dtype": "float32", "batch": 1, "input": [3, 224, 224],
        "threads": None, "warmup": 1, "repeats": 1, "min_sample_ms": 1.0,
        "stem_ms": 1.0, "head_ms": 1.0, "slots": [{none: 1.0}] * 8,
    }  # fmt: skip


LATENCY_TABLES = {
    "num_classes_a_word": {"num_classes": "x"},
    "num_classes_huge": {"num_classes": 10**12},
    "batch_huge": {"batch": 10**12},
    "input_huge": {"input": [3, 10**9, 10**9]},
    "min_sample_a_word": {"min_sample_ms": "x"},
    "meta_a_list": {"meta": [1]},
    "nested": {"meta": json.loads(_deep(200))},
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", [*LATENCY_TABLES, "fifo"])
def test_latency_tables(main, monkeypatch, case):
    import attnsearch.latency

    monkeypatch.setattr(attnsearch.latency, "build_table", Tripwire)
    if case == "fifo":
        _fifo(main.work / "bad.json")
    else:
        (main.work / "bad.json").write_text(
            json.dumps({**_latency_table(), **LATENCY_TABLES[case]})
        )
    args = ["run", "--budget", "25ms", "--space", "tiny", "--dataset", "synthetic"]
    _refused(main(*args, "--latency-table", "bad.json"), "bad.json")


@pytest.mark.timeout(300)
def test_an_impossible_latency_budget_is_refused_before_the_table_is_measured(main, monkeypatch):
    import attnsearch.latency

    monkeypatch.setattr(attnsearch.latency, "build_table", Tripwire)
    args = ["run", "--budget", "0.001ms", "--space", "tiny", "--dataset", "synthetic"]
    _refused(main(*args, "--limit", "64"), "stem and head")


# ---- names, file names and paths ---------------------------------------------------------
@pytest.mark.parametrize("name", ["r\n", "r\r", "r\t", "r\x1b"])
def test_run_names_with_control_characters(main, name):
    _refused(main(*RUN, "--name", name), "--name")


def test_file_names_with_newlines_stay_on_one_line(main):
    (main.work / "bad\nname.yaml").write_bytes(b"\xff")
    _refused(main("run", *RUN[1:3], "--space", "bad\nname.yaml", *RUN[5:]), "bad\\nname.yaml")
    (main.work / "bad\nname.json").write_bytes(b"[1]")
    _refused(main("profile", "bad\nname.json"), "bad\\nname.json")


LONG = "a" * 300
LONG_PATHS = [
    pytest.param(["pareto", "x", "--results-dir", LONG], id="pareto"),
    pytest.param([*RUN, "--results-dir", LONG, "--name", "x"], id="run"),
    pytest.param(["run", "--name", "x", "--resume", "--results-dir", LONG], id="resume"),
    pytest.param([*RUN[:7], "--dataset", f"folder:{LONG}"], id="folder"),
    pytest.param(["export", "--arch", "arch.json", "-o", f"{LONG}.py"], id="export"),
    pytest.param(["fidelity", "--space", "tiny", "-o", f"{LONG}.json"], id="fidelity"),
    pytest.param(["profile", f"{LONG}.json"], id="profile"),
    pytest.param(["run", *RUN[1:3], "--space", f"{LONG}.yaml"], id="space"),
]


@pytest.mark.parametrize("args", LONG_PATHS)
def test_over_long_paths(main, args):
    code, err = main(*args)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


# ---- memory: refused before it is allocated -----------------------------------------------
@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(["--dataset", "digits", "--resolution", "4096"], id="dataset"),
        pytest.param(
            ["--dataset", "digits", "--resolution", "1024", "--limit", "64"], id="training"
        ),  # fmt: skip
    ],
)
def test_memory_is_checked_before_allocating(main, monkeypatch, extra):
    import attnsearch.memory

    monkeypatch.setattr(attnsearch.memory, "available_bytes", lambda device="cpu": 8 * 10**9)
    _refused(main("run", "--budget", "2G", "--space", "tiny", *extra), "memory")


@pytest.mark.timeout(300)
def test_profile_of_a_huge_input_allocates_nothing(tmp_path):
    """Counted on the meta device: 3×16384×16384 under a 6 GB address-space limit (the
    previous version allocated tens of GB)."""
    import subprocess
    import sys

    (tmp_path / "a.json").write_text(json.dumps({"backbone": "resnet50", "all": "cbam"}))
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30)); "
        "from attnsearch.cli import main; main(sys.argv[1:])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "profile", "a.json", "--input", "3,16384,16384", "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    from attnsearch import Architecture
    from attnsearch.flops.analytic import analytic_flops

    arch = Architecture.from_json(
        {"backbone": "resnet50", "all": "cbam", "input": [3, 16384, 16384]}
    )
    assert json.loads(proc.stdout)["flops"] == analytic_flops(arch)


# ---- image folders of chained (not looping) symlinks ----------------------------------------
def _chain(root: Path, depth: int) -> None:
    """Two class folders, each entering L0; every Li holds two links to L(i+1): 2**depth
    paths, no loop."""
    for c in ("a", "b"):
        (root / "imgs" / c).mkdir(parents=True)
    for i in range(depth + 1):
        (root / f"L{i}").mkdir()
    for i in range(depth):
        for n in "xy":
            (root / f"L{i}" / n).symlink_to(root / f"L{i + 1}")
    for c in ("a", "b"):
        (root / "imgs" / c / "l0").symlink_to(root / "L0")


@pytest.mark.timeout(120)
def test_image_folder_of_chained_symlinks(main):
    _chain(main.work, 40)
    args = ["run", "--budget", "2G", "--space", "tiny", "--dataset", "folder:imgs"]
    _refused(main(*args), "symlinks")


@pytest.mark.parametrize(("limit", "needle"), [("MAX_WALK_ENTRIES", "entries"),
                                               ("WALK_DEADLINE_S", "took more than")])  # fmt: skip
def test_image_folder_walk_is_bounded(main, monkeypatch, limit, needle):
    from attnsearch.datasets import _folder

    monkeypatch.setattr(_folder, limit, 10 if limit == "MAX_WALK_ENTRIES" else -1.0)
    _chain(main.work, 8)  # within the symlink depth: only the budget stops it
    args = ["run", "--budget", "2G", "--space", "tiny", "--dataset", "folder:imgs"]
    _refused(main(*args), needle)
