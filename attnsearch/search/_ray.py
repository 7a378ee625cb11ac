"""The Ray session of a search: start or connect, record it, clean up after a crash."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

from attnsearch.errors import InputError
from attnsearch.rundir import RunDir


def quiet_ray_env() -> None:
    """Environment defaults for a quiet Ray and Tune (no usage stats, no new output)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def start_ray(address: str | None) -> bool:
    """Connect to ``address`` (or ``RAY_ADDRESS``), or start a quiet local Ray of this
    process's own (never one found running on the machine); True if started here."""
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
    ray.init(
        address="local",
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        logging_level=logging.ERROR,
        log_to_driver=False,
        configure_logging=True,
    )
    return True


def record_ray_session(run: RunDir) -> None:
    """Write the session of the local Ray started here (for :func:`kill_stray_ray`)."""
    import ray

    try:
        node = ray._private.worker._global_node
        run.record_ray_session(Path(node.get_session_dir_path()).name)
    except Exception:  # best effort: only used to clean up after a crash
        pass


def kill_stray_ray(run: RunDir) -> int:
    """Kill the processes of a local Ray that a crashed driver of this run left behind."""
    session = run.ray_session()
    if session is None:
        return 0
    killed = 0
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        pid = int(proc.name)
        if session in cmdline and pid != os.getpid():
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    return killed
