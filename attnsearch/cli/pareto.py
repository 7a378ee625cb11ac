"""``attnsearch pareto NAME``: re-read a finished or running search and show its front."""

from __future__ import annotations

import click

from attnsearch.rundir import RESULTS_DIR


@click.command("pareto")
@click.argument("name")
@click.option("--results-dir", default=RESULTS_DIR, show_default=True)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print pareto.json (the front members) to stdout; references and the verdict are "
    "in summary.json beside it.",
)
def command(name: str, results_dir: str, as_json: bool) -> None:
    """Rewrite pareto.json/.csv/.png, summary.json and trials.csv from the storage; show the
    front (mean accuracy, 95 % intervals), the references and the verdict."""
    from attnsearch.cli._terminal import term
    from attnsearch.results import open_study, write_results
    from attnsearch.rundir import RunDir

    run = RunDir.open(results_dir, name)
    study = open_study(run.path, run.record.study_name)
    summary = write_results(run, study)
    if as_json:
        term.json(summary["members"])
        return
    counts = summary["counts"]
    term.front(
        f"{name}: Pareto front under {run.settings.budget.label} "
        f"({counts.get('complete', 0)} trained, {counts.get('infeasible', 0)} over budget, "
        f"{counts.get('running', 0)} running, {counts.get('fail', 0)} failed; "
        f"+{counts.get('references', 0)} reference and {counts.get('repeats', 0)} repeat "
        "trainings)",
        summary["members"],
        summary["references"],
        summary["verdict"],
        summary.get("signal"),
    )
    term.line(f"written: {run.path}/pareto.json, summary.json, pareto.png")
