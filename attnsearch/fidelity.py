"""How far a proxy's ranking can be trusted: a seeded panel, the proxy, and a long reference.

A fixed panel of architectures of a space — the uniform networks (plain, and each
attention type with its defaults where the space allows them at the proxy width) plus
random buildable candidates spread evenly over the FLOPs range — is trained under the proxy
(several seeds) and under a reference schedule with ``reference_factor``× the proxy's
optimizer steps (same data, batch and width; more epochs). The report compares them:

* within-architecture sd (seed noise) against between-architecture sd (signal);
* Kendall τ-b and Spearman ρ of proxy means against reference means, with seeded
  bootstrap 95 % intervals; the same τ for trivial rankers (params, FLOPs);
* top-5 overlap; seconds per evaluation;
* the reference's and the proxy's agreement with themselves (τ of one seed's ranking
  against another's): a reference that barely reproduces its own order grades a proxy
  poorly, whatever τ the proxy gets against it;
* the same noise and ranking figures within each kind of member: the uniform networks a
  short proxy cannot train can carry the whole spread, the random ones are what a search
  compares;
* τ of several candidate *scores* computed from the same proxy runs (final accuracy, mean
  accuracy of the last epochs, final validation loss, sum of training losses), so that the
  best-ranking score can be chosen.

Every training run goes through :func:`attnsearch.evaluation.evaluate_architecture`, the
code path of a search trial. Runs can be spread over worker processes.

A panel is hours of training on a CPU, so every finished run can be appended to a
*journal* (JSON lines; ``journal=``): a later call with the same panel, proxy and
reference settings reads it and trains only the runs it lacks — after a crash, on another
day or machine, or with more seeds. ``stages=("proxy",)`` trains the proxy runs alone:
their report has the noise figures (within/between sd), and the ranking figures once the
reference runs are in the journal too.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnsearch import stats
from attnsearch.errors import InputError

__all__ = [
    "FidelityError",
    "PanelMember",
    "SCORES",
    "build_panel",
    "jsonable",
    "run_fidelity",
    "stage_a",
    "summarize",
]

PROXY_SEED0 = 0  # proxy runs use trial seeds 0..K-1, like the first trials of a search
REFERENCE_SEED0 = 100  # reference runs use seeds 100..: independent of the proxy's
POOL_PER_MEMBER = 40  # random candidates drawn per random panel slot before spreading
BOOTSTRAP = 1000  # bootstrap resamples for the intervals of τ and ρ
TOP_K = 5  # the top-k overlap reported
STAGES = ("proxy", "reference")  # the two kinds of run of a panel


class FidelityError(InputError):
    """Bad fidelity settings; one line."""


@dataclass(frozen=True)
class PanelMember:
    """One architecture of the panel.

    Attributes:
        name: ``uniform-<type>`` or ``random-<i>``.
        kind: ``"uniform"`` or ``"random"``.
        arch: the architecture.
        flops: deploy FLOPs (analytic, the search's count).
        params: deploy parameters.
    """

    name: str
    kind: str
    arch: Any
    flops: int
    params: int


# ---- the panel ---------------------------------------------------------------------------
def build_panel(
    space,
    width: float,
    size: int = 24,
    seed: int = 0,
    budget: int | None = None,
    uniform: Sequence[str] | None = None,
) -> list[PanelMember]:
    """The seeded panel: uniform networks first, then random ones spread over FLOPs.

    Args:
        space: a :class:`~attnsearch.spaces.SearchSpace`.
        width: the proxy width (choices that cannot be built at it are left out).
        size: number of architectures (the uniform ones count; at least 3).
        seed: fixes the random members.
        budget: leave out architectures above this many FLOPs (``None``: no limit).
        uniform: a uniform-only panel of these attention types, in this order (``size``
            and ``seed`` are then unused): the staged go/no-go check (:func:`stage_a`).
    """
    from attnsearch.architecture import Architecture, SlotChoice
    from attnsearch.flops.analytic import cost_table

    if size < 3:
        raise FidelityError(f"the panel needs at least 3 architectures, got {size}")
    table = cost_table(space.backbone, space.input, space.num_classes)
    options = space.options(width)
    plain = Architecture.plain(space.backbone, space.num_classes, space.input)

    def make(choices: Sequence[SlotChoice]) -> Architecture:
        slots = list(plain.slots)
        for unit, choice in zip(space.units, choices, strict=True):
            for s in space.unit_slots(unit):
                slots[s] = choice
        return Architecture(space.backbone, tuple(slots), space.num_classes, space.input)

    members: list[tuple[str, str, Architecture]] = []
    if uniform is not None:
        known = [t for t, _ in space.choices]
        if len(set(uniform)) != len(uniform) or len(uniform) < 3:
            raise FidelityError(
                f"--uniform needs 3 or more different types, got {','.join(uniform)!r}"
            )
        for type_name in uniform:
            choice = _uniform_choice(type_name, options) if type_name in known else None
            if choice is None:
                raise FidelityError(
                    f"--uniform {type_name}: not a choice of every slot of space "
                    f"{space.name!r} at width {width:g} (types: {', '.join(known)})"
                )
            members.append((f"uniform-{type_name}", "uniform", make([choice] * len(space.units))))
        size = len(members)
    for type_name, _ in space.choices if uniform is None else ():
        choice = _uniform_choice(type_name, options)
        if choice is None:
            continue
        arch = make([choice] * len(space.units))
        if budget is None or table.total(arch.slots) <= budget:
            members.append((f"uniform-{type_name}", "uniform", arch))
    members = members[:size]
    n_random = size - len(members)
    if n_random:
        rng = random.Random(seed)
        seen = {a.digest() for _, _, a in members}
        pool: dict[str, tuple[int, Architecture]] = {}
        for _ in range(POOL_PER_MEMBER * n_random):
            arch = make(_random_choices(options, rng))
            flops = table.total(arch.slots)
            if (budget is None or flops <= budget) and arch.digest() not in seen:
                pool.setdefault(arch.digest(), (flops, arch))
        picked = _spread(sorted(pool.values(), key=lambda fa: (fa[0], fa[1].digest())), n_random)
        members += [(f"random-{i}", "random", a) for i, a in enumerate(picked)]
    if len(members) < 3:
        raise FidelityError(
            f"only {len(members)} architecture(s) of space {space.name!r} fit; "
            "raise the budget or the width"
        )
    return [
        PanelMember(name, kind, arch, table.total(arch.slots), _params(arch))
        for name, kind, arch in members
    ]


def _uniform_choice(type_name: str, options):
    """The type's default choice if every unit allows it, else its first allowed in all."""
    from attnsearch.architecture import SlotChoice

    per_unit = [opts.get(type_name, []) for opts in options]
    if not all(per_unit):
        return None
    default = SlotChoice.make(type_name)
    if all(default in cs for cs in per_unit):
        return default
    common = [c for c in per_unit[0] if all(c in cs for cs in per_unit[1:])]
    return common[0] if common else None


def _random_choices(options, rng: random.Random) -> list:
    """One choice per unit. A per-candidate attention density and per-candidate type
    weights (skewed, so one or two types often dominate) spread the FLOPs to the ends."""
    from attnsearch import modules

    density = rng.random()
    types = sorted({t for opts in options for t in opts if not modules.get(t).identity})
    weight = {t: rng.random() ** 4 for t in types}
    out = []
    for opts in options:
        attn = [t for t in opts if not modules.get(t).identity]
        plain = [c for t, cs in opts.items() if modules.get(t).identity for c in cs]
        if attn and (rng.random() < density or not plain):
            t = rng.choices(attn, weights=[weight[a] + 1e-9 for a in attn])[0]
            out.append(rng.choice(opts[t]))
        else:
            out.append(plain[0])
    return out


def _spread(pool: list[tuple[int, Any]], n: int) -> list[Any]:
    """``n`` members of a FLOPs-sorted pool, nearest to evenly spaced FLOPs targets."""
    if len(pool) <= n:
        return [a for _, a in pool]
    lo, hi = pool[0][0], pool[-1][0]
    taken: set[int] = set()
    for i in range(n):
        target = lo + (hi - lo) * (i + 0.5) / n
        best = min(
            (j for j in range(len(pool)) if j not in taken),
            key=lambda j: (abs(pool[j][0] - target), j),
        )
        taken.add(best)
    return [pool[j][1] for j in sorted(taken)]


def _params(arch) -> int:
    """Deploy parameters, counted on the meta device (no memory, no init)."""
    import torch

    from attnsearch.backbones import build_network

    with torch.device("meta"):
        model = build_network(arch, stem="deploy")
    return sum(p.numel() for p in model.parameters())


# ---- scores --------------------------------------------------------------------------------
def _last_epochs(epochs: int) -> int:
    return min(epochs, max(2, epochs // 2))


SCORES: dict[str, Callable[[dict], float]] = {
    # each maps one proxy run (history, train_losses, val_losses) to "higher is better"
    "final_accuracy": lambda r: r["history"][-1],
    "last_epochs_accuracy": lambda r: stats.mean(r["history"][-_last_epochs(len(r["history"])) :]),
    "neg_final_val_loss": lambda r: -r["val_losses"][-1],
    "neg_sum_train_loss": lambda r: -math.fsum(r["train_losses"]),
}


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
        kind = device or ("cuda" if _cuda_visible() else "cpu")  # where runs train
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


# ---- the journal -------------------------------------------------------------------------
JOURNAL_FORMAT = 1


def _key_tuple(r: dict) -> tuple:
    return (r["member"], r["schedule"], r["seed"])


def _cuda_visible() -> bool:
    import torch

    return torch.cuda.is_available()


def _latest(records: list[dict]) -> list[dict]:
    """One record per run: a successful one where there is one (the first), else the last
    failure (a failed run is tried again by the next call; a success replaces it)."""
    best: dict[tuple, dict] = {}
    for r in records:
        k = _key_tuple(r)
        if k not in best or "failed" in best[k]:
            best[k] = r
    return list(best.values())


def _journal_key(space, settings, dataset, members, reference_factor, budget, device) -> str:
    """What a journal's runs depend on: the panel's architectures, the data (its digest,
    not where it is stored), the proxy (threads aside: they do not change what is
    trained), the reference's length and the device kind (CPU and CUDA runs differ in
    their numbers and their seconds: one journal holds one kind)."""
    import hashlib
    import json

    skip = ("threads", "data_dir")
    proxy = {k: v for k, v in settings.to_dict().items() if k not in skip}
    if proxy.get("optimizer") == "sgd":  # what every journal before the option trained with
        del proxy["optimizer"]
    payload = {
        "space": space.name,
        "members": [m.arch.digest() for m in members],
        "dataset": dataset.digest(),
        "proxy": proxy,
        "reference_factor": reference_factor,
        "budget": budget,
        "device": device,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Journal:
    """The JSON-lines journal of a fidelity panel: a header line, then one run per line."""

    def __init__(self, path: Path, key: str):
        self.path, self.key = path, key

    def read(self) -> list[dict]:
        """The runs already recorded (none when the file is absent); refuses a journal of
        other settings. A last line cut short by a crash mid-write is left out (and
        overwritten by the next append)."""
        import json

        if not self.path.exists():
            self._write_header()
            return []
        if not self.path.is_file():
            raise FidelityError(f"--journal {self.path}: not a file")
        try:
            raw = self.path.read_bytes()
            open(self.path, "ab").close()  # appendable: refused now, not after hours
        except OSError as e:
            raise FidelityError(
                f"--journal {self.path}: cannot read or append to it ({e.strerror})"
            ) from None
        lines = raw.split(b"\n")
        complete, tail = lines[:-1], lines[-1]  # the tail is b"" when the file ends in \n
        rows = []
        for n, line in enumerate(complete, 1):
            try:
                rows.append(json.loads(line))
            except (UnicodeDecodeError, ValueError):
                raise FidelityError(
                    f"--journal {self.path}: line {n} is not JSON (not a fidelity journal?)"
                ) from None
        if not rows:
            if tail.strip():
                raise FidelityError(f"--journal {self.path}: not a fidelity journal")
            self._write_header()
            return []
        head = rows[0]
        if not isinstance(head, dict) or head.get("fidelity_journal") != JOURNAL_FORMAT:
            raise FidelityError(f"--journal {self.path}: not a fidelity journal")
        if head.get("key") != self.key:
            raise FidelityError(
                f"--journal {self.path} was written for another panel, dataset or proxy "
                f"settings (key {head.get('key')!r}, these settings {self.key!r})"
            )
        runs = []
        for n, row in enumerate(rows[1:], 2):
            if not _is_run(row):
                raise FidelityError(f"--journal {self.path}: line {n} is not a run record")
            for k in ("history", "train_losses", "val_losses"):
                if k in row:  # a NaN was written as null (strict JSON): NaN again
                    row[k] = [math.nan if v is None else v for v in row[k]]
            runs.append(row)
        if tail:  # cut short mid-write: drop it, keep the file ending in a newline
            with open(self.path, "r+b") as f:
                f.truncate(len(raw) - len(tail))
        return runs

    def _write_header(self) -> None:
        import json

        try:
            self.path.write_text(
                json.dumps({"fidelity_journal": JOURNAL_FORMAT, "key": self.key}) + "\n"
            )
        except OSError as e:
            raise FidelityError(f"--journal {self.path}: cannot write it ({e.strerror})") from None

    def append(self, record: dict) -> None:
        """One line per run, flushed to disk (a lock keeps lines of two processes apart;
        runs two processes both trained are counted once when read)."""
        import fcntl
        import json
        import os

        line = json.dumps(jsonable(record), separators=(",", ":")) + "\n"
        try:
            with open(self.path, "a") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise FidelityError(
                f"--journal {self.path}: cannot append to it ({e.strerror}); the runs "
                "written before are kept"
            ) from None


def _is_run(row: Any) -> bool:
    """A run record as :func:`_run_job` returns it (values checked: a journal is input)."""
    if not isinstance(row, dict):
        return False
    ok_key = (
        isinstance(row.get("member"), int)
        and not isinstance(row.get("member"), bool)
        and row.get("schedule") in STAGES
        and isinstance(row.get("seed"), int)
        and not isinstance(row.get("seed"), bool)
    )
    if not ok_key:
        return False
    if "failed" in row:
        return isinstance(row["failed"], str)
    numbers = ("accuracy", "seconds")
    lists = ("history", "train_losses", "val_losses")

    def finite(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    return all(finite(row.get(k)) for k in numbers) and all(
        isinstance(row.get(k), list) and row[k] and all(v is None or finite(v) for v in row[k])
        for k in lists
    )  # None: a NaN loss, written as null (strict JSON)


# ---- the report ------------------------------------------------------------------------
def _ok(runs: list[dict]) -> list[dict]:
    return [r for r in runs if "failed" not in r]


def summarize(report: dict[str, Any], *, bootstrap_seed: int = 0) -> dict[str, Any]:
    """The fidelity figures of a report (see the module docstring)."""
    panel = report["panel"]
    usable = [m for m in panel if len(_ok(m["proxy"])) >= 2 and _ok(m["reference"])]
    failed_runs = sum(len(m["proxy"]) + len(m["reference"]) for m in panel) - sum(
        len(_ok(m["proxy"])) + len(_ok(m["reference"])) for m in panel
    )
    for m in panel:
        p, r = _ok(m["proxy"]), _ok(m["reference"])
        m["proxy_mean"] = stats.mean([x["accuracy"] for x in p]) if p else None
        m["proxy_sd"] = stats.sd([x["accuracy"] for x in p]) if p else None
        m["reference_mean"] = stats.mean([x["accuracy"] for x in r]) if r else None
        m["reference_sd"] = stats.sd([x["accuracy"] for x in r]) if r else None
        m["scores"] = {k: stats.mean([f(x) for x in p]) if p else None for k, f in SCORES.items()}
    out: dict[str, Any] = {"architectures": len(usable), "failed_runs": failed_runs}
    # the noise figures need the proxy runs only (at least 2 seeds on at least 3 members)
    noisy = [m for m in panel if len(_ok(m["proxy"])) >= 2]
    if len(noisy) < 3:
        out["error"] = "fewer than 3 architectures have 2 or more proxy runs"
        return out
    k = min(len(_ok(m["proxy"])) for m in noisy)
    within = _pooled_sd(noisy, "proxy")  # every member here has 2 or more proxy runs
    between = stats.sd([m["proxy_mean"] for m in noisy])
    proxy_runs = [r for m in panel for r in _ok(m["proxy"])]
    out.update(
        {
            "within_sd": within,
            "between_sd": between,
            "between_sd_corrected": math.sqrt(max(0.0, between**2 - within**2 / k)),
            "between_over_within": between / within if within else math.inf,
            "noise_architectures": len(noisy),
            "seconds_per_proxy_eval": stats.mean([r["seconds"] for r in proxy_runs]),
        }
    )
    out["stage_a"] = stage_a(panel)
    if len(usable) < 3:
        out["ranking_missing"] = (
            "fewer than 3 architectures have both proxy and reference runs: no ranking "
            "figures (train them with --stage reference and the same --journal)"
        )
        return out
    ref = [m["reference_mean"] for m in usable]
    proxy = [m["proxy_mean"] for m in usable]
    ref_within = _pooled_sd(usable, "reference")

    def rank_stats(x: list[float]) -> dict[str, Any]:
        return {
            "kendall_tau": stats.kendall_tau(x, ref),
            "kendall_tau_ci95": list(
                stats.bootstrap_ci(
                    x, ref, stats.kendall_tau, resamples=BOOTSTRAP, seed=bootstrap_seed
                )
            ),
            "spearman_rho": stats.spearman_rho(x, ref),
            "spearman_rho_ci95": list(
                stats.bootstrap_ci(
                    x, ref, stats.spearman_rho, resamples=BOOTSTRAP, seed=bootstrap_seed
                )
            ),
            f"top{TOP_K}_overlap": stats.top_k_overlap(x, ref, TOP_K),
        }

    ref_runs = [r for m in panel for r in _ok(m["reference"])]
    scores = {name: rank_stats([m["scores"][name] for m in usable]) for name in SCORES}
    best = max(scores, key=lambda s: (_nan_low(scores[s]["kendall_tau"]), s))
    out.update(
        {
            "reference_within_sd": ref_within,
            "reference_between_sd": stats.sd(ref),
            "reference_seed_tau": _seed_tau(usable, "reference"),
            "proxy_seed_tau": _seed_tau(usable, "proxy"),
            "proxy_accuracy_range": [min(proxy), max(proxy)],
            "reference_accuracy_range": [min(ref), max(ref)],
            **rank_stats(proxy),
            "kendall_tau_params": stats.kendall_tau([float(m["params"]) for m in usable], ref),
            "kendall_tau_flops": stats.kendall_tau([float(m["flops"]) for m in usable], ref),
            "seconds_per_reference_eval": stats.mean([r["seconds"] for r in ref_runs]),
            "scores": scores,
            "best_score": best,
            "by_kind": _by_kind(usable, bootstrap_seed),
        }
    )
    return out


STAGE_A_RATIO = 2.0  # proxy: between-architecture sd at least this many seed sds
STAGE_A_SATURATED = 0.97  # reference: a best network above this has no room to rank


def stage_a(panel: list[dict]) -> dict[str, Any] | None:
    """The go/no-go of a default task and proxy, on a panel holding the plain network.

    Passes when all four hold: (1) under the proxy the between-architecture sd (of the
    members' proxy means) is at least :data:`STAGE_A_RATIO` × the pooled seed sd; (2) the
    reference is not saturated (its best mean below :data:`STAGE_A_SATURATED`); (3) the
    reference separates at least one attention network from plain beyond noise; (4) the
    proxy orders every pair that the reference separates the same way. "Separates" is the
    pooled two-sample t-test at 95 % (:func:`attnsearch.stats.pooled_t`) with the
    schedule's seed sd pooled over the panel — the test a run's verdict uses. ``None``
    without a plain member. Each figure says how many runs it rests on.
    """
    plain = next((m for m in panel if m["name"] == "uniform-none"), None)
    if plain is None:
        return None
    runs = {sch: {m["name"]: [r["accuracy"] for r in _ok(m[sch])] for m in panel} for sch in STAGES}
    out: dict[str, Any] = {
        "checks": {},
        "runs": {sch: sum(map(len, runs[sch].values())) for sch in STAGES},
    }
    p_sd, p_df = stats.pooled_sd(list(runs["proxy"].values()))
    p_means = {k: stats.mean(v) for k, v in runs["proxy"].items() if v}
    checks = out["checks"]
    if p_sd and len(p_means) >= 3:
        ratio = stats.sd(list(p_means.values())) / p_sd
        checks["proxy_between_over_within"] = {"value": ratio, "pass": ratio >= STAGE_A_RATIO}
    else:
        checks["proxy_between_over_within"] = {"value": None, "pass": None}
    r_sd, r_df = stats.pooled_sd(list(runs["reference"].values()))
    r_means = {k: stats.mean(v) for k, v in runs["reference"].items() if v}
    if not r_means:
        checks["reference_not_saturated"] = {"value": None, "pass": None}
        checks["reference_separates_attention"] = {"value": None, "pass": None}
        checks["proxy_agrees_on_separated_pairs"] = {"value": None, "pass": None}
        out["pass"] = None if checks["proxy_between_over_within"]["pass"] is not False else False
        out["missing"] = "no reference runs yet (--stage reference with the same --journal)"
        return out
    best = max(r_means.values())
    checks["reference_not_saturated"] = {"value": best, "pass": best < STAGE_A_SATURATED}

    def separated(a: str, b: str) -> bool | None:
        ra, rb = runs["reference"][a], runs["reference"][b]
        res = stats.pooled_t(
            stats.mean(ra) if ra else 0.0, len(ra), stats.mean(rb) if rb else 0.0, len(rb),
            r_sd, r_df,
        )  # fmt: skip
        return None if res is None else res[1]

    names = [m["name"] for m in panel if runs["reference"][m["name"]]]
    vs_plain = [n for n in names if n != "uniform-none" and separated(n, "uniform-none")]
    untestable = r_sd is None or not runs["reference"]["uniform-none"]
    checks["reference_separates_attention"] = {
        "value": vs_plain,
        "pass": None if untestable else bool(vs_plain),
    }
    pairs, disagree = [], []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if separated(a, b) and a in p_means and b in p_means:
                pairs.append([a, b])
                if (r_means[a] > r_means[b]) != (p_means[a] > p_means[b]):
                    disagree.append([a, b])
    checks["proxy_agrees_on_separated_pairs"] = {
        "value": {"separated_pairs": pairs, "disagreeing": disagree},
        "pass": None if untestable else not disagree,
    }
    out["proxy_seed_sd"], out["proxy_df"] = p_sd, p_df
    out["reference_seed_sd"], out["reference_df"] = r_sd, r_df
    verdicts = [c["pass"] for c in checks.values()]
    out["pass"] = False if False in verdicts else (None if None in verdicts else True)
    return out


def _seed_tau(members: list[dict], schedule: str) -> float | None:
    """Mean Kendall τ between the rankings that two seeds of ``schedule`` give the members,
    over every pair of seeds (each pair on the members that have both runs, at least 3): how
    well that schedule agrees with itself. For the reference it is a rough guide to what a
    proxy's τ against it can show (that τ is taken against the mean of the reference seeds,
    a little steadier than one seed). ``None`` without such a pair; NaN when every pair's
    τ is undefined (all accuracies tied)."""
    runs = [{r["seed"]: r["accuracy"] for r in _ok(m[schedule])} for m in members]
    seeds = sorted({s for r in runs for s in r})
    taus = []
    for i, a in enumerate(seeds):
        for b in seeds[i + 1 :]:
            both = [r for r in runs if a in r and b in r]
            if len(both) >= 3:
                taus.append(stats.kendall_tau([r[a] for r in both], [r[b] for r in both]))
    if not taus:
        return None
    finite = [t for t in taus if not math.isnan(t)]
    return stats.mean(finite) if finite else math.nan


def _pooled_sd(members: list[dict], schedule: str) -> float | None:
    """Seed sd pooled (df-weighted, :func:`attnsearch.stats.pooled_sd`) over the members
    with at least 2 runs of ``schedule`` (``None``: no such member)."""
    groups = [[r["accuracy"] for r in _ok(m[schedule])] for m in members]
    return stats.pooled_sd(groups)[0]


def _by_kind(usable: list[dict], bootstrap_seed: int) -> dict[str, dict[str, Any]]:
    """Noise and ranking figures within each kind of member (``uniform``, ``random``): the
    random members are what a search compares, the uniform ones can dominate the spread.
    Over the members with both proxy and reference runs (the panel-wide noise figures use
    every member with 2 proxy runs, so the two can differ by the members left out)."""
    out: dict[str, dict[str, Any]] = {}
    for kind in sorted({m["kind"] for m in usable}):
        ms = [m for m in usable if m["kind"] == kind]
        if len(ms) < 3:
            continue
        proxy = [m["proxy_mean"] for m in ms]
        ref = [m["reference_mean"] for m in ms]
        within = _pooled_sd(ms, "proxy")
        out[kind] = {
            "architectures": len(ms),
            "within_sd": within,
            "between_sd": stats.sd(proxy),
            "between_over_within": stats.sd(proxy) / within if within else math.inf,
            "reference_within_sd": _pooled_sd(ms, "reference"),
            "reference_between_sd": stats.sd(ref),
            "kendall_tau": stats.kendall_tau(proxy, ref),
            "kendall_tau_ci95": list(
                stats.bootstrap_ci(
                    proxy, ref, stats.kendall_tau, resamples=BOOTSTRAP, seed=bootstrap_seed
                )
            ),
            "kendall_tau_flops": stats.kendall_tau([float(m["flops"]) for m in ms], ref),
            "reference_seed_tau": _seed_tau(ms, "reference"),
        }
    return out


def jsonable(obj: Any) -> Any:
    """``obj`` with NaN and infinities replaced by ``None`` (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def _nan_low(v: float) -> float:
    return -math.inf if math.isnan(v) else v
