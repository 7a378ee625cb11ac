"""Reading an earlier run back for ``attnsearch run``: a resume (``--resume``: the stored
settings with the changes a resume may make, the space and dataset unchanged) and a warm
start (``--warm-start``: the same space at the same width).

Which settings a resume may change and which must match is the settings' own rule
(:meth:`attnsearch.settings.RunSettings.resumed`); this module applies it to a folder.
"""

from __future__ import annotations

import json
from typing import Any

from attnsearch.errors import InputError

__all__ = ["recorded_not_used", "resumed", "same_dataset", "same_space", "warm_source"]


def resumed(opts: dict[str, Any], explicit: set[str], run):
    """The stored record with the allowed changes; conflicting options refused; a damaged
    storage refused here, before Ray starts."""
    from attnsearch.results import open_study

    record = run.read_record()
    settings = record.settings.resumed(opts, explicit, str(run.run_yaml))
    _same_start(opts, explicit, record.settings, run)
    open_study(run.path, record.study_name)
    return record.with_settings(settings)


def _same_start(opts: dict[str, Any], explicit: set[str], stored, run) -> None:
    """``--warm-start`` and ``--latency-table`` are chosen when a run starts: given again on
    a resume, each must name what the run started with (the same source run folder; a
    table with the same content as the run's own copy), else it is refused, never ignored.

    Raises:
        InputError: one line naming the option, what the run uses and how to go on.
    """
    from pathlib import Path

    from attnsearch import safeio
    from attnsearch.rundir import RunDir

    how = "resume without it, or start a new --name"
    if "warm_start" in explicit and opts.get("warm_start") is not None:
        given = RunDir.open(opts["results_dir"], opts["warm_start"]).path.resolve()
        if stored.warm_start is None or Path(stored.warm_start) != given:
            started = f"from {stored.warm_start}" if stored.warm_start else "with no warm start"
            raise InputError(
                f"--warm-start {opts['warm_start']}: the search being resumed started "
                f"{started}; a warm start is chosen when a run starts: {how}"
            )
    if "latency_table" in explicit and opts.get("latency_table") is not None:
        flag = f"--latency-table {safeio.show(opts['latency_table'])}"
        if stored.latency_table is None:
            raise InputError(f"{flag}: the search being resumed has a FLOPs budget: {how}")
        own = run.path / stored.latency_table  # its copy (an absolute path in older runs)

        def content(path) -> Any:
            try:
                return safeio.json_loads(safeio.read_text(path))
            except ValueError as e:
                raise InputError(f"{flag}: {safeio.show(path)} is not JSON ({e})") from None

        if content(opts["latency_table"]) != content(own):
            raise InputError(
                f"{flag}: not the table the search being resumed prices its budget with "
                f"({safeio.show(own)}); {how}"
            )


def recorded_not_used(stored, settings) -> str | None:
    """One line naming the cluster and storage run.yaml records that this resume does not
    use (they are used only when named again), or None."""
    import os

    def _shown(text: str) -> str:  # one line whatever the text holds
        return text if text.isprintable() else repr(text)

    address = settings.address or os.environ.get("RAY_ADDRESS") or None
    parts, flags = [], []
    if stored.address and stored.address != address:
        parts.append(f"Ray cluster {_shown(stored.address)}")
        flags.append(f"--address {_shown(stored.address)}")
    if stored.storage and stored.storage != settings.storage:
        parts.append(f"storage {_shown(stored.storage)}")
        flags.append(f"--storage {_shown(stored.storage)}")
    if not parts:
        return None
    return (
        f"note: run.yaml records {' and '.join(parts)} from an earlier driver; not used "
        f"unless named again ({' '.join(flags)})"
    )


def _digest(data: Any) -> str:
    import hashlib

    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def same_space(record, space, rundir) -> None:
    """Refuse a resume whose space file no longer resolves to the recorded space."""
    if record.space_file is None:
        return  # a folder made before spaces were recorded
    now = json.loads(json.dumps(space.to_json()))
    if _digest(now) != _digest(record.space_file):
        raise InputError(
            f"space {record.settings.space!r} changed since search {rundir.name!r} was "
            f"created (it differs from the space recorded in {rundir.run_yaml}); restore it "
            "or start a new --name"
        )


def same_dataset(record, dataset, rundir) -> None:
    """Refuse a resume whose dataset is not the one recorded (its digest, else its summary)."""
    stored = record.dataset_info
    if not isinstance(stored, dict):
        return  # a folder made before datasets were recorded
    now = dataset.summary()
    keys = ["digest"] if "digest" in stored else [k for k in stored if k in now]
    changed = [k for k in keys if _digest(stored[k]) != _digest(now[k])]
    if changed:
        raise InputError(
            f"dataset {record.settings.dataset!r} changed since search {rundir.name!r} was "
            f"created ({', '.join(changed)} differ from {rundir.run_yaml}); restore it or "
            "start a new --name"
        )


def warm_source(opts, space):
    """The run folder --warm-start names, refused unless it searched the same space
    (backbone, choices) at the same proxy width."""
    from attnsearch.rundir import RunDir

    source = RunDir.open(opts["results_dir"], opts["warm_start"])
    record = source.read_record()
    if record.space_file is not None:
        other = record.space_file != json.loads(json.dumps(space.to_json()))
    else:  # a folder made without the resolved space: its name
        other = record.settings.space != opts["space"]
    if other:
        raise InputError(
            f"--warm-start {opts['warm_start']}: that run searched another space "
            f"({record.settings.space}); a warm start needs the same space and backbone"
        )
    if record.settings.width != opts["width"]:
        raise InputError(
            f"--warm-start {opts['warm_start']}: that run used proxy width "
            f"{record.settings.width}, this one {opts['width']}; they must match"
        )
    return source.path.resolve()
