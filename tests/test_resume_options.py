"""A resume runs with exactly the changes the user typed; the cluster and the storage only
when named again; a cluster where nothing listens is refused at once; a crafted
``ray_session.json`` stops nothing (issue 18, items 1, 2, 4 and the Ray hang of 5).

The option tests resume a real finished run in this process with Tune replaced by a
recorder (:class:`_Tune`): they check what reaches Tune and Ray, and train nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import cli, one_line_exit_2

from attnsearch.rundir import RunDir

ARGS = [
    "run", "--budget", "2G", "--space", "tiny", "--dataset", "synthetic", "--limit", "64",
    "--resolution", "8", "--epochs", "1", "--width", "0.25", "--sampler", "random",
    "--repeats", "1", "--references", "none",
]  # fmt: skip


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished one-trial search (a real run), to copy and resume."""
    cwd = tmp_path_factory.mktemp("finished")
    proc = cli(*ARGS, "--trials", "1", "--name", "ok", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd / "results" / "ok"


def _copy(finished: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "results" / "ok"
    shutil.copytree(finished, dst)
    return dst


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


class _Grpc:
    """A port on 127.0.0.1 that answers HTTP/2's preface with a SETTINGS frame, as Ray's
    GCS does (the connection probe passes; nothing else is served)."""

    def __init__(self):
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))

    def close(self):
        self.sock.close()


@pytest.fixture
def listening():
    server = _Grpc()
    yield server.address
    server.close()


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed on return: nothing listens there


class _Tune:
    """What reaches Ray and Tune from :func:`attnsearch.search.run_search`: the address
    given to ``start_ray``, the resources checked and reserved per trial, the Tuner's
    ``TuneConfig`` and ``RunConfig``. Its ``fit`` trains nothing."""

    def __init__(self, monkeypatch):
        from ray import tune

        from attnsearch.search import _gpus, _ray

        self.seen: dict = {}
        seen = self.seen

        class Tuner:
            def __init__(self, fn, *, tune_config, run_config):
                seen["tune_config"], seen["run_config"] = tune_config, run_config

            def fit(self):
                return None

        def with_resources(fn, resources):
            seen["resources"] = dict(resources)
            return fn

        def start_ray(address):
            seen["address"] = address
            return False

        monkeypatch.setattr(tune, "Tuner", Tuner)
        monkeypatch.setattr(tune, "with_parameters", lambda fn, **kw: fn)
        monkeypatch.setattr(tune, "with_resources", with_resources)
        monkeypatch.setattr(_ray, "start_ray", start_ray)
        monkeypatch.setattr(_ray, "check_resources", lambda c, g: seen.setdefault("check", (c, g)))
        monkeypatch.setattr(_ray, "execution_log", lambda path: None)
        # a cluster with one GPU and a driver whose torch could use it (this machine has
        # neither: the GPU default is tested for real in test_gpus.py)
        monkeypatch.setattr(_gpus, "cluster_gpus", lambda: 1.0)
        monkeypatch.setattr(_gpus, "check_driver_torch", lambda share: None)
        monkeypatch.delenv("RAY_ADDRESS", raising=False)


def _resume(tmp_path, monkeypatch, *args: str) -> int:
    """``attnsearch run --name ok --resume ARGS`` in this process; its exit code."""
    from attnsearch.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["run", "--name", "ok", "--resume", *args])
    return e.value.code


def _saved(run_dir: Path):
    return RunDir.open(run_dir.parent, run_dir.name).settings


# ---- each allowed change reaches the search -----------------------------------------------
def test_resume_with_more_trials_asks_tune_for_them(finished, tmp_path, monkeypatch):
    run_dir = _copy(finished, tmp_path)
    tune = _Tune(monkeypatch)
    _resume(tmp_path, monkeypatch, "--trials", "3")
    assert tune.seen["tune_config"].num_samples == 2  # 1 trained, 2 to go
    assert _saved(run_dir).trials == 3


@pytest.mark.parametrize(
    ("flag", "value", "field", "reached"),
    [
        ("--concurrency", "3", "concurrency", lambda s: s["tune_config"].max_concurrent_trials),
        ("--gpus-per-trial", "0.5", "gpus_per_trial", lambda s: s["resources"]["gpu"]),
        ("--cpus-per-trial", "2", "cpus_per_trial", lambda s: s["resources"]["cpu"]),
        (
            "--trial-timeout",
            "7",
            "trial_timeout",
            lambda s: next(
                c.limit for c in s["run_config"].callbacks if type(c).__name__ == "TrialTimeout"
            ),
        ),
    ],
)
def test_resume_runs_with_the_changed_option(
    finished, tmp_path, monkeypatch, flag, value, field, reached
):
    """Before: the change was applied to a local copy and dropped; the search ran with
    run.yaml's value."""
    run_dir = _copy(finished, tmp_path)
    before = getattr(_saved(run_dir), field)
    assert before != float(value)
    tune = _Tune(monkeypatch)
    _resume(tmp_path, monkeypatch, "--trials", "2", flag, value)
    assert reached(tune.seen) == float(value), tune.seen
    assert getattr(_saved(run_dir), field) == float(value), "run.yaml records what ran"
    if field in ("gpus_per_trial", "cpus_per_trial"):  # checked against the cluster too
        assert tune.seen["check"][field == "gpus_per_trial"] == float(value)


def test_resume_with_an_address_joins_it(finished, tmp_path, monkeypatch, listening):
    """Before: an --address typed on a resume was ignored (a local Ray was started)."""
    run_dir = _copy(finished, tmp_path)
    assert _saved(run_dir).address is None
    tune = _Tune(monkeypatch)
    _resume(tmp_path, monkeypatch, "--trials", "2", "--address", listening)
    assert tune.seen["address"] == listening
    assert _saved(run_dir).address == listening


def test_resume_with_a_storage_uses_it(finished, tmp_path, monkeypatch):
    run_dir = _copy(finished, tmp_path)
    tune = _Tune(monkeypatch)
    _resume(tmp_path, monkeypatch, "--trials", "2", "--storage", str(tmp_path / "shared"))
    assert tune.seen["run_config"].storage_path == f"{tmp_path / 'shared'}/ok"
    assert _saved(run_dir).storage == str(tmp_path / "shared")


# ---- the folder's cluster and storage are shown, never used --------------------------------
def _record(run_dir: Path, **settings) -> None:
    run = RunDir.open(run_dir.parent, run_dir.name)
    run.save_record(run.record.with_settings(run.settings.replace(**settings)))


def test_recorded_cluster_and_storage_are_shown_not_used(
    finished, tmp_path, monkeypatch, capsys, listening
):
    """Before: run.yaml's address and storage were used on a resume (over an explicit
    --address too): a folder from elsewhere chose the cluster the driver joins."""
    run_dir = _copy(finished, tmp_path)
    _record(run_dir, address=listening, storage="s3://somebody/else")
    tune = _Tune(monkeypatch)
    _resume(tmp_path, monkeypatch, "--trials", "2")
    assert tune.seen["address"] is None, "the recorded cluster was joined"
    assert tune.seen["run_config"].storage_path == str(run_dir.resolve())
    shown = [line for line in capsys.readouterr().err.splitlines() if "not used" in line]
    assert len(shown) == 1, shown
    assert f"Ray cluster {listening}" in shown[0] and "storage s3://somebody/else" in shown[0]
    assert _saved(run_dir).address is None and _saved(run_dir).storage is None


def test_an_explicit_address_wins_over_the_recorded_one(finished, tmp_path, monkeypatch):
    run_dir = _copy(finished, tmp_path)
    servers = [_Grpc(), _Grpc()]
    try:
        recorded, typed = (s.address for s in servers)
        _record(run_dir, address=recorded)
        tune = _Tune(monkeypatch)
        _resume(tmp_path, monkeypatch, "--trials", "2", "--address", typed)
    finally:
        for s in servers:
            s.close()
    assert tune.seen["address"] == typed


# ---- a cluster where nothing listens --------------------------------------------------------
def test_new_run_at_an_address_where_nothing_listens_is_refused_at_once(tmp_path):
    """Before: ray.init retried forever (deaf to SIGTERM) and left a half-made folder that
    blocked the name."""
    port = _dead_port()
    t0 = time.monotonic()
    proc = cli(*ARGS, "--address", f"127.0.0.1:{port}", "--name", "x", cwd=tmp_path, timeout=120)
    one_line_exit_2(proc, f"cannot connect to the Ray cluster at 127.0.0.1:{port}")
    assert time.monotonic() - t0 < 60
    assert not (tmp_path / "results").exists(), "nothing created"
    env = {**os.environ, "RAY_ADDRESS": f"127.0.0.1:{port}"}
    proc = cli(*ARGS, cwd=tmp_path, env=env, timeout=120)  # the default name, from RAY_ADDRESS
    one_line_exit_2(proc, f"cannot connect to the Ray cluster at 127.0.0.1:{port}")
    assert not (tmp_path / "results").exists(), "nothing created"
    one_line_exit_2(cli(*ARGS, "--address", "h:x", cwd=tmp_path), "is not HOST:PORT")


def test_resume_at_an_address_where_nothing_listens_changes_nothing(finished, tmp_path):
    run_dir = _copy(finished, tmp_path)
    before = _snapshot(run_dir)
    port = _dead_port()
    proc = cli(
        "run", "--name", "ok", "--resume", "--trials", "2", "--address", f"127.0.0.1:{port}",
        cwd=tmp_path, timeout=120,
    )  # fmt: skip
    one_line_exit_2(proc, f"cannot connect to the Ray cluster at 127.0.0.1:{port}")
    assert _snapshot(run_dir) == before, "nothing written, nothing trained"


def test_probe_refuses_a_port_that_listens_but_is_no_ray(monkeypatch):
    """ray.init to a port that accepts but never speaks gRPC waited over 90 s (measured);
    the probe gives up at its deadline. (Local sockets only: this sandbox's network answers
    HTTP/2 on outside addresses.)"""
    from attnsearch.errors import InputError
    from attnsearch.search._ray import probe_address

    monkeypatch.delenv("RAY_USE_TLS", raising=False)
    with socket.socket() as s:  # accepts connections (the backlog), never answers
        s.bind(("127.0.0.1", 0))
        s.listen()
        address = f"127.0.0.1:{s.getsockname()[1]}"
        t0 = time.monotonic()
        with pytest.raises(InputError, match="no answer within 1 s"):
            probe_address(address, deadline=1.0)
        assert time.monotonic() - t0 < 5
    server = _Grpc()
    try:
        probe_address(server.address, deadline=5.0)  # a gRPC server's SETTINGS: passes
    finally:
        server.close()


# ---- a crafted ray_session.json -------------------------------------------------------------
def _start_time(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def test_a_crafted_session_record_stops_nothing_on_resume(finished, tmp_path, monkeypatch):
    """Before: the record's [pid, start time] pairs, or a session folder and nonce it points
    to itself, made --resume SIGKILL processes the tool never started."""
    run_dir = _copy(finished, tmp_path)
    fake = run_dir / "session_2026-01-01_00-00-00_000000_1"  # the "proof", in the folder
    fake.mkdir()
    (fake / "attnsearch_owner").write_text("abc")
    victims = [
        subprocess.Popen(["bash", "-c", "sleep 120; true", f"--session-dir={fake}"]),
        subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(120)", f"--session-dir={fake}"]
        ),
        subprocess.Popen(["sleep", "120"]),
    ]
    try:
        (run_dir / "ray_session.json").write_text(
            json.dumps(
                {
                    "session": fake.name,
                    "driver_pid": 999_999_999,
                    "session_dir": str(fake),
                    "nonce": "abc",
                    "boot": Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
                    "driver": [999_999_999, 1],
                    "processes": [[p.pid, _start_time(p.pid)] for p in victims],
                    "mac": "0" * 64,
                }
            )
        )
        from attnsearch.search._session import session_key

        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        assert session_key(create=True) is not None  # this user has a key: the MAC decides
        env = {**os.environ}
        env.pop("RAY_ADDRESS", None)
        proc = cli("run", "--name", "ok", "--resume", cwd=tmp_path, env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "no valid MAC" in proc.stderr and "no process stopped" in proc.stderr
        time.sleep(0.5)
        assert all(p.poll() is None for p in victims), "a process the tool never started died"
    finally:
        for p in victims:
            p.kill()
            p.wait()
