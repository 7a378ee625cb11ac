"""The proxy options shared by ``evaluate`` and ``fidelity`` (defaults: ``run``'s)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

PROXY_OPTIONS = (
    "dataset",
    "data_dir",
    "epochs",
    "width",
    "resolution",
    "batch_size",
    "limit",
    "seed",
    "threads",
)


def _positive(ctx: click.Context, param: click.Parameter, value):
    if value is not None and value <= 0:
        raise click.BadParameter(f"must be positive, got {value}")
    return value


def proxy_options(fn: Callable) -> Callable:
    """Add the proxy options; each defaults to ``None``, meaning ``run``'s default."""
    options = [
        click.option("--dataset", default=None, help="Dataset spec (default: run's)."),
        click.option("--data-dir", default=None, help="Where datasets are (default: run's)."),
        click.option("--epochs", type=int, default=None, callback=_positive, help="Proxy epochs."),
        click.option(
            "--width", type=float, default=None, callback=_positive, help="Channel multiplier."
        ),
        click.option(
            "--resolution", type=int, default=None, callback=_positive, help="Proxy image size."
        ),
        click.option(
            "--batch-size",
            type=int,
            default=None,
            callback=_positive,
            help="Proxy batch size (default: run's rule from the training-set size).",
        ),
        click.option(
            "--limit", type=int, default=None, callback=_positive, help="Cap on training images."
        ),
        click.option("--seed", type=int, default=None, help="The run seed (data split)."),
        click.option(
            "--threads",
            type=int,
            default=None,
            callback=_positive,
            help="Torch threads per evaluation (a run's --cpus-per-trial).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def given(opts: dict[str, Any]) -> dict[str, Any]:
    """The proxy options the user set."""
    return {k: opts[k] for k in PROXY_OPTIONS if opts.get(k) is not None}
