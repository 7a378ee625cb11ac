"""The one object that owns terminal output (rich tables, or JSON with --json)."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["Terminal", "term"]


class Terminal:
    """Writes results to stdout and diagnostics to stderr.

    Text is printed as it is: user paths and names such as ``[v2]`` or ``[/x]`` are never
    read as rich markup (both consoles have markup off; styles are applied with ``Text``).
    """

    def __init__(self) -> None:
        self.out = Console(highlight=False, soft_wrap=False, markup=False)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

    @property
    def interactive(self) -> bool:
        return self.out.is_terminal

    def json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        sys.stdout.flush()

    def table(self, title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
        table = Table(title=title, show_lines=False, header_style="bold")
        for c in columns:
            table.add_column(c, overflow="fold")
        for r in rows:
            table.add_row(*(Text(str(v)) for v in r))
        self.out.print(table)

    def front(
        self,
        title: str,
        members: list[dict[str, Any]],
        references: list[dict[str, Any]] | None = None,
        verdict: dict[str, Any] | None = None,
    ) -> None:
        """The Pareto front (pareto.json members) with 95 % intervals, then the references
        (summary.json) and the verdict line. ``≈`` marks a member whose interval overlaps
        the next member's or the best fitting reference's (no measurement separates them).
        """
        from attnsearch.architecture import Architecture
        from attnsearch.budget import format_flops

        def acc(m: dict[str, Any]) -> str:
            ci = m.get("interval95")
            half = "" if ci is None else f" ± {(ci[1] - ci[0]) / 2:.4f}"
            return f"{m['accuracy']:.4f}{half}"

        columns = ["trial", "accuracy (95 %)", "seeds", "FLOPs", "params", "architecture"]
        rows = [
            [
                f"{m['trial']}{' ≈' if m.get('unseparated') else ''}",
                acc(m),
                len(m.get("accuracies") or [m["accuracy"]]),
                format_flops(m["flops"]),
                f"{m['params'] / 1e6:.2f} M",
                Architecture.from_json(m["architecture"]).summary(),
            ]
            for m in members
        ]
        self.table(title, columns, rows)
        close = [m for m in members if m.get("unseparated")]
        if close:
            self.line(
                "≈ not separated by the measurements (95 % intervals overlap): "
                + "; ".join(f"{m['trial']} ~ {', '.join(m['unseparated'])}" for m in close)
            )
        if references:
            self.table(
                "References (the papers' networks, same proxy and seeds; never on the front)",
                ["name", "accuracy (95 %)", "seeds", "FLOPs", "params", "fits"],
                [
                    [
                        r["name"],
                        acc(r),
                        len(r["accuracies"]),
                        format_flops(r["flops"]),
                        f"{r['params'] / 1e6:.2f} M",
                        "yes" if r["fits"] else "no (context)",
                    ]
                    for r in references
                ],
            )
        if verdict is not None:
            self.line(verdict["text"])

    def line(self, text: str = "", **kwargs: Any) -> None:
        self.out.print(text, **kwargs)

    def note(self, text: str) -> None:
        self.err.print(text)

    def error(self, message: str) -> None:
        self.err.print(Text("error: ", style="bold red") + Text(message))


term = Terminal()
