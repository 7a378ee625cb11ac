"""Sampler benchmark: the real ask → budget → tell path against a simulated objective.

Drives the real space, analytic FLOPs, :class:`attnsearch.proposal.Proposer` and the Optuna
samplers of :func:`attnsearch.proposal.make_sampler`; only training is replaced, by a
seeded accuracy model over slot choices (Syne Tune's simulator idea). ``attnsearch run``'s
Ray Tune searcher is a thin adapter over the same Proposer, so this is the search's own
ask → budget → tell path. The model:

* per-unit, per-choice main effects: a type effect shared by all units (N(0, 0.6)), a
  unit×type effect (N(0, 0.3)), a hyperparameter jitter (N(0, 0.1)), and a FLOPs term
  (+0.5 per 100 MFLOPs the choice adds over ``none`` in that unit: more compute helps);
* pairwise interactions between neighbouring units' types (N(0, 0.25));
* diminishing returns: accuracy = 0.5 + 0.45 · sigmoid(s / (0.5 √units)) of the sum s;
* Gaussian observation noise (``--noise``, sd 0.02: the proxy's seed-to-seed noise that
  the trust issue measures), clipped to [0, 1]. The sampler sees the noisy accuracy.

Protocol: per seed, the landscape and the sampler share the seed. Hypervolume (2-D:
accuracy max, FLOPs min) over the trained trials' **noise-free** accuracy, reference point
(accuracy 0, FLOPs = budget), FLOPs in GFLOPs (so HV is accuracy × GFLOPs under the
budget), after 16 / 32 / 64 / 128 trained trials. One-sided Mann–Whitney U (exact without
ties, else normal approximation with tie correction) of each variant against
``random/repair`` and against random with the variant's own policy, at the same checkpoint,
and of its HV at 32 against random's at 64. Wasted candidates: asks that did not become
trained trials. Front span: FLOPs range of the final front.

Variants are ``sampler/policy[/cN][/tN][/warm]``: N asked before any is told, N trained
trials, the space's references (``attnsearch.references``, mode ``all``) enqueued first.

Run: ``python benchmarks/sampler_benchmark.py [--budgets 4G,4.15G] [--seeds 10] [--quick]``
(JSON to benchmarks/results/sampler_benchmark.json, a table to stdout); ``--summarise A.json
B.json`` merges runs and prints the RESULTS.md table. Time: a few minutes per budget for
the default variants on a quiet 2-core machine; 15–20 minutes when shared (RESULTS.md §8).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import random
import sys
import time
from itertools import product
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

CHECKPOINTS = (16, 32, 64, 128)


# ---- the simulated objective ----------------------------------------------------------------
class Landscape:
    """A seeded accuracy model over the units of ``space`` (module docstring)."""

    def __init__(self, space, options, table, seed: int, noise: float = 0.02):
        rng = random.Random(seed * 7919 + 17)
        self.space, self.table, self.noise = space, table, noise
        self.rng = random.Random(seed * 104729 + 3)  # observation noise
        types = [t for t, _ in space.choices]
        type_eff = {t: rng.gauss(0, 0.6) for t in types}
        type_eff["none"] = 0.0
        self.units = list(space.units)
        self.main: list[dict] = []
        for unit, per_type in zip(self.units, options, strict=True):
            slots = space.unit_slots(unit)
            none_cost = sum(table.slot(s, None) for s in slots)
            unit_type = {t: rng.gauss(0, 0.3) for t in per_type}
            eff = {}
            for t, cs in per_type.items():
                for c in cs:
                    extra = sum(table.slot(s, c) for s in slots) - none_cost
                    base = 0.0 if t == "none" else type_eff[t] + unit_type[t]
                    eff[c] = base + rng.gauss(0, 0.1) * (t != "none") + 0.5 * extra / 1e8
            self.main.append(eff)
        self.inter = [
            {(a, b): rng.gauss(0, 0.25) for a in types for b in types}
            for _ in range(len(self.units) - 1)
        ]
        self.scale = 0.5 * math.sqrt(len(self.units))

    def true_accuracy(self, arch) -> float:
        chosen = [arch.slots[self.space.unit_slots(u)[0]] for u in self.units]
        s = sum(m[c] for m, c in zip(self.main, chosen, strict=True))
        s += sum(
            w[(a.type, b.type)] for w, a, b in zip(self.inter, chosen, chosen[1:], strict=False)
        )
        return 0.5 + 0.45 / (1.0 + math.exp(-s / self.scale))

    def observe(self, arch) -> float:
        return min(1.0, max(0.0, self.true_accuracy(arch) + self.rng.gauss(0, self.noise)))


# ---- measures --------------------------------------------------------------------------------
def hypervolume(points, budget: int) -> float:
    """2-D HV of (flops, accuracy) points: FLOPs min (ref = budget), accuracy max (ref = 0)."""
    hv, best = 0.0, 0.0
    for f, a in sorted(points):
        if f <= budget and a > best:
            hv += (budget - f) / 1e9 * (a - best)
            best = a
    return hv


def front(points):
    out, best = [], -1.0
    for f, a in sorted(points):
        if a > best:
            out.append((f, a))
            best = a
    return out


def mann_whitney_greater(x, y) -> float:
    """One-sided p-value of H1: x tends to be larger than y (Mann–Whitney U)."""
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return float("nan")
    pooled = sorted([(v, 0) for v in x] + [(v, 1) for v in y])
    ranks = [0.0] * len(pooled)
    i, ties = 0, []
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        ties.append(j - i + 1)
        i = j + 1
    r1 = sum(r for r, (_, g) in zip(ranks, pooled, strict=True) if g == 0)
    u = r1 - n1 * (n1 + 1) / 2
    if all(t == 1 for t in ties) and n1 * n2 <= 2500:  # exact null distribution of U
        counts = _u_counts(n1, n2)
        total = sum(counts)
        return sum(counts[int(math.ceil(u)) :]) / total
    n = n1 + n2
    mean = n1 * n2 / 2
    var = n1 * n2 / 12 * ((n + 1) - sum(t**3 - t for t in ties) / (n * (n - 1)))
    if var <= 0:
        return 1.0 if u <= mean else 0.0
    z = (u - mean - 0.5) / math.sqrt(var)  # continuity correction
    return 0.5 * math.erfc(z / math.sqrt(2))


def _u_counts(n1: int, n2: int) -> list[int]:
    """Number of arrangements with each value of U (recursion of Mann and Whitney)."""

    @functools.cache
    def f(a: int, b: int) -> tuple[int, ...]:
        if a == 0 or b == 0:
            return (1,)
        left, right = f(a - 1, b), f(a, b - 1)  # largest value from x (adds b to U) or y
        out = [0] * (a * b + 1)
        for k, c in enumerate(left):
            out[k + b] += c
        for k, c in enumerate(right):
            out[k] += c
        return tuple(out)

    return list(f(n1, n2))


# ---- one run ---------------------------------------------------------------------------------
def run_one(space, options, table, budget, sampler, policy, seed, trials, noise, *,
            concurrency=1, warm=False, max_asks=None):  # fmt: skip
    import optuna

    from attnsearch.proposal import ProposalError, Proposer, make_sampler
    from attnsearch.references import references_for

    land = Landscape(space, options, table, seed, noise)
    study = optuna.create_study(
        directions=["maximize", "minimize"],
        sampler=make_sampler(sampler, seed, trials, concurrency),
    )
    prop = Proposer(study, space, options, budget, policy=policy, seed=seed)
    if warm:
        width_refs = references_for(space, width=_WIDTH[0], budget=budget, mode="all")
        for ref in width_refs:
            study.enqueue_trial(space.params(ref.architecture, options))
    max_asks = max_asks or 20 * trials
    trained: list[tuple[int, float]] = []
    t0 = time.perf_counter()
    stop = None
    while len(trained) < trials and stop is None:
        batch = []
        for _ in range(min(concurrency, trials - len(trained))):
            prop.max_attempts = max(1, max_asks - prop.asked)
            try:
                batch.append(prop.propose())
            except ProposalError:
                stop = f"no candidate under the budget within {max_asks} asks"
                break
        for trial, arch, cost in batch:
            prop.tell(trial, [land.observe(arch), float(cost)])
            trained.append((cost, land.true_accuracy(arch)))
    seconds = time.perf_counter() - t0
    hv = {k: hypervolume(trained[:k], budget) for k in CHECKPOINTS if k <= trials}
    fr = front(trained)
    for t in study.get_trials(deepcopy=False):  # the storage holds no made-up accuracy
        assert t.values is None or t.user_attrs.get("trained"), t.number
    return {
        "hv": hv,
        "trained": len(trained),
        "asked": prop.asked,
        "wasted": prop.wasted,
        "repaired": prop.repaired,
        "front_flops": [min(f for f, _ in fr), max(f for f, _ in fr)] if fr else None,
        "distinct": len(
            {t.user_attrs.get("digest") for t in study.get_trials(deepcopy=False) if t.values}
        ),
        "seconds": seconds,
        "stopped": stop,
    }


_WIDTH = [0.5]


def _q(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def main() -> int:
    p = argparse.ArgumentParser(
        prog="benchmarks/sampler_benchmark.py", description=__doc__.split("\n")[0]
    )
    p.add_argument("--space", default="resnet50")
    p.add_argument("--width", type=float, default=0.5)
    p.add_argument("--budgets", default="4G,4.5G")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--noise", type=float, default=0.02, help="observation noise sd")
    p.add_argument("--variants", default="", help="comma list of sampler/policy[/cN][/warm]")
    p.add_argument("--trials", type=int, default=128)
    p.add_argument("--quick", action="store_true", help="2 seeds, 32 trials")
    p.add_argument("--out", default=str(HERE / "results" / "sampler_benchmark.json"))
    p.add_argument(
        "--summarise", nargs="+", metavar="JSON", help="merge earlier outputs into --out, print"
    )
    args = p.parse_args()
    if args.summarise:
        runs, walls = [], 0.0
        for f in args.summarise:
            data = json.loads(Path(f).read_text())
            for r in data["runs"]:
                r["hv"] = {int(k): v for k, v in r["hv"].items()}
            runs += data["runs"]
            walls += data["wall_seconds"]
        merged = {"sources": args.summarise, "runs": runs, "wall_seconds_sum": walls}
        merged["summary"] = summarise(runs)
        Path(args.out).write_text(json.dumps(merged, indent=1))
        print_table(merged["summary"])
        print(markdown(merged["summary"]))
        return 0

    import optuna

    from attnsearch.budget import parse_budget
    from attnsearch.flops.analytic import cost_table
    from attnsearch.spaces import load_space

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore")
    _WIDTH[0] = args.width
    space = load_space(args.space)
    options = space.options(args.width)
    table = cost_table(space.backbone, space.input, space.num_classes)
    seeds = 2 if args.quick else args.seeds
    default_variants = [
        "random/repair", "random/spread", "random/reject", "nsga2/repair", "nsga2/spread",
        "nsga2/reject", "tpe-mv/repair", "tpe-mv/spread", "tpe-mv/reject", "tpe-mv/spread/warm",
        "tpe/spread/t32", "tpe/spread/c4/t32",
    ]  # fmt: skip
    variants = args.variants.split(",") if args.variants else default_variants
    results = {"settings": vars(args), "runs": []}
    t_start = time.perf_counter()
    for budget_text in args.budgets.split(","):
        budget = parse_budget(budget_text)
        for variant, seed in product(variants, range(seeds)):
            parts = variant.split("/")
            sampler, policy = parts[0], parts[1]
            conc = next((int(x[1:]) for x in parts[2:] if x.startswith("c")), 1)
            trials = next((int(x[1:]) for x in parts[2:] if x.startswith("t")), args.trials)
            trials = min(trials, 32) if args.quick else trials
            warm = "warm" in parts[2:]
            r = run_one(space, options, table, budget, sampler, policy, seed, trials,
                        args.noise, concurrency=conc, warm=warm, max_asks=4 * trials)  # fmt: skip
            r.update(budget=budget_text, variant=variant, seed=seed)
            results["runs"].append(r)
            print(f"  {budget_text} {variant} seed {seed}: {r['seconds']:.1f}s", file=sys.stderr)
    results["wall_seconds"] = time.perf_counter() - t_start
    results["summary"] = summarise(results["runs"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print_table(results["summary"])
    print(f"wall {results['wall_seconds']:.0f} s; JSON: {args.out}")
    return 0


def _hv_at(runs, k):
    return [r["hv"][k] for r in runs if k in r["hv"]]


def summarise(runs):
    """Per budget × variant: HV median/IQR per checkpoint and one-sided p-values.

    ``p_vs_random``: against random search with the minimal repair (``random/repair``, the
    random baseline that yields candidates at every budget); ``p_vs_random_same_policy``:
    against random with the variant's own policy. ``check_32_vs_random_64``: p-value that
    the variant's HV after 32 trials exceeds random's after 64 (issue 11's target).
    """
    out = []
    keys = sorted({(r["budget"], r["variant"]) for r in runs})
    for budget, variant in keys:
        rs = [r for r in runs if r["budget"] == budget and r["variant"] == variant]
        policy = variant.split("/")[1]

        def base(name, budget=budget):
            return [r for r in runs if r["budget"] == budget and r["variant"] == name]

        row = {"budget": budget, "variant": variant, "seeds": len(rs), "hv": {}}
        for k in CHECKPOINTS:
            xs = _hv_at(rs, k)
            if not xs:
                continue
            cell = {"median": _q(xs, 0.5), "iqr": [_q(xs, 0.25), _q(xs, 0.75)]}
            for field, name in (
                ("p_vs_random", "random/repair"),
                ("p_vs_random_same_policy", f"random/{policy}"),
            ):
                ys = _hv_at(base(name), k)
                cell[field] = mann_whitney_greater(xs, ys) if ys and name != variant else None
            row["hv"][k] = cell
        x32 = _hv_at(rs, 32)
        row["check_32_vs_random_64"] = {
            name: mann_whitney_greater(x32, _hv_at(base(name), 64))
            for name in ("random/repair", "random/spread")
            if x32 and _hv_at(base(name), 64)
        }
        row["wasted_median"] = _q([r["wasted"] for r in rs], 0.5)
        row["asked_median"] = _q([r["asked"] for r in rs], 0.5)
        row["trained_median"] = _q([r["trained"] for r in rs], 0.5)
        row["distinct_median"] = _q([r["distinct"] for r in rs], 0.5)
        spans = [r["front_flops"] for r in rs if r["front_flops"]]
        row["front_span_gflops_median"] = (
            [_q([s[0] for s in spans], 0.5) / 1e9, _q([s[1] for s in spans], 0.5) / 1e9]
            if spans
            else None
        )
        row["seconds_median"] = _q([r["seconds"] for r in rs], 0.5)
        row["stopped"] = sum(1 for r in rs if r["stopped"])
        out.append(row)
    return out


def print_table(summary):
    print(f"{'budget':6} {'variant':22} {'n':>2} " + " ".join(f"{'HV@' + str(k):>22}" for k in CHECKPOINTS)
          + f" {'wasted':>6} {'front GFLOPs':>13} {'s/run':>6}")  # fmt: skip
    for row in summary:
        cells = []
        for k in CHECKPOINTS:
            h = row["hv"].get(k)
            if h is None:
                cells.append(f"{'—':>22}")
                continue
            pv = h["p_vs_random_same_policy"]
            cells.append(f"{h['median']:.4f} [{h['iqr'][0]:.3f},{h['iqr'][1]:.3f}]"
                         + (f" p{pv:.2f}" if pv is not None else "      "))  # fmt: skip
        span = row["front_span_gflops_median"]
        span_s = f"{span[0]:.2f}–{span[1]:.2f}" if span else "—"
        print(f"{row['budget']:6} {row['variant']:22} {row['seeds']:>2} " + " ".join(cells)
              + f" {row['wasted_median']:>6.0f} {span_s:>13} {row['seconds_median']:>6.1f}")  # fmt: skip


def markdown(summary) -> str:
    """The RESULTS.md table: HV median [IQR] with p vs random/repair and vs same-policy random."""

    def p(v):
        return "—" if v is None else f"{v:.3f}"

    lines = [
        "| budget | sampler/policy | seeds | "
        + " | ".join(f"HV@{k} median [IQR] (p vs rnd-repair; vs rnd-same)" for k in CHECKPOINTS)
        + " | wasted / asked | front GFLOPs | s/run |",
        "|---|---|---:|" + "---|" * len(CHECKPOINTS) + "---:|---|---:|",
    ]
    for row in summary:
        cells = []
        for k in CHECKPOINTS:
            h = row["hv"].get(k)
            cells.append(
                "—"
                if h is None
                else f"{h['median']:.4f} [{h['iqr'][0]:.4f}, {h['iqr'][1]:.4f}] "
                f"({p(h['p_vs_random'])}; {p(h['p_vs_random_same_policy'])})"
            )
        span = row["front_span_gflops_median"]
        lines.append(
            f"| {row['budget']} | {row['variant']} | {row['seeds']} | "
            + " | ".join(cells)
            + f" | {row['wasted_median']:.0f} / {row['asked_median']:.0f} | "
            + (f"{span[0]:.2f}–{span[1]:.2f}" if span else "—")
            + f" | {row['seconds_median']:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
