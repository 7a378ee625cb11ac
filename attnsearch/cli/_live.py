"""The live view of a running search: on a terminal, a progress bar (trials done/total,
elapsed, ETA), the running trials' epoch and node, and the front; plain lines otherwise."""

from __future__ import annotations

import time
from typing import Any

from attnsearch.budget import Budget, format_flops

__all__ = ["LiveView"]

_VIEWS: dict[int, LiveView] = {}  # callbacks reach their view through this (they get pickled)


class LiveView:
    """Counts trials and keeps the current front; renders on each change."""

    def __init__(
        self,
        term,
        budget: Budget,
        trials: int,
        interactive: bool,
        epochs: int = 0,
        stderr_only: bool = False,
    ):
        self.term = term
        self.stderr_only = stderr_only  # run --json: progress lines to stderr, no live view
        self.budget = budget
        self.trials = trials
        self.epochs = epochs
        self.interactive = interactive
        self.progress: dict[int, tuple[int, str]] = {}  # running trial -> (epoch, node)
        self.done: list[tuple[float, int, int]] = []  # (accuracy, flops, trial number)
        self.extras = 0  # references and repeats trained (never counted in `trials`)
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

    def elapsed(self) -> float:
        return time.time() - self.t0

    def eta(self) -> float | None:
        """Seconds until ``trials`` are done at this session's rate of trainings, references
        and repeats included (None before one; the repeats after the search are not known
        in advance, so not included)."""
        trained = len(self.done) + self.extras
        if not trained:
            return None
        return max(0.0, self.elapsed() / trained * (self.trials - len(self.done)))

    def status(self) -> str:
        eta = self.eta()
        return (
            f"done {len(self.done)}/{self.trials}{self._extras()}, "
            f"elapsed {_clock(self.elapsed())}, ETA {_clock(eta) if eta is not None else '?'}"
        )

    def _extras(self) -> str:
        return f" (+{self.extras} references/repeats)" if self.extras else ""

    def epoch(self, result: dict[str, Any]) -> None:
        """A running trial reported an epoch."""
        try:
            number, epoch = int(result["trial_number"]), int(result["epoch"])
        except (KeyError, TypeError, ValueError):
            return
        node = str(result.get("node_ip") or "") + " " + str(result.get("node_id") or "")[:8]
        self.progress[number] = (epoch, node.strip())
        of = f"/{self.epochs}" if self.epochs else ""
        self._line(f"trial {number}: epoch {epoch}{of} on node {node.strip() or '?'}")
        self.refresh()

    def errored(self, number: Any, reason: str) -> None:
        """A trial's worker failed or was stopped (the time limit)."""
        self.failed += 1
        self.progress.pop(number, None)
        self._line(f"trial {number}: failed — {reason}")
        self.refresh()

    def completed(self, result: dict[str, Any]) -> None:
        self.progress.pop(result.get("trial_number"), None)
        if result.get("failed"):
            self.failed += 1
            self._line(f"trial {result.get('trial_number')}: failed — {result['failed']}")
        elif result.get("role"):  # a reference or a repeat: not one of --trials
            self.extras += 1
            self._line(
                f"trial {result['trial_number']} ({result['role']}): accuracy "
                f"{result['accuracy']:.4f}  {format_flops(result['flops'])}  "
                f"({result.get('train_seconds', 0):.1f}s); {self.status()}"
            )
        else:
            self.done.append(
                (float(result["accuracy"]), int(result["flops"]), int(result["trial_number"]))
            )
            self._line(
                f"trial {result['trial_number']}: accuracy {result['accuracy']:.4f}  "
                f"{format_flops(result['flops'])}  ({result.get('train_seconds', 0):.1f}s); "
                f"{self.status()}"
            )
        self.refresh()

    def note(self, text: str) -> None:
        self.term.note(text)

    # ---- rendering --------------------------------------------------------------------
    def _line(self, text: str) -> None:
        if not self.interactive:
            line = f"[{time.time() - self.t0:6.0f}s] {text}"
            if self.stderr_only:  # stdout is for the JSON summary
                self.term.note(line)
            else:
                self.term.line(line, markup=False)

    def render(self):
        from rich.console import Group
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
        from rich.table import Table

        best = max((d[0] for d in self.done), default=None)
        title = (
            f"done {len(self.done)}/{self.trials}{self._extras()}  running {self.running}  "
            f"over budget {self.infeasible}  failed {self.failed}  "
            f"best {best:.4f}"
            if best is not None
            else f"done 0/{self.trials}{self._extras()}  running {self.running}  "
            f"over budget {self.infeasible}"
        )
        table = Table(title=title, caption=f"budget {self.budget.label}")
        table.add_column("front: trial", justify="right")
        table.add_column("accuracy", justify="right")
        table.add_column("FLOPs", justify="right")
        for acc, flops, n in self.front():
            table.add_row(str(n), f"{acc:.4f}", format_flops(flops))
        eta = self.eta()
        bar = Progress(
            TextColumn("trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                f"elapsed {_clock(self.elapsed())}  ETA {_clock(eta) if eta is not None else '?'}"
            ),
            auto_refresh=False,
            console=self.term.out,
        )
        bar.add_task("trials", total=self.trials, completed=min(len(self.done), self.trials))
        parts: list[Any] = [bar]
        if self.progress:
            running = Table(box=None, show_header=True, pad_edge=False)
            running.add_column("running: trial", justify="right")
            running.add_column("epoch", justify="right")
            running.add_column("node")
            of = f"/{self.epochs}" if self.epochs else ""
            for n, (epoch, node) in sorted(self.progress.items()):
                running.add_row(str(n), f"{epoch}{of}", node or "?")
            parts.append(running)
        parts.append(table)
        return Group(*parts)

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


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


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

            def on_trial_result(self, iteration, trials, trial, result, **info):
                view = self._view()
                if view is not None and not result.get("failed"):
                    view.epoch(result)

            def on_trial_complete(self, iteration, trials, trial, **info):
                view = self._view()
                if view is not None and trial.last_result:
                    view.completed(trial.last_result)

            def on_trial_error(self, iteration, trials, trial, **info):
                view = self._view()
                if view is not None:
                    timeouts = getattr(view.searcher, "timeouts", {})
                    reason = timeouts.get(trial.trial_id, "the trial's worker failed")
                    ot_trial = getattr(view.searcher, "_ot_trials", {}).get(trial.trial_id)
                    number = getattr(ot_trial, "number", None)
                    if number is None:
                        number = (trial.last_result or {}).get("trial_number", "?")
                    view.errored(number, reason)

        _Callback.__module__ = __name__
        _Callback.__qualname__ = "_Callback"
    return _Callback(key)
