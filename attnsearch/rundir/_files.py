"""The execution log (``executions.jsonl``) and the trial checkpoints under ``tune/``."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnsearch import safeio
from attnsearch.errors import InputError
from attnsearch.rundir._names import (
    CHECKPOINT_FILE,
    TUNE,
    TUNE_PARAMS,
    NoCheckpointError,
    ResultsError,
)
from attnsearch.safeio import show


# ---- the execution log ------------------------------------------------------------------
@dataclass(frozen=True)
class Execution:
    """One training execution of a trial (a re-run from a checkpoint is another one)."""

    trial: int  # Optuna trial number
    node_id: str  # Ray node that ran it
    pid: int  # worker process
    start_epoch: int  # > 0 when it continued from a checkpoint
    digest: str | None  # the architecture's digest
    time: float  # when it started (Unix time)
    resume_error: str | None = None  # its checkpoint was unreadable: it started from scratch


def record_execution(
    log: str | Path,
    trial: int,
    node_id: str,
    start_epoch: int,
    digest: str | None,
    resume_error: str | None = None,
    *,
    pid: int | None = None,
    at: float | None = None,
) -> None:
    """Append one line to the execution log (best effort: a worker never fails on it).
    ``pid`` and ``at``: the worker's pid and start time when written on its behalf."""
    line = Execution(
        trial,
        node_id,
        os.getpid() if pid is None else int(pid),
        start_epoch,
        digest,
        time.time() if at is None else float(at),
        resume_error,
    )
    with contextlib.suppress(OSError):  # never through a symlink planted in the folder
        safeio.append_text(log, safeio.json_dumps(dataclasses.asdict(line)) + "\n")


def read_executions(log: str | Path) -> list[Execution]:
    try:
        lines = safeio.read_text(log).splitlines()
    except InputError:
        return []
    out = []
    for line in lines:
        try:
            d = json.loads(line)
            out.append(
                Execution(
                    trial=int(d["trial"]),
                    node_id=str(d.get("node_id", "")),
                    pid=int(d.get("pid", 0)),
                    start_epoch=int(d.get("start_epoch", 0)),
                    digest=d.get("digest"),
                    time=float(d.get("time", 0.0)),
                    resume_error=d.get("resume_error"),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by a crash
    return out


# ---- checkpoints ------------------------------------------------------------------------
def _ckpt_index(path: Path) -> int:
    try:
        return int(path.name.rsplit("_", 1)[1])
    except (IndexError, ValueError):
        return -1


def find_checkpoint(run_dir: str | Path, trial: int, tune_trial_id: str | None) -> Path:
    """The last ``checkpoint_*/state.pt`` of the trial's Tune folder under ``run_dir/tune``.

    The Tune trial folder is the one whose name carries ``tune_trial_id``
    (``trainable_<id>_<n>_...``); failing that, the one whose ``params.json`` has
    ``trial_number == trial``.

    Raises:
        NoCheckpointError: none found.
    """
    tune_dir = Path(run_dir) / TUNE
    folders = sorted(p for p in tune_dir.glob("*") if p.is_dir()) if tune_dir.is_dir() else []
    matches = []
    if tune_trial_id:
        matches = [p for p in folders if f"_{tune_trial_id}_" in f"{p.name}_"]
    if not matches:
        for p in folders:
            try:
                params = safeio.json_loads(safeio.read_bytes(p / TUNE_PARAMS, limit=2**20))
            except (InputError, ValueError):
                continue
            if isinstance(params, dict) and params.get("trial_number") == trial:
                matches.append(p)
    states = [s for p in matches for s in p.glob(f"checkpoint_*/{CHECKPOINT_FILE}")]
    if not states:
        raise NoCheckpointError(f"no checkpoint of trial {trial} found under {tune_dir}/")
    return max(states, key=lambda s: (_ckpt_index(s.parent), s.stat().st_mtime))


def save_checkpoint(folder: str | Path, epoch: int, model: dict, optimizer: dict | None) -> Path:
    """Write a trial checkpoint (tensors and numbers only) into ``folder``: the one writer
    of ``state.pt``."""
    import torch

    payload: dict[str, Any] = {"epoch": int(epoch), "model": model}
    if optimizer is not None:  # intermediate checkpoints keep what resuming needs
        payload["optimizer"] = optimizer
    path = Path(folder) / CHECKPOINT_FILE
    torch.save(payload, path)
    return path


def load_checkpoint(path: str | Path, error: type[InputError] = ResultsError) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; nothing in it can run code
    (``weights_only=True``). The one checkpoint reader (resume, ``export --weights``).

    ``path`` is the ``state.pt`` file or its folder.

    Raises:
        error: unreadable, or not a checkpoint.
    """
    import torch

    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    try:
        with safeio.open_regular(path, error) as f:  # a FIFO is never waited on
            payload = torch.load(f, map_location="cpu", weights_only=True)
    except error:
        raise
    except Exception as e:
        raise error(f"{show(path)} is not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict):
        raise error(f"{path} holds no 'model' state dict")
    return payload
