"""The Ray session of a search: start or connect, check resources, and the driver-side
execution log. Its record and the cleanup after a crash are :mod:`._session`'s.

A search without ``--address`` (and without ``RAY_ADDRESS``) starts a Ray of its own
(``address="local"``): never one found running on the machine, whatever
``ray_current_cluster`` says. A cluster named with ``--address`` is probed (a TCP connect
with a short deadline) before ``ray.init``, which would otherwise retry forever.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

from attnsearch.errors import InputError
from attnsearch.rundir import record_execution


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
        if address.strip() == "auto":  # the cluster `ray start` last recorded on this machine
            try:
                from ray._private.services import canonicalize_bootstrap_address

                found = canonicalize_bootstrap_address(address)
            except Exception as e:
                raise InputError(f"--address auto: no Ray cluster found ({e})") from None
            if found:
                probe_address(found)
        else:
            probe_address(address)
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


PROBE_SECONDS = 5.0  # how long a connection probe waits for the cluster's GCS port


def _host_port(address: str) -> tuple[str, int] | None:
    """The host and port a Ray address names (``HOST:PORT``, ``[IPv6]:PORT``, ``HOST``
    (Ray's GCS port 6379), ``ray://HOST[:PORT]`` (Ray Client, 10001)); None for ``local``
    and ``auto``, which name no host."""
    from urllib.parse import urlsplit

    text = address.strip()
    if text in ("local", "auto"):
        return None
    scheme, _, rest = text.rpartition("://")
    try:
        parts = urlsplit("//" + rest)
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or parts.path or parts.query or parts.fragment or parts.username:
        raise InputError(f"Ray address {_shown(address)} is not HOST:PORT (e.g. 10.0.0.1:6379)")
    if port is None:
        port = 10001 if scheme == "ray" else 6379
    return host, port


def _shown(text: str) -> str:
    return text if text.isprintable() else repr(text)


# HTTP/2's client preface and an empty SETTINGS frame: a gRPC server (Ray's GCS, Ray
# Client) answers with a SETTINGS frame of its own before any call or authentication
_H2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def probe_address(address: str, deadline: float = PROBE_SECONDS) -> None:
    """Refuse an address where no Ray answers: within ``deadline`` seconds (name
    resolution included), a TCP connect to its host and port, and there a reply to HTTP/2's
    preface (the gRPC that Ray's GCS speaks; skipped under ``RAY_USE_TLS``, where the
    connect alone is checked). ``ray.init`` to such an address would retry for minutes or
    forever, deaf to SIGTERM.

    Raises:
        InputError: one line naming the address and what the probe met.
    """
    import socket
    import threading

    target = _host_port(address)
    if target is None:
        return
    tls = os.environ.get("RAY_USE_TLS", "0").strip().lower() in ("1", "true")
    outcome: dict[str, str] = {}

    def connect() -> None:
        end = time.monotonic() + deadline
        try:
            with socket.create_connection(target, timeout=deadline) as sock:
                if not tls:
                    sock.sendall(_H2_HELLO)
                    reply = b""
                    while len(reply) < 9:
                        sock.settimeout(max(0.01, end - time.monotonic()))
                        chunk = sock.recv(9 - len(reply))
                        if not chunk:
                            break
                        reply += chunk
                    if len(reply) < 9 or reply[3] != 4:  # not a SETTINGS frame
                        outcome["error"] = "something listens there, but not a Ray (gRPC) server"
                        return
                outcome["ok"] = ""
        except TimeoutError:
            outcome["error"] = f"no answer within {deadline:g} s"
        except OSError as e:
            outcome["error"] = e.strerror or str(e) or type(e).__name__

    thread = threading.Thread(target=connect, daemon=True)  # getaddrinfo has no timeout
    thread.start()
    thread.join(deadline + 0.5)
    if "ok" not in outcome:
        why = outcome.get("error") or f"no answer within {deadline:g} s"
        raise InputError(
            f"cannot connect to the Ray cluster at {_shown(address)}: {why} "
            f"(TCP {target[0]}:{target[1]}); check --address or RAY_ADDRESS"
        )


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
