"""The name of every file of a results folder, and the folder's errors.

The one place these names live: everything else asks :class:`attnsearch.rundir.RunDir`
for the path (its properties) or imports the name from here.
"""

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
TUNE_PARAMS = "params.json"  # Ray Tune's, in each tune/<trial>/: the config it received
LATENCY_TABLE = "latency_table.json"  # a table built for a run, inside its folder
# derived from the storage and rewritten at any time (attnsearch.results.write_results)
TRIALS_CSV = "trials.csv"  # every trial, one row each
PARETO_JSON = "pareto.json"  # the front (DESIGN.md §6 contract)
PARETO_CSV = "pareto.csv"  # the front as a table
PARETO_PNG = "pareto.png"  # the plot
SUMMARY_JSON = "summary.json"  # front, references, verdict, noise, signal, counts
PROFILES = "profiles.json"  # cache: digest -> deploy params, MACs, FLOPs
WRITTEN = (TRIALS_CSV, PARETO_JSON, PARETO_CSV, PARETO_PNG, SUMMARY_JSON, PROFILES)

_CREATE_TRIAL = 4  # optuna JournalOperation.CREATE_TRIAL
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # fullmatch: no trailing newline


class ResultsError(InputError):
    """A results folder that is missing, foreign, corrupted or locked."""


class NoCheckpointError(ResultsError):
    """The trial saved no checkpoint (or its Tune folder is gone)."""
