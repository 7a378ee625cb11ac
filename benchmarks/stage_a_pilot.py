"""Stage A pilot: which proxy lets attention's effect show on ``mnist-clutter``?

MEASURED.md found that a short SGD proxy on cluttered MNIST ranks trainability: plain
ResNet-50 (58 %) beats all-SE (35 %), all-CA (26 %) and all-CBAM (24 %) after 6 epochs.
Before paying for a full stage A (5 networks × 3 proxy seeds + 2 reference seeds at ≥ 10×
the steps), this pilot trains the five stage-A networks under a few proxy *variants* with
one seed each and records accuracy per epoch and seconds, so that the variant that
narrows the trainability gap (AdamW is scale-invariant per parameter, so a gate's ~0.5
scale does not slow it) is the one stage A then measures.

Every run goes through :func:`attnsearch.training.train_candidate`, the trainer a search
trial uses. Each finished run is appended to ``--journal`` (JSON lines) at once; runs
already there are skipped, so the pilot can be cut and continued. One seed per cell: these
are directions, not figures to quote as a ranking.

    python benchmarks/stage_a_pilot.py --journal benchmarks/results/stage_a_pilot.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

NETWORKS = ("none", "se", "cbam", "ca", "epsa")  # stage A's five uniform ResNet-50s
VARIANTS = {
    # name: ProxyConfig overrides (width 0.25, 24², batch 64 as MEASURED.md's best proxy)
    "sgd": {"optimizer": "sgd"},
    "adamw": {"optimizer": "adamw", "lr": 0.002, "weight_decay": 0.05},
}
BASE = {"width": 0.25, "resolution": 24, "batch_size": 64, "label_smoothing": 0.1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--journal", required=True)
    ap.add_argument("--dataset", default="mnist-clutter")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--networks", default=",".join(NETWORKS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from attnsearch.architecture import Architecture
    from attnsearch.datasets import load_dataset
    from attnsearch.settings import ProxyConfig
    from attnsearch.training import train_candidate

    journal = Path(args.journal)
    done = set()
    if journal.exists():
        for line in journal.read_text().splitlines():
            r = json.loads(line)
            done.add((r["dataset"], r["variant"], r["network"], r["epochs"], r["seed"]))
    data = load_dataset(args.dataset, seed=0)
    for variant in args.variants.split(","):
        cfg = dataclasses.replace(ProxyConfig(), epochs=args.epochs, **BASE, **VARIANTS[variant])
        for net in args.networks.split(","):
            key = (args.dataset, variant, net, args.epochs, args.seed)
            if key in done:
                continue
            arch = Architecture.uniform("resnet50", net)  # each type's defaults
            t0 = time.perf_counter()
            res = train_candidate(arch, data, cfg, trial_seed=args.seed)
            record = {
                "dataset": args.dataset,
                "variant": variant,
                "network": net,
                "epochs": args.epochs,
                "seed": args.seed,
                "accuracy": res.accuracy,
                "history": res.history,
                "train_losses": res.train_losses,
                "seconds": time.perf_counter() - t0,
                "threads": args.threads,
                "config": dataclasses.asdict(cfg),
                "load": os.getloadavg()[0],
            }
            with journal.open("a") as f:
                f.write(json.dumps(record) + "\n")
            print(
                f"{variant:6s} {net:5s} acc {res.accuracy:.4f} history "
                f"{[round(h, 3) for h in res.history]} {record['seconds']:.0f}s",
                flush=True,
            )


if __name__ == "__main__":
    main()
