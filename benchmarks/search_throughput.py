"""Trials per hour, orchestration overhead and device busy fraction of a fixed-size search.

Runs the real search (:func:`attnsearch.search.run_search`: Optuna through Ray Tune, a
local Ray started and stopped by the run) twice on the same fixed-size problem — the same
space, synthetic data, random sampler and seed, a budget every candidate meets, so exactly
``--trials`` candidates train in each — once with one trial holding the whole device and
once with ``k`` trials sharing it:

* CUDA: ``--gpus-per-trial 1`` (concurrency 1) against ``1/k`` (concurrency k);
* CPU: one trial on all cores (``cpus_per_trial = cores``) against ``k`` trials on
  ``cores / k`` each — CPU slots stand in for GPU fractions.

With ``wall`` the Tuner's wall time and Σtrain the sum of the trials' ``train_seconds``
(``trials.csv``: training and validation, measured inside the trial):

* orchestration overhead = ``(wall − Σtrain / concurrency) / wall``;
* device busy = ``Σtrain / (concurrency × wall)`` (so busy = 1 − overhead);
* per-trial orchestration seconds = ``(concurrency × wall − Σtrain) / trials``.

    python benchmarks/search_throughput.py [--quick] [--k 2] [--device auto|cpu|cuda]
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402


def one_search(name: str, root: Path, concurrency: int, resources: dict, args) -> dict:
    from attnsearch.budget import Budget
    from attnsearch.datasets import load_dataset
    from attnsearch.rundir import RunDir
    from attnsearch.search import RunSettings, run_search
    from attnsearch.spaces import load_space

    space = load_space(args.space)
    data = load_dataset(
        args.dataset, resolution=args.resolution, limit=args.limit, seed=0, download=False
    )
    settings = RunSettings.make(
        Budget("flops", 10**15),  # every candidate is feasible: the run trains exactly --trials
        space=args.space,
        dataset=args.dataset,
        trials=args.trials,
        epochs=args.epochs,
        concurrency=concurrency,
        width=args.width,
        batch_size=args.batch_size,
        sampler="random",
        seed=0,
        **resources,
    )
    run = RunDir.create(root, name, settings)
    run_dir = run.path
    t0 = time.perf_counter()
    summary = run_search(run, space=space, dataset=data)
    total = time.perf_counter() - t0
    with open(run_dir / "trials.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["status"] == "complete"]
    train = [float(r["train_seconds"]) for r in rows]
    wall = float(summary["wall_seconds"])
    n = len(rows)
    sum_train = sum(train)
    return {
        "concurrency": concurrency,
        "resources": resources,
        "trials": n,
        "wall_seconds": wall,
        "total_seconds_with_ray_start": total,
        "sum_train_seconds": sum_train,
        "mean_train_seconds": sum_train / max(1, n),
        "trials_per_hour": 3600 * n / wall,
        "orchestration_overhead": (wall - sum_train / concurrency) / wall,
        "device_busy": sum_train / (concurrency * wall),
        "orchestration_seconds_per_trial": (concurrency * wall - sum_train) / max(1, n),
    }


def main(argv=None) -> int:
    p = C.parser("search_throughput", __doc__.splitlines()[0])
    p.add_argument(
        "--k", type=int, default=None, help="trials sharing the device (default 2 CPU, 4 CUDA)"
    )
    p.add_argument("--space", default="tiny")
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--resolution", type=int, default=16)
    p.add_argument("--limit", type=int, default=None, help="training images")
    p.add_argument("--trials", type=int, default=None)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--keep", type=Path, default=None, help="keep the run folders here")
    args = p.parse_args(argv)

    import torch

    device = C.resolve_device(args.device)
    cuda = device.type == "cuda"
    cores = os.cpu_count() or 1
    k = args.k or (4 if cuda else 2)
    args.trials = args.trials or (4 if args.quick else 8)
    args.limit = args.limit or (256 if args.quick else 800)
    if cuda:
        modes = [
            (1, {"gpus_per_trial": 1.0, "cpus_per_trial": float(max(1, cores // k))}),
            (k, {"gpus_per_trial": 1.0 / k, "cpus_per_trial": float(max(1, cores // k))}),
        ]
    else:
        if not 1 <= k <= cores:
            sys.exit(f"--k {k}: this machine has {cores} cores")
        modes = [
            (1, {"gpus_per_trial": 0.0, "cpus_per_trial": float(cores)}),
            (k, {"gpus_per_trial": 0.0, "cpus_per_trial": float(cores // k)}),
        ]
    print(
        f"{device}; space {args.space}, {args.dataset} {args.resolution}² limit {args.limit}, "
        f"{args.trials} trials × {args.epochs} epochs, width {args.width}, batch {args.batch_size}"
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="attnsearch-bench-") as tmp:
        root = args.keep or Path(tmp)
        for concurrency, resources in modes:
            name = f"c{concurrency}-{int(time.time())}"
            results.append(one_search(name, root, concurrency, resources, args))
    base = results[0]
    rows = []
    for r in results:
        res = r["resources"]
        share = f"{res['gpus_per_trial']:g} GPU" if cuda else f"{res['cpus_per_trial']:g} CPU"
        rows.append(
            [
                f"{r['concurrency']} × {share}",
                r["trials"],
                r["wall_seconds"],
                r["mean_train_seconds"],
                r["trials_per_hour"],
                r["trials_per_hour"] / base["trials_per_hour"],
                f"{100 * r['orchestration_overhead']:.0f}%",
                r["orchestration_seconds_per_trial"],
                f"{100 * r['device_busy']:.0f}%",
            ]
        )
    C.print_table(
        "fixed-size search; ratios vs concurrency 1 in the same run",
        [
            "concurrency",
            "trials",
            "wall s",
            "train s/trial",
            "trials/h",
            "trials/h ×",
            "overhead",
            "orch. s/trial",
            "device busy",
        ],
        rows,
    )
    C.write_json(
        args.out,
        {
            "benchmark": "search_throughput",
            "machine": C.machine(device),
            "torch_threads_driver": torch.get_num_threads(),
            "space": args.space,
            "dataset": args.dataset,
            "resolution": args.resolution,
            "limit": args.limit,
            "trials": args.trials,
            "epochs": args.epochs,
            "width": args.width,
            "batch_size": args.batch_size,
            "results": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
