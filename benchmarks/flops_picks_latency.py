"""What a FLOPs budget buys in time: measured latency of a FLOPs-budget run's networks.

Takes a finished run (``attnsearch run --budget 4GFLOPs``), and times end to end, at the
deploy shape, on this machine: the plain backbone, every network on the run's front,
every other trained search trial, and the papers' networks of the space — each network
``--rounds`` times in interleaved rounds (so a slow patch of a shared machine hits all of
them alike; the median round is kept). Prints FLOPs, measured latency, its ratio to the
plain backbone, and (``--table``) the latency table's prediction, and writes a JSON.

    python benchmarks/flops_picks_latency.py --run results/NAME \
        [--table benchmarks/results/latency_resnet50_cpu_b1_fp32_2t_quiet.json] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402


def _networks(run_dir: Path):
    """(label, role, architecture) of the plain backbone, the front, the other trials and
    the references."""
    import yaml

    from attnsearch.architecture import Architecture
    from attnsearch.references import reference_networks
    from attnsearch.results import open_study
    from attnsearch.rundir import TrialRecord
    from attnsearch.spaces import load_space

    record = yaml.safe_load((run_dir / "run.yaml").read_text())
    space = load_space(record["space"])
    front = json.loads((run_dir / "pareto.json").read_text())
    on_front = {m["trial"] for m in front}
    nets = []
    for name, _paper, arch in reference_networks(space.backbone, space.num_classes, space.input):
        nets.append((name, "plain" if name.startswith("ResNet") else "reference", arch))
    for m in front:
        nets.append(
            (f"front trial {m['trial']}", "front", Architecture.from_json(m["architecture"]))
        )
    seen = {a.digest() for _, _, a in nets}
    study = open_study(run_dir, record["study_name"])
    for t in study.trials:
        r = TrialRecord.of(t)
        if r.role or not r.trained or t.number in on_front or r.architecture is None:
            continue
        arch = Architecture.from_json(r.architecture)
        if arch.digest() in seen:
            continue
        seen.add(arch.digest())
        nets.append((f"trial {t.number}", "search", arch))
    return space, nets


def main() -> None:
    p = argparse.ArgumentParser(prog="benchmarks/flops_picks_latency.py", description=__doc__)
    p.add_argument("--run", type=Path, required=True, help="a finished FLOPs-budget run folder")
    p.add_argument("--table", type=Path, default=None, help="a latency table of this machine")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--estimator", choices=("median", "min"), default="median")
    p.add_argument("--out", type=Path, default=C.HERE / "results" / "flops_picks_latency.json")
    args = p.parse_args()

    import torch

    from attnsearch.flops.analytic import analytic_flops
    from attnsearch.latency import LatencyTable, Settings, measure_network

    space, nets = _networks(args.run)
    settings = Settings(input=tuple(space.input), threads=args.threads, estimator=args.estimator)
    table = LatencyTable.load(args.table) if args.table else None
    times: dict[str, list[float]] = {label: [] for label, _, _ in nets}
    t0 = time.perf_counter()
    for r in range(args.rounds):
        for label, _, arch in nets:
            times[label].append(measure_network(arch, settings))
        print(f"round {r + 1}/{args.rounds}: {time.perf_counter() - t0:.0f}s", flush=True)
    plain_label = next(label for label, role, _ in nets if role == "plain")
    plain_ms = statistics.median(times[plain_label])
    plain_flops = analytic_flops(next(a for lb, _, a in nets if lb == plain_label))
    rows, out = [], []
    for label, role, arch in nets:
        ms = statistics.median(times[label])
        flops = analytic_flops(arch)
        pred = table.predict(arch) if table is not None and table.covers(arch) else None
        out.append(
            {
                "label": label,
                "role": role,
                "flops": flops,
                "measured_ms": ms,
                "rounds_ms": times[label],
                "ratio_to_plain": ms / plain_ms,
                "flops_ratio_to_plain": flops / plain_flops,
                "predicted_ms": pred,
                "architecture": arch.to_json(),
            }
        )
        rows.append(
            [
                label,
                role,
                f"{flops / 1e9:.3f}",
                f"{flops / plain_flops:.3f}",
                f"{ms:.1f}",
                f"{ms / plain_ms:.2f}",
                f"{pred:.1f}" if pred is not None else "—",
            ]  # fmt: skip
        )
    C.print_table(
        f"latency of the run's networks ({settings.device}, batch 1, {torch.get_num_threads()} "
        f"threads, median of {args.rounds} rounds)",
        ["network", "role", "GFLOPs", "FLOPs / plain", "ms", "ms / plain", "table ms"],
        rows,
    )
    C.write_json(
        args.out,
        {
            "machine": C.machine(torch.device("cpu")),
            "run": str(args.run),
            "table": str(args.table) if args.table else None,
            "threads": args.threads,
            "rounds": args.rounds,
            "estimator": args.estimator,
            "networks": out,
        },
    )


if __name__ == "__main__":
    main()
