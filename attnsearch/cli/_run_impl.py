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


def run(opts: dict[str, Any]) -> None:
    from attnsearch.datasets import load_dataset
    from attnsearch.search import RunSettings, run_search
    from attnsearch.spaces import load_space

    budget = parse_budget(opts["budget"])
    if opts["gpus_per_trial"] < 0:
        raise InputError(f"--gpus-per-trial must be >= 0, got {opts['gpus_per_trial']}")
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
    if opts["resume"]:
        raise InputError("--resume is not available yet in this version")
    if run_dir.exists():
        raise InputError(f"{run_dir} already exists; pick another --name (or --resume it)")
    dataset = load_dataset(
        opts["dataset"],
        data_dir=opts["data_dir"],
        resolution=opts["resolution"],
        seed=opts["seed"],
        limit=opts["limit"],
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
            f"note: at proxy width {settings.width}, {narrowed} choice(s) cannot be built in "
            "some slots and are left out there (use --width 1 to keep them)"
        )
    from attnsearch.cli._live import LiveView

    view = LiveView(term, budget, settings.trials, term.interactive)
    try:
        with view:
            summary = run_search(settings, view=view, space=space, dataset=dataset)
    except KeyboardInterrupt:
        term.error(f"interrupted; what finished is kept in {run_dir}")
        raise SystemExit(130) from None
    _print_front(summary, run_dir)
    if summary["counts"].get("complete", 0) == 0:
        term.error("the search ran but no trial completed (see trials.csv)")
        raise SystemExit(1)


def _narrowed(space, width: float) -> int:
    full = space.options(1.0)
    proxy = space.options(width)
    return sum(
        len(cs) - len(p.get(t, [])) for f, p in zip(full, proxy, strict=True) for t, cs in f.items()
    )


def _print_front(summary: dict[str, Any], run_dir: Path) -> None:
    from attnsearch.architecture import Architecture

    rows = [
        [
            m["trial"],
            f"{m['accuracy']:.4f}",
            format_flops(m["flops"]),
            f"{m['params'] / 1e6:.2f} M",
            Architecture.from_json(m["architecture"]).summary(),
        ]
        for m in summary["members"]
    ]
    counts = summary["counts"]
    term.table(
        f"Pareto front ({counts.get('complete', 0)} trained, "
        f"{counts.get('infeasible', 0)} over budget, {counts.get('fail', 0)} failed, "
        f"{summary.get('wall_seconds', 0):.0f}s)",
        ["trial", "accuracy", "FLOPs", "params", "architecture"],
        rows,
    )
    term.line(f"results: {run_dir}/ (pareto.json, pareto.png, trials.csv, study.journal)")


_ = dataclasses  # re-exported for tests that rebuild settings
