"""The journal: finished runs as JSON lines, read back by a later call with the same settings."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from attnsearch.fidelity._panel import STAGES, FidelityError
from attnsearch.safeio import json_dumps

# ---- the journal -------------------------------------------------------------------------
JOURNAL_FORMAT = 1


def _key_tuple(r: dict) -> tuple:
    return (r["member"], r["schedule"], r["seed"])


def _latest(records: list[dict]) -> list[dict]:
    """One record per run: a successful one where there is one (the first), else the last
    failure (a failed run is tried again by the next call; a success replaces it)."""
    best: dict[tuple, dict] = {}
    for r in records:
        k = _key_tuple(r)
        if k not in best or "failed" in best[k]:
            best[k] = r
    return list(best.values())


def _journal_key(space, settings, dataset, members, reference_factor, budget, device) -> str:
    """What a journal's runs depend on: the panel's architectures, the data (its digest,
    not where it is stored), the proxy (threads aside: they do not change what is
    trained), the reference's length and the device kind (CPU and CUDA runs differ in
    their numbers and their seconds: one journal holds one kind)."""
    import hashlib
    import json

    from attnsearch.settings import flips_by_default

    skip = ("threads", "data_dir")
    proxy = {k: v for k, v in settings.to_dict().items() if k not in skip}
    if proxy.get("optimizer") == "sgd":  # what every journal before the option trained with
        del proxy["optimizer"]
    if proxy.get("flip") in (None, flips_by_default(settings.dataset)):  # as before the option
        proxy.pop("flip", None)
    payload = {
        "space": space.name,
        "members": [m.arch.digest() for m in members],
        "dataset": dataset.digest(),
        "proxy": proxy,
        "reference_factor": reference_factor,
        "budget": budget,
        "device": device,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Journal:
    """The JSON-lines journal of a fidelity panel: a header line, then one run per line."""

    def __init__(self, path: Path, key: str):
        self.path, self.key = path, key

    def read(self) -> list[dict]:
        """The runs already recorded (none when the file is absent); refuses a journal of
        other settings. A last line cut short by a crash mid-write is left out (and
        overwritten by the next append)."""
        import json

        if not self.path.exists():
            self._write_header()
            return []
        if not self.path.is_file():
            raise FidelityError(f"--journal {self.path}: not a file")
        try:
            raw = self.path.read_bytes()
            open(self.path, "ab").close()  # appendable: refused now, not after hours
        except OSError as e:
            raise FidelityError(
                f"--journal {self.path}: cannot read or append to it ({e.strerror})"
            ) from None
        lines = raw.split(b"\n")
        complete, tail = lines[:-1], lines[-1]  # the tail is b"" when the file ends in \n
        rows = []
        for n, line in enumerate(complete, 1):
            try:
                rows.append(json.loads(line))
            except (UnicodeDecodeError, ValueError):
                raise FidelityError(
                    f"--journal {self.path}: line {n} is not JSON (not a fidelity journal?)"
                ) from None
        if not rows:
            if tail.strip():
                raise FidelityError(f"--journal {self.path}: not a fidelity journal")
            self._write_header()
            return []
        head = rows[0]
        if not isinstance(head, dict) or head.get("fidelity_journal") != JOURNAL_FORMAT:
            raise FidelityError(f"--journal {self.path}: not a fidelity journal")
        if head.get("key") != self.key:
            raise FidelityError(
                f"--journal {self.path} was written for another panel, dataset or proxy "
                f"settings (key {head.get('key')!r}, these settings {self.key!r})"
            )
        runs = []
        for n, row in enumerate(rows[1:], 2):
            if not _is_run(row):
                raise FidelityError(f"--journal {self.path}: line {n} is not a run record")
            for k in ("history", "train_losses", "val_losses"):
                if k in row:  # a NaN was written as null (strict JSON): NaN again
                    row[k] = [math.nan if v is None else v for v in row[k]]
            runs.append(row)
        if tail:  # cut short mid-write: drop it, keep the file ending in a newline
            with open(self.path, "r+b") as f:
                f.truncate(len(raw) - len(tail))
        return runs

    def _write_header(self) -> None:
        import json

        try:
            self.path.write_text(
                json.dumps({"fidelity_journal": JOURNAL_FORMAT, "key": self.key}) + "\n"
            )
        except OSError as e:
            raise FidelityError(f"--journal {self.path}: cannot write it ({e.strerror})") from None

    def append(self, record: dict) -> None:
        """One line per run, flushed to disk (a lock keeps lines of two processes apart;
        runs two processes both trained are counted once when read)."""
        import fcntl
        import os

        line = json_dumps(record, separators=(",", ":")) + "\n"
        try:
            with open(self.path, "a") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise FidelityError(
                f"--journal {self.path}: cannot append to it ({e.strerror}); the runs "
                "written before are kept"
            ) from None


def _is_run(row: Any) -> bool:
    """A run record as :func:`_run_job` returns it (values checked: a journal is input)."""
    if not isinstance(row, dict):
        return False
    ok_key = (
        isinstance(row.get("member"), int)
        and not isinstance(row.get("member"), bool)
        and row.get("schedule") in STAGES
        and isinstance(row.get("seed"), int)
        and not isinstance(row.get("seed"), bool)
    )
    if not ok_key:
        return False
    if "failed" in row:
        return isinstance(row["failed"], str)
    numbers = ("accuracy", "seconds")
    lists = ("history", "train_losses", "val_losses")

    def finite(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    return all(finite(row.get(k)) for k in numbers) and all(
        isinstance(row.get(k), list) and row[k] and all(v is None or finite(v) for v in row[k])
        for k in lists
    )  # None: a NaN loss, written as null (strict JSON)
