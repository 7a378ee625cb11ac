"""``run.yaml``: the typed :class:`RunRecord` (settings + provenance)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnsearch.rundir._names import ResultsError
from attnsearch.settings import ConfigError


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
