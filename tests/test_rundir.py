"""The results folder (attnsearch.rundir) and one trial's training without Ray."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from conftest import make_run

from attnsearch.budget import Budget
from attnsearch.rundir import (
    FailKind,
    NoCheckpointError,
    ResultsError,
    RunDir,
    RunRecord,
    TrialRecord,
    find_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from attnsearch.search import RunSettings
from attnsearch.settings import ConfigError, ProxyConfig

SETTINGS = RunSettings.make(
    Budget("flops", 10**9, "1G"),
    space="tiny",
    dataset="cifar10",
    trials=3,
    epochs=1,
    width=0.25,
    seed=7,
    limit=64,
)


# ---- settings ---------------------------------------------------------------------------
def test_settings_make_routes_proxy_options_and_one_seed():
    assert SETTINGS.proxy == ProxyConfig(epochs=1, width=0.25, seed=7, flip=True)
    assert (SETTINGS.epochs, SETTINGS.width, SETTINGS.seed) == (1, 0.25, 7)
    assert RunSettings.make(dataset="digits").proxy.flip is False
    # the dataset decides unless told (MEASURED.md: a folder of digits must not be flipped)
    assert RunSettings.make(dataset="folder:/d").proxy.flip is True
    assert RunSettings.make(dataset="folder:/d", flip=False).proxy.flip is False
    assert RunSettings.make(dataset="mnist-clutter", flip=None).proxy.flip is False
    assert RunSettings.make(dataset="digits", flip=True).proxy.flip is True
    changed = SETTINGS.replace(trials=5, batch_size=32)
    assert (changed.trials, changed.proxy.batch_size, changed.proxy.epochs) == (5, 32, 1)


def test_settings_dict_round_trip_refuses_unknown_and_mistyped_keys():
    data = SETTINGS.to_dict()
    assert RunSettings.from_dict(yaml.safe_load(yaml.safe_dump(data))) == SETTINGS
    with pytest.raises(ConfigError, match="unknown key.*colour"):
        RunSettings.from_dict({**data, "colour": "red"})
    with pytest.raises(ConfigError, match="unknown key.*depth"):
        RunSettings.from_dict({**data, "proxy": {**data["proxy"], "depth": 3}})
    with pytest.raises(ConfigError, match="trials has the wrong type"):
        RunSettings.from_dict({**data, "trials": "many"})
    with pytest.raises(ConfigError, match="missing key.*budget"):
        RunSettings.from_dict({k: v for k, v in data.items() if k != "budget"})


def test_cli_defaults_are_the_dataclass_defaults():
    from attnsearch.cli.run import command

    defaults = {p.name: p.default for p in command.params}
    for name in ("space", "dataset", "data_dir", "trials", "sampler", "concurrency"):
        assert defaults[name] == getattr(RunSettings(), name), name
    for name in ("epochs", "width", "seed", "resolution"):
        assert defaults[name] == getattr(ProxyConfig(), name), name


# ---- creation, run.yaml, lock -----------------------------------------------------------
def test_create_writes_run_yaml_that_opens_to_the_same_record(tmp_path):
    record = RunRecord(SETTINGS, "", space_file={"a": 1}, provenance={"x": 1})
    run = RunDir.create(tmp_path / "results", "one", record)
    assert run.locked and run.path == tmp_path / "results" / "one"
    assert run.record.study_name.startswith("one-")
    again = RunDir.open(tmp_path / "results", "one")
    assert again.record == run.record
    assert again.settings == SETTINGS
    assert sorted(p.name for p in run.path.iterdir()) == ["lock", "run.yaml"]
    assert sorted(p.name for p in run.path.parent.iterdir()) == ["one"], "no temporary left"


def test_run_yaml_with_an_unknown_key_is_refused(tmp_path):
    run = make_run(tmp_path, "x", 10**9)
    data = yaml.safe_load(run.run_yaml.read_text())
    run.run_yaml.write_text(yaml.safe_dump({**data, "surprise": 1}))
    with pytest.raises(ResultsError, match="unknown key.*surprise"):
        RunDir.open(tmp_path, "x")


def test_run_yaml_stores_the_budget_once_with_its_kind_and_text(tmp_path):
    run = make_run(tmp_path, "x", Budget("latency", 25.0, "25ms"))
    data = yaml.safe_load(run.run_yaml.read_text())
    assert data["budget"] == {"kind": "latency", "value": 25.0, "text": "25ms"}
    assert "latency_budget_ms" not in data and "budget_text" not in data
    assert RunDir.open(tmp_path, "x").settings.budget == Budget("latency", 25.0)


@pytest.mark.parametrize(
    ("old", "budget"),
    [
        pytest.param({"budget": 10**9, "latency_budget_ms": None, "budget_text": "1G"},
                     Budget("flops", 10**9, "1G"), id="flops"),
        # a latency run stored the space's dearest FLOPs as its (non-binding) budget
        pytest.param({"budget": 5 * 10**9, "latency_budget_ms": 25.0, "budget_text": "25ms"},
                     Budget("latency", 25.0, "25ms"), id="latency"),
        pytest.param({"budget": 10**9}, Budget("flops", 10**9, ""), id="older"),
    ],
)  # fmt: skip
def test_run_yaml_of_an_earlier_version_opens_with_its_budget(tmp_path, old, budget):
    """Folders written before the budget was one value (an int ``budget``, with
    ``latency_budget_ms`` and ``budget_text``) open, resume and are rewritten in today's form."""
    run = make_run(tmp_path, "x", 10**9)
    before = run.settings
    data = yaml.safe_load(run.run_yaml.read_text())
    run.run_yaml.write_text(yaml.safe_dump({**data, **old}, sort_keys=False))
    again = RunDir.open(tmp_path, "x")
    assert again.settings.budget == budget and again.settings.budget.text == budget.text
    assert again.settings == dataclasses.replace(before, budget=budget)
    again.save_record(again.record)
    assert yaml.safe_load(run.run_yaml.read_text())["budget"] == budget.to_dict()
    assert RunDir.open(tmp_path, "x").record == again.record


def test_resume_compares_the_budget_as_one_value():
    from attnsearch.budget import parse_cost_budget
    from attnsearch.errors import InputError

    stored = SETTINGS  # 1G
    opts = {"budget": parse_cost_budget("1GFLOPs"), "trials": 9, "address": None, "storage": None}
    again = stored.resumed(opts, {"budget", "trials"}, "run.yaml")
    assert again.budget.text == "1G" and again.trials == 9  # the stored text is kept
    for text, shown in (("2G", "--budget 2G conflicts"), ("25ms", "--budget 25ms conflicts")):
        with pytest.raises(InputError, match=f"{shown}.*1 GFLOPs in run.yaml"):
            stored.resumed({**opts, "budget": parse_cost_budget(text)}, {"budget"}, "run.yaml")
    latency = stored.replace(budget=parse_cost_budget("25ms"))
    with pytest.raises(InputError, match="--budget 1G conflicts.*25 ms in run.yaml"):
        latency.resumed({**opts, "budget": parse_cost_budget("1G")}, {"budget"}, "run.yaml")
    assert latency.resumed({**opts, "budget": parse_cost_budget("25 ms")}, {"budget"}, "y").budget
    # one limit in any spelling: 700 µs is 0.7 ms, though 700 * 1e-3 != 0.7 in floats
    short = stored.replace(budget=parse_cost_budget("0.7ms"))
    again = short.resumed({**opts, "budget": parse_cost_budget("700us")}, {"budget"}, "y")
    assert again.budget.text == "0.7ms"


def test_resume_compares_the_flip_and_names_the_switch_given():
    from attnsearch.errors import InputError

    stored = SETTINGS  # flips on (a folder-like default)
    opts = {"flip": True, "trials": 9, "address": None, "storage": None}
    assert stored.resumed(opts, {"flip"}, "run.yaml").flip is True
    assert stored.resumed({**opts, "flip": None}, set(), "run.yaml").flip is True  # not given
    with pytest.raises(InputError, match=r"^--no-flip conflicts .*\(flip True in run.yaml\)"):
        stored.resumed({**opts, "flip": False}, {"flip"}, "run.yaml")


def test_the_suggested_fidelity_call_keeps_a_flip_the_user_chose():
    from attnsearch.cli._run_impl import fidelity_command

    assert fidelity_command(SETTINGS).endswith("--budget 1000000000")  # the dataset's own
    assert fidelity_command(SETTINGS.replace(flip=False)).endswith(" --no-flip")
    assert fidelity_command(
        RunSettings.make(SETTINGS.budget, dataset="digits", flip=True)
    ).endswith(" --flip")


def test_create_refuses_taken_and_invalid_names_and_leaves_nothing(tmp_path):
    make_run(tmp_path, "taken", 10**9)
    with pytest.raises(ResultsError, match="already exists"):
        make_run(tmp_path, "taken", 10**9)
    with pytest.raises(ResultsError, match="--name '../x'"):
        make_run(tmp_path, "../x", 10**9)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_default_names_never_collide(tmp_path):
    """Many creators in the same second: each gets its own folder, none shares one."""
    runs, errors = [], []

    def create():
        try:
            runs.append(RunDir.create(tmp_path, None, SETTINGS, default_prefix="tiny"))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    names = {r.name for r in runs}
    assert len(names) == 8 and all(n.startswith("tiny-") for n in names)
    assert len({r.record.study_name for r in runs}) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)


def test_failed_creation_leaves_no_folder(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", broken)
    with pytest.raises(ResultsError, match="No space left"):
        RunDir.create(tmp_path, "full", SETTINGS)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


_HOLD = """
import sys, time
from attnsearch.rundir import RunDir
run = RunDir(sys.argv[1]); run.lock(); print("locked", flush=True); time.sleep(60)
"""


def test_lock_refuses_a_second_process_and_dies_with_the_first(tmp_path):
    run = make_run(tmp_path, "locked", 10**9)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(run.path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(
            ResultsError, match=f"running in another process \\(pid {holder.pid}\\)"
        ):
            RunDir(run.path).lock()
    finally:
        holder.kill()
        holder.wait()
    other = RunDir(run.path)
    other.lock()  # the holder died: free again
    assert other.locked
    other.unlock()


def test_discard_removes_only_a_folder_without_results(tmp_path):
    run = make_run(tmp_path, "empty", 10**9)
    assert run.discard() and not run.path.exists()
    created = make_run(tmp_path, "created", 10**9)
    created.journal.write_text('{"op_code": 0, "worker_id": "w"}\n')  # a study, no trial
    assert created.discard() and not created.path.exists()
    kept = make_run(tmp_path, "kept", 10**9)
    kept.journal.write_text('{"op_code": 0}\n{"op_code": 4}\n')
    assert not kept.discard() and kept.path.exists()


# ---- execution log, Ray session ---------------------------------------------------------
def test_execution_log_skips_cut_lines(tmp_path):
    from attnsearch.rundir import record_execution

    run = make_run(tmp_path, "log", 10**9)
    record_execution(run.executions_log, 3, "node", 0, "abc")
    record_execution(run.executions_log, 4, "node", 2, "def")
    with open(run.executions_log, "a") as f:
        f.write('{"trial": 5, "node')  # cut by a crash
    assert [(e.trial, e.start_epoch, e.digest) for e in run.executions()] == [
        (3, 0, "abc"),
        (4, 2, "def"),
    ]
    assert run.executed_trials() == {3, 4}


def test_ray_session_record_is_checked(tmp_path):
    run = make_run(tmp_path, "ray", 10**9)
    assert run.ray_session() is None
    run.record_ray_session("session_2026-01-01_00-00-00_000000_1")
    assert run.ray_session() == "session_2026-01-01_00-00-00_000000_1"
    run.ray_session_file.write_text('{"session": "python"}')  # would match every process
    assert run.ray_session() is None


# ---- trial record -----------------------------------------------------------------------
def test_trial_record_round_trips_user_attrs():
    record = TrialRecord(
        architecture={"backbone": "resnet18", "slots": ["se"] * 8},
        digest="d",
        flops=123,
        trained=True,
        history=[0.5, 0.6],
        fail_kind=FailKind.INTERRUPTED,
        fail_reason="interrupted: ...",
        resumed_from=2,
        extra={"future_field": 1},
    )
    attrs = record.to_user_attrs()
    assert attrs["fail_kind"] == "interrupted" and attrs["future_field"] == 1
    assert "resume_checkpoint" not in attrs and "early_stopped" not in attrs
    assert TrialRecord.from_user_attrs(attrs) == record
    assert not record.counts_as_failure
    assert TrialRecord(fail_kind=FailKind.CANDIDATE).counts_as_failure
    assert TrialRecord.from_user_attrs({"resume_checkpoint": ""}).resume_checkpoint is None


def test_trial_record_sets_only_its_fields():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    trial = study.ask()
    TrialRecord.set(trial, flops=5, fail_kind=FailKind.WORKER)
    assert trial.user_attrs == {"flops": 5, "fail_kind": "worker"}
    with pytest.raises(KeyError, match="fail_reson"):
        TrialRecord.set(trial, fail_reson="typo")


# ---- checkpoints ------------------------------------------------------------------------
def _tune_trial(run: RunDir, folder: str, trial: int, epochs: list[int]) -> Path:
    import json

    import torch

    d = run.tune_dir / folder
    d.mkdir(parents=True)
    (d / "params.json").write_text(json.dumps({"trial_number": trial}))
    for e in epochs:
        c = d / f"checkpoint_{e:06d}"
        c.mkdir()
        save_checkpoint(c, e, {"w": torch.full((2,), float(e))}, {"state": {}} if e < 2 else None)
    return d


def test_find_checkpoint_by_tune_id_then_by_params(tmp_path):
    run = make_run(tmp_path, "ck", 10**9)
    with pytest.raises(NoCheckpointError, match="no checkpoint of trial 0"):
        find_checkpoint(run.path, 0, None)
    _tune_trial(run, "trainable_aaaa1111_1_x", 0, [0, 1, 2])
    _tune_trial(run, "trainable_bbbb2222_2_x", 1, [0])
    last = find_checkpoint(run.path, 0, "aaaa1111")
    assert last.parent.name == "checkpoint_000002" and last.name == "state.pt"
    assert run.find_checkpoint(0, None) == last  # by params.json
    assert find_checkpoint(run.path, 1, "zzzz").parent.name == "checkpoint_000000"
    payload = load_checkpoint(last.parent)
    assert payload["epoch"] == 2 and "optimizer" not in payload
    assert "optimizer" in load_checkpoint(find_checkpoint(run.path, 1, "bbbb2222"))


def test_load_checkpoint_refuses_code_and_garbage(tmp_path):
    import torch

    class Evil:
        def __reduce__(self):
            return (print, ("ran code",))

    path = tmp_path / "state.pt"
    torch.save({"epoch": 1, "model": {}, "x": Evil()}, path)
    with pytest.raises(ResultsError, match="not a readable checkpoint"):
        load_checkpoint(path)
    path.write_bytes(b"garbage")
    with pytest.raises(ResultsError, match="not a readable checkpoint"):
        load_checkpoint(path)


# ---- one trial, in process, no Ray ------------------------------------------------------
def test_run_trial_one_epoch_in_process_and_resume_from_its_checkpoint(tmp_path):
    from attnsearch import Architecture
    from attnsearch.datasets import load_dataset
    from attnsearch.search import run_trial

    data = load_dataset("synthetic", resolution=8, limit=64, seed=0)
    arch = Architecture.from_json({"backbone": "resnet18", "all": {"type": "se"}})
    proxy = ProxyConfig(epochs=2, width=0.25, batch_size=16)
    reports, starts = [], []

    def report(metrics, payload):
        reports.append(metrics)
        save_checkpoint(tmp_path, payload["epoch"], payload["model"], payload.get("optimizer"))
        if metrics["epoch"] == 1:
            (tmp_path / "state.pt").rename(tmp_path / "epoch1.pt")

    out = run_trial(arch, proxy, data, 0, report, on_start=starts.append, threads=1)
    assert out.failed is None and starts == [0]
    assert [r["epoch"] for r in reports] == [1, 2] and out.epoch == 2
    assert 0.0 <= out.accuracy <= 1.0 and out.history == [r["accuracy"] for r in reports]
    # continuing from the epoch-1 checkpoint trains epoch 2 only (the data order is not
    # restored, so the accuracy is close to, not equal to, the uninterrupted run's)
    again = run_trial(
        arch, proxy, data, 0, None, checkpoint=tmp_path / "epoch1.pt", on_start=starts.append
    )
    assert starts == [0, 1] and again.epoch == 2 and len(again.history) == 1
    assert 0.0 <= again.accuracy <= 1.0


def test_run_trial_reports_a_failing_candidate_as_an_outcome():
    from attnsearch import Architecture
    from attnsearch.datasets import load_dataset
    from attnsearch.search import run_trial

    data = load_dataset("synthetic", resolution=8, limit=32, seed=0)
    broken = dataclasses.replace(data, std=tuple(0.0 for _ in data.std))  # inputs become inf
    arch = Architecture.uniform("resnet18")
    out = run_trial(arch, ProxyConfig(epochs=1, width=0.25, batch_size=16), broken, 0)
    assert out.accuracy is None and out.failed.startswith("TrainingError: training loss became")


def test_every_trial_attribute_that_is_not_text_has_its_kind():
    """A TrialRecord field read back from a storage is type-checked by its kind; a field
    added without one would be checked as a string and refuse every real trial."""
    import dataclasses

    from attnsearch.rundir._trial import _ATTR_KINDS, TrialRecord

    for f in dataclasses.fields(TrialRecord):
        if f.name == "extra":
            continue
        text = str(f.type).replace(" ", "")
        if text not in ("str|None", "str"):
            assert f.name in _ATTR_KINDS, f"{f.name} ({text}) has no kind in _ATTR_KINDS"
