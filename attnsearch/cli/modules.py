"""``attnsearch modules``: the registered attention types and their hyperparameters."""

from __future__ import annotations

import click


@click.command("modules")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def command(as_json: bool) -> None:
    """List the attention types, where they go, and their hyperparameters."""
    from attnsearch import modules
    from attnsearch.cli._terminal import term

    specs = [modules.get(n) for n in modules.REGISTRY]
    if as_json:
        none = {
            "name": "none",
            "kind": "none",
            "paper": None,
            "code": None,
            "requires": "nothing",
            "hparams": [],
        }
        term.json([none, *(s.to_json() for s in specs)])
        return
    rows = [["none", "-", "-", "plain block"]]
    for s in specs:
        hp = ", ".join(
            f"{h.name}={h.default}" + (f" {{{'|'.join(map(str, h.choices))}}}" if h.choices else "")
            for h in s.hparams
        )
        where = "gate after last BN" if s.placement == "gate" else "replaces the 3×3 conv"
        rows.append([s.name, where, hp or "-", s.requires])
    term.table("attention types", ["type", "where", "hyperparameters (default)", "needs"], rows)
