"""Time per candidate of the analytic FLOPs check against tracing a built network.

Candidates are sampled from a shipped space (default ``resnet50``) with Optuna's random
sampler, as the search samples them. Three analytic paths are timed:

* ``search`` — what the searcher calls per candidate: ``CostTable.total(arch.slots)`` on
  the run's table, warm (every slot choice already seen);
* ``cold`` — a fresh ``CostTable`` per candidate, nothing memoised (the worst case);
* ``analytic_flops`` — the public function (shared memoised table, looked up by key);

and the traced path: ``attnsearch.profile`` (build the deploy network, trace one forward
pass at 3×224×224). The traced count of every traced candidate must equal the analytic one.
Goal: the analytic check at most 1 ms per candidate. Tracing runs on the CPU whatever
``--device`` says (that is where the search and ``attnsearch profile`` trace).

    python benchmarks/flops_check.py [--quick] [--space resnet50]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

GOAL_MS = 1.0


def sample(space, n: int, seed: int = 0):
    """``n`` candidates and the seconds Optuna + the space took per candidate."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    options = space.options(1.0)
    archs = []
    t0 = time.perf_counter()
    for _ in range(n):
        trial = study.ask()
        archs.append(space.sample(trial, options))
        study.tell(trial, 0.0)
    return archs, (time.perf_counter() - t0) / n


def per_candidate(fn, archs, repeats: int) -> float:
    """Median over ``repeats`` passes of the mean seconds per candidate."""
    passes = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for a in archs:
            fn(a)
        passes.append((time.perf_counter() - t0) / len(archs))
    return statistics.median(passes)


def main(argv=None) -> int:
    p = C.parser("flops_check", __doc__.splitlines()[0])
    p.add_argument("--space", default="resnet50")
    p.add_argument("--candidates", type=int, default=None, help="analytic candidates")
    p.add_argument("--traced", type=int, default=None, help="traced candidates")
    args = p.parse_args(argv)

    import torch

    from attnsearch.api import profile
    from attnsearch.backbones import build_network
    from attnsearch.flops.analytic import CostTable, analytic_flops, cost_table
    from attnsearch.flops.counter import count
    from attnsearch.spaces import load_space

    device = C.resolve_device(args.device)
    n = args.candidates or (200 if args.quick else 2000)
    n_traced = args.traced or (3 if args.quick else 10)
    space = load_space(args.space)
    archs, sample_s = sample(space, n)
    shape = tuple(space.input)

    table = cost_table(space.backbone, shape, space.num_classes)
    for a in archs:  # warm the search's table, as a running search has
        table.total(a.slots)
    repeats = 3 if args.quick else 5
    search_s = per_candidate(lambda a: table.total(a.slots), archs, repeats)
    cold_s = per_candidate(
        lambda a: CostTable(space.backbone, shape, space.num_classes).total(a.slots),
        archs[: max(20, n // 10)],
        repeats,
    )
    public_s = per_candidate(analytic_flops, archs, repeats)

    torch.set_grad_enabled(False)
    traced = archs[:n_traced]
    profile(traced[0])  # first-call warm-up (dispatcher, allocator)
    build_t, trace_t, total_t, mismatches = [], [], [], 0
    for a in traced:
        t0 = time.perf_counter()
        model = build_network(a)
        t1 = time.perf_counter()
        c = count(model, shape)
        t2 = time.perf_counter()
        build_t.append(t1 - t0)
        trace_t.append(t2 - t1)
        total_t.append(t2 - t0)
        mismatches += c.flops != table.total(a.slots)
    traced_s = statistics.median(total_t)

    rows = [
        ["sample (Optuna ask + space.sample)", sample_s * 1e3, "-", "context, not a FLOPs path"],
        ["analytic: search path (warm CostTable)", search_s * 1e3, traced_s / search_s, ""],
        ["analytic: analytic_flops()", public_s * 1e3, traced_s / public_s, ""],
        ["analytic: cold CostTable per candidate", cold_s * 1e3, traced_s / cold_s, ""],
        ["traced: build network", statistics.median(build_t) * 1e3, "-", ""],
        ["traced: trace forward (batch 1)", statistics.median(trace_t) * 1e3, "-", ""],
        ["traced: build + trace", traced_s * 1e3, 1.0, f"{mismatches} mismatches"],
    ]
    C.print_table(
        f"FLOPs check per candidate, space {args.space} ({space.backbone} at {list(shape)}), "
        f"{n} analytic / {n_traced} traced candidates",
        ["path", "ms/candidate", "speed-up vs traced", "note"],
        rows,
    )
    goal_met = search_s * 1e3 <= GOAL_MS and cold_s * 1e3 <= GOAL_MS
    print(
        f"goal ≤ {GOAL_MS} ms/candidate: search path {search_s * 1e3:.4f} ms, "
        f"cold {cold_s * 1e3:.3f} ms -> {'met' if goal_met else 'MISSED'}"
    )
    C.write_json(
        args.out,
        {
            "benchmark": "flops_check",
            "machine": C.machine(device),
            "space": args.space,
            "input": list(shape),
            "candidates": n,
            "traced_candidates": n_traced,
            "ms_per_candidate": {
                "sample": sample_s * 1e3,
                "analytic_search_warm": search_s * 1e3,
                "analytic_flops": public_s * 1e3,
                "analytic_cold": cold_s * 1e3,
                "traced_build": statistics.median(build_t) * 1e3,
                "traced_trace": statistics.median(trace_t) * 1e3,
                "traced_total": traced_s * 1e3,
            },
            "traced_mismatches": mismatches,
            "goal_ms": GOAL_MS,
            "goal_met": goal_met,
        },
    )
    return 0 if not mismatches else 1


if __name__ == "__main__":
    sys.exit(main())
