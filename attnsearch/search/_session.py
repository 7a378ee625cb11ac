"""The record of the Ray session a driver started, and cleanup after a crash.

After a driver was SIGKILLed, :func:`kill_stray_ray` kills only processes it can prove
belong to the Ray that driver started (see :func:`record_ray_session`):
``ray_session.json`` counts only when signed with a key of this user kept outside every
results folder, and even then only Ray's own processes of that session are taken. The
process table helpers (``/proc``) serve that proof.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any

from attnsearch.rundir import RunDir


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


def _uid(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def _exe(pid: int) -> str | None:
    try:
        return os.path.realpath(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return None


def _ray_package() -> str:
    import ray

    return os.path.realpath(os.path.dirname(ray.__file__)) + os.sep


def _python() -> str:
    return os.path.realpath(sys.executable)


def _ray_temp_dir() -> str:
    """Ray's temp dir as this process's Ray would choose it (``RAY_TMPDIR``, ``TMPDIR``,
    else /tmp; then ``ray``), with symlinks resolved."""
    from ray._common.utils import get_default_ray_temp_dir

    return os.path.realpath(get_default_ray_temp_dir())


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


# ---- the record's key: a secret of this user, kept outside every results folder ---------
KEY_FILE = "session.key"  # in ~/.cache/attnsearch (XDG_CACHE_HOME): 0600, never a symlink


def key_dir() -> Path:
    """Where this user's session-record key lives: ``$XDG_CACHE_HOME/attnsearch``, else
    ``~/.cache/attnsearch``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "attnsearch"


def _read_key(path: Path) -> bytes | None:
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            return None  # someone else's, or readable by others: not a secret
        data = os.read(fd, 129).strip()
    finally:
        os.close(fd)
    return data if len(data) == 64 and re.fullmatch(rb"[0-9a-f]{64}", data) else None


def session_key(create: bool = False) -> bytes | None:
    """This user's secret for authenticating ``ray_session.json`` records (None when there
    is none, or it is not private to this user: then no record is authenticated).

    With ``create``, made once (32 random bytes, hex) in a 0700 folder, published by a
    hard link so that a concurrent reader never sees half a key.
    """
    import stat

    folder = key_dir()
    path = folder / KEY_FILE
    key = _read_key(path)
    if key is not None or not create:
        return key
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(folder)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
            return None  # a folder others can write to could swap the key
        tmp = folder / f".{KEY_FILE}.{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, secrets.token_hex(32).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):  # another driver made it first: theirs
            os.link(tmp, path)
        os.unlink(tmp)
    except OSError:
        return None
    return _read_key(path)


def _mac(key: bytes, record: dict[str, Any]) -> str:
    import hashlib
    import hmac
    import json

    body = {k: v for k, v in record.items() if k != "mac"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def sign_session_record(record: dict[str, Any], key: bytes) -> dict[str, Any]:
    """``record`` with its ``mac``: an HMAC-SHA256 under this user's key."""
    return {**record, "mac": _mac(key, record)}


def _not_ours(record: Any) -> str | None:
    """Why ``record`` cannot be taken as one a driver of this user wrote on this boot (None
    if it can): the key, the MAC, the boot, and a ``session_*`` folder directly under Ray's
    temp dir, a real folder owned by this user."""
    import hmac
    import stat

    if not isinstance(record, dict):
        return "not a session record"
    key = session_key()
    if key is None:
        return f"no session key of this user in {key_dir()} to authenticate it"
    mac = record.get("mac")
    if not isinstance(mac, str) or not hmac.compare_digest(mac, _mac(key, record)):
        return "not written by a driver of this user (no valid MAC)"
    if record.get("boot") != _boot_id():
        return "written before the machine last booted"
    session, folder = record.get("session"), record.get("session_dir")
    if not (isinstance(session, str) and re.fullmatch(r"session_[\w.-]+", session)):
        return "no Ray session name"
    if not isinstance(folder, str) or Path(folder).name != session:
        return "its session folder does not match its session name"
    try:
        real = os.path.realpath(folder)
        st = os.lstat(real)
        temp = _ray_temp_dir()
    except (OSError, ImportError):
        return f"its session folder {folder!r} is gone"
    if os.path.dirname(real) != temp:
        return f"its session folder is not under Ray's temp dir {temp}"
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        return "its session folder is not a folder of this user"
    return None


def record_ray_session(run: RunDir) -> None:
    """Record the local Ray started here, in a form :func:`kill_stray_ray` can verify.

    Recorded: the session name and folder, this boot, the driver's pid and start time, and
    every process of the Ray (the ones Ray started for this node and their descendants:
    raylet workers, the renamed ``ray::DashboardAgent``/``ray::RuntimeEnvAgent``) with its
    start time; signed with this user's key (:func:`session_key`), which never leaves
    ``~/.cache/attnsearch``. Without a key the record is kept unsigned, and a later cleanup
    kills nothing.
    """
    with contextlib.suppress(Exception):  # best effort: without one, cleanup kills nothing
        _record_ray_session(run)


def _record_ray_session(run: RunDir) -> None:
    import ray

    node = ray._private.worker._global_node
    session_dir = Path(node.get_session_dir_path())
    roots = {
        info.process.pid
        for infos in node.all_processes.values()
        for info in infos
        if getattr(info, "process", None) is not None
    }
    table = _table()
    pids = (roots | _descendants(roots, table)) & set(table)
    me = os.getpid()
    record = {
        "session": session_dir.name,
        "driver_pid": me,
        "session_dir": str(session_dir),
        "boot": _boot_id(),
        "driver": [me, table[me][1]] if me in table else None,
        "processes": sorted([pid, table[pid][1]] for pid in pids),
    }
    key = session_key(create=True)  # none (no writable cache folder): kept unsigned
    signed = sign_session_record(record, key) if key is not None else record
    details = {k: v for k, v in signed.items() if k not in ("session", "driver_pid")}
    run.record_ray_session(record["session"], me, **details)


def _runs_ray(pid: int, argv: list[bytes], ray_dir: str, python: str) -> bool:
    """The process runs Ray's code: a binary of Ray's package, or this Python running a
    script of Ray's package."""
    exe = _exe(pid)
    if exe is None:
        return False
    if exe.startswith(ray_dir):
        return True
    if exe != python:
        return False
    for arg in argv[1:]:
        if arg in (b"-c", b"-m"):
            return False  # code or a module named on the command line: not a file of Ray's
        if not arg.startswith(b"-"):
            return os.path.realpath(arg.decode(errors="replace")).startswith(ray_dir)
    return False


def stray_ray_pids(record: dict[str, Any] | None, table=None) -> set[int]:
    """The pids of the Ray a dead driver of this run started, as far as they can be proved.

    Only from a record :func:`_not_ours` accepts (signed with this user's key, this boot, a
    ``session_*`` folder of this user directly under Ray's temp dir); only processes of
    this user whose executable is Ray's (a binary of Ray's package, or this Python): those
    running Ray's code with the exact ``--session-dir=``/``--session_dir=`` argument of
    that folder, those whose pid and start time the record lists, and their descendants.
    Nothing while the recorded driver still lives; this process and its ancestors never.
    """
    if _not_ours(record) is not None:
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
    try:
        ray_dir, python = _ray_package(), _python()
    except ImportError:
        return set()
    uid = os.getuid()

    def rays(pid: int) -> bool:
        exe = _exe(pid)
        return _uid(pid) == uid and exe is not None and (exe.startswith(ray_dir) or exe == python)

    folder = record["session_dir"].encode()
    flags = {b"--session-dir=" + folder, b"--session_dir=" + folder}
    proven = {p for p, s in recorded if p in table and table[p][1] == s and rays(p)}
    for pid in table:
        argv = _cmdline(pid).split(b"\0")
        if flags.intersection(argv) and _uid(pid) == uid and _runs_ray(pid, argv, ray_dir, python):
            proven.add(pid)
    mine = _ancestors(os.getpid(), table)  # never this process, its parents, its children
    proven -= mine
    return (proven | {p for p in _descendants(proven, table) if rays(p)}) - mine


def kill_stray_ray(run: RunDir, wait: float = 5.0, note=None) -> int:
    """SIGKILL the processes of a local Ray that a crashed driver of this run left behind
    (only those :func:`stray_ray_pids` proves); wait up to ``wait`` s for them to end.

    A ``ray_session.json`` that cannot be authenticated kills nothing; ``note`` (a callable
    taking one line) is told so, and how many processes were stopped.
    """
    record = run.ray_session_record()
    if record is None:
        return 0
    reason = _not_ours(record)
    if reason is not None:
        if note is not None and run.ray_session_file.exists():
            note(
                f"{run.ray_session_file.name}: {reason}; no process stopped (a Ray that a "
                "killed driver left running is yours to stop)"
            )
        return 0
    table = _table()
    pids = stray_ray_pids(record, table)
    killed = set()
    for pid in pids:
        if _stat(pid) != table[pid]:  # gone, or the pid was reused since the scan
            continue
        try:
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        except OSError:
            pass
    if killed and note is not None:
        note(f"stopped {len(killed)} process(es) of the Ray a killed driver of this run left")
    end = time.monotonic() + wait
    while killed and time.monotonic() < end:
        killed = {p for p in killed if (st := _stat(p)) is not None and st == table[p]}
        if killed:
            time.sleep(0.1)
    return len(pids)
