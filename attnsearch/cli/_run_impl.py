"""The body of ``attnsearch run`` (kept apart so that ``--help`` imports nothing heavy): a
new run or a resume, from the parsed options to the folder, the search and what it shows.

The settings assemble themselves (:meth:`attnsearch.settings.RunSettings.from_options`,
:meth:`~attnsearch.settings.RunSettings.resumed`); a resume's checks are in
:mod:`attnsearch.cli._resume`, the budget's feasibility and latency table in
:mod:`attnsearch.cli._feasible`; the folder, its lock and run.yaml belong to the RunDir.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attnsearch.budget import format_latency
from attnsearch.cli._terminal import term
from attnsearch.errors import InputError


def run(opts: dict[str, Any], explicit: set[str] | None = None) -> None:
    """``opts``: the command's options, ``opts["budget"]`` the parsed
    :class:`~attnsearch.budget.Budget` (or None); ``explicit``: those given on the command
    line (default: all)."""
    from attnsearch.cli._resume import recorded_not_used, resumed, same_dataset, same_space
    from attnsearch.rundir import RunDir
    from attnsearch.search import run_search
    from attnsearch.spaces import load_space

    explicit = set(opts) if explicit is None else explicit
    fresh = not opts["resume"]
    checked = None  # checked: the new run's budget check, handed to the search
    if not fresh:
        if not opts["name"]:
            raise InputError("--resume needs --name NAME of the search to continue")
        rundir = RunDir.open(opts["results_dir"], opts["name"])
        resumed(opts, explicit, rundir)  # read-only checks: a damaged folder is left as is
        _probe(opts)  # before anything is written
        rundir.lock()
        record = resumed(opts, explicit, rundir)  # again, under the lock
        settings = record.settings
        space = load_space(settings.space)
        same_space(record, space, rundir)
        dataset = settings.load_dataset()
        same_dataset(record, dataset, rundir)
        stored = rundir.record.settings
        shown = recorded_not_used(stored, settings)
        if shown:
            term.note(shown)
        if settings != stored:  # run.yaml holds the settings this driver runs with
            rundir.save_record(record)
        term.note(f"resuming search {rundir.name}: {settings.trials} trials to finish")
    else:
        rundir, settings, space, dataset, checked = _create(opts)
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
            summary = run_search(rundir, view=view, space=space, dataset=dataset, checked=checked)
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


def _create(opts: dict[str, Any]):
    """A new run: its budget checked, its settings, dataset and folder (and a latency table
    measured into it when none was given). Returns ``(rundir, settings, space, dataset,
    checked)``, ``checked`` the run's one feasibility check (:meth:`attnsearch.cost.Cost.check_budget`),
    which the search takes on."""
    from attnsearch.cli._feasible import (
        build_latency_table,
        check_budget,
        check_latency_budget,
    )
    from attnsearch.cli._resume import warm_source
    from attnsearch.rundir import LATENCY_TABLE, RunDir, RunRecord, provenance
    from attnsearch.settings import RunSettings, batch_size_for
    from attnsearch.spaces import load_space

    budget = opts["budget"]
    if budget is None:
        raise InputError("--budget is required (e.g. --budget 4GFLOPs)")
    space = load_space(opts["space"])
    space.check_width(opts["width"])
    table, checked = check_budget(budget, space, opts["width"], opts.get("latency_table"))
    if opts["name"] is not None:
        RunDir.check_new_name(opts["results_dir"], opts["name"])  # before the dataset
    _probe(opts)  # a cluster where nothing answers: refused before the folder exists
    warm = warm_source(opts, space) if opts.get("warm_start") else None
    # a latency run's table lives in its folder (a given one copied there, else measured
    # there): a moved or copied folder resumes and exports with the table it was priced on
    table_file = LATENCY_TABLE if budget.is_latency else None
    settings = RunSettings.from_options(
        opts, latency_table=table_file, warm_start=str(warm) if warm is not None else None
    )
    dataset = settings.load_dataset()
    if opts["batch_size"] is None:  # small sets: smaller batches, more steps
        settings = settings.replace(batch_size=batch_size_for(len(dataset.train_x)))
    origin = provenance()
    if table is not None:
        origin["latency_table_from"] = str(Path(opts["latency_table"]).resolve())
    record = RunRecord(
        settings=settings,
        study_name="",
        space_file=space.to_json(),
        dataset_info=dataset.summary(),
        provenance=origin,
    )
    rundir = RunDir.create(opts["results_dir"], opts["name"], record, default_prefix=space.name)
    if budget.is_latency:
        try:
            if table is None:  # built on the fly for this machine
                table = build_latency_table(rundir.latency_table, space)
                checked = check_latency_budget(table, space, settings.width, budget)
            else:  # the given table, as loaded and checked
                table.save(rundir.latency_table)
        except (InputError, KeyboardInterrupt):
            rundir.discard()
            raise
    narrowed = _narrowed(space, settings.width)
    shown_budget = (
        f"{format_latency(budget.value)} predicted latency "
        f"({table.settings.device}, batch {table.settings.batch})"
        if budget.is_latency
        else str(budget)
    )
    term.note(
        f"search {rundir.name}: space {space.name} ({space.size():,} architectures), "
        f"budget {shown_budget}, dataset {settings.dataset} "
        f"{tuple(dataset.input_shape)} x{len(dataset.train_x)} "
        f"(flips {'on' if settings.proxy.flip else 'off'}), {settings.trials} trials "
        f"x {settings.epochs} epochs, sampler {settings.sampler}, policy {settings.policy}"
    )
    if narrowed:
        term.note(
            f"note: at proxy width {settings.width}, {narrowed} choice(s) cannot be built "
            "in some slots and are left out there (use --width 1 to keep them)"
        )
    return rundir, settings, space, dataset, checked


def _probe(opts: dict[str, Any]) -> None:
    """Refuse at once a Ray cluster (``--address``, else ``RAY_ADDRESS``) where nothing
    answers (``ray.init`` would retry forever)."""
    import os

    from attnsearch.search import probe_address

    address = opts.get("address") or os.environ.get("RAY_ADDRESS")
    if address:
        probe_address(address)


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

    from attnsearch.settings import ProxySettings, flips_by_default

    default = ProxySettings()  # fidelity's defaults: run's
    threads = max(1, int(settings.cpus_per_trial))
    budget = settings.budget
    flags = {
        "--space": settings.space,
        "--dataset": settings.dataset,
        "--data-dir": settings.data_dir if settings.data_dir != default.data_dir else None,
        "--epochs": settings.epochs,
        "--width": settings.width,
        "--resolution": settings.resolution,
        "--batch-size": settings.batch_size,
        "--optimizer": settings.optimizer if settings.optimizer != default.optimizer else None,
        "--limit": settings.limit,
        "--seed": settings.seed if settings.seed != default.seed else None,
        "--threads": threads if threads != default.threads else None,
        # a latency run's panel is not filtered: fidelity's --budget is FLOPs
        "--budget": int(budget.value) if budget is not None and not budget.is_latency else None,
    }
    parts = ["attnsearch", "fidelity"]
    for flag, value in flags.items():
        if value is not None:
            parts += [flag, shlex.quote(str(value))]
    if settings.proxy.flip != flips_by_default(settings.dataset):  # --flip/--no-flip given
        parts.append("--flip" if settings.proxy.flip else "--no-flip")
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
