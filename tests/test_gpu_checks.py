"""The prepared device script (benchmarks/gpu_checks.py, issue 21 item 4) cannot rot: its
``--smoke`` form runs every part on the CPU; it writes at most 8 files and ends every
process it started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_checks.py"
PARTS = ("a_split", "b_sharing", "c_formulations", "d_mps", "e_panel")


def _smoke(out: Path, env: dict, *extra: str, timeout: float = 900):
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out", str(out), *extra],
        env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def _check(out: Path, proc) -> dict:
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8, files
    status = json.loads((out / "status.json").read_text())
    for part in PARTS:
        assert status["parts"][part]["state"] == "done", (part, status["parts"][part])
    split = json.loads((out / "a_split.json").read_text())
    assert {r["candidate"] for r in split["runs"]} == {"plain", "mixed", "rfa_heavy"}
    assert {r["batch_size"] for r in split["runs"]} == {16, 32}
    assert all(r["failed"] is None and r["steps"] > 0 for r in split["runs"])
    sharing = json.loads((out / "b_sharing.json").read_text())
    assert sharing["modes"] and all(m.get("trials", 0) >= 1 for m in sharing["modes"]), sharing
    forms = json.loads((out / "c_formulations.json").read_text())
    assert [r["type"] for r in forms["rows"]] == ["none", "rfaconv", "rfcbamconv", "rfcaconv", "sa"]
    assert json.loads((out / "d_mps.json").read_text())["modes"]
    assert json.loads((out / "e_panel.json").read_text())["rows"]
    return status


def test_smoke_runs_every_part_without_ray(tmp_path):
    """Every part in CI size, part (b) through plain trainer processes (the fallback of a
    machine where `attnsearch run` cannot import Ray)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GPU_CHECKS_NO_RAY": "1"}
    proc = _smoke(tmp_path / "out", env)
    _check(tmp_path / "out", proc)
    status = json.loads((tmp_path / "out" / "status.json").read_text())
    assert status["probe"]["imports"]["ray"] is False and not status["probe"]["attnsearch_run"]
    sharing = json.loads((tmp_path / "out" / "b_sharing.json").read_text())
    assert sharing["method"].startswith("plain trainer processes (attnsearch run cannot")
    assert [m["trainers"] for m in sharing["modes"]] == [1, 2]


@pytest.mark.slow
def test_smoke_runs_every_part_through_attnsearch_run(tmp_path):
    pytest.importorskip("ray")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = _smoke(tmp_path / "out", env)
    _check(tmp_path / "out", proc)
    sharing = json.loads((tmp_path / "out" / "b_sharing.json").read_text())
    assert sharing["method"].startswith("attnsearch run")


def test_a_part_past_its_budget_is_killed_with_what_it_started(tmp_path):
    """The part leaves a grandchild in a session of its own (as a daemon would): it is
    dead when the script returns."""
    from attnsearch.search._session import _stat

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.time()
    proc = _smoke(tmp_path / "out", env, "--only", "z_hang", timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert time.time() - t0 < 60
    status = json.loads((tmp_path / "out" / "status.json").read_text())
    assert status["parts"]["z_hang"]["state"].startswith("killed at its time budget")
    grandchild = json.loads((tmp_path / "out" / "z_hang.json").read_text())
    st = _stat(grandchild["pid"])
    assert st is None or st[1] != grandchild["start"], "the detached grandchild still runs"
