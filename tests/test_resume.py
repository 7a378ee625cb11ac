"""Resume and fault tolerance: kills, Ctrl-C, locks, corrupted folders (real Ray, CPU)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import cli, one_line_exit_2

from attnsearch.budget import Budget
from attnsearch.proposal import ask
from attnsearch.results import open_study
from attnsearch.rundir import FailKind, NoCheckpointError, RunDir, TrialRecord, find_checkpoint

TRIALS = 6
ARGS = [
    "--budget",
    "2G",
    "--space",
    "tiny",
    "--dataset",
    "synthetic",
    "--limit",
    "160",
    "--resolution",
    "8",
    "--width",
    "0.25",
    "--epochs",
    "3",
    "--concurrency",
    "2",
    "--sampler",
    "random",
    "--seed",
    "1",
    # these tests count search trials and architectures trained once; references and
    # repeats (extra trainings by design) have their own resume tests in test_repeats.py
    "--repeats",
    "1",
    "--references",
    "none",
    "--checkpoint-interval",  # an epoch checkpoint every epoch: the kills test resuming
    "0",
]


def _start(name, cwd, trials=TRIALS, extra=()):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "attnsearch",
            "run",
            *ARGS,
            "--trials",
            str(trials),
            "--name",
            name,
            *extra,
        ],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _study(run_dir: Path):
    return open_study(run_dir, RunDir.open(run_dir.parent, run_dir.name).record.study_name)


def _counts(run_dir: Path) -> tuple[int, int]:
    """(trained and complete, running) — read from the storage while the driver writes."""
    if not (run_dir / "study.journal").exists():
        return 0, 0
    try:
        study = _study(run_dir)
    except Exception:
        return 0, 0
    complete = sum(
        t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs.get("trained")
        for t in study.trials
    )
    running = sum(t.state == optuna.trial.TrialState.RUNNING for t in study.trials)
    return complete, running


def _wait_for(run_dir, proc, complete, running, timeout=300):
    end = time.time() + timeout
    while time.time() < end:
        c, r = _counts(run_dir)
        if c >= complete and r >= running:
            return c, r
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"driver ended early ({proc.returncode}): {err[-2000:]}")
        time.sleep(0.5)
    pytest.fail("timed out waiting for trials")


def _wait_for_checkpoint(run_dir, proc, timeout=300):
    """Until a trial still RUNNING in the storage has saved an epoch checkpoint."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            running = [
                (t.number, t.user_attrs.get("tune_trial_id"))
                for t in _study(run_dir).trials
                if t.state == optuna.trial.TrialState.RUNNING
            ]
        except Exception:
            running = []
        for n, tune_id in running:
            try:
                find_checkpoint(run_dir, n, tune_id)
                return n
            except (NoCheckpointError, OSError):
                continue
        if proc.poll() is not None:
            pytest.fail(f"driver ended early ({proc.returncode})")
        time.sleep(0.3)
    pytest.fail("timed out waiting for a checkpoint of a running trial")


def _executions(run_dir: Path) -> list[dict]:
    return [dataclasses.asdict(e) for e in RunDir(run_dir).executions()]


def _session_alive(run_dir: Path) -> bool:
    session = json.loads((run_dir / "ray_session.json").read_text())["session"]
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if session.encode() in (proc / "cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


def _check_finished(run_dir: Path, before_kill: set[str], kill_time: float | None):
    """The resumed search finished exactly; ``before_kill``: digests of the architectures
    whose training had completed before the kill."""
    study = _study(run_dir)
    done = [
        t
        for t in study.trials
        if t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs.get("trained")
    ]
    assert len(done) == TRIALS, "exactly the requested number of completed trials"
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    executions = _executions(run_dir)
    for t in done:  # no completed trial's training executed twice
        assert sum(e["trial"] == t.number for e in executions) == 1, t.number
    if kill_time is not None:  # architectures trained before the crash never trained again
        again = [e for e in executions if e["digest"] in before_kill and e["time"] > kill_time]
        assert not again, again
    for t in done:  # re-runs continue from their checkpoint
        if t.user_attrs.get("resume_checkpoint"):
            (e,) = [e for e in executions if e["trial"] == t.number]
            assert e["start_epoch"] > 0
    front = json.loads((run_dir / "pareto.json").read_text())
    assert sorted(m["trial"] for m in front) == sorted(t.number for t in study.best_trials)
    return study


def test_sigkill_mid_search_then_resume(tmp_path):
    run_dir = tmp_path / "results" / "crash"
    # longer trials (more images, 4 epochs) so that the kill lands mid-training
    proc = _start("crash", tmp_path, extra=["--limit", "1200", "--epochs", "4"])
    _wait_for(run_dir, proc, complete=2, running=1)
    # a second driver on the same search refuses while the first runs
    second = cli("run", "--name", "crash", "--resume", cwd=tmp_path)
    assert second.returncode == 2 and "running in another process" in second.stderr
    _wait_for_checkpoint(run_dir, proc)
    kill_time = time.time()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)

    state = _study(run_dir).trials
    before = {
        t.user_attrs["digest"]
        for t in state
        if t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs.get("trained")
    }
    assert before
    checkpointed = set()
    for t in state:
        if t.state == optuna.trial.TrialState.RUNNING:
            try:
                find_checkpoint(run_dir, t.number, t.user_attrs.get("tune_trial_id"))
                checkpointed.add(t.number)
            except (NoCheckpointError, OSError):
                pass
    assert checkpointed, "the kill landed while a trial with a checkpoint was running"
    resumed = cli("run", "--name", "crash", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    study = _check_finished(run_dir, before, kill_time)
    interrupted = [
        t
        for t in study.trials
        if t.state == optuna.trial.TrialState.FAIL
        and TrialRecord.of(t).fail_kind == FailKind.INTERRUPTED
    ]
    assert interrupted, "the trials running at the kill are marked failed and re-run"
    reruns = [t for t in study.trials if "resumed_from" in t.user_attrs]
    assert {t.user_attrs["resumed_from"] for t in reruns} == {t.number for t in interrupted}
    by_number = {t.number: t for t in study.trials}
    for rerun in reruns:  # a re-run trains the interrupted trial's architecture
        original = by_number[rerun.user_attrs["resumed_from"]]
        assert rerun.user_attrs["digest"] == original.user_attrs["digest"]
    for rerun in reruns:
        if rerun.user_attrs["resumed_from"] in checkpointed:  # continued from its checkpoint
            assert rerun.user_attrs["resume_checkpoint"]
            starts = [e["start_epoch"] for e in _executions(run_dir) if e["trial"] == rerun.number]
            assert len(starts) == 1 and starts[0] >= 1
    assert not _session_alive(run_dir), "the crashed driver's Ray processes are gone"


def test_sigint_exits_130_then_resume_completes(tmp_path):
    run_dir = tmp_path / "results" / "ctrlc"
    proc = _start("ctrlc", tmp_path)
    _wait_for(run_dir, proc, complete=1, running=1)
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err[-2000:]
    assert "attnsearch run --name ctrlc --resume" in err
    assert "Traceback" not in err
    assert not _session_alive(run_dir)
    resumed = cli("run", "--name", "ctrlc", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _check_finished(run_dir, set(), None)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A finished two-trial search to damage in different ways."""
    cwd = tmp_path_factory.mktemp("small")
    proc = cli("run", *ARGS, "--trials", "2", "--epochs", "1", "--name", "ok", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd / "results" / "ok"


def _copy(small_run, tmp_path) -> Path:
    dst = tmp_path / "results" / "ok"
    shutil.copytree(small_run, dst)
    return dst


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_resume_of_a_finished_search_runs_nothing(small_run, tmp_path):
    run_dir = _copy(small_run, tmp_path)
    n = len(_executions(run_dir))
    proc = cli("run", "--name", "ok", "--resume", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(_executions(run_dir)) == n


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        ("missing_yaml", "not an attnsearch results folder"),
        ("garbage_yaml", "run.yaml is corrupted"),
        ("garbage_journal", "study.journal is corrupted"),
        ("truncated_journal", "study.journal is corrupted"),
        ("missing_journal", "study.journal is missing"),
    ],
)
def test_damaged_folders_are_named_and_left_alone(small_run, tmp_path, damage, needle):
    run_dir = _copy(small_run, tmp_path)
    journal = run_dir / "study.journal"
    if damage == "missing_yaml":
        (run_dir / "run.yaml").unlink()
    elif damage == "garbage_yaml":
        (run_dir / "run.yaml").write_text("{{{: not yaml")
    elif damage == "garbage_journal":
        journal.write_bytes(b"\x00\xffnot a journal\n")
    elif damage == "truncated_journal":
        journal.write_bytes(journal.read_bytes()[: len(journal.read_bytes()) // 3])
    elif damage == "missing_journal":
        journal.unlink()
    before = _snapshot(run_dir)
    for args in (["run", "--name", "ok", "--resume"], ["pareto", "ok"]):
        one_line_exit_2(cli(*args, cwd=tmp_path), needle)
    assert _snapshot(run_dir) == before, "nothing overwritten"


def test_missing_or_foreign_names(tmp_path):
    one_line_exit_2(cli("run", "--resume", cwd=tmp_path), "--resume needs --name")
    one_line_exit_2(cli("run", "--name", "nope", "--resume", cwd=tmp_path), "no search named")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "afile").write_text("x")
    one_line_exit_2(cli("run", "--name", "afile", "--resume", cwd=tmp_path), "not a folder")


def test_conflicting_settings_are_refused(small_run, tmp_path):
    _copy(small_run, tmp_path)
    proc = cli("run", "--name", "ok", "--resume", "--budget", "3G", cwd=tmp_path)
    one_line_exit_2(proc, "conflicts with the search being resumed")
    proc = cli("run", "--name", "ok", "--resume", "--epochs", "5", cwd=tmp_path)
    one_line_exit_2(proc, "--epochs 5 conflicts")


def test_resume_with_more_trials_continues(small_run, tmp_path):
    run_dir = _copy(small_run, tmp_path)
    proc = cli("run", "--name", "ok", "--resume", "--trials", "3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    study = _study(run_dir)
    assert sum(bool(t.user_attrs.get("trained")) for t in study.trials) == 3
    assert RunDir.open(run_dir.parent, "ok").settings.trials == 3


# ---- moved folders, persisted re-runs, changed inputs, broken checkpoints -----------------
def test_a_moved_run_folder_resumes_in_its_new_place(small_run, tmp_path):
    """--resume works in the folder named on the command line; the old place is untouched."""
    old = _copy(small_run, tmp_path / "old")
    before = _snapshot(old)
    new = tmp_path / "elsewhere" / "moved"
    shutil.copytree(old, new)
    proc = cli(
        "run", "--name", "moved", "--resume", "--trials", "3", "--results-dir", "elsewhere",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _snapshot(old) == before, "the folder it was copied from is untouched"
    study = _study(new)
    assert sum(bool(t.user_attrs.get("trained")) for t in study.trials) == 3
    assert len(_executions(new)) == len(_executions(old)) + 1
    assert RunDir.open(new.parent, "moved").settings.trials == 3


def _stopped_run(tmp_path, interrupted: int):
    """A run folder whose driver 'died' with ``interrupted`` trials training (one with a
    checkpoint) and one trial asked but never started; no Ray."""
    from conftest import make_run

    from attnsearch import Architecture
    from attnsearch.flops.analytic import analytic_flops
    from attnsearch.results import storage_for
    from attnsearch.rundir import record_execution, save_checkpoint
    from attnsearch.search import Proposer, make_sampler
    from attnsearch.search._resume import pending_reruns
    from attnsearch.spaces import load_space

    budget = 10 * analytic_flops(Architecture.uniform("resnet18"))
    run = make_run(tmp_path / "results", "stopped", budget, space="tiny", width=0.25)
    space = load_space("tiny")

    def core():
        study = optuna.create_study(
            study_name=run.record.study_name,
            storage=storage_for(run.path),
            directions=["maximize", "minimize"],
            sampler=make_sampler("random", 0, 8),
            load_if_exists=True,
        )
        search = Proposer(study, space, space.options(0.25), budget)
        search.pending_reruns = lambda: pending_reruns(run, study)
        return study, search

    study, search = core()
    for i in range(interrupted):
        trial, config = ask(search)
        TrialRecord.set(trial, config=config, tune_trial_id=f"t{i:03d}")  # as the searcher
        record_execution(run.executions_log, trial.number, "node", 0, config["digest"])
        if i == 0:
            folder = run.tune_dir / f"trainable_t{i:03d}_1" / "checkpoint_000000"
            folder.mkdir(parents=True)
            save_checkpoint(folder, 1, {"w": torch_zeros()}, None)
    ask(search)  # asked, never started
    return run, core


def torch_zeros():
    import torch

    return torch.zeros(2)


def test_interrupted_trials_to_rerun_survive_a_second_crash(tmp_path):
    """Re-runs are derived from the storage: a crash before they start, or more re-runs than
    one driver asks for, loses none of them (nor their checkpoints)."""
    from attnsearch.rundir import record_execution
    from attnsearch.search._resume import reconcile

    run, core = _stopped_run(tmp_path, interrupted=3)
    study, search = core()
    reruns = reconcile(run, study)
    assert [r.trial for r in reruns] == [0, 1, 2]
    assert reruns[0].checkpoint and Path(reruns[0].checkpoint).is_dir()
    first, config = ask(search)  # the re-run of trial 0 is asked, then the driver dies
    assert first.user_attrs["resumed_from"] == 0 and config["resume_checkpoint"]
    study, search = core()  # the second driver
    reruns = reconcile(run, study)
    assert [r.trial for r in reruns] == [0, 1, 2], "a re-run that never started is pending"
    assert reruns[0].checkpoint == str(next(run.tune_dir.glob("*/checkpoint_*")))
    checkpoint0 = reruns[0].checkpoint
    got, config = ask(search)
    assert got.user_attrs["resumed_from"] == 0
    assert config["resume_checkpoint"] == checkpoint0
    TrialRecord.set(got, config=config, tune_trial_id="r0")  # as the searcher does
    record_execution(run.executions_log, got.number, "node", 1, config["digest"])
    study, search = core()  # a third driver: the started re-run was interrupted in turn
    reruns = reconcile(run, study)
    assert [r.trial for r in reruns] == [1, 2, got.number]
    assert reruns[-1].checkpoint == checkpoint0, "falls back to trial 0's checkpoint"


def test_a_truncated_resume_checkpoint_trains_from_scratch_once(tmp_path):
    from attnsearch import Architecture
    from attnsearch.datasets import load_dataset
    from attnsearch.rundir import save_checkpoint
    from attnsearch.search import run_trial
    from attnsearch.settings import ProxyConfig

    data = load_dataset("synthetic", resolution=8, limit=32, seed=0)
    arch = Architecture.uniform("resnet18")
    proxy = ProxyConfig(epochs=1, width=0.25, batch_size=16)
    good = run_trial(arch, proxy, data, 0)
    assert good.resume_error is None
    state = save_checkpoint(tmp_path, 1, {"w": torch_zeros()}, None)
    state.write_bytes(state.read_bytes()[:40])  # truncated
    starts = []
    out = run_trial(arch, proxy, data, 0, checkpoint=state, on_start=starts.append)
    assert out.accuracy is not None and out.failed is None and starts == [0]
    assert out.resume_error and "not a readable checkpoint" in out.resume_error


def test_resume_refuses_a_changed_space_or_dataset(tmp_path):
    """The space file's content and the dataset's digest must match run.yaml's record."""
    from attnsearch.datasets import load_dataset
    from attnsearch.results import storage_for
    from attnsearch.rundir import RunRecord
    from attnsearch.search import RunSettings
    from attnsearch.spaces import load_space

    space_file = tmp_path / "my.yaml"
    tiny = Path(__file__).parents[1] / "attnsearch" / "search_spaces" / "tiny.yaml"
    space_file.write_text(tiny.read_text())
    settings = RunSettings.make(
        Budget("flops", 2 * 10**9),
        space=str(space_file),
        dataset="synthetic",
        limit=64,
        resolution=8,
    )
    data = load_dataset("synthetic", resolution=8, limit=64, seed=0)
    record = RunRecord(
        settings=settings,
        study_name="s",
        space_file=load_space(str(space_file)).to_json(),
        dataset_info=data.summary(),
    )
    run = RunDir.create(tmp_path / "results", "r", record, lock=False)
    optuna.create_study(study_name="s", storage=storage_for(run.path), directions=["maximize"])
    del run
    space_file.write_text(tiny.read_text().replace("reduction: [4, 16]", "reduction: [4, 8]"))
    one_line_exit_2(cli("run", "--name", "r", "--resume", cwd=tmp_path), "changed since search 'r'")
    space_file.write_text(tiny.read_text())
    run = RunDir.open(tmp_path / "results", "r")
    info = dict(run.record.dataset_info, digest="0" * 32)
    run.save_record(dataclasses.replace(run.record, dataset_info=info))
    before = _snapshot(tmp_path / "results")
    one_line_exit_2(
        cli("run", "--name", "r", "--resume", cwd=tmp_path), "dataset 'synthetic' changed"
    )
    after = _snapshot(tmp_path / "results")
    assert {k: v for k, v in after.items() if k != "r/lock"} == {
        k: v for k, v in before.items() if k != "r/lock"
    }, "nothing written but the lock's pid"
