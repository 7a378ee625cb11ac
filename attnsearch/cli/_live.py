"""The live view of a running search: a rich table on a terminal, plain lines otherwise."""

from __future__ import annotations

import time
from typing import Any

from attnsearch.budget import format_flops

__all__ = ["LiveView"]

_VIEWS: dict[int, LiveView] = {}  # callbacks reach their view through this (they get pickled)


class LiveView:
    """Counts trials and keeps the current front; renders on each change."""

    def __init__(self, term, budget: int, trials: int, interactive: bool):
        self.term = term
        self.budget = budget
        self.trials = trials
        self.interactive = interactive
        self.done: list[tuple[float, int, int]] = []  # (accuracy, flops, trial number)
        self.failed = 0
        self.running = 0
        self.searcher = None
        self.t0 = time.time()
        self._live = None

    # ---- state ------------------------------------------------------------------------
    @property
    def infeasible(self) -> int:
        return getattr(self.searcher, "infeasible", 0) if self.searcher is not None else 0

    def front(self) -> list[tuple[float, int, int]]:
        front = []
        for acc, flops, n in sorted(self.done, key=lambda d: (d[1], -d[0])):
            if not front or acc > front[-1][0]:
                front.append((acc, flops, n))
        return front

    def completed(self, result: dict[str, Any]) -> None:
        if result.get("failed"):
            self.failed += 1
            self._line(f"trial {result.get('trial_number')}: failed — {result['failed']}")
        else:
            self.done.append(
                (float(result["accuracy"]), int(result["flops"]), int(result["trial_number"]))
            )
            self._line(
                f"trial {result['trial_number']}: accuracy {result['accuracy']:.4f}  "
                f"{format_flops(result['flops'])}  ({result.get('train_seconds', 0):.1f}s)"
            )
        self.refresh()

    def note(self, text: str) -> None:
        self.term.note(text)

    # ---- rendering --------------------------------------------------------------------
    def _line(self, text: str) -> None:
        if not self.interactive:
            self.term.line(f"[{time.time() - self.t0:6.0f}s] {text}", markup=False)

    def render(self):
        from rich.table import Table

        best = max((d[0] for d in self.done), default=None)
        title = (
            f"done {len(self.done)}/{self.trials}  running {self.running}  "
            f"over budget {self.infeasible}  failed {self.failed}  "
            f"best {best:.4f}"
            if best is not None
            else f"done 0/{self.trials}  running {self.running}  over budget {self.infeasible}"
        )
        table = Table(title=title, caption=f"budget {format_flops(self.budget)}")
        table.add_column("front: trial", justify="right")
        table.add_column("accuracy", justify="right")
        table.add_column("FLOPs", justify="right")
        for acc, flops, n in self.front():
            table.add_row(str(n), f"{acc:.4f}", format_flops(flops))
        return table

    def refresh(self) -> None:
        if self._live is not None:
            self._live.update(self.render())

    def __enter__(self) -> LiveView:
        _VIEWS[id(self)] = self
        if self.interactive:
            from rich.live import Live

            self._live = Live(self.render(), console=self.term.out, refresh_per_second=2)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None
        _VIEWS.pop(id(self), None)

    def tune_callback(self, searcher):
        self.searcher = searcher
        return _make_callback(id(self))


def _make_callback(key: int):
    """A Tune callback that forwards to the view registered under ``key``.

    Defined at module level so that Tune pickles it by reference (the view itself holds
    terminal objects that cannot be pickled).
    """
    from ray import tune

    global _Callback
    if "_Callback" not in globals():

        class _Callback(tune.Callback):  # noqa: N801
            def __init__(self, key: int):
                self.key = key

            def _view(self):
                return _VIEWS.get(self.key)

            def on_step_end(self, iteration, trials, **info):
                view = self._view()
                if view is not None:
                    running = sum(1 for t in trials if t.status == "RUNNING")
                    if running != view.running:
                        view.running = running
                        view.refresh()

            def on_trial_complete(self, iteration, trials, trial, **info):
                view = self._view()
                if view is not None and trial.last_result:
                    view.completed(trial.last_result)

        _Callback.__module__ = __name__
        _Callback.__qualname__ = "_Callback"
    return _Callback(key)
