"""The name of every file of a results folder, and the folder's errors."""

from __future__ import annotations

import re

from attnsearch.errors import InputError

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
