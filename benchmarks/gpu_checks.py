"""One prepared GPU run: latency tables (issue 13, item 4) and RESULTS.md's open GPU figures.

Made to run as is, in ONE call, on a machine with one GPU (H200 class) and 16 cores, and to
stop by itself within ``--time-limit`` seconds (default 340, under a 6-minute call). Each
part runs in its own spawned process with its own time budget (unused time passes to the
next part); a part that overruns is killed, and whatever it had written stays in ``--out``.

Parts, in order:

1. ``latency_b1`` / ``latency_b64``: the latency table of the ``resnet50`` space on cuda in
   bfloat16 + channels_last (cuDNN benchmark mode on) at batch 1 and batch 64, each with
   4 calibration networks and validation on 20 seeded random architectures
   (:mod:`attnsearch.latency`). A part killed early leaves ``*_progress.json`` (entries
   measured, seconds) so the build rate is still known.
2. ``attention_overhead``: ``benchmarks/attention_overhead.py``'s ``main`` (ResNet-50,
   every registered type, bf16 autocast + channels_last, batch 64 × 224²), 3 rounds. Its
   wait-for-a-quiet-CPU step is bounded to one 0.5 s sample here (the machine is ours).
3. ``proxy_mfu``: ``benchmarks/proxy_throughput.py``'s ``main`` (ResNet-50 proxy, width 0.5,
   CIFAR-10-shaped data, batch 512) on a subset of types: images/s and MFU.
4. ``trials``: trials per GPU-hour at 1 GPU per trial and at 1/4 GPU per trial. Measured
   with plain processes, not Ray: one trainer process running trials back to back, then 4
   trainer processes sharing the GPU, each running a quarter of the trials (same seeded
   architectures of the ``resnet50`` space at the proxy width, same data, the default
   :class:`ProxyConfig`). The clock starts when every process has its data on the device
   (a barrier), so CUDA start-up is reported apart; Ray's orchestration overhead is *not*
   in these figures (``benchmarks/search_throughput.py`` measures that on CPU).

``--smoke`` shrinks everything (a three-choice ResNet-18 space at 3×32×32, one repeat, the
``--quick`` forms of the two scripts, 2 trials of the ``tiny`` space at concurrency 1 and
2) so the script can be checked on a CPU: about a minute on an idle 2-core machine.

    python benchmarks/gpu_checks.py --out /path/to/folder            # on the GPU machine
    python benchmarks/gpu_checks.py --smoke --device cpu --out /tmp/g  # a CPU check
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

# seconds per part at full size (sum 325, under the default --time-limit of 340)
BUDGETS = {
    "latency_b1": 70,
    "latency_b64": 70,
    "attention_overhead": 70,
    "proxy_mfu": 45,
    "trials": 70,
}
SMOKE_BUDGETS = {k: 60 for k in BUDGETS}  # mostly process start-up on a busy CPU


def _write(path: Path, payload) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    os.replace(tmp, path)


# ---- parts (each runs in a spawned child) -------------------------------------------
def part_latency(out: Path, name: str, cfg: dict) -> None:
    import torch

    from attnsearch.latency import Settings, build_table, validate
    from attnsearch.spaces import load_space

    if cfg["device"] == "cuda":
        torch.backends.cudnn.benchmark = True
    space = load_space(_space_path(out, cfg["space"]))
    settings = Settings(
        device=cfg["device"],
        dtype=cfg["dtype"],
        batch=cfg["batch"],
        input=tuple(cfg["input"]) if cfg.get("input") else space.input,
        repeats=cfg["repeats"],
    )
    t0 = time.perf_counter()
    progress_path = out / f"{name}_progress.json"
    last = [0.0]

    def progress(phase):
        def cb(done, total, label):
            now = time.perf_counter()
            if now - last[0] > 2 or done == total:
                last[0] = now
                _write(
                    progress_path,
                    {"phase": phase, "done": done, "total": total, "seconds": now - t0},
                )

        return cb

    table = build_table(space, settings, calibrate=cfg["calibrate"], progress=progress("build"))
    built = time.perf_counter() - t0
    table.meta["build_seconds_including_calibration"] = built
    table.save(out / f"{name}_table.json")
    result = validate(table, space, cfg["validate"], progress=progress("validate")).summary()
    plain = table.predict(_plain(space))
    _write(
        out / f"{name}.json",
        {
            "part": name,
            "space": space.name,
            "backbone": space.backbone,
            "settings": table.to_json() | {"slots": "see the _table.json"},
            "build_seconds": built,
            "measurements": table.meta["measurements"],
            "scale": table.scale,
            "plain_predicted_ms": plain,
            "validation": result,
        },
    )


SMOKE_SPACE = """\
description: gpu_checks --smoke only - ResNet-18 per stage, three choices
backbone: resnet18
granularity: stage
choices: {none: {}, se: {reduction: [16]}, eca: {k_size: [3]}}
"""


def _space_path(out: Path, name: str) -> str:
    """Shipped spaces by name; ``smoke`` is a three-choice space written into ``out``."""
    if name != "smoke":
        return name
    path = out / "smoke_space.yaml"
    path.write_text(SMOKE_SPACE)
    return str(path)


def _plain(space):
    from attnsearch.architecture import Architecture

    slots = Architecture.uniform(space.backbone).slots
    return Architecture(space.backbone, slots, space.num_classes, space.input)


def part_attention_overhead(out: Path, name: str, cfg: dict) -> None:
    import _common as C
    import attention_overhead

    C.wait_for_quiet = lambda *a, **k: C.system_busy(0.5)  # bounded: the machine is ours
    attention_overhead.main([*cfg["argv"], "--out", str(out / f"{name}.json")])


def part_proxy_mfu(out: Path, name: str, cfg: dict) -> None:
    import proxy_throughput

    proxy_throughput.main([*cfg["argv"], "--out", str(out / f"{name}.json")])


def _trial_worker(rank, cfg, archs, barrier, results, deadline) -> None:
    """One trainer process: data on the device, wait for the others, train, report each trial."""
    import torch
    from proxy_throughput import load_data

    from attnsearch.architecture import Architecture
    from attnsearch.training import ProxyConfig, train_candidate

    t_start = time.time()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // cfg["concurrency"]))
    device = torch.device(cfg["device"])
    data, source = load_data("data", cfg["train_images"], cfg["val_images"], seed=rank)
    if device.type == "cuda":
        torch.zeros(1, device=device)  # CUDA context before the clock starts
    pc = ProxyConfig(epochs=cfg["epochs"], batch_size=cfg["batch_size"], width=cfg["width"])
    ready = time.time()
    barrier.wait()
    results.put(("ready", rank, {"startup_seconds": ready - t_start, "start": time.time()}))
    for i, arch_json in enumerate(archs):
        if time.time() > deadline:
            break
        arch = Architecture.from_json(arch_json)
        r = train_candidate(arch, data, pc, trial_seed=i, device=device)
        results.put(("trial", rank, {"train_seconds": r.train_seconds, "end": time.time()}))
    results.put(("done", rank, {"data": source}))


def part_trials(out: Path, name: str, cfg: dict, deadline: float) -> None:
    import queue

    from attnsearch.latency import random_architectures
    from attnsearch.spaces import load_space

    space = load_space(cfg["space"])
    archs = random_architectures(space, cfg["trials"], seed=7, width=cfg["width"])
    archs = [a.to_json() for a in archs]
    ctx = mp.get_context("spawn")
    payload = {
        "part": name,
        "method": "plain trainer processes sharing the device (not Ray); clock from a barrier "
        "after every process has its data and CUDA context",
        "config": dict(cfg),
        "modes": [],
    }
    concs = cfg["concurrencies"]
    for m, conc in enumerate(concs):
        mode_deadline = time.time() + (deadline - time.time()) / (len(concs) - m)
        barrier, results = ctx.Barrier(conc), ctx.Queue()
        launched = time.time()
        procs = [
            ctx.Process(
                target=_trial_worker,
                args=(
                    r,
                    cfg | {"concurrency": conc},
                    archs[r::conc],
                    barrier,
                    results,
                    mode_deadline - cfg["last_trial_s"],  # no new trial this close to the end
                ),
            )
            for r in range(conc)
        ]
        for p in procs:
            p.start()
        ready, trials, done = {}, [], set()
        while len(done) < conc and time.time() < mode_deadline:
            try:
                kind, rank, info = results.get(timeout=0.5)
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    break
                continue
            if kind == "ready":
                ready[rank] = info
            elif kind == "trial":
                trials.append(info)
            else:
                done.add(rank)
        for p in procs:
            p.join(timeout=1)
            if p.is_alive():
                p.kill()
        entry = {
            "concurrency": conc,
            "gpu_share_per_trial": 1 / conc,
            "workers_started": len(ready),
            "workers_finished": len(done),
        }
        if trials:
            start = max(r["start"] for r in ready.values())
            last = max(t["end"] for t in trials)
            entry |= {
                "trials": len(trials),
                "wall_seconds": last - start,
                "startup_seconds_max": max(r["startup_seconds"] for r in ready.values()),
                "mean_train_seconds": sum(t["train_seconds"] for t in trials) / len(trials),
                "trials_per_device_hour": 3600 * len(trials) / (last - start),
                "trials_per_device_hour_with_startup": 3600 * len(trials) / (last - launched),
            }
        payload["modes"].append(entry)
        _write(out / f"{name}.json", payload)
    modes = payload["modes"]
    if len(modes) == 2 and all("trials" in x for x in modes):
        payload["ratio_shared_vs_whole"] = (
            modes[1]["trials_per_device_hour"] / modes[0]["trials_per_device_hour"]
        )
        _write(out / f"{name}.json", payload)


def _child(fn_name: str, out: str, name: str, cfg: dict, deadline: float) -> None:
    out_dir = Path(out)
    try:
        fn = globals()[fn_name]
        if fn_name == "part_trials":
            fn(out_dir, name, cfg, deadline)
        else:
            fn(out_dir, name, cfg)
    except BaseException:
        (out_dir / f"{name}_error.txt").write_text(traceback.format_exc())
        raise


# ---- plan ----------------------------------------------------------------------------
def plan(smoke: bool, device: str) -> list[tuple[str, str, dict]]:
    if smoke:
        lat = {"space": "smoke", "input": [3, 32, 32], "repeats": 1, "calibrate": 1, "validate": 2}
        return [
            (
                "latency_b1",
                "part_latency",
                lat
                | {
                    "device": device,
                    "dtype": "bfloat16" if device == "cuda" else "float32",
                    "batch": 1,
                },
            ),
            (
                "latency_b64",
                "part_latency",
                lat
                | {
                    "device": device,
                    "dtype": "bfloat16" if device == "cuda" else "float32",
                    "batch": 2,
                },
            ),
            (
                "attention_overhead",
                "part_attention_overhead",
                {
                    "argv": [
                        "--device",
                        device,
                        "--quick",
                        "--backbones",
                        "resnet18",
                        "--types",
                        "se",
                        "--rounds",
                        "1",
                    ]
                },
            ),
            (
                "proxy_mfu",
                "part_proxy_mfu",
                {
                    "argv": [
                        "--device",
                        device,
                        "--quick",
                        "--types",
                        "none",
                        "--epochs",
                        "1",
                        "--train-images",
                        "64",
                        "--val-images",
                        "32",
                    ]
                },
            ),
            (
                "trials",
                "part_trials",
                {
                    "device": device,
                    "space": "tiny",
                    "width": 0.25,
                    "trials": 2,
                    "concurrencies": [1, 2],
                    "train_images": 64,
                    "val_images": 32,
                    "epochs": 1,
                    "batch_size": 32,
                    "last_trial_s": 2.0,
                },
            ),
        ]
    lat = {
        "space": "resnet50",
        "device": device,
        "dtype": "bfloat16",
        "repeats": 7,
        "calibrate": 4,
        "validate": 20,
    }
    return [
        ("latency_b1", "part_latency", lat | {"batch": 1}),
        ("latency_b64", "part_latency", lat | {"batch": 64}),
        (
            "attention_overhead",
            "part_attention_overhead",
            {"argv": ["--device", device, "--backbones", "resnet50", "--rounds", "3"]},
        ),
        (
            "proxy_mfu",
            "part_proxy_mfu",
            {
                "argv": [
                    "--device",
                    device,
                    "--types",
                    "none,se,eca,cbam,ca,epsa,rfaconv",
                    "--train-images",
                    "10240",
                    "--val-images",
                    "2048",
                    "--epochs",
                    "2",
                ]
            },
        ),
        (
            "trials",
            "part_trials",
            {
                "device": device,
                "space": "resnet50",
                "width": 0.5,
                "trials": 8,
                "concurrencies": [1, 4],
                "train_images": 5120,
                "val_images": 1024,
                "epochs": 2,
                "batch_size": 128,
                "last_trial_s": 4.0,
            },
        ),
    ]


def _summary_lines(out: Path, name: str) -> list[str]:
    path = out / f"{name}.json"
    if not path.exists():
        prog = out / f"{name}_progress.json"
        if prog.exists():
            p = json.loads(prog.read_text())
            return [f"  partial: {p['phase']} {p['done']}/{p['total']} in {p['seconds']:.0f} s"]
        return []
    d = json.loads(path.read_text())
    if name.startswith("latency"):
        v = d["validation"]
        return [
            f"  build {d['build_seconds']:.0f} s ({d['measurements']} entries), scale {d['scale']:.3f}, "
            f"plain {d.get('backbone', '')} {d['plain_predicted_ms']:.3g} ms",
            f"  error on {v['networks']} networks: raw median {v['raw_median_error']:.1%} worst "
            f"{v['raw_worst_error']:.1%}; calibrated median {v['median_error']:.1%} worst {v['worst_error']:.1%}",
        ]
    if name == "attention_overhead":
        lines = []
        for bb, entries in d["results"].items():
            ratios = ", ".join(
                f"{e['type']} {e['time_ratio']:.2f}×" for e in entries if "time_ratio" in e
            )
            lines.append(f"  {bb} step-time ratios: {ratios}")
        return lines
    if name == "proxy_mfu":
        return [
            "  "
            + ", ".join(
                f"{r['type']} {r['images_per_s']:.0f} img/s MFU {r['mfu']:.1%}"
                for r in d["results"]
            )
        ]
    if name == "trials":
        return [
            f"  1/{m['concurrency']} device per trial: {m.get('trials', 0)} trials, "
            + (
                f"{m['trials_per_device_hour']:.0f} trials/device-hour"
                if "trials" in m
                else "none finished"
            )
            for m in d.get("modes", [])
        ]
    return []


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="benchmarks/gpu_checks.py", description=__doc__.splitlines()[0]
    )
    p.add_argument("--out", type=Path, required=True, help="folder for the JSON results")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: a CPU check of the script")
    p.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="seconds for the whole script (default 340; --smoke: 330)",
    )
    p.add_argument("--only", default=None, help="comma-separated parts to run (default: all)")
    p.add_argument(
        "--budget-scale",
        type=float,
        default=1.0,
        help="multiply every part's budget and the default time limit (a busy machine)",
    )
    args = p.parse_args(argv)
    started = time.time()
    default_limit = 330.0 if args.smoke else 340.0
    limit = args.time_limit or default_limit * args.budget_scale
    end = started + limit

    import torch

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is visible")
    if device == "cpu" and not args.smoke:
        sys.exit("the full run is sized for a GPU; on a CPU pass --smoke")
    args.out.mkdir(parents=True, exist_ok=True)
    budgets = {
        k: v * args.budget_scale for k, v in (SMOKE_BUDGETS if args.smoke else BUDGETS).items()
    }
    parts = plan(args.smoke, device)
    if args.only:
        keep = set(args.only.split(","))
        parts = [x for x in parts if x[0] in keep]
    machine = {
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "smoke": args.smoke,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
    }
    print(f"gpu_checks: {machine}", flush=True)
    ctx = mp.get_context("spawn")
    status = {}
    slack = 0.0
    for i, (name, fn, cfg) in enumerate(parts):
        rest = sum(budgets[n] for n, _, _ in parts[i + 1 :])
        budget = min(budgets[name] + slack, end - time.time() - min(rest, 5 * (len(parts) - i - 1)))
        if budget < 5:
            status[name] = {"status": "skipped (no time left)"}
            print(f"[{name}] skipped: no time left", flush=True)
            continue
        t0 = time.time()
        print(f"[{name}] budget {budget:.0f} s", flush=True)
        proc = ctx.Process(target=_child, args=(fn, str(args.out), name, cfg, t0 + budget - 3))
        proc.start()
        proc.join(timeout=budget)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
            state = "killed at its time budget (partial results kept)"
        else:
            state = (
                "ok"
                if proc.exitcode == 0
                else f"failed (exit {proc.exitcode}, see {name}_error.txt)"
            )
        took = time.time() - t0
        slack = max(0.0, budgets[name] + slack - took)
        status[name] = {"status": state, "seconds": round(took, 1), "budget_s": round(budget, 1)}
        print(f"[{name}] {state} in {took:.0f} s", flush=True)
        for line in _summary_lines(args.out, name):
            print(line, flush=True)
        _write(args.out / "summary.json", {"machine": machine, "parts": status})
    total = time.time() - started
    _write(args.out / "summary.json", {"machine": machine, "parts": status, "seconds": total})
    print(f"gpu_checks: done in {total:.0f} s; results in {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
