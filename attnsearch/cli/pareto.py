"""``attnsearch pareto NAME``: re-read a finished or running search and show its front."""

from __future__ import annotations

import click

from attnsearch.rundir import RESULTS_DIR


@click.command("pareto")
@click.argument("name")
@click.option("--results-dir", default=RESULTS_DIR, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print pareto.json to stdout.")
def command(name: str, results_dir: str, as_json: bool) -> None:
    """Rewrite pareto.json/.csv/.png and trials.csv from the storage and show the front."""
    from attnsearch.budget import format_flops
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
        f"{name}: Pareto front under {format_flops(run.settings.budget)} "
        f"({counts.get('complete', 0)} trained, {counts.get('infeasible', 0)} over budget, "
        f"{counts.get('running', 0)} running, {counts.get('fail', 0)} failed)",
        summary["members"],
    )
    term.line(f"written: {run.path}/pareto.json, pareto.png")
