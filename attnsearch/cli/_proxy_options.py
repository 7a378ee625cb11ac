"""The proxy options ``run``, ``evaluate`` and ``fidelity`` share, declared once.

Each option is made from the settings field it fills (:mod:`attnsearch.settings`): its
default, its range (:meth:`Number.of`), its choices and its help text. ``run`` shows the
defaults; ``evaluate`` and ``fidelity`` default every option to ``None``, meaning ``run``'s
default (named in the help), and add ``--threads`` (a run's ``--cpus-per-trial``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from attnsearch.cli._numbers import Number
from attnsearch.settings import (
    OPTIMIZERS,
    ProxyConfig,
    ProxySettings,
    RunSettings,
    field_default,
    field_help,
)

__all__ = ["PROXY_OPTIONS", "given", "proxy_options"]

# (option name, the settings class whose field it fills, its choices or None for a number
# or text); in --help order
_SHARED: tuple[tuple[str, type, tuple[str, ...] | None], ...] = (
    ("dataset", RunSettings, None),
    ("data_dir", RunSettings, None),
    ("epochs", ProxyConfig, None),
    ("width", ProxyConfig, None),
    ("resolution", ProxyConfig, None),
    ("batch_size", ProxyConfig, None),
    ("optimizer", ProxyConfig, OPTIMIZERS),
    ("flip", ProxyConfig, None),
    ("limit", RunSettings, None),
    ("seed", ProxyConfig, None),
)
_NUMBERS = {"epochs", "width", "resolution", "batch_size", "limit", "seed"}
_PICKED_LATER = {"batch_size"}  # None in every command: chosen from the training-set size
PROXY_OPTIONS = tuple(name for name, _, _ in _SHARED) + ("threads",)


_SWITCHES = {"flip"}  # --X/--no-X, None in every command: the dataset decides unless given


def _option(name: str, cls: type, choices: tuple[str, ...] | None, *, run: bool):
    flag = "--" + name.replace("_", "-")
    if name in _SWITCHES:
        return click.option(f"{flag}/--no-{flag[2:]}", default=None, help=field_help(cls, name))
    default = None if name in _PICKED_LATER else field_default(cls, name)
    kind: Any = None
    if choices is not None:
        kind = click.Choice(choices)
    elif name in _NUMBERS:
        kind = Number.of(cls, name)
    text = field_help(cls, name)
    if run:
        return click.option(
            flag, default=default, type=kind, show_default=default is not None, help=text
        )
    if default is not None:
        text = f"{text} [run's default: {default}]"
    return click.option(flag, default=None, type=kind, help=text)


def proxy_options(*, run: bool = False) -> Callable[[Callable], Callable]:
    """A decorator adding the shared proxy options to a command: with ``run``'s defaults
    (``run=True``), or each defaulting to ``None`` (``run``'s default) plus ``--threads``."""
    options = [_option(name, cls, choices, run=run) for name, cls, choices in _SHARED]
    if not run:
        options.append(
            click.option(
                "--threads",
                type=Number.of(ProxySettings, "threads"),
                default=None,
                help=field_help(ProxySettings, "threads"),
            )
        )

    def decorate(fn: Callable) -> Callable:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def given(opts: dict[str, Any]) -> dict[str, Any]:
    """The proxy options the user set (``evaluate``, ``fidelity``)."""
    return {k: opts[k] for k in PROXY_OPTIONS if opts.get(k) is not None}
