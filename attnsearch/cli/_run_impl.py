"""The body of ``attnsearch run`` (kept apart so that ``--help`` imports nothing heavy).

It turns options into settings, asks :class:`attnsearch.rundir.RunDir` for the folder and
renders; the folder, its lock and run.yaml belong to the RunDir.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from attnsearch.budget import format_flops, format_latency, parse_budget, parse_cost_budget
from attnsearch.cli._terminal import term
from attnsearch.errors import InputError

# settings a resumed search may change (what the user types is used, and saved in
# run.yaml); every other one must match run.yaml
_RESUMABLE_CHANGES = (
    "trials",
    "concurrency",
    "gpus_per_trial",
    "cpus_per_trial",
    "trial_timeout",
    "checkpoint_interval",
)
# the cluster and the storage: only those this invocation names (--address or RAY_ADDRESS,
# --storage); the ones run.yaml records are shown, never used (joining a cluster runs its
# code, and a results folder may come from anywhere)
_NAMED_AGAIN = ("address", "storage")
_COMPARED = (
    "budget",
    "space",
    "dataset",
    "data_dir",
    "epochs",
    "sampler",
    "policy",
    "seed",
    "width",
    "resolution",
    "batch_size",
    "optimizer",
    "limit",
    "early_stop",
    "repeats",
    "references",
)


def _resumed(opts: dict[str, Any], explicit: set[str], run):
    """The stored settings with the allowed changes; conflicting options refused."""
    from attnsearch.results import open_study

    record = run.read_record()
    settings = record.settings
    for key in _COMPARED:
        if key not in explicit:
            continue
        if key == "budget" and settings.latency_budget_ms is not None:
            b = parse_cost_budget(opts[key])
            given, stored = (b.value if b.kind == "latency" else None), settings.latency_budget_ms
            shown = format_latency(stored)
        else:
            given = parse_budget(opts[key]) if key == "budget" else opts[key]
            stored = getattr(settings, key)
            shown = format_flops(settings.budget) if key == "budget" else stored
        if given != stored:
            raise InputError(
                f"--{key.replace('_', '-')} {opts[key]} conflicts with the search being "
                f"resumed ({shown} in {run.run_yaml}); resume with the same value or "
                "start a new --name"
            )
    changes = {k: opts[k] for k in _RESUMABLE_CHANGES if k in explicit}
    changes.update({k: opts[k] if k in explicit else None for k in _NAMED_AGAIN})
    settings = settings.replace(**changes)
    open_study(run.path, record.study_name)  # a damaged storage fails here, before Ray
    return record.with_settings(settings)


def run(opts: dict[str, Any], explicit: set[str] | None = None) -> None:
    from attnsearch.rundir import LATENCY_TABLE, RunDir, RunRecord, provenance
    from attnsearch.search import RunSettings, run_search
    from attnsearch.search._settings import batch_size_for
    from attnsearch.spaces import load_space

    explicit = set(opts) if explicit is None else explicit
    fresh = not opts["resume"]
    if not fresh:
        if not opts["name"]:
            raise InputError("--resume needs --name NAME of the search to continue")
        rundir = RunDir.open(opts["results_dir"], opts["name"])
        _resumed(opts, explicit, rundir)  # read-only checks: a damaged folder is left as is
        _probe(opts)  # before anything is written
        rundir.lock()
        record = _resumed(opts, explicit, rundir)  # again, under the lock
        settings = record.settings
        space = load_space(settings.space)
        _same_space(record, space, rundir)
        dataset = _load(settings)
        _same_dataset(record, dataset, rundir)
        stored = rundir.record.settings
        shown = _recorded_not_used(stored, settings)
        if shown:
            term.note(shown)
        if settings != stored:  # run.yaml holds the settings this driver runs with
            rundir.save_record(record)
        term.note(f"resuming search {rundir.name}: {settings.trials} trials to finish")
    else:
        if opts["budget"] is None:
            raise InputError("--budget is required (e.g. --budget 4GFLOPs)")
        cost_budget = parse_cost_budget(opts["budget"])
        space = load_space(opts["space"])
        space.check_width(opts["width"])
        latency = cost_budget.kind == "latency"
        table = None
        if not latency:
            if opts.get("latency_table"):
                raise InputError(
                    "--latency-table goes with a latency budget (e.g. --budget 25ms); "
                    f"{opts['budget']!r} is FLOPs"
                )
            budget = int(cost_budget.value)
            cheapest, _ = space.cheapest(opts["width"])
            if cheapest > budget:
                raise InputError(
                    f"budget {format_flops(budget)} is below the cheapest architecture of space "
                    f"{space.name!r} ({format_flops(cheapest)} = {cheapest:,} FLOPs)"
                )
        else:
            budget = _dearest_flops(space, opts["width"])  # FLOPs are not limited
            if opts.get("latency_table"):
                table = _load_latency_table(opts["latency_table"], space)
                _check_latency_budget(table, space, opts["width"], cost_budget.value)
            else:  # a quick bound first: a table takes minutes to measure
                _check_latency_floor(space, cost_budget.value)
        if opts["name"] is not None:
            RunDir.check_new_name(opts["results_dir"], opts["name"])  # before the dataset
        _probe(opts)  # a cluster where nothing answers: refused before the folder exists
        warm = _warm_source(opts, space) if opts.get("warm_start") else None
        fields = {f.name for f in dataclasses.fields(RunSettings)} | set(RunSettings.PROXY_OPTIONS)
        skip = {"budget", "latency_table", "warm_start"}
        given = {k: v for k, v in opts.items() if k in fields and k not in skip}
        if given["batch_size"] is None:
            del given["batch_size"]  # chosen from the dataset's size below
        if latency:
            given["latency_budget_ms"] = cost_budget.value
            given["latency_table"] = (
                str(Path(opts["latency_table"]).resolve()) if table else LATENCY_TABLE
            )
        if warm is not None:
            given["warm_start"] = str(warm)
        settings = RunSettings.make(budget, **given)
        dataset = _load(settings)
        if opts["batch_size"] is None:  # small sets: smaller batches, more steps
            settings = settings.replace(batch_size=batch_size_for(len(dataset.train_x)))
        record = RunRecord(
            settings=settings,
            study_name="",
            budget_text=str(opts["budget"]),
            space_file=space.to_json(),
            dataset_info=dataset.summary(),
            provenance=provenance(),
        )
        rundir = RunDir.create(opts["results_dir"], opts["name"], record, default_prefix=space.name)
        if latency and table is None:  # built on the fly for this machine, kept in the run
            try:
                table = _build_latency_table(rundir.latency_table, space)
                _check_latency_budget(table, space, settings.width, cost_budget.value)
            except (InputError, KeyboardInterrupt):
                rundir.discard()
                raise
        narrowed = _narrowed(space, settings.width)
        shown_budget = (
            f"{format_latency(settings.latency_budget_ms)} predicted latency "
            f"({table.settings.device}, batch {table.settings.batch})"
            if latency
            else format_flops(budget)
        )
        term.note(
            f"search {rundir.name}: space {space.name} ({space.size():,} architectures), "
            f"budget {shown_budget}, dataset {settings.dataset} "
            f"{tuple(dataset.input_shape)} x{len(dataset.train_x)}, {settings.trials} trials "
            f"x {settings.epochs} epochs, sampler {settings.sampler}, policy {settings.policy}"
        )
        if narrowed:
            term.note(
                f"note: at proxy width {settings.width}, {narrowed} choice(s) cannot be built "
                "in some slots and are left out there (use --width 1 to keep them)"
            )
    from attnsearch.cli._live import LiveView

    resume_hint = f"resume with: attnsearch run --name {rundir.name} --resume" + (
        f" --results-dir {opts['results_dir']}" if opts["results_dir"] != "results" else ""
    )
    as_json = bool(opts.get("as_json"))
    view = LiveView(
        term,
        settings.budget,
        settings.trials,
        term.interactive and not as_json,
        epochs=settings.epochs,
        stderr_only=as_json,
    )
    try:
        with view:
            summary = run_search(rundir, view=view, space=space, dataset=dataset)
    except KeyboardInterrupt:
        term.error(f"stopped at once; completed trials are kept in {rundir.path}. {resume_hint}")
        raise SystemExit(130) from None
    except InputError:
        if fresh:
            rundir.discard()  # failed before its first trial: the name stays free
        raise
    if as_json:
        term.json(summary)
    else:
        _print_front(summary, rundir.path)
    term.note(f"how far this proxy's ranking holds on this data: {fidelity_command(settings)}")
    if summary.get("interrupted"):
        term.error(f"interrupted: {summary['done']}/{settings.trials} trials done. {resume_hint}")
        raise SystemExit(130)
    if summary["done"] < settings.trials:
        term.error(
            f"the search ran but only {summary['done']}/{settings.trials} trials finished "
            "(see trials.csv for the reasons)"
        )
        raise SystemExit(1)


def _probe(opts: dict[str, Any]) -> None:
    """Refuse at once a Ray cluster (``--address``, else ``RAY_ADDRESS``) where nothing
    answers (``ray.init`` would retry forever)."""
    import os

    from attnsearch.search import probe_address

    address = opts.get("address") or os.environ.get("RAY_ADDRESS")
    if address:
        probe_address(address)


def _recorded_not_used(stored, settings) -> str | None:
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
    import json

    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _same_space(record, space, rundir) -> None:
    """Refuse a resume whose space file no longer resolves to the recorded space."""
    import json

    if record.space_file is None:
        return  # a folder made before spaces were recorded
    now = json.loads(json.dumps(space.to_json()))
    if _digest(now) != _digest(record.space_file):
        raise InputError(
            f"space {record.settings.space!r} changed since search {rundir.name!r} was "
            f"created (it differs from the space recorded in {rundir.run_yaml}); restore it "
            "or start a new --name"
        )


def _same_dataset(record, dataset, rundir) -> None:
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


def _dearest_flops(space, width: float) -> int:
    """The FLOPs of the space's costliest architecture (the non-binding FLOPs cap of a
    latency-budget search)."""
    from attnsearch.flops.analytic import cost_table
    from attnsearch.proposal import cheapest_choices

    table = cost_table(space.backbone, space.input, space.num_classes)
    arch, _ = cheapest_choices(space, space.options(width), lambda a: -table.total(a.slots))
    return int(table.total(arch.slots))


def _latency_settings():
    """What a run's latency table is measured under: this machine's device, batch 1."""
    import torch

    from attnsearch.latency import Settings

    return Settings(device="cuda" if torch.cuda.is_available() else "cpu")


def _load_latency_table(path, space):
    """A given --latency-table, checked against this machine's device kind and the space."""
    from attnsearch.latency import LatencyTable

    s = _latency_settings()
    table = LatencyTable.load(path, device=s.device, input=space.input, dtype=s.dtype)
    table.cheapest(space)  # refuses a table without every choice of the space
    return table


def _build_latency_table(path, space):
    from attnsearch.cli.latency_table import _progress
    from attnsearch.latency import load_or_build

    term.note(f"measuring a latency table for space {space.name} on this machine ({path.name})")
    with _progress(term, True) as progress:
        return load_or_build(path, space, _latency_settings(), progress=progress("measuring"))


def _check_latency_floor(space, budget_ms: float) -> None:
    """Refuse a latency budget below what the stem and head alone take on this machine
    (every architecture runs both), before a whole table is measured."""
    from attnsearch.latency import floor_ms

    s = _latency_settings()
    floor = floor_ms(space, s)
    if floor > budget_ms:
        raise InputError(
            f"budget {format_latency(budget_ms)} is below what the stem and head of "
            f"{space.backbone} alone take on this machine ({format_latency(floor)} measured "
            f"on {s.device}, batch {s.batch}): no architecture of space {space.name!r} can "
            "meet it"
        )


def _check_latency_budget(table, space, width: float, budget_ms: float) -> None:
    fastest, _ = table.cheapest(space, width)
    if fastest > budget_ms:
        raise InputError(
            f"budget {format_latency(budget_ms)} is below the fastest architecture of space "
            f"{space.name!r} ({format_latency(fastest)} predicted on "
            f"{table.settings.device}, batch {table.settings.batch})"
        )


def _warm_source(opts, space):
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


def _load(settings):
    """The proxy dataset, loaded (and split) the same way for a new run and a resume."""
    return settings.load_dataset()


def _narrowed(space, width: float) -> int:
    full = space.options(1.0)
    proxy = space.options(width)
    return sum(
        len(cs) - len(p.get(t, [])) for f, p in zip(full, proxy, strict=True) for t, cs in f.items()
    )


def fidelity_command(settings) -> str:
    """The ``attnsearch fidelity`` call that measures this run's proxy on this run's data,
    on architectures under its FLOPs budget, with its threads per training (values quoted
    for a POSIX shell). A CUDA run trains in bf16, ``fidelity --device cuda`` in float32."""
    import shlex

    from attnsearch.evaluation import run_defaults

    default = run_defaults()
    threads = max(1, int(settings.cpus_per_trial))
    flags = {
        "--space": settings.space,
        "--dataset": settings.dataset,
        "--data-dir": settings.data_dir if settings.data_dir != default["data_dir"] else None,
        "--epochs": settings.epochs,
        "--width": settings.width,
        "--resolution": settings.resolution,
        "--batch-size": settings.batch_size,
        "--optimizer": settings.optimizer if settings.optimizer != default["optimizer"] else None,
        "--limit": settings.limit,
        "--seed": settings.seed if settings.seed != default["seed"] else None,
        "--threads": threads if threads != max(1, int(default["cpus_per_trial"])) else None,
        # a latency run's panel is not filtered: fidelity's --budget is FLOPs
        "--budget": settings.budget if settings.latency_budget_ms is None else None,
    }
    parts = ["attnsearch", "fidelity"]
    for flag, value in flags.items():
        if value is not None:
            parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)


def _print_front(summary: dict[str, Any], run_dir) -> None:
    counts = summary["counts"]
    term.front(
        f"Pareto front on mean accuracy ({counts.get('complete', 0)} trained, "
        f"{counts.get('infeasible', 0)} over budget, {counts.get('fail', 0)} failed; "
        f"+{counts.get('references', 0)} reference and {counts.get('repeats', 0)} repeat "
        f"trainings; {summary.get('wall_seconds', 0):.0f}s)",
        summary["members"],
        summary.get("references"),
        summary.get("verdict"),
        summary.get("signal"),
    )
    if summary.get("caveat"):
        term.line(f"caveat: {summary['caveat']}")
    term.line(
        f"results: {run_dir}/ (pareto.json, summary.json, pareto.png, trials.csv, study.journal)"
    )
