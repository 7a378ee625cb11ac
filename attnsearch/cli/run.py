"""``attnsearch run --budget 4GFLOPs``: the search, end to end."""

from __future__ import annotations

import click


def _positive(kind):
    def check(ctx, param, value):
        if value is not None and value <= 0:
            raise click.BadParameter(f"must be positive, got {value}")
        return value

    return check


@click.command("run")
@click.option(
    "--budget",
    default=None,
    help="Hard FLOPs limit of the deploy network, e.g. 4GFLOPs, 350M, 4e9 "
    "(required unless --resume).",
)
@click.option(
    "--space",
    default="resnet50",
    show_default=True,
    help="Shipped space name (see `attnsearch spaces`) or a .yaml file.",
)
@click.option(
    "--dataset",
    default="digits",
    show_default=True,
    help="digits | synthetic | cifar10 | cifar100 | folder:PATH",
)
@click.option(
    "--data-dir",
    default="data",
    show_default=True,
    help="Where CIFAR archives are (downloaded there when absent).",
)
@click.option(
    "--trials",
    default=24,
    show_default=True,
    type=int,
    callback=_positive(int),
    help="Trained trials to complete (over-budget candidates are extra and free).",
)
@click.option(
    "--epochs",
    default=2,
    show_default=True,
    type=int,
    callback=_positive(int),
    help="Proxy training epochs per candidate.",
)
@click.option(
    "--sampler", default="nsga2", show_default=True, type=click.Choice(["nsga2", "tpe", "random"])
)
@click.option(
    "--concurrency",
    default=2,
    show_default=True,
    type=int,
    callback=_positive(int),
    help="Trials running at once.",
)
@click.option(
    "--gpus-per-trial",
    default=0.0,
    show_default=True,
    type=float,
    help="GPUs per trial; fractions pack several proxies on one GPU.",
)
@click.option(
    "--cpus-per-trial",
    default=1.0,
    show_default=True,
    type=float,
    callback=_positive(float),
    help="CPU threads per trial.",
)
@click.option(
    "--address",
    default=None,
    help="Existing Ray cluster (else RAY_ADDRESS, else a local Ray is started).",
)
@click.option(
    "--name",
    default=None,
    help="Run name: results go to RESULTS_DIR/NAME (default: SPACE-DATE-TIME).",
)
@click.option(
    "--results-dir", default="results", show_default=True, help="Parent folder of run folders."
)
@click.option("--seed", default=0, show_default=True, type=int, help="Sampler and training seed.")
@click.option(
    "--width",
    default=0.5,
    show_default=True,
    type=float,
    callback=_positive(float),
    help="Proxy channel multiplier.",
)
@click.option(
    "--resolution",
    default=None,
    type=int,
    callback=_positive(int),
    help="Proxy image size (default: the dataset's own).",
)
@click.option(
    "--batch-size",
    default=None,
    type=int,
    callback=_positive(int),
    help="Proxy batch size (default: 32 under 10,000 training images, else 128).",
)
@click.option(
    "--limit",
    default=None,
    type=int,
    callback=_positive(int),
    help="Use at most this many training images.",
)
@click.option("--early-stop", is_flag=True, help="ASHA early stopping of poor trials on accuracy.")
@click.option("--resume", is_flag=True, help="Continue the search --name NAME.")
@click.pass_context
def command(ctx: click.Context, **opts) -> None:
    """Search attention choices per slot: accuracy up, FLOPs down, under --budget.

    Resume an interrupted search with --name NAME --resume (its settings come from
    run.yaml; --trials, --concurrency, --gpus-per-trial, --cpus-per-trial and --address
    may change).
    """
    from click.core import ParameterSource

    from attnsearch.cli._run_impl import run

    explicit = {k for k in opts if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE}
    run(opts, explicit)
