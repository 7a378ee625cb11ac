"""The results folder of one search (DESIGN.md §6) and everything written into it.

:class:`RunDir` is the one owner of ``results/<name>/``: its creation (atomic), its lock,
``run.yaml`` (a typed :class:`RunRecord`: settings + provenance; unknown keys refused), the
execution log (``executions.jsonl``), the Ray-session record (``ray_session.json``) and the
trial checkpoints under ``tune/``. :class:`TrialRecord` is the typed view of an Optuna
trial's user attributes. The study files (``study.journal``, ``pareto.*``, ``trials.csv``)
are written by :mod:`attnsearch.results`, at the paths given here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import enum
import errno
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from attnsearch import safeio
from attnsearch.errors import InputError
from attnsearch.safeio import show
from attnsearch.settings import ConfigError

__all__ = [
    "EXECUTIONS",
    "JOURNAL",
    "RESULTS_DIR",
    "RUN_YAML",
    "Execution",
    "FailKind",
    "NoCheckpointError",
    "ResultsError",
    "RunDir",
    "RunRecord",
    "TrialRecord",
    "find_checkpoint",
    "load_checkpoint",
    "provenance",
    "record_execution",
    "save_checkpoint",
]

RESULTS_DIR = "results"  # default parent folder of run folders
RUN_YAML = "run.yaml"  # the settings and provenance (RunRecord)
LOCK = "lock"  # flock'ed by the one driver working on the folder
JOURNAL = "study.journal"  # Optuna journal storage: append-only, safe to kill at any moment
SQLITE = "study.db"  # also opened (older folders, hand-made studies)
EXECUTIONS = "executions.jsonl"  # one line per training execution (resume, tests)
RAY_SESSION = "ray_session.json"  # the local Ray a driver started (cleanup after a crash)
TUNE = "tune"  # Ray Tune's experiment folder: the trial checkpoints
CHECKPOINT_FILE = "state.pt"  # inside each tune/<trial>/checkpoint_NNNNNN/

_CREATE_TRIAL = 4  # optuna JournalOperation.CREATE_TRIAL
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # fullmatch: no trailing newline


class ResultsError(InputError):
    """A results folder that is missing, foreign, corrupted or locked."""


class NoCheckpointError(ResultsError):
    """The trial saved no checkpoint (or its Tune folder is gone)."""


# ---- run.yaml -------------------------------------------------------------------------
@dataclass(frozen=True)
class RunRecord:
    """What ``run.yaml`` holds: the settings (flat, ``proxy:`` nested) plus these keys."""

    settings: Any  # attnsearch.settings.RunSettings (its budget keeps the text the user wrote)
    study_name: str  # the Optuna study in study.journal; unique per run
    space_file: dict | None = None  # the resolved search space (as JSON)
    dataset_info: dict | None = None  # what the dataset looked like (shapes, split)
    provenance: dict = field(default_factory=dict)  # versions, git revision, creation time

    def to_dict(self) -> dict[str, Any]:
        data = self.settings.to_dict()
        data.update(
            study_name=self.study_name,
            space_file=self.space_file,
            dataset_info=self.dataset_info,
            provenance=dict(self.provenance),
        )
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str) -> RunRecord:
        from attnsearch.settings import RunSettings, config_from_dict

        if not isinstance(data, dict):
            raise ResultsError(f"{where} is corrupted (not a mapping)")
        own = {f.name for f in dataclasses.fields(cls)} - {"settings"}
        record = {k: data[k] for k in own if k in data}
        settings = {k: v for k, v in data.items() if k not in own}
        try:
            settings = RunSettings.from_dict(settings, where)
            return config_from_dict(cls, {**record, "settings": settings}, where)
        except ConfigError as e:
            text = str(e) if where in str(e) else f"{where}: {e}"
            raise ResultsError(f"{text} (corrupted or from another version)") from None

    def with_settings(self, settings: Any) -> RunRecord:
        return dataclasses.replace(self, settings=settings)


def provenance() -> dict[str, Any]:
    """Versions, git revision and time: what produced a results folder (STYLE.md §9)."""
    import optuna
    import ray
    import torch

    from attnsearch import __version__

    rev = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    return {
        "attnsearch": __version__,
        "torch": str(torch.__version__),
        "optuna": optuna.__version__,
        "ray": ray.__version__,
        "python": sys.version.split()[0],
        "git_revision": rev,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
    }


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
            (tmp / RUN_YAML).write_text(text)
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
        safeio.write_atomic(self.run_yaml, text, ResultsError)
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
            fd = safeio.open_lock(self.path / LOCK)
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
        which processes belong to it (see ``attnsearch.search._ray``)."""
        info = {"session": session, "driver_pid": driver_pid or os.getpid(), **details}
        safeio.write_atomic(self.ray_session_file, json.dumps(info), ResultsError)

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
        safeio.append_text(log, json.dumps(dataclasses.asdict(line)) + "\n")


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
                params = safeio.json_loads(safeio.read_bytes(p / "params.json", limit=2**20))
            except (InputError, ValueError):
                continue
            if isinstance(params, dict) and params.get("trial_number") == trial:
                matches.append(p)
    states = [s for p in matches for s in p.glob(f"checkpoint_*/{CHECKPOINT_FILE}")]
    if not states:
        raise NoCheckpointError(f"no checkpoint of trial {trial} found under {tune_dir}/")
    return max(states, key=lambda s: (_ckpt_index(s.parent), s.stat().st_mtime))


def save_checkpoint(folder: str | Path, epoch: int, model: dict, optimizer: dict | None) -> Path:
    """Write a trial checkpoint (tensors and numbers only) into ``folder``."""
    import torch

    payload: dict[str, Any] = {"epoch": int(epoch), "model": model}
    if optimizer is not None:  # intermediate checkpoints keep what resuming needs
        payload["optimizer"] = optimizer
    path = Path(folder) / CHECKPOINT_FILE
    torch.save(payload, path)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; nothing in it can run code.

    ``path`` is the ``state.pt`` file or its folder.

    Raises:
        ResultsError: unreadable, or not a checkpoint.
    """
    import torch

    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    try:
        with safeio.open_regular(path, ResultsError) as f:  # a FIFO is never waited on
            payload = torch.load(f, map_location="cpu", weights_only=True)
    except ResultsError:
        raise
    except Exception as e:
        raise ResultsError(
            f"{show(path)} is not a readable checkpoint ({type(e).__name__})"
        ) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict):
        raise ResultsError(f"{path} holds no 'model' state dict")
    return payload


# ---- the trial record -------------------------------------------------------------------
class FailKind(str, enum.Enum):
    """Why a trial is FAIL in the storage (user attribute ``fail_kind``)."""

    CANDIDATE = "candidate"  # training failed by itself (non-finite loss, ...)
    WORKER = "worker"  # the trial's worker died
    INTERRUPTED = "interrupted"  # the driver stopped while it trained; re-run as a new trial
    NEVER_STARTED = "never_started"  # asked, but the driver stopped before it ran

    @property
    def counts_as_failure(self) -> bool:
        """True for the candidate's own failures (they bound a search); stops are not."""
        return self in (FailKind.CANDIDATE, FailKind.WORKER)


@dataclass(frozen=True)
class TrialRecord:
    """The typed view of an Optuna trial's user attributes (what the search records)."""

    architecture: dict | None = None  # Architecture.to_json()
    digest: str | None = None  # Architecture.digest()
    flops: int | None = None  # analytic deploy FLOPs
    latency_ms: float | None = None  # predicted latency (a search with a latency budget)
    trained: bool | None = None  # False: over budget, never trained
    invalid: str | None = None  # why the sample cannot be built at the proxy width
    config: dict | None = None  # what the Tune trial received
    tune_trial_id: str | None = None  # finds its checkpoints
    history: list | None = None  # validation accuracy per epoch
    train_seconds: float | None = None
    node_id: str | None = None  # Ray node that trained it
    epoch: int | None = None  # last epoch reported
    early_stopped: bool = False  # ASHA stopped it (PRUNED)
    fail_kind: FailKind | None = None
    fail_reason: str | None = None  # one human line
    resumed_from: int | None = None  # the interrupted trial this one re-runs
    resume_checkpoint: str | None = None  # the checkpoint folder it continues from
    role: str | None = None  # None: a search trial; "reference" or "repeat" (not counted)
    reference: str | None = None  # role=reference: the network's name (e.g. ResNet-18)
    paper: str | None = None  # role=reference: the paper's title
    fits: bool | None = None  # role=reference: under the budget
    repeat_of: int | None = None  # role=repeat: the search trial it re-evaluates
    seed: int | None = None  # trial seed given to training (the trial number)
    resume_error: str | None = None  # that checkpoint was unreadable: trained from scratch
    timings: dict | None = None  # the worker's timers at its last report (trial_overhead.py)
    extra: dict = field(default_factory=dict)  # attributes this version does not know

    @classmethod
    def from_user_attrs(cls, attrs: dict[str, Any]) -> TrialRecord:
        """The record of these attributes; a known one of the wrong type or out of range
        raises ``ValueError`` naming it (what a storage someone else wrote may hold)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in attrs.items() if k in names}
        for key, value in known.items():
            problem = _attr_problem(key, value)
            if problem:
                raise ValueError(f"user attribute {key!r} is {_short(value)}, not {problem}")
        extra = {k: v for k, v in attrs.items() if k not in names}
        if known.get("fail_kind") is not None:
            try:
                known["fail_kind"] = FailKind(known["fail_kind"])
            except ValueError:
                extra["fail_kind"] = known.pop("fail_kind")
        if known.get("resume_checkpoint") == "":
            known["resume_checkpoint"] = None
        return cls(**known, extra=extra)

    @classmethod
    def of(cls, trial: Any) -> TrialRecord:
        """The record of an Optuna ``Trial`` or ``FrozenTrial``.

        Raises:
            ResultsError: an attribute of the wrong type or range (a corrupted storage).
        """
        try:
            return cls.from_user_attrs(trial.user_attrs)
        except ValueError as e:
            raise ResultsError(
                f"the study storage is corrupted or foreign: trial {trial.number}'s {e}"
            ) from None

    def to_user_attrs(self) -> dict[str, Any]:
        """The non-default attributes, JSON-ready (``fail_kind`` as its value)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is None or (f.name == "early_stopped" and not value):
                continue
            out[f.name] = value.value if isinstance(value, FailKind) else value
        out.update(self.extra)
        return out

    @staticmethod
    def set(trial: Any, **fields: Any) -> None:
        """Set the named record fields as user attributes of a live Optuna ``Trial``."""
        names = {f.name for f in dataclasses.fields(TrialRecord)} - {"extra"}
        for key, value in fields.items():
            if key not in names:
                raise KeyError(f"TrialRecord has no field {key!r}")
            trial.set_user_attr(key, value.value if isinstance(value, FailKind) else value)

    @staticmethod
    def set_stored(study: Any, trial: Any, **fields: Any) -> None:
        """Like :meth:`set` for a ``FrozenTrial`` of ``study`` (written to the storage)."""
        names = {f.name for f in dataclasses.fields(TrialRecord)} - {"extra"}
        for key, value in fields.items():
            if key not in names:
                raise KeyError(f"TrialRecord has no field {key!r}")
            value = value.value if isinstance(value, FailKind) else value
            study._storage.set_trial_user_attr(trial._trial_id, key, value)

    @property
    def counts_as_failure(self) -> bool:
        return self.fail_kind is not None and self.fail_kind.counts_as_failure

    @property
    def status_reason(self) -> str:
        return self.fail_reason or self.invalid or ""


# what each TrialRecord attribute may hold when read back from a storage (None: absent)
_MAX_COUNT = 2**63  # FLOPs, epochs, trial numbers and seeds stay far below
_ATTR_KINDS = {
    "architecture": "dict",
    "config": "dict",
    "timings": "dict",
    "history": "numbers",
    "flops": "count",
    "epoch": "count",
    "resumed_from": "count",
    "repeat_of": "count",
    "seed": "count",
    "latency_ms": "number",
    "train_seconds": "number",
    "trained": "bool",
    "early_stopped": "bool",
    "fits": "bool",
    "fail_kind": "str",
}
_KIND_TEXT = {
    "dict": "a JSON object",
    "numbers": "a list of finite numbers",
    "count": f"an integer 0..{_MAX_COUNT}",
    "number": "a finite number ≥ 0",
    "bool": "true or false",
    "str": "a string",
}


def _finite(value: Any) -> bool:
    import math

    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _attr_problem(key: str, value: Any) -> str | None:
    """What ``value`` should be as the attribute ``key``, if it is not; None when fine."""
    if value is None:
        return None
    kind = _ATTR_KINDS.get(key, "str")
    ok = {
        "dict": lambda v: isinstance(v, dict),
        "numbers": lambda v: isinstance(v, list) and all(_finite(x) for x in v),
        "count": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _MAX_COUNT,
        "number": lambda v: _finite(v) and v >= 0,
        "bool": lambda v: isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
    }[kind](value)
    return None if ok else _KIND_TEXT[kind]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."
