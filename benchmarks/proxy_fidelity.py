"""Proxy fidelity of the old and the proposed default proxy, on the same seeded panel.

Runs :func:`attnsearch.fidelity.run_fidelity` (what ``attnsearch fidelity`` runs) once per
named proxy setting in :data:`PANELS`: a panel of ``--panel`` architectures of the
ResNet-50 space (uniform networks + random ones spread over FLOPs), each trained under the
proxy (``--proxy-seeds``) and under a reference with ``--reference-factor``× the proxy's
optimizer steps (``--reference-seeds``). Process-parallel (``--workers``); on CUDA in
float32 without TF32, so the accuracies transfer to a CPU run. Writes one JSON per panel
and a summary (``--out-dir``), and prints the rows for ``benchmarks/RESULTS.md``.

    python benchmarks/proxy_fidelity.py --device cuda --workers 14      # the full panels
    python benchmarks/proxy_fidelity.py --dry-run                       # jobs and steps
    python benchmarks/proxy_fidelity.py --smoke                         # < 2 min on a CPU
    python benchmarks/proxy_fidelity.py --panels old --stage proxy      # the noise only

Every finished run is appended to ``--journal-dir``/proxy_fidelity_NAME.jsonl (kept in the
repository): a later call trains only the runs the journal lacks, so a panel too long for
one sitting (the old one is ≈ 5.6 core-hours on a CPU) is built up over several, and
``--stage proxy|reference`` splits it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

# name -> proxy settings (ProxySettings fields; the rest are run's defaults)
PANELS: dict[str, dict] = {
    # the default of runs before issue 10: digits 8x8, 2 epochs, width 0.5, batch 32 (run's rule)
    "old": {"dataset": "digits", "epochs": 2, "width": 0.5},
    # the cheapest clutter candidate tried (124 steps; ~50 s per evaluation on one CPU core,
    # not 6-10). On the 2-core machine ResNet-50 stayed near chance on it (RESULTS.md §8).
    "new": {"dataset": "clutter", "resolution": 16, "width": 0.25, "epochs": 2, "limit": 2000},
    # the same data with 3x the steps (372): over the CPU budget; tells what steps buy
    "new-long": {
        "dataset": "clutter",
        "resolution": 16,
        "width": 0.25,
        "epochs": 6,
        "limit": 2000,
    },
}
SMOKE = {"dataset": "digits", "epochs": 1, "limit": 60}


def main() -> None:
    p = argparse.ArgumentParser(prog="benchmarks/proxy_fidelity.py", description=__doc__)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    p.add_argument("--panels", default="old,new", help=f"comma list of {', '.join(PANELS)}")
    p.add_argument(
        "--define",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE,...",
        help="add a panel, e.g. 'c32:dataset=clutter,width=0.25,epochs=3,limit=1500' "
        "(keys: ProxySettings fields); then list NAME in --panels",
    )
    p.add_argument("--space", default="resnet50")
    p.add_argument("--panel", type=int, default=24)
    p.add_argument("--panel-seed", type=int, default=0)
    p.add_argument("--proxy-seeds", type=int, default=3)
    p.add_argument("--reference-factor", type=int, default=10)
    p.add_argument("--reference-seeds", type=int, default=2)
    p.add_argument("--out-dir", type=Path, default=C.HERE / "results")
    p.add_argument(
        "--journal-dir",
        type=Path,
        default=C.HERE / "results" / "fidelity_journals",
        help="one JSON-lines journal per panel: finished runs are not trained again",
    )
    p.add_argument("--stage", choices=("all", "proxy", "reference"), default="all")
    p.add_argument("--smoke", action="store_true", help="tiny space, 3 architectures, 60 images")
    p.add_argument("--dry-run", action="store_true", help="print the jobs and steps, train nothing")
    args = p.parse_args()

    import torch

    from attnsearch.evaluation import ProxySettings
    from attnsearch.fidelity import build_panel, run_fidelity
    from attnsearch.safeio import jsonable
    from attnsearch.spaces import load_space

    for spec in args.define:
        name, _, body = spec.partition(":")
        PANELS[name.strip()] = {k.strip(): _value(v) for k, v in _pairs(body)}
    if args.smoke:
        args.space, args.panel, args.proxy_seeds = "tiny", 3, 2
        args.reference_factor, args.reference_seeds = 2, 1
        args.workers = min(args.workers, 2)
        panels = {"smoke": SMOKE}
    else:
        names = [n.strip() for n in args.panels.split(",") if n.strip()]
        unknown = [n for n in names if n not in PANELS]
        if unknown:
            sys.exit(f"unknown panel(s) {unknown}; known: {', '.join(PANELS)}")
        panels = {n: PANELS[n] for n in names}
    if not (args.dry_run or args.smoke):
        args.journal_dir.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    threads = 1 if args.device == "cuda" else max(1, cores // args.workers)
    space = load_space(args.space)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict = {
        "machine": C.machine(torch.device(args.device)),
        "args": _args(args),
        "panels": {},
    }
    for name, over in panels.items():
        settings = ProxySettings.defaults(**over, threads=threads)
        if args.dry_run:
            _dry_run(name, space, settings, args, build_panel)
            continue
        print(f"panel {name}: {settings}", flush=True)
        t0 = time.perf_counter()

        def progress(done: int, total: int, rec: dict, t0=t0) -> None:
            if done % max(1, total // 20) == 0 or done == total:
                print(f"  {done}/{total} runs, {time.perf_counter() - t0:.0f}s", flush=True)

        report = run_fidelity(
            space,
            settings,
            panel=args.panel,
            panel_seed=args.panel_seed,
            proxy_seeds=args.proxy_seeds,
            reference_factor=args.reference_factor,
            reference_seeds=args.reference_seeds,
            workers=args.workers,
            device=args.device,
            progress=progress,
            journal=None if args.smoke else args.journal_dir / f"proxy_fidelity_{name}.jsonl",
            stages=("proxy", "reference") if args.stage == "all" else (args.stage,),
        )
        report["machine"] = summary["machine"]
        C.write_json(args.out_dir / f"proxy_fidelity_{name}.json", jsonable(report))
        s = report["summary"]
        summary["panels"][name] = {
            "settings": report["settings"],
            "wall_seconds": report["wall_seconds"],
            **{k: v for k, v in s.items() if k != "scores"},
            "scores": {k: v["kendall_tau"] for k, v in s.get("scores", {}).items()},
            "reference_by_epoch": _reference_by_epoch(report),
        }
    if args.dry_run:
        return
    C.write_json(args.out_dir / "proxy_fidelity_summary.json", jsonable(summary))
    _print_rows(summary["panels"])


def _reference_by_epoch(report: dict) -> dict:
    """How early the reference settles: Kendall τ of the members' mean reference accuracy
    after epoch e against after its last epoch, for every member and for the random ones
    (an upper bound on what a proxy of e epochs could reach only if it shared the
    reference's learning-rate schedule, which it does not: the reference's cosine is 10×
    longer)."""
    from attnsearch import stats

    members = [m for m in report["panel"] if any("history" in r for r in m["reference"])]
    if len(members) < 3:
        return {}
    epochs = min(len(r["history"]) for m in members for r in m["reference"] if "history" in r)
    out = {}
    for kind in ("all", "random"):
        ms = [m for m in members if kind == "all" or m["kind"] == kind]
        if len(ms) < 3:
            continue
        acc = [
            [stats.mean([r["history"][e] for r in m["reference"] if "history" in r])
             for m in ms]
            for e in range(epochs)
        ]  # fmt: skip
        out[kind] = {e + 1: stats.kendall_tau(acc[e], acc[-1]) for e in range(epochs)}
    return out


def _pairs(body: str) -> list[tuple[str, str]]:
    pairs = [item.partition("=") for item in body.split(",") if item.strip()]
    if any(not sep for _, sep, _ in pairs):
        sys.exit(f"--define: expected KEY=VALUE pairs, got {body!r}")
    return [(k, v) for k, _, v in pairs]


def _value(text: str):
    text = text.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return None if text.lower() == "none" else text


def _args(args: argparse.Namespace) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


def _dry_run(name, space, settings, args, build_panel) -> None:
    data = settings.load_dataset()
    bs = settings.resolved_batch_size(len(data.train_x))
    steps = len(data.train_x) // bs * settings.epochs
    panel = build_panel(space, settings.width, args.panel, args.panel_seed)
    n_proxy = len(panel) * args.proxy_seeds
    n_ref = len(panel) * args.reference_seeds
    total = n_proxy * steps + n_ref * steps * args.reference_factor
    print(
        f"panel {name}: {len(panel)} architectures, {data.name} {data.input_shape} "
        f"x{len(data.train_x)} (val {len(data.val_x)}), batch {bs}; {n_proxy} proxy runs of "
        f"{steps} steps + {n_ref} reference runs of {steps * args.reference_factor} steps "
        f"= {total:,} optimizer steps"
    )


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _random_cell(k: dict | None) -> str:
    if not k:
        return "n/a"
    lo, hi = k["kendall_tau_ci95"]
    return f"{k['between_over_within']:.2f}, {_num(k['kendall_tau'])} [{_num(lo)}, {_num(hi)}]"


def _print_rows(panels: dict) -> None:
    cols = ["panel", "within sd", "between sd", "τ [95 % CI]", "ρ", "τ params", "τ FLOPs",
            "top-5", "ref seed τ", "random: b/w, τ [CI]", "s/proxy eval",
            "best score (τ)"]  # fmt: skip
    rows = []
    for name, s in panels.items():
        if "error" in s:
            rows.append([name, s["error"], *[""] * (len(cols) - 2)])
            continue
        if "ranking_missing" in s:  # proxy runs only: the noise figures
            rows.append(
                [
                    name,
                    f"{s['within_sd']:.4f}",
                    f"{s['between_sd']:.4f}",
                    "no reference runs",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    f"{s['seconds_per_proxy_eval']:.1f}",
                    "",
                ]  # fmt: skip
            )
            continue
        lo, hi = s["kendall_tau_ci95"]
        best = s["best_score"]
        rows.append(
            [
                name,
                f"{s['within_sd']:.4f}",
                f"{s['between_sd']:.4f}",
                f"{s['kendall_tau']:.2f} [{lo:.2f}, {hi:.2f}]",
                f"{s['spearman_rho']:.2f}",
                f"{s['kendall_tau_params']:.2f}",
                f"{s['kendall_tau_flops']:.2f}",
                s["top5_overlap"],
                _num(s.get("reference_seed_tau")),
                _random_cell(s.get("by_kind", {}).get("random")),
                f"{s['seconds_per_proxy_eval']:.1f}",
                f"{best} ({s['scores'][best]:.2f})",
            ]
        )
    C.print_table("proxy fidelity", cols, rows)
    for name, s in panels.items():
        for kind, taus in s.get("reference_by_epoch", {}).items():
            cells = ", ".join(f"{e}: {t:.2f}" for e, t in taus.items())
            print(f"{name}, {kind} members: τ(reference after epoch e, after the last) {cells}")
    print(json.dumps({n: s.get("kendall_tau") for n, s in panels.items()}))


if __name__ == "__main__":
    main()
