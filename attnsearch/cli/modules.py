"""``attnsearch modules``: the registered attention types and their hyperparameters."""

from __future__ import annotations

import click


@click.command("modules")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def command(as_json: bool) -> None:
    """List the attention types, where they go, and their hyperparameters."""
    from attnsearch import modules
    from attnsearch.cli._terminal import term

    specs = list(modules.REGISTRY.values())  # "none" (the plain block) first
    if as_json:
        term.json([s.to_json() for s in specs])
        return
    rows = []
    for s in specs:
        hp = ", ".join(
            f"{h.name}={h.default}" + (f" {{{'|'.join(map(str, h.choices))}}}" if h.choices else "")
            for h in s.hparams
        )
        rows.append([s.name, s.where, hp or "-", s.requires])
    term.table("attention types", ["type", "where", "hyperparameters (default)", "needs"], rows)
