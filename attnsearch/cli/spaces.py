"""``attnsearch spaces``: the shipped search spaces and their sizes."""

from __future__ import annotations

import click


@click.command("spaces")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def command(as_json: bool) -> None:
    """List the shipped search spaces with their size (number of architectures)."""
    from attnsearch.cli._terminal import term
    from attnsearch.spaces import load_space, space_names

    spaces = [load_space(n) for n in space_names()]
    if as_json:
        term.json([s.to_json() for s in spaces])
        return
    rows = [
        [s.name, s.backbone, s.granularity, len(s.units), f"{s.size():.3g}", s.description]
        for s in spaces
    ]
    term.table("search spaces", ["name", "backbone", "per", "units", "size", "description"], rows)
