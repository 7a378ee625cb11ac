"""The sampler benchmark's confirmation with real training (issue 11).

`sampler_benchmark.py` compares samplers and budget policies against a simulated accuracy.
This script runs the real thing, smaller: ``attnsearch run`` (Optuna through Ray Tune, a
local Ray per run, real proxy training on the embedded digits) for each variant
``sampler/policy`` and ``--seeds`` seeds, on a space and budget small enough for a CPU
(default: the ``tiny`` space — ResNet-18, one choice per stage — at 1.8 GFLOPs, where about
three quarters of random candidates are over budget, as on the README's 4 GFLOPs ResNet-50
search; width 0.25, 2 epochs). Without references or repeats (``--references none
--repeats 1``) so that every trained trial is the sampler's.

Per run: hypervolume of the trained search trials (accuracy max, deploy FLOPs min; the
reference point accuracy 0 and FLOPs = budget, FLOPs in GFLOPs, as in the simulation)
after each checkpoint of trained trials, in trial order; the accuracies are the measured,
noisy ones (one seed each: the noise the proxy has), so HV here carries that noise. Then
per variant the median and IQR, and one-sided Mann–Whitney U p-values against
``random/spread`` and ``random/repair`` at each checkpoint. JSON to
``benchmarks/results/sampler_real.json``.

    python benchmarks/sampler_real.py [--seeds 4] [--trials 16] [--variants tpe-mv/spread,...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import _common as C  # noqa: E402
from sampler_benchmark import _q, hypervolume, mann_whitney_greater  # noqa: E402

BASELINES = ("random/spread", "random/repair")


def one_run(variant: str, seed: int, args, root: Path) -> dict:
    from attnsearch.budget import parse_budget
    from attnsearch.results import open_study
    from attnsearch.rundir import TrialRecord

    sampler, policy = variant.split("/")
    name = f"{sampler}-{policy}-{seed}"
    cmd = [
        sys.executable, "-m", "attnsearch", "run", "--budget", args.budget, "--space", args.space,
        "--dataset", "digits", "--width", str(args.width), "--epochs", str(args.epochs),
        "--trials", str(args.trials), "--sampler", sampler, "--policy", policy,
        "--references", "none", "--repeats", "1", "--seed", str(seed), "--name", name,
        "--results-dir", str(root),
    ]  # fmt: skip
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{name}: exit {res.returncode}: {res.stderr.strip()[-500:]}")
    import yaml

    run_dir = root / name
    study = open_study(run_dir, yaml.safe_load((run_dir / "run.yaml").read_text())["study_name"])
    points = []
    for t in sorted(study.trials, key=lambda t: t.number):
        r = TrialRecord.of(t)
        if r.trained and not r.role and t.values:
            points.append((int(r.flops), float(t.values[0])))
    budget = parse_budget(args.budget)
    checkpoints = [k for k in args.checkpoints if k <= len(points)]
    hv = {k: hypervolume(points[:k], budget) for k in checkpoints}
    flops = [f for f, _ in points]
    return {
        "variant": variant,
        "seed": seed,
        "wall_s": round(wall, 1),
        "trained": len(points),
        "asked": len(study.trials),
        "hv": hv,
        "flops_span": [min(flops), max(flops)] if flops else None,
        "best_accuracy": max((a for _, a in points), default=None),
        "points": points,
    }


def summarise(runs: list[dict], checkpoints: list[int]) -> list[dict]:
    rows = []
    for variant in dict.fromkeys(r["variant"] for r in runs):
        rs = [r for r in runs if r["variant"] == variant]
        row = {"variant": variant, "seeds": len(rs), "hv": {}}
        for k in checkpoints:
            xs = [r["hv"][k] for r in rs if k in r["hv"]]
            if not xs:
                continue
            cell = {"median": statistics.median(xs), "iqr": [_q(xs, 0.25), _q(xs, 0.75)]}
            for base in BASELINES:
                ys = [r["hv"][k] for r in runs if r["variant"] == base and k in r["hv"]]
                if base != variant and ys:
                    cell[f"p_vs_{base}"] = mann_whitney_greater(xs, ys)
            row["hv"][k] = cell
        row["wall_s_median"] = statistics.median(r["wall_s"] for r in rs)
        row["asked_per_trained"] = sum(r["asked"] for r in rs) / max(
            1, sum(r["trained"] for r in rs)
        )
        rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(prog="benchmarks/sampler_real.py", description=__doc__)
    p.add_argument("--variants", default="tpe-mv/spread,random/spread,random/repair")
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--checkpoints", default="8,16")
    p.add_argument("--space", default="tiny")
    p.add_argument("--budget", default="1.8GFLOPs")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--out", type=Path, default=HERE / "results" / "sampler_real.json")
    args = p.parse_args()
    args.checkpoints = [int(k) for k in args.checkpoints.split(",")]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    root = Path(tempfile.mkdtemp(prefix="sampler-real-"))
    runs: list[dict] = []
    t0 = time.perf_counter()
    for seed in range(args.seeds):  # seeds outermost: a cut-short series stays balanced
        for variant in variants:
            r = one_run(variant, seed, args, root)
            runs.append(r)
            hv = ", ".join(f"HV@{k} {v:.4f}" for k, v in r["hv"].items())
            print(
                f"{variant} seed {seed}: {hv}; {r['asked']} asked for {r['trained']} trained; "
                f"{r['wall_s']:.0f}s (total {time.perf_counter() - t0:.0f}s)",
                flush=True,
            )
            payload = {"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs}
            C.write_json(args.out, payload)  # after each run: a cut-short series is kept
    import torch

    rows = summarise(runs, args.checkpoints)
    C.write_json(
        args.out,
        {
            "machine": C.machine(torch.device("cpu")),
            "args": {k: str(v) for k, v in vars(args).items()},
            "runs": runs,
            "summary": rows,
        },
    )
    table = []
    for row in rows:
        cells = [row["variant"], row["seeds"]]
        for k in args.checkpoints:
            c = row["hv"].get(k)
            if c is None:
                cells.append("—")
                continue
            ps = "; ".join(f"{c[f'p_vs_{b}']:.3f}" if f"p_vs_{b}" in c else "—" for b in BASELINES)
            cells.append(f"{c['median']:.4f} [{c['iqr'][0]:.4f}, {c['iqr'][1]:.4f}] ({ps})")
        cells += [f"{row['asked_per_trained']:.2f}", f"{row['wall_s_median']:.0f}"]
        table.append(cells)
    C.print_table(
        "real-training confirmation (HV median [IQR] (p vs random/spread; vs random/repair))",
        ["variant", "seeds", *[f"HV@{k}" for k in args.checkpoints], "asked/trained", "s/run"],
        table,
    )
    print(json.dumps({r["variant"]: r["hv"] for r in rows}, default=str)[:2000])


if __name__ == "__main__":
    main()
