"""The one object that owns terminal output (rich tables, or JSON with --json)."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from attnsearch.safeio import json_dumps

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
        sys.stdout.write(json_dumps(data, indent=2) + "\n")
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
        signal: dict[str, Any] | None = None,
    ) -> None:
        """The Pareto front (pareto.json members), then the references (summary.json), the
        verdict and the signal line. Accuracies shown with an interval are the fresh seeds'
        mean (a member's selection seed left out); ``≈`` marks a member that the run's
        pooled t-test does not separate from the next member or the best fitting reference
        — the same test as the verdict's, so the two never disagree.
        """
        from attnsearch.architecture import Architecture
        from attnsearch.budget import format_flops, format_latency

        def _ms(value: float | None) -> str:
            return "—" if value is None else format_latency(value)

        def acc(m: dict[str, Any]) -> str:
            if m.get("fresh_accuracies") is not None and not m["fresh_accuracies"]:
                return "—"  # only the seed that selected it: nothing to claim
            ci = m.get("interval95")
            value = m.get("fresh_accuracy", m["accuracy"])
            half = "" if ci is None else f" ± {(ci[1] - ci[0]) / 2:.4f}"
            return f"{value:.4f}{half}"

        def first(m: dict[str, Any]) -> str:
            return f"{m['accuracies'][0]:.4f}" if m.get("selection_seed") is not None else "—"

        # a latency run is ranked on predicted latency: its members carry latency_ms
        latency = any(m.get("latency_ms") is not None for m in members)
        columns = [
            "trial",
            "selection seed",
            "fresh seeds (95 %)",
            "seeds",
            *(["latency"] if latency else []),
            "FLOPs",
            "params",
            "architecture",
        ]
        rows = [
            [
                f"{m['trial']}{' ≈' if m.get('unseparated') else ''}",
                first(m),
                acc(m),
                len(m.get("accuracies") or [m["accuracy"]]),
                *([_ms(m.get("latency_ms"))] if latency else []),
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
                "≈ not separated by the measurements (pooled t-test on fresh seeds, 95 %): "
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
        if signal is not None:
            self.line(signal["text"])

    def line(self, text: str = "", **kwargs: Any) -> None:
        self.out.print(text, **kwargs)

    def note(self, text: str) -> None:
        self.err.print(text)

    def error(self, message: str) -> None:
        self.err.print(Text("error: ", style="bold red") + Text(message))


term = Terminal()
