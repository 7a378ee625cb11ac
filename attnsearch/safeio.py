"""Files someone else may have prepared: the one reader and the one writer (issue 18).

Results folders are copied, shared and downloaded, and space files, architecture files and
latency tables come from anywhere, so every file the tool reads or writes goes through here:

* **Reading** (:func:`read_bytes`, :func:`read_text`): only a regular file (a FIFO or a
  device such as ``/dev/zero`` is refused at once, never waited on or read without end),
  at most :data:`MAX_BYTES`. :func:`json_loads` and :func:`yaml_load` parse with a depth
  cap (:data:`MAX_DEPTH`: a deeply nested document is one line, not a ``RecursionError``)
  and, for YAML, a cap on the nodes aliases expand to (:data:`MAX_NODES`: a 1 KB "billion
  laughs" file is refused before it is built).
* **Writing** (:func:`atomic_open`, :func:`write_atomic`, :func:`append_text`,
  :func:`open_lock`): never through a symlink (``O_NOFOLLOW``), never over an existing
  entry that is not a regular file; whole files go to an exclusive temporary file with a
  random name (``O_EXCL``) beside the target and are renamed over it, so a reader sees the
  old file or the new one and a planted ``*.tmp`` symlink is never followed.

Paths printed in errors go through :func:`show`, so a file name with a newline or another
control character keeps an error on one line.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from attnsearch.errors import InputError

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "NestingError",
    "append_text",
    "atomic_open",
    "check_target",
    "json_dumps",
    "json_loads",
    "jsonable",
    "open_lock",
    "open_regular",
    "read_bytes",
    "read_text",
    "show",
    "write_atomic",
    "yaml_load",
]

MAX_BYTES = 64 * 2**20  # no settings, space, table or front file comes near this
MAX_DEPTH = 64  # the tool's own files nest at most 6 levels
MAX_NODES = 1_000_000  # YAML nodes after alias expansion; a space file has a few hundred
FILE_MODE = 0o644  # what write_text gave under the usual umask 022


class NestingError(ValueError):
    """A document nested too deeply, or whose aliases expand too far (the reason)."""


def show(path: Any) -> str:
    """``path`` as text for a one-line message: control characters (newlines, tabs, escape
    sequences, line separators) written as escapes, everything else as is."""
    text = str(path)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _err(error: type[InputError], path: Any, what: str) -> InputError:
    return error(f"{show(path)}: {what}")


# ---- reading ------------------------------------------------------------------------------
def _open_regular_fd(path: str | Path, error: type[InputError], limit: int) -> tuple[int, int]:
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise _err(error, path, f"cannot read ({e.strerror or e})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _err(error, path, "not a regular file (a folder, FIFO or device is not read)")
        if st.st_size > limit:
            raise _err(error, path, f"too large ({st.st_size:,} bytes; at most {limit:,})")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


def read_bytes(
    path: str | Path, error: type[InputError] = InputError, limit: int = MAX_BYTES
) -> bytes:
    """The bytes of the regular file ``path`` (symlinks followed), at most ``limit``.

    Raises:
        error: one line naming the file (missing, unreadable, not a regular file, too large).
    """
    fd, size = _open_regular_fd(path, error, limit)
    chunks, total = [], 0
    try:
        while True:
            chunk = os.read(fd, max(size - total, 0) + 65536)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:  # grew while read
                raise _err(error, path, f"too large (more than {limit:,} bytes)")
            chunks.append(chunk)
    except OSError as e:
        raise _err(error, path, f"cannot read ({e.strerror or e})") from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_text(
    path: str | Path, error: type[InputError] = InputError, limit: int = MAX_BYTES
) -> str:
    """The UTF-8 text of the regular file ``path`` (as :func:`read_bytes`)."""
    data = read_bytes(path, error, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _err(error, path, "not UTF-8 text") from None


def open_regular(
    path: str | Path, error: type[InputError] = InputError, limit: int = 2**40
) -> IO[bytes]:
    """``path`` opened for binary reading if it is a regular file of at most ``limit``
    bytes (for readers that take a file object, such as ``torch.load``)."""
    fd, _ = _open_regular_fd(path, error, limit)
    return os.fdopen(fd, "rb")


# ---- parsing ------------------------------------------------------------------------------
def _check_depth(data: Any, limit: int) -> None:
    stack = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            if depth > limit:
                raise NestingError(f"nested more than {limit} levels deep")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list | tuple))


def json_loads(text: str | bytes, depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` with a depth cap.

    Raises:
        json.JSONDecodeError: not JSON.
        NestingError: nested deeper than ``depth``.
        ValueError: a number too long to convert.
    """
    try:
        data = json.loads(text)
    except RecursionError:
        raise NestingError(f"nested more than {depth} levels deep") from None
    _check_depth(data, depth)
    return data


def jsonable(obj: Any) -> Any:
    """``obj`` with NaN and infinities replaced by ``None`` (strict JSON: what other programs'
    parsers accept; Python's ``json`` would write ``NaN`` and ``Infinity``)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    return obj


def json_dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`jsonable` ``(obj)``, strict: every JSON file and ``--json``
    output the tool writes goes through here, so none holds ``NaN`` or ``Infinity``."""
    return json.dumps(jsonable(obj), allow_nan=False, **kwargs)


def _check_yaml_events(text: str, depth: int, nodes: int) -> None:
    """Walk the parser's events (a state machine: no recursion): depth and the node count
    with every alias expanded, both capped before anything is built."""
    import yaml

    sizes: dict[str, int] = {}  # anchor -> expanded nodes of its node
    stack: list[list] = []  # open collections: [anchor, nodes so far]
    total = 0

    def add(n: int) -> None:
        nonlocal total
        if stack:
            stack[-1][1] += n
        else:
            total += n
        if total + sum(s[1] for s in stack) > nodes:
            raise NestingError(f"aliases expand to more than {nodes:,} nodes")

    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append([event.anchor, 1])
            if len(stack) > depth:
                raise NestingError(f"nested more than {depth} levels deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, n = stack.pop()
            if anchor is not None:
                sizes[anchor] = n
            add(n)
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                sizes[event.anchor] = 1
            add(1)
        elif isinstance(event, yaml.AliasEvent):
            add(sizes.get(event.anchor, 1))


def yaml_load(text: str, depth: int = MAX_DEPTH, nodes: int = MAX_NODES) -> Any:
    """``yaml.safe_load`` with a depth cap and a cap on alias expansion.

    Raises:
        yaml.YAMLError: not YAML.
        NestingError: nested deeper than ``depth``, or more than ``nodes`` nodes once every
            alias is expanded.
        ValueError: a number too long to convert.
    """
    import yaml

    _check_yaml_events(text, depth, nodes)  # before anything is built
    return yaml.safe_load(text)


# ---- writing ------------------------------------------------------------------------------
def check_target(path: str | Path, error: type[InputError] = InputError) -> None:
    """Refuse to write over ``path`` if it exists as anything but a regular file (a
    symlink, a folder, a FIFO, a device)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise _err(error, path, f"cannot write ({e.strerror or e})") from None
    if stat.S_ISLNK(st.st_mode):
        raise _err(error, path, "is a symlink; refusing to write through or over it")
    if not stat.S_ISREG(st.st_mode):
        raise _err(error, path, "exists and is not a regular file; refusing to write over it")


@contextlib.contextmanager
def atomic_open(
    path: str | Path,
    mode: str = "w",
    error: type[InputError] = InputError,
    *,
    fsync: bool = False,
    newline: str | None = None,
) -> Iterator[IO]:
    """A new temporary file beside ``path`` (``O_EXCL``, random name), renamed over
    ``path`` when the block ends without an exception; removed otherwise.

    Raises:
        error: ``path`` is not a regular file (:func:`check_target`), or the folder is not
            writable.
    """
    path = Path(path)
    check_target(path, error)
    try:
        # a short prefix: the temporary name fits wherever the target's name fits
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:24]}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _err(error, path, f"cannot write ({e.strerror or e})") from None
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, mode, newline=newline) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        check_target(path, error)  # planted while we wrote
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _err(error, path, f"cannot write ({e.strerror or e})") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(
    path: str | Path,
    data: str | bytes,
    error: type[InputError] = InputError,
    *,
    fsync: bool = False,
) -> None:
    """Replace ``path`` with ``data`` (as :func:`atomic_open`)."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w", error, fsync=fsync) as f:
        f.write(data)


def _open_nofollow(path: str | Path, flags: int) -> int:
    """``os.open`` that never follows a symlink and accepts only a regular file with one
    name (a hard link elsewhere would let a write land outside the folder)."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_CREAT, FILE_MODE)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise OSError(
                0, "not a regular file of its own (a FIFO, device or hard link)", str(path)
            )
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def append_text(path: str | Path, text: str) -> None:
    """Append ``text`` to the regular file ``path`` (created if missing).

    Raises:
        OSError: a symlink (``ELOOP``), a FIFO without reader (``ENXIO``), not a regular
            file, or not writable.
    """
    fd = _open_nofollow(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def open_lock(path: str | Path) -> int:
    """A read-write descriptor of the lock file ``path`` (created if missing), never
    through a symlink and never a file with another name elsewhere, so truncating and
    writing it cannot touch a file outside the folder.

    Raises:
        OSError: as :func:`append_text`.
    """
    return _open_nofollow(path, os.O_RDWR)
