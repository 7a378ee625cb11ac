"""``pareto.png``: the trials, the front, the references and the budget."""

from __future__ import annotations

from pathlib import Path

from attnsearch import safeio
from attnsearch.budget import Budget
from attnsearch.results._storage import ROLE_TEXT_COPY
from attnsearch.rundir import ResultsError


def budget_label(budget: Budget) -> str:
    """The budget as pareto.png names it: ``budget 4.1 GFLOPs`` (the x axis is in G), or
    ``budget 25 ms predicted latency``."""
    if budget.is_latency:
        return f"budget {budget.label}"
    return f"budget {budget.value / 1e9:.3g} GFLOPs"


def plot_pareto(
    path: Path,
    rows: list[dict],
    members: list[dict],
    budget: Budget | None,
    references: list[dict] | None = None,
) -> None:
    """Accuracy vs GFLOPs: trained search trials, the front on means with 95 % intervals
    (hollow: not separated from a neighbour), references, infeasible candidates, budget
    (a FLOPs budget as a line; a latency budget, not on this axis, in the title)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    rows = [r for r in rows if not r["role"].startswith(ROLE_TEXT_COPY)]  # this run's only
    done = [r for r in rows if r["status"] == "complete" and r["role"] == "search"]
    infeasible = [r for r in rows if r["status"] == "infeasible" and r["flops"] != ""]
    failed = [r for r in rows if r["status"] == "fail" and r["flops"] != ""]
    if done:
        ax.scatter(
            [r["flops"] / 1e9 for r in done],
            [r["accuracy"] for r in done],
            s=18,
            c="tab:blue",
            alpha=0.6,
            label=f"trained, first seed ({len(done)})",
        )
    if members:
        xs = [m["flops"] / 1e9 for m in members]
        ys = [m["accuracy"] for m in members]
        ax.plot(xs, ys, "-", c="tab:red", label=f"Pareto front, mean of seeds ({len(members)})")
        ax.plot([], [], "o", c="tab:red", label="fresh seeds' mean ± 95 % (hollow: not separated)")
        for m, x in zip(members, xs, strict=True):
            if m.get("fresh_accuracy") is None:
                continue  # only its selection seed: nothing to claim
            y, ci = m["fresh_accuracy"], m.get("interval95")
            err = None if ci is None else [[y - ci[0]], [ci[1] - y]]
            ax.errorbar(
                [x],
                [y],
                yerr=err,
                fmt="o",
                c="tab:red",
                mfc="white" if m.get("unseparated") else "tab:red",
                ms=6,
                capsize=3,
            )
    for r in references or []:
        ci = r.get("interval95")
        y = r["accuracy"]
        ax.errorbar(
            [r["flops"] / 1e9],
            [y],
            yerr=None if ci is None else [[y - ci[0]], [ci[1] - y]],
            fmt="D" if r["fits"] else "d",
            c="tab:purple" if r["fits"] else "tab:grey",
            ms=6,
            capsize=3,
        )
        ax.annotate(r["name"], (r["flops"] / 1e9, y), fontsize=7, xytext=(4, 4),
                    textcoords="offset points")  # fmt: skip
    if references:
        ax.plot([], [], "D", c="tab:purple", label="reference (papers' networks)")
    ymin = min([r["accuracy"] for r in done], default=0.0)
    if infeasible:
        ax.scatter(
            [r["flops"] / 1e9 for r in infeasible],
            [ymin] * len(infeasible),
            marker="x",
            c="grey",
            s=18,
            label=f"over budget, not trained ({len(infeasible)})",
        )
    if failed:
        ax.scatter(
            [r["flops"] / 1e9 for r in failed],
            [ymin] * len(failed),
            marker="v",
            c="black",
            s=18,
            label=f"failed ({len(failed)})",
        )
    if budget is not None and not budget.is_latency:
        ax.axvline(budget.value / 1e9, ls="--", c="tab:green", label=budget_label(budget))
    elif budget is not None:
        ax.set_title(budget_label(budget), fontsize=9)
    ax.set_xlabel("FLOPs of the deploy network (G)")
    ax.set_ylabel("proxy validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")  # references sit low on a short proxy
    fig.tight_layout()
    try:
        with safeio.atomic_open(path, "wb", ResultsError) as f:  # matplotlib writes our file
            fig.savefig(f, format="png")
    finally:
        plt.close(fig)
