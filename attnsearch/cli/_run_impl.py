"""The body of ``attnsearch run`` (kept apart so that ``--help`` imports nothing heavy)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from attnsearch.budget import format_flops, parse_budget
from attnsearch.cli._terminal import term
from attnsearch.errors import InputError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_DEFAULT_RES = {"digits": None, "synthetic": None}


def _provenance() -> dict[str, Any]:
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


# settings a resumed search may change; every other one must match run.yaml
_RESUMABLE_CHANGES = ("trials", "concurrency", "gpus_per_trial", "cpus_per_trial", "address")
_COMPARED = (
    "budget",
    "space",
    "dataset",
    "data_dir",
    "epochs",
    "sampler",
    "seed",
    "width",
    "resolution",
    "batch_size",
    "limit",
    "early_stop",
)


def _lock(run_dir: Path):
    """Hold an exclusive lock on the run folder for this process's lifetime.

    A second run on the same NAME (fresh or --resume) refuses while the first runs; the
    lock dies with its process, so a killed driver never blocks a resume.
    """
    import fcntl
    import os

    fd = os.open(run_dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise InputError(
            f"search {run_dir.name!r} is running in another process (pid {holder}); "
            "wait for it to finish or use another --name"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _resume_settings(opts: dict[str, Any], explicit: set[str], run_dir: Path):
    from attnsearch.results import load_run, open_study
    from attnsearch.search import RunSettings

    stored = load_run(opts["results_dir"], opts["name"])
    fields = {f.name for f in dataclasses.fields(RunSettings)}
    data = {k: v for k, v in stored.items() if k in fields}
    try:
        settings = RunSettings(**data)
    except TypeError as e:
        raise InputError(f"{run_dir}/run.yaml is corrupted ({e})") from None
    for key in _COMPARED:
        if key not in explicit:
            continue
        given = parse_budget(opts[key]) if key == "budget" else opts[key]
        if given != getattr(settings, key):
            shown = format_flops(settings.budget) if key == "budget" else getattr(settings, key)
            raise InputError(
                f"--{key.replace('_', '-')} {opts[key]} conflicts with the search being "
                f"resumed ({shown} in {run_dir}/run.yaml); resume with the same value or "
                "start a new --name"
            )
    changes = {k: opts[k] for k in _RESUMABLE_CHANGES if k in explicit}
    if changes:
        settings = dataclasses.replace(settings, **changes)
    open_study(run_dir, settings.study_name)  # a damaged storage fails here, before Ray
    return settings, stored


def run(opts: dict[str, Any], explicit: set[str] | None = None) -> None:
    from attnsearch.search import RunSettings, run_search
    from attnsearch.spaces import load_space

    explicit = set(opts) if explicit is None else explicit
    if opts["gpus_per_trial"] < 0:
        raise InputError(f"--gpus-per-trial must be >= 0, got {opts['gpus_per_trial']}")
    if opts["resume"]:
        if not opts["name"]:
            raise InputError("--resume needs --name NAME of the search to continue")
        run_dir = Path(opts["results_dir"]) / opts["name"]
        _resume_settings(
            opts, explicit, run_dir
        )  # read-only checks: a damaged folder is left as is
        lock = _lock(run_dir)
        settings, stored = _resume_settings(opts, explicit, run_dir)  # again, under the lock
        space = load_space(settings.space)
        dataset = _load(
            settings.dataset, settings.data_dir, settings.resolution, settings.seed, settings.limit
        )
        if settings.trials != stored.get("trials"):
            stored["trials"] = settings.trials
            _write_yaml(run_dir / "run.yaml", stored)
        name = settings.name
        term.note(f"resuming search {name}: {settings.trials} trials to finish")
    else:
        if opts["budget"] is None:
            raise InputError("--budget is required (e.g. --budget 4GFLOPs)")
        budget = parse_budget(opts["budget"])
        space = load_space(opts["space"])
        cheapest, _ = space.cheapest(opts["width"])
        if cheapest > budget:
            raise InputError(
                f"budget {format_flops(budget)} is below the cheapest architecture of space "
                f"{space.name!r} ({format_flops(cheapest)} = {cheapest:,} FLOPs)"
            )
        name = opts["name"] or f"{space.name}-{_dt.datetime.now():%Y%m%d-%H%M%S}"
        if not _NAME.match(name):
            raise InputError(
                f"--name {name!r}: use letters, digits, '.', '_' and '-' (at most 100 characters)"
            )
        run_dir = Path(opts["results_dir"]) / name
        if run_dir.exists():
            raise InputError(f"{run_dir} already exists; pick another --name or add --resume")
        dataset = _load(
            opts["dataset"], opts["data_dir"], opts["resolution"], opts["seed"], opts["limit"]
        )
        settings = RunSettings(
            name=name,
            budget=budget,
            space=opts["space"],
            dataset=opts["dataset"],
            data_dir=opts["data_dir"],
            trials=opts["trials"],
            epochs=opts["epochs"],
            sampler=opts["sampler"],
            concurrency=opts["concurrency"],
            gpus_per_trial=opts["gpus_per_trial"],
            cpus_per_trial=opts["cpus_per_trial"],
            address=opts["address"],
            seed=opts["seed"],
            width=opts["width"],
            resolution=opts["resolution"],
            batch_size=opts["batch_size"] or (32 if len(dataset.train_x) < 10_000 else 128),
            limit=opts["limit"],
            early_stop=opts["early_stop"],
            results_dir=opts["results_dir"],
            study_name=f"{name}-{_dt.datetime.now():%Y%m%d%H%M%S%f}",
            extra=_provenance(),
        )
        data = settings.to_dict()
        data["budget_text"] = str(opts["budget"])
        data["space_file"] = space.to_json()
        data["dataset_info"] = dataset.summary()
        text = yaml.safe_dump(data, sort_keys=False)  # fails before anything is created
        run_dir.mkdir(parents=True)
        lock = _lock(run_dir)
        (run_dir / "run.yaml").write_text(text)
        narrowed = _narrowed(space, settings.width)
        term.note(
            f"search {name}: space {space.name} ({space.size():,} architectures), "
            f"budget {format_flops(budget)}, dataset {settings.dataset} "
            f"{tuple(dataset.input_shape)} x{len(dataset.train_x)}, {settings.trials} trials "
            f"x {settings.epochs} epochs, sampler {settings.sampler}"
        )
        if narrowed:
            term.note(
                f"note: at proxy width {settings.width}, {narrowed} choice(s) cannot be built "
                "in some slots and are left out there (use --width 1 to keep them)"
            )
    from attnsearch.cli._live import LiveView

    resume_hint = f"resume with: attnsearch run --name {name} --resume" + (
        f" --results-dir {opts['results_dir']}" if opts["results_dir"] != "results" else ""
    )
    view = LiveView(term, settings.budget, settings.trials, term.interactive)
    try:
        with view:
            summary = run_search(settings, view=view, space=space, dataset=dataset)
    except KeyboardInterrupt:
        term.error(f"stopped at once; completed trials are kept in {run_dir}. {resume_hint}")
        raise SystemExit(130) from None
    _ = lock
    _print_front(summary, run_dir)
    if summary.get("interrupted"):
        term.error(f"interrupted: {summary['done']}/{settings.trials} trials done. {resume_hint}")
        raise SystemExit(130)
    if summary["done"] < settings.trials:
        term.error(
            f"the search ran but only {summary['done']}/{settings.trials} trials finished "
            "(see trials.csv for the reasons)"
        )
        raise SystemExit(1)


def _load(spec: str, data_dir: str, resolution, seed: int, limit):
    """The proxy dataset, loaded (and split) the same way for a new run and a resume."""
    from attnsearch.datasets import load_dataset

    return load_dataset(spec, data_dir=data_dir, resolution=resolution, seed=seed, limit=limit)


def _write_yaml(path: Path, data: dict) -> None:
    import os

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, path)


def _narrowed(space, width: float) -> int:
    full = space.options(1.0)
    proxy = space.options(width)
    return sum(
        len(cs) - len(p.get(t, [])) for f, p in zip(full, proxy, strict=True) for t, cs in f.items()
    )


def _print_front(summary: dict[str, Any], run_dir: Path) -> None:
    counts = summary["counts"]
    term.front(
        f"Pareto front ({counts.get('complete', 0)} trained, "
        f"{counts.get('infeasible', 0)} over budget, {counts.get('fail', 0)} failed, "
        f"{summary.get('wall_seconds', 0):.0f}s)",
        summary["members"],
    )
    term.line(f"results: {run_dir}/ (pareto.json, pareto.png, trials.csv, study.journal)")
