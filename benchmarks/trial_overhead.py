"""Per-trial fixed costs: one search trial's wall time split into its parts (issue 21).

Runs the real search (:func:`attnsearch.search.run_search`: Optuna through Ray Tune, a
local Ray of its own, ``reuse_actors`` on) with the default proxy — ``resnet50`` space,
``digits``, width 0.5, 2 epochs, batch 32 — at concurrency 1, so one trial at a time holds
the machine, and splits each trial's wall time, from the worker's timers recorded on the
trial (``TrialRecord.timings``) and the Optuna trial's start and end:

* ``startup``: Optuna's ask (the trial's start) to the trainable's first line in the
  worker: sampling, Tune's scheduling, the actor's start or reuse, the dataset's fetch;
* ``data``: the dataset placed on the device (and resized); ``build``: network, optimizer,
  resumed state; ``steps``: the training steps (one host sync per epoch); ``validate``;
* ``checkpoint``: the reports before the last (checkpoint saved and handed to Tune) and the
  last one's save; ``worker_other``: the rest of the worker's time before its last report;
* ``bookkeeping``: the last report leaving the worker to the trial told to Optuna (Tune's
  copy of the last checkpoint, result processing, the searcher's tell), plus the gap to the
  next trial's ask.

Every part is given as a ratio to ``steps``, and ``fixed_share`` = (wall − steps) / wall.
The first trial (a new actor: process start, imports) is shown apart; the mean is over the
others (reused actors). The figures of one call are measured in the same run: on a loaded
machine compare ratios of one call, not seconds across calls.

``--direct`` times the same parts without Ray (:func:`direct_split`: ``run_trial`` with a
report that saves each checkpoint as the trainable does), for a machine without Ray.

    python benchmarks/trial_overhead.py [--trials 6] [--device auto|cpu|cuda] [--direct]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

PARTS = ("startup", "data", "build", "steps", "validate", "checkpoint", "worker_other",
         "bookkeeping")  # fmt: skip


def split_of_trials(trials) -> list[dict]:
    """One split per trained trial (Optuna ``FrozenTrial``s with recorded ``timings``), in
    the order they started; each part in seconds, plus ``wall``."""
    done = sorted(
        (t for t in trials if (t.user_attrs.get("timings") or {}).get("sent")),
        key=lambda t: t.datetime_start,
    )
    out = []
    for i, t in enumerate(done):
        tm = t.user_attrs["timings"]
        start, end = t.datetime_start.timestamp(), t.datetime_complete.timestamp()
        nxt = done[i + 1].datetime_start.timestamp() if i + 1 < len(done) else end
        worker = tm["sent"] - tm["entered"]
        inner = sum(tm.get(k, 0.0) for k in ("data", "build", "steps", "validate", "report"))
        row = {
            "trial": t.number,
            "startup": tm["entered"] - start,
            "data": tm.get("data", 0.0),
            "build": tm.get("build", 0.0),
            "steps": tm.get("steps", 0.0),
            "validate": tm.get("validate", 0.0),
            "checkpoint": tm.get("report", 0.0) + tm.get("save_now", 0.0),
            "worker_other": max(0.0, worker - inner - tm.get("save_now", 0.0)),
            "bookkeeping": max(0.0, end - tm["sent"]) + max(0.0, nxt - end),
        }
        row["wall"] = sum(row[k] for k in PARTS)
        out.append(row)
    return out


def summarise(rows: list[dict]) -> dict:
    """Mean seconds per part over ``rows``, the ratios to ``steps`` and the fixed share."""
    n = max(1, len(rows))
    mean = {k: sum(r[k] for r in rows) / n for k in (*PARTS, "wall")}
    steps = max(1e-9, mean["steps"])
    return {
        "trials": len(rows),
        "seconds": mean,
        "ratio_to_steps": {k: mean[k] / steps for k in PARTS},
        "fixed_share": (mean["wall"] - mean["steps"]) / max(1e-9, mean["wall"]),
    }


def searched(args, device) -> dict:
    """The real search, concurrency 1; the per-trial splits."""
    import optuna

    from attnsearch.budget import Budget
    from attnsearch.datasets import load_dataset
    from attnsearch.results import storage_for
    from attnsearch.rundir import RunDir
    from attnsearch.search import RunSettings, run_search
    from attnsearch.settings import batch_size_for
    from attnsearch.spaces import load_space

    space = load_space(args.space)
    options = {"dataset": args.dataset, "limit": args.limit, "epochs": args.epochs}
    settings = RunSettings.make(
        Budget("flops", 10**15),  # every candidate is feasible: exactly --trials train
        space=args.space,
        trials=args.trials,
        concurrency=1,
        sampler="random",
        references="none",
        repeats=1,
        gpus_per_trial=1.0 if device.type == "cuda" else 0.0,
        cpus_per_trial=float(args.threads),
        **options,
        **(
            {"checkpoint_interval": args.checkpoint_interval}
            if args.checkpoint_interval is not None
            else {}
        ),
    )
    data = load_dataset(args.dataset, limit=args.limit, seed=0, download=False)
    settings = settings.replace(batch_size=args.batch_size or batch_size_for(len(data.train_x)))
    root = Path(tempfile.mkdtemp(prefix="trial_overhead"))
    run = RunDir.create(root, "overhead", settings)
    t0 = time.perf_counter()
    run_search(run, space=space, dataset=data)
    total = time.perf_counter() - t0
    study = optuna.load_study(study_name=run.record.study_name, storage=storage_for(run.path))
    rows = split_of_trials(study.get_trials(deepcopy=False))
    return {
        "settings": {
            "space": args.space,
            "dataset": args.dataset,
            "train_images": len(data.train_x),
            "epochs": settings.epochs,
            "batch_size": settings.batch_size,
            "width": settings.width,
            "checkpoint_interval": getattr(settings, "checkpoint_interval", "every epoch"),
        },  # fmt: skip
        "search_seconds": total,
        "first": rows[0] if rows else None,
        "reused": summarise(rows[1:]),
        "rows": rows,
    }


def direct_split(arch, data, proxy, device, *, trial_seed: int = 0, interval: float = 0.0):
    """The worker's parts of one trial without Ray: ``run_trial`` with a report that saves
    checkpoints as the trainable does (the final weights always, an intermediate one when
    ``interval`` seconds passed since the last; 0: every epoch); seconds per part, ``wall``,
    and ``first_epoch_steps`` (cuDNN autotuning and warm-up are paid there)."""
    from attnsearch.rundir import save_checkpoint
    from attnsearch.search._worker import run_trial

    last = [time.perf_counter()]
    epoch_steps: list[float] = []

    def report(metrics, payload):
        epoch_steps.append(metrics["timings"]["steps"])
        final = payload["epoch"] >= proxy.epochs
        if not final and time.perf_counter() - last[0] < interval:
            return
        last[0] = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            save_checkpoint(out, payload["epoch"], payload["model"], payload.get("optimizer"))

    t0 = time.perf_counter()
    out = run_trial(arch, proxy, data, trial_seed, report, device=device)
    wall = time.perf_counter() - t0
    tm = out.timings
    row = {k: tm.get(k, 0.0) for k in ("data", "build", "steps", "validate")}
    row["checkpoint"] = tm.get("report", 0.0)
    row["worker_other"] = max(0.0, wall - sum(row.values()))
    row["wall"] = wall
    row["first_epoch_steps"] = epoch_steps[0] if epoch_steps else None
    if len(epoch_steps) > 1:  # the later epochs' mean: the steady rate
        row["later_epoch_steps_mean"] = (epoch_steps[-1] - epoch_steps[0]) / (len(epoch_steps) - 1)
    row["failed"] = out.failed
    return row


def main(argv=None) -> int:
    p = C.parser("trial_overhead", __doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=6, help="trials (the first is shown apart)")
    p.add_argument("--space", default="resnet50")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=None, help="default: the search's rule")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per trial (default 1)")
    p.add_argument(
        "--checkpoint-interval", type=float, default=None, help="default: the search's default"
    )
    p.add_argument("--direct", action="store_true", help="without Ray (run_trial directly)")
    p.add_argument("--label", default="", help="a name for this call in the JSON")
    args = p.parse_args(argv)
    device = C.resolve_device(args.device)
    if args.quick:
        args.trials, args.limit = 3, 256
    payload = {"machine": C.machine(device), "label": args.label}
    if args.direct:
        import torch

        from attnsearch import Architecture
        from attnsearch.datasets import load_dataset
        from attnsearch.settings import ProxyConfig, batch_size_for

        torch.set_num_threads(args.threads)
        data = load_dataset(args.dataset, limit=args.limit, seed=0, download=False)
        bs = args.batch_size or batch_size_for(len(data.train_x))
        proxy = ProxyConfig(epochs=args.epochs, batch_size=bs)
        arch = Architecture.uniform(args.space if args.space != "resnet50" else "resnet50")
        rows = [direct_split(arch, data, proxy, device, trial_seed=i) for i in range(args.trials)]
        payload["direct"] = rows
        summary = summarise([{**r, "startup": 0.0, "bookkeeping": 0.0} for r in rows[1:]])
    else:
        payload.update(searched(args, device))
        summary = payload["reused"]
    payload["summary"] = summary
    C.print_table(
        f"one trial's parts (mean of {summary['trials']} reused-actor trials), "
        f"fixed share {summary['fixed_share']:.1%}",
        ["part", "seconds", "x steps"],
        [[k, summary["seconds"][k], summary["ratio_to_steps"][k]] for k in PARTS],
    )
    C.write_json(args.out, payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
