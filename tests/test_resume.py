"""Resume and fault tolerance: kills, Ctrl-C, locks, corrupted folders (real Ray, CPU)."""

from __future__ import annotations

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
import yaml

from attnsearch.results import open_study

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
]


def _cli(*args, cwd, **kw):
    return subprocess.run(
        [sys.executable, "-m", "attnsearch", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=kw.pop("timeout", 600),
        **kw,
    )


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
    settings = yaml.safe_load((run_dir / "run.yaml").read_text())
    return open_study(run_dir, settings["study_name"])


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
    from attnsearch.export import ExportError, find_checkpoint

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
            except (ExportError, OSError):
                continue
        if proc.poll() is not None:
            pytest.fail(f"driver ended early ({proc.returncode})")
        time.sleep(0.3)
    pytest.fail("timed out waiting for a checkpoint of a running trial")


def _executions(run_dir: Path) -> list[dict]:
    lines = (run_dir / "executions.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _session_alive(run_dir: Path) -> bool:
    session = json.loads((run_dir / "ray_session.json").read_text())["session"]
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if session.encode() in (proc / "cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


def _check_finished(run_dir: Path, before_kill: set[int], kill_time: float | None):
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
    if kill_time is not None:  # trials completed before the crash never ran again
        assert not [e for e in executions if e["trial"] in before_kill and e["time"] > kill_time]
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
    second = _cli("run", "--name", "crash", "--resume", cwd=tmp_path)
    assert second.returncode == 2 and "running in another process" in second.stderr
    _wait_for_checkpoint(run_dir, proc)
    kill_time = time.time()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    from attnsearch.export import ExportError, find_checkpoint

    state = _study(run_dir).trials
    before = {
        t.number
        for t in state
        if t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs.get("trained")
    }
    checkpointed = set()
    for t in state:
        if t.state == optuna.trial.TrialState.RUNNING:
            try:
                find_checkpoint(run_dir, t.number, t.user_attrs.get("tune_trial_id"))
                checkpointed.add(t.number)
            except (ExportError, OSError):
                pass
    assert checkpointed, "the kill landed while a trial with a checkpoint was running"
    resumed = _cli("run", "--name", "crash", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    study = _check_finished(run_dir, before, kill_time)
    interrupted = [
        t
        for t in study.trials
        if t.state == optuna.trial.TrialState.FAIL
        and "interrupted" in t.user_attrs.get("fail_reason", "")
    ]
    assert interrupted, "the trials running at the kill are marked failed and re-run"
    reruns = [t for t in study.trials if "resumed_from" in t.user_attrs]
    assert {t.user_attrs["resumed_from"] for t in reruns} == {t.number for t in interrupted}
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
    resumed = _cli("run", "--name", "ctrlc", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _check_finished(run_dir, set(), None)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A finished two-trial search to damage in different ways."""
    cwd = tmp_path_factory.mktemp("small")
    proc = _cli("run", *ARGS, "--trials", "2", "--epochs", "1", "--name", "ok", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd / "results" / "ok"


def _copy(small_run, tmp_path) -> Path:
    dst = tmp_path / "results" / "ok"
    shutil.copytree(small_run, dst)
    return dst


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _one_line_exit_2(proc, needle):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr


def test_resume_of_a_finished_search_runs_nothing(small_run, tmp_path):
    run_dir = _copy(small_run, tmp_path)
    n = len(_executions(run_dir))
    proc = _cli("run", "--name", "ok", "--resume", cwd=tmp_path)
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
        _one_line_exit_2(_cli(*args, cwd=tmp_path), needle)
    assert _snapshot(run_dir) == before, "nothing overwritten"


def test_missing_or_foreign_names(tmp_path):
    _one_line_exit_2(_cli("run", "--resume", cwd=tmp_path), "--resume needs --name")
    _one_line_exit_2(_cli("run", "--name", "nope", "--resume", cwd=tmp_path), "no search named")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "afile").write_text("x")
    _one_line_exit_2(_cli("run", "--name", "afile", "--resume", cwd=tmp_path), "not a folder")


def test_conflicting_settings_are_refused(small_run, tmp_path):
    _copy(small_run, tmp_path)
    proc = _cli("run", "--name", "ok", "--resume", "--budget", "3G", cwd=tmp_path)
    _one_line_exit_2(proc, "conflicts with the search being resumed")
    proc = _cli("run", "--name", "ok", "--resume", "--epochs", "5", cwd=tmp_path)
    _one_line_exit_2(proc, "--epochs 5 conflicts")


def test_resume_with_more_trials_continues(small_run, tmp_path):
    run_dir = _copy(small_run, tmp_path)
    proc = _cli("run", "--name", "ok", "--resume", "--trials", "3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    study = _study(run_dir)
    assert sum(bool(t.user_attrs.get("trained")) for t in study.trials) == 3
    assert yaml.safe_load((run_dir / "run.yaml").read_text())["trials"] == 3
