"""A two-node Ray cluster on one machine (`ray start --head` + `ray start --address`)."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_node_search_uses_both_nodes(tmp_path):
    """Trials land on both nodes; node ids are recorded per trial in trials.csv.

    Uses `ray stop --force` at the end, which stops every Ray process of this user on the
    machine: run it on its own (`pytest -m slow tests/test_cluster.py`).
    """
    # Ray 2.60 heads use token auth; joining nodes and drivers must be told to send it
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    try:
        subprocess.run(
            [RAY, "start", "--head", f"--port={port}", "--include-dashboard=false", *common],
            check=True,
            env=env,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [RAY, "start", f"--address={address}", *common],
            check=True,
            env=env,
            capture_output=True,
            timeout=120,
        )
        proc = subprocess.run(
            [
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
                "--limit",
                "96",
                "--resolution",
                "8",
                "--trials",
                "4",
                "--epochs",
                "1",
                "--width",
                "0.25",
                "--concurrency",
                "2",
                "--address",
                address,
                "--name",
                "two",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        with open(tmp_path / "results" / "two" / "trials.csv") as f:
            rows = [r for r in csv.DictReader(f) if r["status"] == "complete"]
        assert len(rows) == 4
        assert len({r["node_id"] for r in rows}) == 2, "both nodes ran trials"
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)
