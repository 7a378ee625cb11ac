"""The proxy options shared by ``evaluate`` and ``fidelity`` (defaults: ``run``'s)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from attnsearch.cli._numbers import Number
from attnsearch.proxy import OPTIMIZERS, ProxyConfig

PROXY_OPTIONS = (
    "dataset",
    "data_dir",
    "epochs",
    "width",
    "resolution",
    "batch_size",
    "optimizer",
    "limit",
    "seed",
    "threads",
)


def proxy_options(fn: Callable) -> Callable:
    """Add the proxy options; each defaults to ``None``, meaning ``run``'s default."""
    options = [
        click.option("--dataset", default=None, help="Dataset spec (default: run's)."),
        click.option("--data-dir", default=None, help="Where datasets are (default: run's)."),
        click.option(
            "--epochs", type=Number.of(ProxyConfig, "epochs"), default=None, help="Proxy epochs."
        ),
        click.option(
            "--width",
            type=Number.of(ProxyConfig, "width"),
            default=None,
            help="Channel multiplier.",
        ),
        click.option(
            "--resolution",
            type=Number.of(ProxyConfig, "resolution"),
            default=None,
            help="Proxy image size.",
        ),
        click.option(
            "--batch-size",
            type=Number.of(ProxyConfig, "batch_size"),
            default=None,
            help="Proxy batch size (default: run's rule from the training-set size).",
        ),
        click.option(
            "--optimizer",
            type=click.Choice(OPTIMIZERS),
            default=None,
            help="Proxy optimizer (default: run's; adamw takes lr 0.002 per batch 128, weight decay 0.05).",
        ),
        click.option(
            "--limit",
            type=Number(1, 10**9, integer=True),
            default=None,
            help="Cap on training images.",
        ),
        click.option(
            "--seed",
            type=Number.of(ProxyConfig, "seed"),
            default=None,
            help="The run seed (data split).",
        ),
        click.option(
            "--threads",
            type=Number(1, 4096, integer=True),
            default=None,
            help="Torch threads per evaluation (a run's --cpus-per-trial).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def given(opts: dict[str, Any]) -> dict[str, Any]:
    """The proxy options the user set."""
    return {k: opts[k] for k in PROXY_OPTIONS if opts.get(k) is not None}
