"""Running a panel: the jobs, in this process or in spawned workers."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from attnsearch.fidelity._journal import _Journal, _journal_key, _key_tuple, _latest
from attnsearch.fidelity._panel import STAGES, FidelityError, PanelMember, build_panel
from attnsearch.fidelity._report import summarize
from attnsearch.settings import default_device

PROXY_SEED0 = 0  # proxy runs use trial seeds 0..K-1, like the first trials of a search
REFERENCE_SEED0 = 100  # reference runs use seeds 100..: independent of the proxy's


# ---- running ---------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(settings: dict, threads: int, device: str | None) -> None:
    """Per process: threads, float32 on CUDA (no TF32), the dataset loaded once."""
    import torch

    from attnsearch.evaluation import ProxySettings

    torch.set_num_threads(max(1, threads))
    if device == "cuda":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    ps = ProxySettings(**settings)
    _WORKER.update(settings=ps, dataset=ps.load_dataset(), threads=threads, device=device)


def _run_job(job: dict) -> dict:
    """Train one (architecture, schedule, seed); returns its run record."""
    import torch

    from attnsearch.architecture import Architecture
    from attnsearch.evaluation import evaluate_architecture

    ps, dataset = _WORKER["settings"], _WORKER["dataset"]
    rs = ps.run_settings(len(dataset.train_x))
    rs = dataclasses.replace(
        rs, proxy=dataclasses.replace(rs.proxy, epochs=job["epochs"], bf16=False)
    )
    device = torch.device(_WORKER["device"]) if _WORKER["device"] else None
    arch = Architecture.from_json(job["architecture"])
    try:
        r = evaluate_architecture(arch, rs, dataset, [job["seed"]], device=device)
    except Exception as e:  # a diverged run is data, not a crash
        return {**_job_key(job), "failed": f"{type(e).__name__}: {e}".splitlines()[0][:200]}
    return {
        **_job_key(job),
        "accuracy": r.accuracies[0],
        "history": r.histories[0],
        "train_losses": r.train_losses[0],
        "val_losses": r.val_losses[0],
        "seconds": r.seconds[0],
    }


def _job_key(job: dict) -> dict:
    return {"member": job["member"], "schedule": job["schedule"], "seed": job["seed"]}


def run_fidelity(
    space,
    settings,
    *,
    panel: int = 24,
    panel_seed: int = 0,
    proxy_seeds: int = 3,
    reference_factor: int = 10,
    reference_seeds: int = 2,
    budget: int | None = None,
    workers: int = 1,
    device: str | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
    journal: str | Path | None = None,
    stages: Sequence[str] = STAGES,
    uniform: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Train the panel under the proxy and the reference; return the full report.

    Args:
        space: the :class:`~attnsearch.spaces.SearchSpace`.
        settings: the :class:`~attnsearch.evaluation.ProxySettings` of the proxy.
        panel: panel size.
        panel_seed: fixes the random panel members.
        proxy_seeds: seeds per architecture under the proxy (at least 2).
        reference_factor: the reference trains this many times the proxy's epochs (same
            batch, so this many times the optimizer steps).
        reference_seeds: seeds per architecture under the reference.
        budget: FLOPs limit on panel members.
        workers: processes training in parallel (each with ``settings.threads`` threads;
            1 trains here, in this process).
        device: ``"cpu"``, ``"cuda"`` (float32, no TF32) or ``None`` (as a trial).
        progress: called with ``(done, total, run_record)`` after each run.
        journal: a JSON-lines file: runs already in it are not trained again, new ones
            are appended as they finish (created when absent). It must have been written
            for the same panel, data and settings (:class:`FidelityError` otherwise).
        stages: which runs to train: ``("proxy", "reference")`` (all) or one of them; the
            report uses every run the journal holds.
        uniform: a uniform-only panel of these types (see :func:`build_panel`); its
            summary carries the go/no-go of :func:`stage_a`.

    Returns:
        A JSON-ready dict: ``settings``, ``panel`` (per member: runs, means, scores) and
        ``summary`` (see :func:`summarize`).
    """
    if proxy_seeds < 2:
        raise FidelityError(f"--proxy-seeds must be at least 2 (seed noise), got {proxy_seeds}")
    if reference_seeds < 1:
        raise FidelityError(f"--reference-seeds must be at least 1, got {reference_seeds}")
    if reference_factor < 1:
        raise FidelityError(f"--reference-factor must be at least 1, got {reference_factor}")
    if workers < 1:
        raise FidelityError(f"--workers must be at least 1, got {workers}")
    if not stages or any(st not in STAGES for st in stages):
        raise FidelityError(f"stages must be among {', '.join(STAGES)}, got {list(stages)!r}")
    if set(stages) != set(STAGES) and journal is None:
        raise FidelityError(
            f"--stage {stages[0]} needs --journal FILE (the other stage's runs live there; "
            "without it the runs trained now would be reported alone and lost)"
        )
    members = build_panel(space, settings.width, panel, panel_seed, budget, uniform)
    dataset = settings.load_dataset()
    batch = settings.resolved_batch_size(len(dataset.train_x))
    steps_per_epoch = max(1, len(dataset.train_x) // min(batch, len(dataset.train_x)))
    fixed = dataclasses.replace(settings, batch_size=batch)
    ref_epochs = settings.epochs * reference_factor
    jobs = []
    for i, m in enumerate(members):
        for s in range(reference_seeds):
            jobs.append(_job(i, m, "reference", ref_epochs, REFERENCE_SEED0 + s))
        for s in range(proxy_seeds):
            jobs.append(_job(i, m, "proxy", settings.epochs, PROXY_SEED0 + s))
    jobs.sort(key=lambda j: j["schedule"] != "reference")  # longest first: better packing
    book = None
    done: list[dict] = []
    if journal is not None:
        kind = device or default_device()  # where runs train
        key = _journal_key(space, fixed, dataset, members, reference_factor, budget, kind)
        book = _Journal(Path(journal), key)
        done = book.read()
        have = {_key_tuple(r) for r in done if "failed" not in r}  # failed: tried again
        done = [r for r in done if _key_tuple(r) in {_key_tuple(j) for j in jobs}]
        jobs = [j for j in jobs if _key_tuple(j) not in have]
    jobs = [j for j in jobs if j["schedule"] in stages]
    t0 = time.perf_counter()
    records = _execute(
        jobs, fixed.to_dict(), fixed.threads, device, workers, dataset, progress, book
    )
    wall = time.perf_counter() - t0
    records = _latest(done + records)
    panel_out = []
    for i, m in enumerate(members):
        mine = [r for r in records if r["member"] == i]
        panel_out.append(
            {
                "name": m.name,
                "kind": m.kind,
                "architecture": m.arch.to_json(),
                "summary": m.arch.summary(),
                "flops": m.flops,
                "params": m.params,
                "proxy": sorted(
                    (r for r in mine if r["schedule"] == "proxy"), key=lambda r: r["seed"]
                ),
                "reference": sorted(
                    (r for r in mine if r["schedule"] == "reference"), key=lambda r: r["seed"]
                ),
            }
        )
    report = {
        "settings": {
            **fixed.to_dict(),
            "space": space.name,
            "dataset_info": dataset.summary(),
            "panel": len(members),
            "panel_seed": panel_seed,
            "uniform": list(uniform) if uniform is not None else None,
            "proxy_seeds": proxy_seeds,
            "reference_factor": reference_factor,
            "reference_seeds": reference_seeds,
            "reference_epochs": ref_epochs,
            "proxy_steps": steps_per_epoch * settings.epochs,
            "reference_steps": steps_per_epoch * ref_epochs,
            "budget": budget,
            "workers": workers,
            "device": device or "auto",
            "journal": str(journal) if journal is not None else None,
            "runs_from_journal": len(done),
            "runs_trained": len(records) - len(done),
        },
        "panel": panel_out,
        "wall_seconds": wall,
    }
    report["summary"] = summarize(report)
    return report


def _job(i: int, m: PanelMember, schedule: str, epochs: int, seed: int) -> dict:
    return {
        "member": i,
        "schedule": schedule,
        "epochs": epochs,
        "seed": seed,
        "architecture": m.arch.to_json(),
    }


def _execute(jobs, settings, threads, device, workers, dataset, progress, book) -> list[dict]:
    records: list[dict] = []

    def finished(record: dict) -> None:
        records.append(record)
        if book is not None:
            book.append(record)  # before anything else: a crash after it loses nothing
        if progress is not None:
            progress(len(records), len(jobs), record)

    if not jobs:
        return records
    if workers == 1:
        import torch

        saved, threads_before = dict(_WORKER), torch.get_num_threads()
        try:
            _init_worker(settings, threads, device)
            for job in jobs:
                finished(_run_job(job))
        finally:
            _WORKER.clear()
            _WORKER.update(saved)
            torch.set_num_threads(threads_before)
        return records
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = mp.get_context("spawn")  # CUDA-safe; workers import only what they need
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(settings, threads, device)
    ) as pool:
        futures = [pool.submit(_run_job, job) for job in jobs]  # longest (reference) first
        for f in as_completed(futures):
            finished(f.result())
    return records
