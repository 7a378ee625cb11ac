"""``attnsearch run --budget 4GFLOPs``: the search, end to end."""

from __future__ import annotations

import click

from attnsearch.cli._numbers import Number, cost_budget_option
from attnsearch.cli._proxy_options import proxy_options
from attnsearch.rundir import RESULTS_DIR
from attnsearch.settings import (
    POLICIES,
    REFERENCE_MODES,
    SAMPLERS,
    RunSettings,
    field_default,
    field_help,
)


def _run(name: str):
    return field_default(RunSettings, name)


class _GpuShare(Number):
    """``auto`` (None: resolved against the cluster) or a number of GPUs."""

    def convert(self, value, param, ctx):
        if value is None or str(value).strip().lower() == "auto":
            return None
        return super().convert(value, param, ctx)


def _storage(ctx, param, value):
    from pathlib import Path

    if value is None or "://" in value:
        return value
    if not value.strip():
        raise click.BadParameter("must be a path or a URI, got an empty string")
    return str(Path(value).expanduser().resolve())  # workers run in other folders


def _timeout(ctx, param, value):
    import math

    if value is not None and (not math.isfinite(value) or value < 0):
        raise click.BadParameter(f"must be 0 (no limit) or a positive number, got {value}")
    return value


@click.command("run")
@click.option(
    "--budget",
    default=None,
    callback=cost_budget_option,
    help="Hard limit of the deploy network: FLOPs (4GFLOPs, 350M, 4e9) or predicted latency "
    "(25ms, 800us; see --latency-table). Required unless --resume.",
)
@click.option(
    "--space", default=_run("space"), show_default=True, help=field_help(RunSettings, "space")
)
@proxy_options(run=True)
@click.option(
    "--trials",
    default=_run("trials"),
    show_default=True,
    type=Number.of(RunSettings, "trials"),
    help="Trained trials to complete (over-budget candidates are extra and free).",
)
@click.option(
    "--sampler",
    default=_run("sampler"),
    show_default=True,
    type=click.Choice(SAMPLERS),
    help="Optuna sampler (tpe-mv: multivariate TPE, the benchmark's best; gp needs scipy).",
)
@click.option(
    "--policy",
    default=_run("policy"),
    show_default=True,
    type=click.Choice(POLICIES),
    help="Over-budget candidates: reject (ask again), repair (cheapest change under the "
    "budget), spread (repair towards a random cost between the cheapest and the budget).",
)
@click.option(
    "--latency-table",
    default=_run("latency_table"),
    type=click.Path(dir_okay=False),
    help="Latency table (`attnsearch latency-table`) for a latency --budget; without it one "
    "is measured for this machine and kept in the run folder.",
)
@click.option(
    "--warm-start",
    default=_run("warm_start"),
    metavar="NAME",
    help="Seed the sampler with the finished trials of run NAME (same space and width); "
    "they do not count toward --trials and are not on this run's front.",
)
@click.option(
    "--concurrency",
    default=_run("concurrency"),
    show_default=True,
    type=Number.of(RunSettings, "concurrency"),
    help="Trials running at once.",
)
@click.option(
    "--gpus-per-trial",
    default="auto",
    show_default=True,
    type=_GpuShare.of(RunSettings, "gpus_per_trial"),
    help="GPUs per trial; fractions pack several proxies on one GPU. auto: 0 on a cluster "
    "without GPUs, else 1/k of a GPU so that --concurrency trials run at once (k at most 4).",
)
@click.option(
    "--cpus-per-trial",
    default=_run("cpus_per_trial"),
    show_default=True,
    type=Number.of(RunSettings, "cpus_per_trial"),
    help="CPU threads per trial.",
)
@click.option(
    "--address",
    default=_run("address"),
    help="Existing Ray cluster (else RAY_ADDRESS, else the search starts a Ray of its own, "
    "never one it finds running).",
)
@click.option(
    "--storage",
    default=_run("storage"),
    callback=_storage,
    help="Where Tune keeps checkpoints: a path every node of the cluster sees (shared "
    "filesystem) or a URI (s3://, gs://); the run goes under NAME there (default: the run "
    "folder). The study and logs stay in the run folder on the driver.",
)
@click.option(
    "--trial-timeout",
    default=_run("trial_timeout"),
    type=float,
    callback=_timeout,
    help="Seconds a trial may run before it is stopped and recorded as failed; 0: no "
    "limit (default: 10x the longest finished trial, at least 300s; none before one "
    "finished).",
)
@click.option(
    "--checkpoint-interval",
    default=_run("checkpoint_interval"),
    show_default=True,
    type=Number.of(RunSettings, "checkpoint_interval"),
    help="Seconds of training between a trial's checkpoints (checked at each epoch's end; "
    "0: every epoch); the final weights are always kept. A resume re-trains what an "
    "interrupted trial did since its last checkpoint.",
)
@click.option(
    "--name",
    default=None,
    help="Run name: results go to RESULTS_DIR/NAME (default: SPACE-DATE-TIME).",
)
@click.option(
    "--results-dir", default=RESULTS_DIR, show_default=True, help="Parent folder of run folders."
)
@click.option(
    "--repeats",
    default=_run("repeats"),
    show_default=True,
    type=Number.of(RunSettings, "repeats"),
    help="Seeds per reference, and per front (or within-noise) trial before the run ends; "
    "the front is ranked on mean accuracy. Extra trials, not counted in --trials.",
)
@click.option(
    "--references",
    default=_run("references"),
    show_default=True,
    type=click.Choice(REFERENCE_MODES),
    help="Train the papers' networks the space expresses: those under the budget (fit), "
    "also over-budget ones as context (all), or none. Never on the front.",
)
@click.option("--early-stop", is_flag=True, help="ASHA early stopping of poor trials on accuracy.")
@click.option("--resume", is_flag=True, help="Continue the search --name NAME.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the run's summary (summary.json and the run folder) as JSON on stdout; "
    "progress and notes go to stderr.",
)
@click.pass_context
def command(ctx: click.Context, **opts) -> None:
    """Search attention choices per slot: accuracy up, FLOPs down, under --budget.

    Resume an interrupted search with --name NAME --resume (its settings come from
    run.yaml; --trials, --concurrency, --gpus-per-trial, --cpus-per-trial,
    --trial-timeout, --checkpoint-interval, --address and --storage may change; the
    cluster and storage are used only when named again).
    """
    from click.core import ParameterSource

    from attnsearch.cli._run_impl import run

    explicit = {k for k in opts if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE}
    run(opts, explicit)
