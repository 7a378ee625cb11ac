"""The Ray session of a search: start or connect, check resources, record the session,
clean up after a crash, and the driver-side execution log.

A search without ``--address`` (and without ``RAY_ADDRESS``) starts a Ray of its own
(``address="local"``): never one found running on the machine, whatever
``ray_current_cluster`` says. After a driver was SIGKILLed, :func:`kill_stray_ray` kills
only processes it can prove belong to the Ray that driver started (see
:func:`record_ray_session`); it never trusts ``ray_session.json`` as written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import time
from pathlib import Path
from typing import Any

from attnsearch.errors import InputError
from attnsearch.rundir import RunDir, record_execution

OWNER_FILE = "attnsearch_owner"  # in the session dir of a Ray a search started: its nonce


def quiet_ray_env() -> None:
    """Environment defaults for a quiet Ray and Tune (no usage stats, no new output)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def start_ray(address: str | None) -> bool:
    """Connect to ``address`` (or ``RAY_ADDRESS``), or start a quiet local Ray of this
    process's own (never one found running on the machine); True if started here.

    The local Ray runs with token authentication, forced on even where ``RAY_AUTH_MODE``
    says otherwise (Ray 2.60 cannot keep its ports on loopback: see the README).
    """
    import ray

    quiet_ray_env()
    address = address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return False
    if address:
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        except Exception as e:  # unreachable cluster: bad input, not a crash
            raise InputError(f"cannot connect to the Ray cluster at {address}: {e}") from None
        return False
    _token_auth_on()
    ray.init(
        address="local",  # a new Ray of our own, never ray_current_cluster's
        include_dashboard=False,  # Ray 2.60 rewrites a 127.0.0.1 node address to the
        # machine's reachable one and its gRPC servers listen on all interfaces: the token
        # is what keeps other machines out
        logging_level=logging.ERROR,
        log_to_driver=False,
        configure_logging=True,
    )
    return True


def _token_auth_on() -> None:
    """Token authentication for the local Ray, whatever ``RAY_AUTH_MODE`` says (the token
    is ``~/.ray/auth_token``, made by Ray when missing). Ray caches the mode, so it is set
    the way Ray sets its own default, not only in the environment."""
    from ray._private.authentication import authentication_token_setup as auth

    auth._enable_token_auth()


# ---- resources --------------------------------------------------------------------------
def check_resources(cpus_per_trial: float, gpus_per_trial: float) -> None:
    """Refuse a trial that no alive node of the connected cluster can ever run.

    Raises:
        InputError: one line naming what a trial needs and what the cluster has.
    """
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    fits = [
        n
        for n in nodes
        if n.get("CPU", 0.0) >= cpus_per_trial and n.get("GPU", 0.0) >= gpus_per_trial
    ]
    if fits:
        return
    most_cpu = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    most_gpu = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
    raise InputError(
        f"a trial needs {_num(cpus_per_trial)} CPU and {_num(gpus_per_trial)} GPU on one node "
        f"(--cpus-per-trial, --gpus-per-trial), but no node of the Ray cluster has that: "
        f"{len(nodes)} node(s), at most {_num(most_cpu)} CPU and {_num(most_gpu)} GPU on one"
    )


def _num(x: float) -> str:
    return f"{x:g}"


# ---- processes ---------------------------------------------------------------------------
def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks since boot) of a live process, else None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text.rsplit(")", 1)[1].split()
    try:
        return int(fields[1]), int(fields[19])
    except (IndexError, ValueError):
        return None


def _table() -> dict[int, tuple[int, int]]:
    """Every live process: pid -> (parent pid, start time)."""
    out = {}
    for proc in Path("/proc").glob("[0-9]*"):
        st = _stat(int(proc.name))
        if st is not None:
            out[int(proc.name)] = st
    return out


def _descendants(roots: set[int], table: dict[int, tuple[int, int]]) -> set[int]:
    found = set(roots)
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _) in table.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return found - set(roots)


def _ancestors(pid: int, table: dict[int, tuple[int, int]]) -> set[int]:
    out = set()
    while pid in table and pid not in out and pid > 1:
        out.add(pid)
        pid = table[pid][0]
    return out


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def record_ray_session(run: RunDir) -> None:
    """Record the local Ray started here, in a form :func:`kill_stray_ray` can verify.

    Recorded: the session name and folder, a random nonce also written into that folder
    (:data:`OWNER_FILE`), the driver's pid and start time, and every process of the Ray
    (the ones Ray started for this node and their descendants: raylet workers, the
    renamed ``ray::DashboardAgent``/``ray::RuntimeEnvAgent``) with its start time.
    """
    with contextlib.suppress(Exception):  # best effort: without one, cleanup kills nothing
        _record_ray_session(run)


def _record_ray_session(run: RunDir) -> None:
    import ray

    node = ray._private.worker._global_node
    session_dir = Path(node.get_session_dir_path())
    nonce = secrets.token_hex(16)
    (session_dir / OWNER_FILE).write_text(nonce)
    roots = {
        info.process.pid
        for infos in node.all_processes.values()
        for info in infos
        if getattr(info, "process", None) is not None
    }
    table = _table()
    pids = (roots | _descendants(roots, table)) & set(table)
    me = os.getpid()
    run.record_ray_session(
        session_dir.name,
        me,
        session_dir=str(session_dir),
        nonce=nonce,
        driver=[me, table[me][1]] if me in table else None,
        processes=sorted([pid, table[pid][1]] for pid in pids),
    )


def stray_ray_pids(record: dict[str, Any] | None, table=None) -> set[int]:
    """The pids of the Ray a dead driver of this run started, as far as they can be proved.

    A process is taken when its pid and start time match one recorded; or it descends from
    one so proven; or its command line names the recorded session folder and that folder
    holds the recorded nonce. Nothing is taken while the recorded driver still lives, nor
    from a record without these facts (an older or hand-edited ``ray_session.json``); this
    process and its ancestors never are.
    """
    if not isinstance(record, dict):
        return set()
    table = _table() if table is None else table
    try:
        driver = record.get("driver")
        if driver is not None:
            pid, start = int(driver[0]), int(driver[1])
            if pid in table and table[pid][1] == start:
                return set()  # the driver that started it is alive: its Ray is in use
        recorded = {(int(p), int(s)) for p, s in record.get("processes") or []}
    except (TypeError, ValueError, IndexError):
        return set()
    proven = {p for p, s in recorded if p in table and table[p][1] == s}
    session_dir, nonce = record.get("session_dir"), record.get("nonce")
    if isinstance(session_dir, str) and isinstance(nonce, str) and nonce:
        folder = Path(session_dir)
        try:
            owned = (
                folder.name == record.get("session")
                and (folder / OWNER_FILE).read_text().strip() == nonce
            )
        except OSError:
            owned = False
        if owned:
            needle = str(folder).encode()
            proven |= {p for p in table if needle in _cmdline(p)}
    mine = _ancestors(os.getpid(), table)  # never this process, its parents, its children
    proven -= mine
    return (proven | _descendants(proven, table)) - mine


def kill_stray_ray(run: RunDir, wait: float = 5.0) -> int:
    """SIGKILL the processes of a local Ray that a crashed driver of this run left behind
    (only those :func:`stray_ray_pids` proves); wait up to ``wait`` s for them to end."""
    table = _table()
    pids = stray_ray_pids(run.ray_session_record(), table)
    killed = set()
    for pid in pids:
        if _stat(pid) != table[pid]:  # gone, or the pid was reused since the scan
            continue
        try:
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        except OSError:
            pass
    end = time.monotonic() + wait
    while killed and time.monotonic() < end:
        killed = {p for p in killed if (st := _stat(p)) is not None and st == table[p]}
        if killed:
            time.sleep(0.1)
    return len(pids)


# ---- the execution log, kept by the driver ----------------------------------------------
class _ExecutionLog:
    """A Ray actor on the driver's node that appends workers' execution records to the run
    folder's ``executions.jsonl`` (workers on other machines never write that path)."""

    def __init__(self, path: str):
        self.path = path

    def record(self, trial, node_id, pid, start_epoch, digest, at, resume_error=None) -> bool:
        record_execution(
            self.path, trial, node_id, start_epoch, digest, resume_error, pid=pid, at=at
        )
        return True


def execution_log(path: str | Path):
    """Start the execution-log actor on this driver's node; returns its handle."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    actor = ray.remote(num_cpus=0, max_restarts=0)(_ExecutionLog)
    return actor.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False)
    ).remote(str(path))


def report_execution(
    log, trial: int, node_id: str, start_epoch: int, digest, resume_error: str | None = None
) -> None:
    """From a worker: tell the driver's execution log that a training starts (waits for
    it, so that the record exists before any epoch trains; best effort)."""
    if log is None:
        return
    import ray

    with contextlib.suppress(Exception):  # the driver is gone: the trial dies with it
        ray.get(
            log.record.remote(
                trial, node_id, os.getpid(), start_epoch, digest, time.time(), resume_error
            ),
            timeout=60,
        )
