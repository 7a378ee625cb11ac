"""The results folder itself: :class:`RunDir` (paths, creation, lock, run.yaml, Ray session)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import errno
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from attnsearch import safeio
from attnsearch.errors import InputError
from attnsearch.rundir._files import Execution, find_checkpoint, read_executions
from attnsearch.rundir._names import (
    _CREATE_TRIAL,
    EXECUTIONS,
    JOURNAL,
    LATENCY_TABLE,
    LOCK,
    NAME,
    PARETO_CSV,
    PARETO_JSON,
    PARETO_PNG,
    PROFILES,
    RAY_SESSION,
    RUN_YAML,
    SQLITE,
    SUMMARY_JSON,
    TRIALS_CSV,
    TUNE,
    WRITTEN,
    ResultsError,
)
from attnsearch.rundir._record import RunRecord
from attnsearch.safeio import show


# ---- the folder -----------------------------------------------------------------------
class RunDir:
    """One search's results folder. ``RunDir(path)`` touches nothing; use :meth:`create`
    for a new search and :meth:`open` for an existing one."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock_fd: int | None = None
        self._record: RunRecord | None = None

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    # paths: the one place each file's name lives
    @property
    def run_yaml(self) -> Path:
        return self.path / RUN_YAML

    @property
    def journal(self) -> Path:
        return self.path / JOURNAL

    @property
    def sqlite(self) -> Path:
        return self.path / SQLITE

    @property
    def executions_log(self) -> Path:
        return self.path / EXECUTIONS

    @property
    def ray_session_file(self) -> Path:
        return self.path / RAY_SESSION

    @property
    def tune_dir(self) -> Path:
        return self.path / TUNE

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK

    @property
    def latency_table(self) -> Path:
        return self.path / LATENCY_TABLE

    @property
    def trials_csv(self) -> Path:
        return self.path / TRIALS_CSV

    @property
    def pareto_json(self) -> Path:
        return self.path / PARETO_JSON

    @property
    def pareto_csv(self) -> Path:
        return self.path / PARETO_CSV

    @property
    def pareto_png(self) -> Path:
        return self.path / PARETO_PNG

    @property
    def summary_json(self) -> Path:
        return self.path / SUMMARY_JSON

    @property
    def profiles_cache(self) -> Path:
        return self.path / PROFILES

    @property
    def derived_files(self) -> list[Path]:
        """The files :func:`attnsearch.results.write_results` derives from the storage."""
        return [self.path / name for name in WRITTEN]

    # ---- atomic writes: every file of the folder is replaced whole (attnsearch.safeio) ----
    def write_text(self, path: Path, text: str) -> None:
        """Replace ``path`` (one of this folder's files) with ``text``, atomically."""
        safeio.write_atomic(path, text, ResultsError)

    def atomic_open(self, path: Path, mode: str = "w", **kwargs: Any):
        """A file object that replaces ``path`` atomically when the block ends cleanly."""
        return safeio.atomic_open(path, mode, ResultsError, **kwargs)

    # ---- creation and opening ----
    @classmethod
    def create(
        cls,
        results_dir: str | Path,
        name: str | None,
        record: RunRecord | Any,
        *,
        default_prefix: str = "run",
        lock: bool = True,
    ) -> RunDir:
        """Create ``results_dir/name`` holding ``run.yaml``, atomically, and lock it.

        ``record`` is a :class:`RunRecord`, or bare settings (a study name is made up).
        The folder is built under a hidden temporary name and renamed into place, so a
        failure leaves nothing behind and two creators never share a folder. With
        ``name=None`` the name is ``PREFIX-DATE-TIME`` (``-2``, ``-3``, ... when taken).

        Raises:
            ResultsError: the name is invalid or taken, or the place is not writable.
        """
        results_dir = Path(results_dir)
        if name is not None:
            cls.check_new_name(results_dir, name)
        now = _dt.datetime.now()
        if not isinstance(record, RunRecord):
            record = RunRecord(settings=record, study_name="")
        base = name or f"{default_prefix}-{now:%Y%m%d-%H%M%S}"
        if not record.study_name:
            record = dataclasses.replace(record, study_name=f"{base}-{now:%Y%m%d%H%M%S%f}")
        text = yaml.safe_dump(record.to_dict(), sort_keys=False)  # fails before any write
        try:
            results_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ResultsError(f"cannot create {results_dir}: {e.strerror}") from None
        if not results_dir.is_dir():
            raise ResultsError(f"{results_dir} is not a folder")
        for attempt in range(1, 1000):
            final = base if attempt == 1 else f"{base}-{attempt}"
            target = results_dir / final
            if target.exists() or target.is_symlink():
                if name is not None:
                    raise ResultsError(
                        f"{target} already exists; pick another --name or add --resume"
                    )
                continue
            run = cls._build_and_rename(results_dir, target, text, lock)
            if run is None:  # another creator took the name in between
                if name is not None:
                    raise ResultsError(
                        f"{target} already exists; pick another --name or add --resume"
                    )
                continue
            run._record = record
            return run
        raise ResultsError(f"no free run name {base}-N in {results_dir}")

    @staticmethod
    def check_new_name(results_dir: str | Path, name: str) -> None:
        """Refuse an invalid or taken ``name`` early (``create`` checks again, atomically)."""
        if not NAME.fullmatch(name):
            raise ResultsError(
                f"--name {name!r}: use letters, digits, '.', '_' and '-' (at most 100 characters)"
            )
        target = Path(results_dir) / name
        if target.exists() or target.is_symlink():
            raise ResultsError(f"{target} already exists; pick another --name or add --resume")

    @classmethod
    def _build_and_rename(
        cls, results_dir: Path, target: Path, text: str, lock: bool
    ) -> RunDir | None:
        import tempfile

        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=results_dir))
        except OSError as e:
            raise ResultsError(f"cannot write in {results_dir}: {e.strerror}") from None
        building = cls(tmp)
        try:
            if lock:
                building.lock()  # the lock's inode moves with the folder
            building.run_yaml.write_text(text)
            os.rename(tmp, target)  # fails if target is a non-empty folder
        except OSError as e:
            building.unlock()
            shutil.rmtree(tmp, ignore_errors=True)
            if target.exists():
                return None
            raise ResultsError(f"cannot create {target}: {e.strerror}") from None
        except BaseException:
            building.unlock()
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        run = cls(target)
        run._lock_fd, building._lock_fd = building._lock_fd, None
        return run

    @classmethod
    def open(cls, results_dir: str | Path, name: str) -> RunDir:
        """The existing run ``results_dir/name``, its ``run.yaml`` read and checked."""
        results_dir = Path(results_dir)
        if not NAME.fullmatch(name or ""):
            raise ResultsError(
                f"invalid search name {name!r}: a run name is one folder inside the results "
                "folder (letters, digits, '.', '_', '-')"
            )
        run = cls(results_dir / name)
        if not run.path.exists():
            raise ResultsError(f"no search named {name!r} in {results_dir}/")
        if not run.path.is_dir():
            raise ResultsError(f"{run.path} is not a folder")
        run.read_record()
        return run

    def read_record(self) -> RunRecord:
        """Read and check ``run.yaml`` (one-line errors for missing or broken files)."""
        path = self.run_yaml
        if not path.is_file():
            raise ResultsError(
                f"{show(path)} is missing: {show(self.path)} is not an attnsearch results folder"
            )
        text = safeio.read_text(path, ResultsError)  # a FIFO, /dev/zero or 10 GB: refused
        try:
            data = safeio.yaml_load(text)
        except safeio.NestingError as e:
            raise ResultsError(f"{show(path)} is corrupted (not readable YAML: {e})") from None
        except (yaml.YAMLError, ValueError):  # ValueError: huge integers
            raise ResultsError(f"{show(path)} is corrupted (not readable YAML)") from None
        if not isinstance(data, dict) or "study_name" not in data or "budget" not in data:
            raise ResultsError(f"{path} is corrupted (missing study_name/budget)")
        self._record = RunRecord.from_dict(data, str(path))
        return self._record

    @property
    def record(self) -> RunRecord:
        return self._record if self._record is not None else self.read_record()

    @property
    def settings(self) -> Any:
        return self.record.settings

    def save_record(self, record: RunRecord) -> None:
        """Replace ``run.yaml`` (atomically) with ``record``."""
        text = yaml.safe_dump(record.to_dict(), sort_keys=False)
        self.write_text(self.run_yaml, text)
        self._record = record

    def has_trials(self) -> bool:
        """True if the storage holds any trial (or cannot be read to tell)."""
        if os.path.lexists(self.sqlite):
            return True
        if not os.path.lexists(self.journal):
            return False
        try:
            with safeio.open_regular(self.journal) as f:
                for line in f:
                    try:
                        if json.loads(line).get("op_code") == _CREATE_TRIAL:
                            return True
                    except (ValueError, AttributeError, RecursionError):
                        return True  # not a journal we understand: keep it
        except InputError:
            return True  # not a regular file: keep it
        return False

    def discard(self) -> bool:
        """Remove a folder that holds no result yet (a new run that failed before its first
        trial, so that its name stays free); True if removed. A folder whose storage holds
        a trial is never removed."""
        if self.has_trials():
            return False
        self.unlock()
        shutil.rmtree(self.path, ignore_errors=True)
        return True

    # ---- the lock ----
    def lock(self) -> None:
        """Hold an exclusive lock on the folder for this process's lifetime (or :meth:`unlock`).

        A second driver on the same folder (fresh or --resume) is refused while the first
        runs; the lock dies with its process, so a killed driver never blocks a resume.
        """
        import fcntl

        if self._lock_fd is not None:
            return
        try:  # never through a symlink or into a file linked from elsewhere (it is truncated)
            fd = safeio.open_lock(self.lock_file)
        except OSError as e:
            why = "its lock file is a symlink" if e.errno == errno.ELOOP else e.strerror
            raise ResultsError(f"cannot lock {show(self.path)}: {why}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ResultsError(
                f"search {self.name!r} is running in another process (pid {holder}); "
                "wait for it to finish or use another --name"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def locked(self) -> bool:
        return self._lock_fd is not None

    # ---- execution log ----
    def executions(self) -> list[Execution]:
        """Every training execution recorded (lines cut by a crash are skipped)."""
        return read_executions(self.executions_log)

    def executed_trials(self) -> set[int]:
        return {e.trial for e in self.executions()}

    # ---- Ray session ----
    def record_ray_session(self, session: str, driver_pid: int | None = None, **details) -> None:
        """Write the session record; ``details`` (JSON values) let a later cleanup verify
        which processes belong to it (see ``attnsearch.search._session``)."""
        info = {"session": session, "driver_pid": driver_pid or os.getpid(), **details}
        self.write_text(self.ray_session_file, safeio.json_dumps(info))

    def ray_session_record(self) -> dict[str, Any] | None:
        """The whole session record as written (unverified), if it is a JSON object."""
        try:
            info = safeio.json_loads(safeio.read_bytes(self.ray_session_file, limit=2**20))
        except (InputError, ValueError):
            return None
        return info if isinstance(info, dict) else None

    def ray_session(self) -> str | None:
        """The Ray session name a driver of this run started, if recorded and well-formed."""
        info = self.ray_session_record()
        session = info.get("session") if info is not None else None
        if not isinstance(session, str) or not re.fullmatch(r"session_[\w.-]+", session):
            return None
        return session

    # ---- checkpoints ----
    def find_checkpoint(self, trial: int, tune_trial_id: str | None) -> Path:
        return find_checkpoint(self.tune_storage, trial, tune_trial_id)

    @property
    def tune_storage(self) -> str:
        """Tune's ``storage_path`` for this run (its experiment is ``tune/`` under it): the
        run folder, or ``--storage``/NAME, a path or URI every node of the cluster reaches.
        Checkpoints are looked up there on a resume (a URI: not found, the trial restarts
        from epoch 0)."""
        storage = getattr(self.settings, "storage", None)
        if not storage:
            return str(self.path)
        return f"{storage.rstrip('/')}/{self.name}"
