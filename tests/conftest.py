"""Shared fixtures and helpers: the CLI as a subprocess, run folders made through the
library (RunSettings + RunDir, never a hand-written run.yaml), one local Ray of the
session's own for the tests that need it, a Ray head of a test's own (``ray start --head``
on loopback, stopped by killing its own processes only), and a cache folder of the
session's own.

The suite never writes to the user's own cache: ``XDG_CACHE_HOME`` points into a temporary
folder for the whole session (subprocesses inherit it), so the session key a run makes
(:func:`attnsearch.search._session.session_key`) is the suite's, not the user's. Every
other XDG cache of the session moves with it (matplotlib's font cache is rebuilt once per
session; torch finds no hub downloads, which the suite never makes).
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

_CACHE: list[str] = []  # the session's cache folder (removed at the end)
_BEFORE: list[str | None] = []  # XDG_CACHE_HOME as the session found it


def pytest_configure(config):
    folder = tempfile.mkdtemp(prefix="attnsearch-test-cache-")
    _CACHE.append(folder)
    _BEFORE.append(os.environ.get("XDG_CACHE_HOME"))
    os.environ["XDG_CACHE_HOME"] = folder


def pytest_unconfigure(config):
    while _BEFORE:
        before = _BEFORE.pop()
        if before is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = before
    while _CACHE:
        shutil.rmtree(_CACHE.pop(), ignore_errors=True)


def session_cache() -> Path:
    """The cache folder this test session uses instead of the user's."""
    return Path(_CACHE[0])


def cli(*args: str, cwd: str | Path, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """``python -m attnsearch ARGS`` in ``cwd``; stdout and stderr captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "attnsearch", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def one_line_exit_2(proc: subprocess.CompletedProcess, needle: str) -> None:
    """The CLI refused bad input the house way: exit 2, one line naming it, no traceback."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr


def synthetic_latency_table(space, scale: float = 1.0):
    """A latency table with made-up but structured latencies (FLOPs-proportional plus a
    per-type overhead that FLOPs do not see), "measured on this machine": no timing in the
    test. ``scale``: the table's calibration factor."""
    from attnsearch.flops.analytic import cost_table
    from attnsearch.latency import LatencyTable, Settings, slot_choices, space_digest

    flops = cost_table(space.backbone, space.input, space.num_classes)
    slots = [
        {c: flops.slot(s, c) / 2e8 + 0.07 * (len(c.type) % 4) * (c.type != "none") for c in cs}
        for s, cs in enumerate(slot_choices(space))
    ]
    return LatencyTable(
        backbone=space.backbone,
        settings=Settings(input=tuple(space.input)),
        stem_ms=0.4,
        head_ms=0.05,
        slots=slots,
        num_classes=space.num_classes,
        space={"name": space.name, "digest": space_digest(space)},
        scale=scale,
    )


def make_run(results_dir: str | Path, name: str, budget, **options):
    """A new run folder (unlocked) holding the settings built from flat ``options``
    (``budget``: a :class:`~attnsearch.budget.Budget`, or an int of FLOPs)."""
    from attnsearch.budget import Budget
    from attnsearch.rundir import RunDir
    from attnsearch.search import RunSettings

    if not isinstance(budget, Budget):
        budget = Budget("flops", budget)
    settings = RunSettings.make(budget, **options)
    return RunDir.create(results_dir, name, settings, lock=False)


@pytest.fixture
def new_run(tmp_path):
    """``new_run(name, budget, **options)``: a RunDir under ``tmp_path/results``."""

    def factory(name: str, budget: int, **options):
        return make_run(tmp_path / "results", name, budget, **options)

    return factory


@pytest.fixture(scope="session")
def ray_local():
    """A quiet local Ray of this session's own (never one found running), bound to loopback."""
    import ray

    from attnsearch.search._ray import quiet_ray_env

    quiet_ray_env()
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        logging_level=logging.ERROR,
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()


def trial_rows(run_dir: Path) -> list[dict]:
    """A results folder's trials.csv, a dict per row."""
    with open(Path(run_dir) / "trials.csv") as f:
        return list(csv.DictReader(f))


# ---- Ray heads of a test's own ---------------------------------------------------------------
RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    """A loopback TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procs_with(text: str) -> set[int]:
    """The processes whose command line holds ``text``."""
    pids = set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if text.encode() in (proc / "cmdline").read_bytes():
                pids.add(int(proc.name))
        except OSError:
            continue
    return pids


def kill_trees(roots: set[int]) -> None:
    """SIGKILL ``roots`` and their descendants (never ``ray stop``, which stops every Ray of
    the machine)."""
    from attnsearch.search._session import _descendants, _table

    for pid in roots | _descendants(roots, _table()) if roots else ():
        with suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@contextmanager
def ray_head(*start: str, timeout: float = 120) -> Iterator[tuple[str, dict, Path]]:
    """``ray start --head START...`` on loopback, token auth, in a temp dir of its own;
    yields (address, env for its drivers and nodes, temp dir). Stops only this head's
    processes (those of its session folder)."""
    # Ray 2.60 heads use token auth; joining nodes and drivers must be told to send it
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}
    port = free_port()
    temp = Path("/tmp") / f"rt{os.getpid()}{port}"
    session = None
    try:
        subprocess.run(
            [
                RAY, "start", "--head", f"--port={port}", "--include-dashboard=false",
                f"--temp-dir={temp}", "--node-ip-address=127.0.0.1", "--disable-usage-stats",
                *start,
            ],
            check=True, env=env, capture_output=True, timeout=timeout,
        )  # fmt: skip
        session = (temp / "session_latest").resolve().name
        yield f"127.0.0.1:{port}", env, temp
    finally:
        kill_trees(procs_with(session or str(temp)))
