"""The one reader and the one writer of files someone else may have prepared (issue 18)."""

from __future__ import annotations

import os

import pytest

from attnsearch import safeio
from attnsearch.errors import InputError

BOMB = "\n".join(
    [
        "a: &a [x, x, x, x, x, x, x, x, x]",
        *(
            f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]"
            for p, n in zip("abcdefgh", "bcdefghi", strict=True)
        ),
    ]
)  # ~500 bytes, 9**9 nodes expanded


@pytest.mark.timeout(30)
def test_reader_refuses_fifos_and_devices_without_waiting(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/zero", tmp_path):
        with pytest.raises(InputError, match="not a regular file"):
            safeio.read_bytes(path)


def test_reader_caps_the_size(tmp_path):
    big = tmp_path / "big"
    big.write_bytes(b"x" * 1001)
    with pytest.raises(InputError, match="too large"):
        safeio.read_bytes(big, limit=1000)
    assert safeio.read_bytes(big, limit=1001) == b"x" * 1001


def test_json_depth_is_capped():
    assert safeio.json_loads('{"a": [[1]]}') == {"a": [[1]]}
    for depth in (safeio.MAX_DEPTH + 1, 100_000):  # parsed, then checked; or RecursionError
        with pytest.raises(safeio.NestingError, match="levels deep"):
            safeio.json_loads("[" * depth + "]" * depth)


def test_yaml_depth_and_alias_bombs_are_capped():
    assert safeio.yaml_load("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}  # fine
    with pytest.raises(safeio.NestingError, match="aliases expand"):
        safeio.yaml_load(BOMB)
    with pytest.raises(safeio.NestingError, match="levels deep"):
        safeio.yaml_load("a: " + "[" * 10_000 + "]" * 10_000)
    block = "a:\n" + "".join(" " * i + "-\n" for i in range(1, 200))  # block style too
    with pytest.raises(safeio.NestingError, match="levels deep"):
        safeio.yaml_load(block)


def test_show_keeps_one_line():
    assert safeio.show("results/run") == "results/run"
    shown = safeio.show("a\nb\r\x1b[31m\u2028é")
    assert shown == "a\\nb\\r\\x1b[31m\\u2028é" and shown.isprintable()


def test_atomic_write_never_follows_a_symlink(tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("keep")
    link = tmp_path / "file.json"
    link.symlink_to(outside)
    with pytest.raises(InputError, match="symlink"):
        safeio.write_atomic(link, "new")
    assert outside.read_text() == "keep" and link.is_symlink()
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        safeio.write_atomic(fifo, "new")


def test_atomic_write_uses_a_fresh_temporary_name(tmp_path):
    """A planted ``NAME.tmp`` (or any guessable name) is never written through."""
    outside = tmp_path / "outside"
    outside.write_text("keep")
    for name in ("f.json.tmp", ".f.json.tmp", f".f.json.{os.getpid()}.tmp"):
        (tmp_path / name).symlink_to(outside)
    safeio.write_atomic(tmp_path / "f.json", "new")
    assert (tmp_path / "f.json").read_text() == "new" and outside.read_text() == "keep"
    assert oct((tmp_path / "f.json").stat().st_mode & 0o777) == oct(safeio.FILE_MODE)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [f".f.json.{os.getpid()}.tmp", ".f.json.tmp", "f.json", "f.json.tmp", "outside"]


def test_atomic_open_leaves_nothing_when_interrupted(tmp_path):
    target = tmp_path / "m.py"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt), safeio.atomic_open(target) as f:
        f.write("half")
        raise KeyboardInterrupt
    assert target.read_text() == "old" and sorted(tmp_path.iterdir()) == [target]


def test_a_name_of_255_characters_gets_a_temporary_name_that_fits(tmp_path):
    target = tmp_path / ("a" * 250 + ".json")
    safeio.write_atomic(target, "x")
    assert target.read_text() == "x"


def test_append_and_lock_refuse_symlinks_fifos_and_hard_links(tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("keep")
    (tmp_path / "link").symlink_to(outside)
    os.link(outside, tmp_path / "hard")
    os.mkfifo(tmp_path / "fifo")
    for name in ("link", "hard", "fifo"):
        with pytest.raises(OSError):
            safeio.append_text(tmp_path / name, "x\n")
        with pytest.raises(OSError):
            os.close(safeio.open_lock(tmp_path / name))
    assert outside.read_text() == "keep"
    safeio.append_text(tmp_path / "log", "a\n")
    safeio.append_text(tmp_path / "log", "b\n")
    assert (tmp_path / "log").read_text() == "a\nb\n"
