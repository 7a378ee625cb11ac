"""A two-node Ray cluster on one machine (`ray start --head` + `ray start --address`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import RAY, free_port, kill_trees, procs_with, ray_head, trial_rows


@contextmanager
def two_nodes(tmp_path, private: Path | None = None):
    """Head and worker node, 1 CPU each, loopback only; yields (address, env, worker port).

    ``private``: the worker node runs in its own mount namespace (``unshare --user
    --mount``) with an empty tmpfs over that folder, so it cannot see what the driver
    writes there, as a machine without a shared filesystem.

    Cleans up by killing the processes of this cluster's session only (not `ray stop`,
    which would stop every Ray on the machine).
    """
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    with ray_head("--num-cpus=1") as (address, env, temp):
        worker_port = free_port()
        worker = [RAY, "start", f"--address={address}", f"--node-manager-port={worker_port}"]
        if private is not None:
            script = 'mount -t tmpfs tmpfs "$1" && shift && exec "$@"'
            unshare = ["unshare", "--user", "--mount", "--map-root-user", "sh", "-c", script]
            worker = [*unshare, "sh", str(private), *worker, f"--temp-dir={temp}w"]
        try:
            subprocess.run(
                [*worker, *common], check=True, env=env, capture_output=True, timeout=120
            )
            yield address, env, worker_port
        finally:
            kill_trees(procs_with(f"--node_manager_port={worker_port}"))


def _run(address, env, cwd, name, trials, extra=(), wait=True):
    cmd = [
        sys.executable,
        "-m",
        "attnsearch",
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
        "--concurrency",
        "2",
        "--address",
        address,
        "--trials",
        str(trials),
        "--name",
        name,
        *extra,
    ]
    if wait:
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    return subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.slow
def test_two_node_search_uses_both_nodes(tmp_path):
    """Trials land on both nodes; node ids are recorded per trial in trials.csv."""
    with two_nodes(tmp_path) as (address, env, _):
        proc = _run(address, env, tmp_path, "two", 4, ["--limit", "96", "--epochs", "1"])
        assert proc.returncode == 0, proc.stderr[-3000:]
        rows = [r for r in trial_rows(tmp_path / "results" / "two") if r["status"] == "complete"]
        assert len([r for r in rows if r["role"] == "search"]) == 4  # + references, repeats
        assert len({r["node_id"] for r in rows}) == 2, "both nodes ran trials"


@pytest.mark.slow
def test_worker_node_dies_mid_trial_and_the_search_completes(tmp_path):
    """SIGKILL the worker node's raylet while a trial trains there: Tune retries the trial
    (FailureConfig) on the surviving node from its last checkpoint; every trial completes."""
    with two_nodes(tmp_path) as (address, env, worker_port):
        run_dir = tmp_path / "results" / "nodekill"
        proc = _run(
            address, env, tmp_path, "nodekill", 4, ["--limit", "600", "--epochs", "4"], wait=False
        )
        log = run_dir / "executions.jsonl"
        end = time.time() + 300
        while time.time() < end:  # both nodes busy: one trial is on the worker
            if log.exists():
                nodes = {json.loads(x)["node_id"] for x in log.read_text().splitlines() if x}
                if len(nodes) == 2:
                    break
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            time.sleep(0.3)
        time.sleep(3)  # mid-trial
        raylets = [p for p in procs_with(f"--node_manager_port={worker_port}")]
        assert raylets, "found the worker node's raylet"
        for pid in raylets:
            os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        rows = trial_rows(run_dir)
        complete = [r for r in rows if r["status"] == "complete" and r["role"] == "search"]
        assert len(complete) == 4, rows
        assert not [r for r in rows if r["status"] in ("fail", "running")], rows
        executions = [json.loads(x) for x in log.read_text().splitlines() if x]
        counts = {}
        for e in executions:
            counts[e["trial"]] = counts.get(e["trial"], 0) + 1
        assert max(counts.values()) >= 2, "the trial on the dead node was run again"


@pytest.mark.slow
def test_two_nodes_without_a_shared_filesystem_survive_a_driver_kill(tmp_path):
    """The worker node cannot see the driver's run folder (its own mount namespace, an
    empty tmpfs over the folder the search runs in); Tune's checkpoints go to --storage, a
    folder both see (as a shared filesystem would be). The worker's executions still reach
    the driver's executions.jsonl (reported to the driver, not written by the worker); a
    driver SIGKILL while a trial trains there, then a resume, re-runs that trial; every
    trial completes, none is lost. (Without a storage every node sees, Tune refuses to run
    trials there: "Unable to set up cluster storage".)"""
    probe = subprocess.run(
        ["unshare", "--user", "--mount", "--map-root-user", "true"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip(f"unshare --user --mount is not permitted here: {probe.stderr.strip()}")
    private = tmp_path / "driver"  # the run folder: the worker node sees an empty tmpfs
    private.mkdir()
    shared = Path(tempfile.mkdtemp(prefix="rts", dir="/tmp"))  # --storage: every node
    with two_nodes(tmp_path, private=private) as (address, env, _):
        run_dir = private / "results" / "split"
        extra = ["--limit", "600", "--epochs", "6", "--storage", str(shared)]
        proc = _run(address, env, private, "split", 4, extra, wait=False)
        log = run_dir / "executions.jsonl"
        head = None
        on_worker: list[dict] = []
        end = time.time() + 300
        while time.time() < end:  # a trial trains on each node: both reported to the driver
            if log.exists():
                ex = [json.loads(x) for x in log.read_text().splitlines() if x]
                nodes = {e["node_id"] for e in ex}
                if len(nodes) == 2:
                    head = ex[0]["node_id"] if head is None else head
                    on_worker = [e for e in ex if e["node_id"] != head]
                    break
                if ex:
                    head = ex[0]["node_id"]
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            time.sleep(0.3)
        assert on_worker, "no execution from the worker node reached the driver"
        time.sleep(1)  # mid-trial (6 epochs)
        proc.kill()
        proc.wait()
        kill_time = time.time()
        # the cluster and the storage are named again: a resume never takes run.yaml's
        resumed = _run(address, env, private, "split", 4, ["--resume", "--storage", str(shared)])
        reasons = (run_dir / "trials.csv").read_text() if resumed.returncode else ""
        assert resumed.returncode == 0, resumed.stderr[-3000:] + reasons
        rows = trial_rows(run_dir)
        assert len([r for r in rows if r["status"] == "complete"]) == 4, rows
        executions = [json.loads(x) for x in log.read_text().splitlines() if x]
        remote = on_worker[-1]
        again = [e for e in executions if e["digest"] == remote["digest"] and e["time"] > kill_time]
        assert again, "the trial interrupted on the worker node was run again"
        assert not [r for r in rows if r["status"] == "running"], rows
