"""A search's Ray is its own: it never adopts or kills a Ray it did not start; impossible
trial resources and stuck trials end the way the user can see (issue 12, items 7-9)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from conftest import RAY, cli, free_port, make_run, trial_rows

from attnsearch.budget import Budget
from attnsearch.errors import InputError
from attnsearch.search._session import (
    _boot_id,
    _stat,
    key_dir,
    kill_stray_ray,
    session_key,
    sign_session_record,
    stray_ray_pids,
)


def _sleeper(*args: str) -> subprocess.Popen:
    """A process that sleeps; ``args`` end up in its command line."""
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", *args],
        start_new_session=True,
    )


def _alive(proc: subprocess.Popen) -> bool:
    return proc.poll() is None


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        p = _sleeper(*args)
        started.append(p)
        return p

    yield start
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()


def _running(pid: int, start: int) -> bool:
    """The process ``pid`` started at ``start`` still runs (a zombie does not)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[19]) == start and fields[0] != "Z"


def _start_time(pid: int) -> int:
    st = _stat(pid)
    assert st is not None
    return st[1]


def test_an_unverifiable_session_record_kills_nothing(tmp_path, procs):
    """The old record (a session name only) named a cluster the run had adopted: every
    process with that name in its command line was SIGKILLed. Now nothing is."""
    other = procs("--session-dir=/tmp/ray/session_2026-01-01_00-00-00_000000_1")
    run = make_run(tmp_path / "results", "r", 2_000_000_000, space="tiny")
    run.record_ray_session("session_2026-01-01_00-00-00_000000_1", driver_pid=1)
    kill_stray_ray(run, wait=0.5)
    time.sleep(0.2)
    assert _alive(other), "a process of a Ray this run did not prove its own was killed"


@pytest.fixture
def signed(tmp_path, monkeypatch):
    """``signed(**fields)``: a session record as a driver of this user writes it (signed
    with this user's key, this boot, a session folder under Ray's temp dir), both private
    to this test; ``signed.session`` is that folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "raytmp"))
    session = tmp_path / "raytmp" / "ray" / "session_2026-01-01_00-00-00_000000_7"
    session.mkdir(parents=True)
    key = session_key(create=True)
    assert key is not None

    def sign(**fields):
        record = {
            "session": session.name,
            "driver_pid": 999_999_999,
            "session_dir": str(session),
            "boot": _boot_id(),
            "driver": [999_999_999, 1],
            "processes": [],
            **fields,
        }
        return sign_session_record(record, key)

    sign.session = session
    return sign


def test_stray_pids_are_proved_by_pid_and_start_time(signed, procs):
    ours, reused = procs(), procs()
    listed = [[ours.pid, _start_time(ours.pid)], [reused.pid, _start_time(reused.pid) + 1]]
    assert stray_ray_pids(signed(processes=listed)) == {ours.pid}  # a reused pid is spared
    # the same facts without this user's signature prove nothing
    forged = {**signed(processes=listed), "mac": "0" * 64}
    assert stray_ray_pids(forged) == set()
    unsigned = {k: v for k, v in signed(processes=listed).items() if k != "mac"}
    assert stray_ray_pids(unsigned) == set()
    edited = {**signed(processes=[]), "processes": listed}  # signed, then edited
    assert stray_ray_pids(edited) == set()
    # the driver that started it is alive (same pid and start time): nothing is stray
    alive = signed(processes=listed, driver=[os.getpid(), _start_time(os.getpid())])
    assert stray_ray_pids(alive) == set()
    # this process and its ancestors are never taken, whatever the record says
    me = signed(processes=[[os.getpid(), _start_time(os.getpid())]])
    assert stray_ray_pids(me) == set()
    for bad in (None, [], {"processes": "x"}, {"processes": [["a", 1]]}, {"driver": 5}):
        assert stray_ray_pids(bad) == set()
    assert stray_ray_pids(signed(processes="x")) == set()
    assert stray_ray_pids(signed(boot="another boot", processes=listed)) == set()


def test_only_rays_own_executables_are_taken(signed, procs):
    """A listed process that is not Ray's (not this Python, not a binary of Ray's package)
    is never taken, even from a signed record."""
    sleeper = subprocess.Popen(["sleep", "120"])
    try:
        listed = [[sleeper.pid, _start_time(sleeper.pid)]]
        assert stray_ray_pids(signed(processes=listed)) == set()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stray_pids_take_descendants_of_proved_ones(signed):
    """Ray's agents rename themselves (``ray::DashboardAgent``): they are found as children
    of a proved process, not by their command line."""
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
            "print(c.pid, flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        child = int(parent.stdout.readline())
        record = signed(processes=[[parent.pid, _start_time(parent.pid)]])
        assert stray_ray_pids(record) == {parent.pid, child}
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()


def test_session_dir_match_needs_rays_code_and_a_folder_under_rays_temp_dir(
    signed, procs, tmp_path
):
    """A process is taken by its command line only when it runs Ray's code with the exact
    ``--session-dir=`` of a signed record's session folder; a command line that merely
    contains that string (``python -c``, a shell, a script of someone else's) is not."""
    session = signed.session
    script = tmp_path / "worker.py"
    script.write_text("import time; time.sleep(120)")
    others = [
        procs(f"--session-dir={session}"),  # python -c ...
        subprocess.Popen([sys.executable, str(script), f"--session-dir={session}"]),
        subprocess.Popen(["bash", "-c", "sleep 120; true", f"--session-dir={session}"]),
    ]
    try:
        assert stray_ray_pids(signed()) == set()
    finally:
        for p in others[1:]:
            p.kill()
            p.wait()
    # a signed record whose session folder is not directly under Ray's temp dir, or not
    # this user's folder, proves nothing
    elsewhere = tmp_path / "session_2026-01-01_00-00-00_000000_8"
    elsewhere.mkdir()
    assert stray_ray_pids(signed(session=elsewhere.name, session_dir=str(elsewhere))) == set()
    link = session.parent / "session_2026-01-01_00-00-00_000000_9"
    link.symlink_to(elsewhere)
    assert stray_ray_pids(signed(session=link.name, session_dir=str(link))) == set()


def test_session_key_is_private_to_the_user(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    key = session_key(create=True)
    path = tmp_path / "cache" / "attnsearch" / "session.key"
    assert key is not None and session_key() == key and session_key(create=True) == key
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "cache" / "attnsearch").stat().st_mode & 0o777 == 0o700
    path.chmod(0o644)  # readable by others: not a secret any more
    assert session_key() is None
    path.unlink()
    path.symlink_to(tmp_path / "planted")
    (tmp_path / "planted").write_text("a" * 64)
    (tmp_path / "planted").chmod(0o600)
    assert session_key() is None, "a symlinked key is never used"


def test_the_suite_keeps_its_session_key_out_of_the_users_cache():
    """conftest points XDG_CACHE_HOME into a folder of the test session's own, in this
    process and in every subprocess (a CLI run makes its key there), so no test writes the
    user's ~/.cache/attnsearch."""
    from conftest import session_cache

    users = Path(os.path.expanduser("~")) / ".cache"
    assert key_dir() == session_cache() / "attnsearch"
    assert users not in key_dir().parents
    made = subprocess.run(
        [
            sys.executable,
            "-c",
            "from attnsearch.search._session import key_dir, session_key; "
            "assert session_key(create=True); print(key_dir())",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(made) == session_cache() / "attnsearch"
    assert (Path(made) / "session.key").is_file()


_OWN_RAY = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from attnsearch.search._ray import start_ray
    from attnsearch.search._session import record_ray_session
    from attnsearch.rundir import RunDir
    import ray
    from ray._private.authentication.authentication_utils import is_token_auth_enabled

    started = start_ray(None)
    node = ray._private.worker._global_node
    run = RunDir(Path(sys.argv[1]))
    record_ray_session(run)
    print(json.dumps({
        "started": started,
        "token": is_token_auth_enabled(),
        "session_dir": node.get_session_dir_path(),
    }), flush=True)
    os._exit(0)  # like a SIGKILL: no ray.shutdown()
    """
)


def test_own_local_ray_with_stale_cluster_file_token_auth_and_full_cleanup(tmp_path, monkeypatch):
    """Without --address a search starts its own Ray, even with a stale
    ``ray_current_cluster`` (a dead head's address) in Ray's temp dir and RAY_AUTH_MODE
    set to disabled; token auth is on; after its driver died
    without shutting it down, :func:`kill_stray_ray` kills every process of it, the
    renamed agents included."""
    temp = Path(tempfile.mkdtemp(prefix="rti", dir="/tmp"))  # short: Ray's socket paths
    (temp / "ray").mkdir()
    (temp / "ray" / "ray_current_cluster").write_text("127.0.0.1:1\n")
    run = make_run(tmp_path / "results", "r", 2_000_000_000, space="tiny")
    monkeypatch.setenv("RAY_TMPDIR", str(temp))  # the cleanup below runs in this process
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    env = {
        **os.environ,
        "RAY_TMPDIR": str(temp),
        "RAY_AUTH_MODE": "disabled",
        "PYTHONPATH": os.getcwd(),
    }
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, "-c", _OWN_RAY, str(run.path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    record = run.ray_session_record()
    try:
        assert proc.returncode == 0, proc.stderr[-3000:]
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        assert info["started"] is True
        assert info["token"] is True, "token authentication is on"
        assert info["session_dir"].startswith(str(temp / "ray")), "its own, not the stale one"
        assert record["session_dir"] == info["session_dir"]
        pids = stray_ray_pids(record)
        starts = {p: _start_time(p) for p in pids}
        names = {Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0] for p in pids}
        assert any(n.startswith(b"ray::DashboardAgent") for n in names), names
        assert any(n.startswith(b"ray::RuntimeEnvAgent") for n in names), names
    finally:
        kill_stray_ray(run)
    deadline = time.monotonic() + 20  # SIGKILLed: gone within seconds, even on a busy machine
    left = [p for p, start in starts.items() if _running(p, start)]
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = [p for p, start in starts.items() if _running(p, start)]
    assert not left, f"processes of the dead driver's Ray still alive: {left}"


# ---- resources ------------------------------------------------------------------------------
def test_impossible_trial_resources_are_refused(ray_local):
    from attnsearch.search._ray import check_resources

    check_resources(1, 0)  # fits the 2-CPU test Ray
    with pytest.raises(InputError, match=r"needs 3 CPU and 0 GPU.*at most 2 CPU and 0 GPU"):
        check_resources(3, 0)
    with pytest.raises(InputError, match=r"needs 1 CPU and 1 GPU.*0 GPU"):
        check_resources(1, 1)


@pytest.mark.slow
def test_cli_refuses_a_gpu_trial_without_gpu_at_once(tmp_path):
    """It used to hang forever with nothing on screen. Now: exit 2, the error on one line
    (after the search's one-line header), the new run folder removed."""
    proc = cli(
        "run",
        "--budget",
        "2G",
        "--space",
        "tiny",
        "--dataset",
        "synthetic",
        "--resolution",
        "8",
        "--limit",
        "64",
        "--trials",
        "1",
        "--gpus-per-trial",
        "1",
        "--name",
        "g",
        cwd=tmp_path,
        timeout=180,
        env={**os.environ, "RAY_TMPDIR": tempfile.mkdtemp(prefix="rtg", dir="/tmp")},
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("search g:"), proc.stderr
    assert "needs 1 CPU and 1 GPU" in lines[1] and "0 GPU" in lines[1], lines[1]
    assert not (tmp_path / "results" / "g").exists(), "nothing created"


# ---- the per-trial time limit ---------------------------------------------------------------
class _FakeTrial:
    def __init__(self, trial_id: str):
        self.trial_id = trial_id
        self.status = "RUNNING"
        self.max_failures = 3

        class _State:
            ray_actor = object()

        self.temporary_state = _State()


def test_trial_timeout_kills_a_trial_over_the_limit_without_retry(monkeypatch):
    import ray

    from attnsearch.search._timeout import TrialTimeout

    killed = []
    monkeypatch.setattr(ray, "kill", lambda actor, no_restart=True: killed.append(actor))
    reasons: dict[str, str] = {}
    cb = TrialTimeout(0.05, reasons)
    slow, fast = _FakeTrial("a"), _FakeTrial("b")
    cb.on_trial_start(0, [slow], slow)
    time.sleep(0.1)
    cb.on_trial_start(0, [fast], fast)
    cb.on_step_begin(1, [slow, fast])
    assert killed == [slow.temporary_state.ray_actor]
    assert slow.max_failures == 0 and fast.max_failures == 3
    assert "timed out" in reasons["a"] and "b" not in reasons
    cb.on_step_begin(2, [slow, fast])  # killed once only
    assert len(killed) == 1


def test_trial_timeout_automatic_and_off():
    from attnsearch.search._timeout import AUTO_FLOOR, TrialTimeout

    off = TrialTimeout(0, {})
    assert off.current_limit() is None
    auto = TrialTimeout(None, {})
    assert auto.current_limit() is None  # nothing finished yet: no basis for a limit
    auto.longest = 100.0
    assert auto.current_limit() == 1000.0
    auto.longest = 1.0
    assert auto.current_limit() == AUTO_FLOOR


def test_a_timed_out_trial_is_recorded_failed_with_the_reason():
    """The searcher turns the callback's note into the trial's failure reason."""
    from attnsearch.search._searcher import BudgetedOptunaSearch

    seen = {}

    class _Core:
        def finish(self, ot_trial, result, error=False):
            seen.update(result=result, error=error)

    s = BudgetedOptunaSearch.__new__(BudgetedOptunaSearch)
    s._completed_trials, s._ot_trials, s.core = set(), {"t1": object()}, _Core()
    s.timeouts = {"t1": "timed out: still running after 5s (--trial-timeout)"}
    s.on_trial_complete("t1", None, error=True)
    assert seen["error"] and seen["result"]["failed"].startswith("timed out")


def test_trial_timeout_option_refuses_bad_numbers(tmp_path):
    for bad in ("-1", "nan", "inf"):
        proc = cli("run", "--budget", "2G", "--trial-timeout", bad, cwd=tmp_path, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and "--trial-timeout" in proc.stderr
    assert not (tmp_path / "results").exists()


# ---- a user's own Ray on the same machine ---------------------------------------------------
def _tree_with(text: bytes) -> dict[int, int]:
    """Processes whose command line holds ``text``, and their descendants: pid -> start."""
    from attnsearch.search._session import _cmdline, _descendants, _table

    table = _table()
    roots = {p for p in table if text in _cmdline(p)}
    return {p: table[p][1] for p in roots | _descendants(roots, table)}


_SEARCH = [
    "run",
    "--budget",
    "2G",
    "--space",
    "tiny",
    "--dataset",
    "synthetic",
    "--resolution",
    "8",
    "--width",
    "0.25",
    "--limit",
    "600",
    "--epochs",
    "3",
    "--concurrency",
    "1",
    "--trials",
    "2",
    "--name",
    "k",
]


@pytest.mark.slow
def test_users_own_ray_survives_a_killed_and_resumed_search(tmp_path):
    """A `ray start --head` of the user's, in the very temp dir the search's Ray uses by
    default (so its ``ray_current_cluster`` is the one a search would find), survives a
    search that is SIGKILLed mid-trial and resumed; the resume finishes."""
    temp = Path(tempfile.mkdtemp(prefix="rtu", dir="/tmp"))
    env = {**os.environ, "RAY_TMPDIR": str(temp), "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    subprocess.run(
        [
            RAY,
            "start",
            "--head",
            f"--port={free_port()}",
            f"--temp-dir={temp / 'ray'}",
            "--num-cpus=1",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=180,
    )
    user = _tree_with(f"{temp}/ray/session_".encode())
    try:
        assert len(user) >= 3, "found the user's Ray processes"
        assert (temp / "ray" / "ray_current_cluster").exists()
        run_dir = tmp_path / "results" / "k"
        search = subprocess.Popen(
            [sys.executable, "-m", "attnsearch", *_SEARCH],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        end = time.time() + 300
        log = run_dir / "executions.jsonl"
        while not (log.exists() and log.read_text().strip()):  # a trial trains
            assert search.poll() is None, "the search ended before it could be killed"
            assert time.time() < end, "no trial started"
            time.sleep(0.3)
        search.kill()
        search.wait()
        resumed = cli("run", "--name", "k", "--resume", cwd=tmp_path, env=env, timeout=600)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        dead = [p for p, start in user.items() if not _running(p, start)]
        assert not dead, f"processes of the user's own Ray were killed: {dead}"
    finally:
        for p, start in _tree_with(f"{temp}/ray/session_".encode()).items():
            if _running(p, start):
                os.kill(p, signal.SIGKILL)


# ---- the live view --------------------------------------------------------------------------
class _Term:
    def __init__(self, width: int = 120):
        import io

        from rich.console import Console

        self.buf = io.StringIO()
        self.out = Console(file=self.buf, width=width, highlight=False, markup=False)
        self.lines: list[str] = []

    def line(self, text: str = "", **kwargs) -> None:
        self.lines.append(text)

    def note(self, text: str) -> None:
        self.lines.append(text)


def test_live_view_shows_progress_elapsed_eta_and_running_epochs(monkeypatch):
    from attnsearch.cli import _live

    clock = [1000.0]
    monkeypatch.setattr(_live.time, "time", lambda: clock[0])
    term = _Term()
    view = _live.LiveView(term, Budget("flops", 2_000_000_000), 4, interactive=True, epochs=5)
    view.epoch({"trial_number": 3, "epoch": 2, "node_ip": "10.0.0.7", "node_id": "abcdef123456"})
    clock[0] += 60
    view.completed({"trial_number": 1, "accuracy": 0.5, "flops": 10**9, "train_seconds": 3})
    term.out.print(view.render())
    shown = term.buf.getvalue()
    assert "1/4" in shown  # the bar's done/total
    assert "elapsed 0:01:00" in shown and "ETA 0:03:00" in shown  # 60 s per trial, 3 left
    row = next(line for line in shown.splitlines() if "10.0.0.7" in line)
    assert "3" in row and "2/5" in row and "abcdef12" in row  # trial 3, epoch 2 of 5, node
    assert not term.lines  # a terminal gets the live display, not lines


def test_live_view_plain_lines_off_a_terminal(monkeypatch):
    from attnsearch.cli import _live

    term = _Term()
    view = _live.LiveView(term, Budget("flops", 2_000_000_000), 2, interactive=False, epochs=3)
    view.epoch({"trial_number": 0, "epoch": 1, "node_id": "ffff0000aaaa"})
    view.completed({"trial_number": 0, "accuracy": 0.25, "flops": 10**9, "train_seconds": 1})
    view.errored(1, "timed out: still running after 9s (--trial-timeout)")
    assert "trial 0: epoch 1/3 on node ffff0000" in term.lines[0]
    assert "done 1/2" in term.lines[1] and "ETA" in term.lines[1]
    assert "trial 1: failed — timed out" in term.lines[2]
    assert view.failed == 1 and not view.progress
    assert term.buf.getvalue() == ""  # nothing but plain lines


def test_live_view_counts_references_and_repeats_apart_from_trials(monkeypatch):
    from attnsearch.cli import _live

    clock = [1000.0]
    monkeypatch.setattr(_live.time, "time", lambda: clock[0])
    term = _Term()
    view = _live.LiveView(term, Budget("flops", 2_000_000_000), 2, interactive=False, epochs=1)
    clock[0] += 30
    view.completed({"trial_number": 0, "accuracy": 0.4, "flops": 10**9, "role": "reference"})
    clock[0] += 30
    view.completed({"trial_number": 1, "accuracy": 0.5, "flops": 10**9})
    view.completed({"trial_number": 2, "accuracy": 0.6, "flops": 10**9})
    clock[0] += 30
    view.completed({"trial_number": 3, "accuracy": 0.9, "flops": 10**9, "role": "repeat"})
    assert (
        "trial 0 (reference)" in term.lines[0]
        and "done 0/2 (+1 references/repeats)" in term.lines[0]
    )
    assert "ETA 0:00:30" in term.lines[1]  # 2 trainings in 60 s, one search trial left
    assert "done 2/2 (+2 references/repeats)" in term.lines[3]
    assert [n for _, _, n in view.front()] == [2]  # a repeat's single seed is not on the front


# ---- --storage ------------------------------------------------------------------------------
def test_storage_holds_tune_under_the_run_name_and_resume_looks_there(tmp_path):
    import torch

    from attnsearch.rundir import save_checkpoint

    local = make_run(tmp_path / "results", "a", 2_000_000_000, space="tiny")
    assert local.tune_storage == str(local.path)
    shared = tmp_path / "shared"
    run = make_run(tmp_path / "results", "b", 2_000_000_000, space="tiny", storage=str(shared))
    assert run.tune_storage == f"{shared}/b"
    folder = shared / "b" / "tune" / "trainable_ab12c_00000_0_2026-01-01" / "checkpoint_000002"
    folder.mkdir(parents=True)
    save_checkpoint(folder, 2, {"w": torch.zeros(1)}, None)
    assert run.find_checkpoint(0, "ab12c_00000").parent == folder
    uri = make_run(tmp_path / "results", "c", 2_000_000_000, space="tiny", storage="s3://bk/x/")
    assert uri.tune_storage == "s3://bk/x/c"


@pytest.mark.slow
def test_cli_trial_timeout_stops_and_records_the_trial(tmp_path):
    """Trials that train far longer than --trial-timeout are stopped, not retried, and
    recorded as failed with the reason; the search then ends (exit 1: none finished)."""
    proc = cli(
        *_SEARCH[:-8],  # less --epochs ... --name
        "--epochs",
        "200",
        "--concurrency",
        "1",
        "--trials",
        "1",
        "--trial-timeout",
        "3",
        "--name",
        "t",
        cwd=tmp_path,
        timeout=600,
        env={**os.environ, "RAY_TMPDIR": tempfile.mkdtemp(prefix="rtt", dir="/tmp")},
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    rows = trial_rows(tmp_path / "results" / "t")
    assert rows and all(r["status"] == "fail" for r in rows), rows
    assert all(r["reason"].startswith("timed out") for r in rows), rows
