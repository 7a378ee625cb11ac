"""The one prepared device check (issue 21, item 4): one call, under 9 minutes, at most 8
files under ``--out``, each written as soon as its part ends (and updated as it goes).

    python benchmarks/gpu_checks.py --out "$OUT"                 # on the lent GPU machine
    python benchmarks/gpu_checks.py --smoke --out /tmp/g          # every part, CPU, seconds

Parts, in order, each in a process group of its own with its own time budget (unused time
passes on); a part past its budget gets SIGTERM, 5 s later SIGKILL for its whole group, and
this process, a child subreaper, then kills every descendant left (what a part started and
detached: a Ray, an MPS daemon is told to quit first). Files:

* ``status.json`` — the machine (torch, CUDA, GPU), what imports there (``ray``, ``optuna``,
  ``click``, ``rich``: ``attnsearch run`` needs them all), whether MPS can start, and each
  part's state and seconds; rewritten after every part.
* ``a_split.json`` — one trial's wall time split as ``benchmarks/trial_overhead.py``'s
  ``--direct`` mode does (data placement, build, steps, validation, checkpoint, other; CUDA
  start-up apart; the first epoch's steps apart: cuDNN autotuning) for plain ResNet-50, a
  typical mixed candidate (seeded random of the ``resnet50`` space) and an RFA-heavy one
  (RFAConv in every slot), at batch 128 and 512, 5 epochs of CIFAR-sized data (CIFAR-10 if
  its archive is in ``data/``, else random uint8 of its shape), proxy width 0.5.
* ``b_sharing.json`` — trials per GPU-hour with 1, 4 and 8 trainers sharing the GPU:
  through the real ``attnsearch run`` (``--gpus-per-trial 1/k``, ``--concurrency k``) when
  its imports are there, else plain trainer processes (``method`` says which).
* ``c_formulations.json`` — the RFA family and SA, reference against fast formulation
  (``attnsearch.modules.formulation``, issue 21 item 3): train-step time of the proxy with
  each type in every slot. Without that hook: the one formulation there is, timed, and
  ``hook`` says so.
* ``d_mps.json`` — part (b)'s plain sharing again under an MPS daemon of this script's own
  (private pipe and log folders), when ``nvidia-cuda-mps-control`` exists; else why not.
* ``e_panel.json`` — if time remains: a stage-A-style uniform panel on the GPU (every
  registered type in every slot of the default ``resnet50`` proxy, the default ``digits``
  task, 2 seeds), as many as fit.
* ``log.txt`` — every part's output.

``--smoke`` runs every part on the CPU in CI-sized form (ResNet-18 backbone, tiny data, 1
and 2 sharing trainers); ``tests/test_gpu_checks.py`` runs it, so the script cannot rot,
once with ``GPU_CHECKS_NO_RAY=1`` (Ray, Optuna, click and rich made unimportable, as on the
last lent machine: the probe must see it and part (b) fall back to plain processes).

Nothing to carry: the script needs torch, PyYAML and the repository only (Ray does not fit
the run tool's 64 MiB carry; without it part (b) uses plain processes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

TIME_LIMIT = 525  # seconds for the whole call (a 9-minute call leaves start-up its share)
# (part, seconds at full size, seconds in --smoke)
PARTS = (
    ("a_split", 150, 60),
    ("b_sharing", 190, 120),
    ("c_formulations", 50, 45),
    ("d_mps", 70, 60),
    ("e_panel", 60, 45),
)
FILES = ("status.json", *(f"{p}.json" for p, _, _ in PARTS), "log.txt")  # 7 of the 8
IMPORTS = ("torch", "ray", "optuna", "click", "rich")  # attnsearch run needs them all


NO_RAY = ("ray", "optuna", "click", "rich")  # what GPU_CHECKS_NO_RAY=1 makes unimportable


def _block_imports() -> None:
    """``GPU_CHECKS_NO_RAY=1``: this process cannot import Ray, Optuna, click or rich, as
    on the last lent machine (torch only); the smoke test checks the fallback so."""
    import importlib.abc

    class _Blocked(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in NO_RAY:
                raise ModuleNotFoundError(f"No module named {name!r} (GPU_CHECKS_NO_RAY)")
            return None

    sys.meta_path.insert(0, _Blocked())


if os.environ.get("GPU_CHECKS_NO_RAY"):
    _block_imports()


def _write(path: Path, payload) -> None:
    """Write JSON atomically (one ``.tmp`` beside it for a moment: the 8th file at most)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    os.replace(tmp, path)


# ---- what the machine has -------------------------------------------------------------
def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def probe() -> dict:
    import torch

    info = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cpus": os.cpu_count(),
        "imports": {m: _importable(m) for m in IMPORTS},
        "mps_control": shutil.which("nvidia-cuda-mps-control"),
    }
    if info["cuda_available"]:
        info["gpu"] = torch.cuda.get_device_name(0)
    info["attnsearch_run"] = all(info["imports"].values())
    return info


# ---- data and candidates ----------------------------------------------------------------
def cifar_shaped(n_train: int, n_val: int, size: int = 32, seed: int = 0):
    """CIFAR-10 (first ``n_train`` / ``n_val``) when its archive is in ``data/``, else random
    uint8 of its shape; ``(dataset, source)``."""
    import torch

    from attnsearch.datasets import Dataset

    try:
        from attnsearch.datasets import load_dataset

        data = load_dataset("cifar10", data_dir=str(ROOT / "data"), download=False, seed=seed)
        source = "cifar10"
        tx, ty, vx, vy = data.train_x, data.train_y, data.val_x, data.val_y
    except Exception:
        g = torch.Generator().manual_seed(seed)
        tx = torch.randint(0, 256, (n_train, 3, size, size), dtype=torch.uint8, generator=g)
        ty = torch.randint(0, 10, (n_train,), generator=g)
        vx = torch.randint(0, 256, (n_val, 3, size, size), dtype=torch.uint8, generator=g)
        vy = torch.randint(0, 10, (n_val,), generator=g)
        source = "random uint8, CIFAR-10 shape"
    data = Dataset(
        "cifar-shaped", tx[:n_train], ty[:n_train], vx[:n_val], vy[:n_val], 10,
        (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), tuple(str(i) for i in range(10)),
    )  # fmt: skip
    return data, source


def candidates(backbone: str, width: float) -> dict:
    """plain, a typical mixed candidate (seeded random of the space), RFA-heavy."""
    from attnsearch.architecture import Architecture
    from attnsearch.latency import random_architectures
    from attnsearch.spaces import load_space

    space = load_space(backbone)
    mixed = random_architectures(space, 1, seed=7, width=width)[0]
    return {
        "plain": Architecture.uniform(backbone),
        "mixed": mixed,
        "rfa_heavy": uniform(backbone, "rfaconv", width),
    }


def uniform(backbone: str, type_name: str, width: float):
    """``type_name`` in every slot: its defaults, else the first combination the shipped
    space of ``backbone`` allows in every slot at ``width`` (SA's 64 groups need 128+
    channels); None when there is none."""
    from attnsearch.architecture import Architecture, ArchitectureError
    from attnsearch.spaces import load_space

    try:
        return Architecture.uniform(backbone, type_name)
    except ArchitectureError:
        pass
    per_unit = [set(u.get(type_name, [])) for u in load_space(backbone).options(width)]
    common = set.intersection(*per_unit) if per_unit else set()
    for choice in sorted(common, key=str):
        try:
            return Architecture.uniform(backbone, type_name, **choice.params)
        except ArchitectureError:
            continue
    return None


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---- (a) one trial's wall-time split ------------------------------------------------------
def part_a_split(out: Path, smoke: bool, deadline: float) -> None:
    import torch
    from trial_overhead import direct_split

    from attnsearch.settings import ProxyConfig

    t = time.perf_counter()
    device = _device()
    if device.type == "cuda":
        torch.zeros(1, device=device)
        torch.cuda.synchronize()
    cuda_start = time.perf_counter() - t
    n_train, n_val = (64, 32) if smoke else (10_000, 2_000)
    data, source = cifar_shaped(n_train, n_val, 8 if smoke else 32)
    backbone, width = ("resnet18", 0.25) if smoke else ("resnet50", 0.5)
    epochs, batches = (2, (16, 32)) if smoke else (5, (128, 512))
    payload = {
        "device": str(device), "data": source, "train_images": n_train, "val_images": n_val,
        "backbone": backbone, "width": width, "epochs": epochs, "checkpoint_interval_s": 60,
        "cuda_context_seconds": cuda_start, "runs": [],
    }  # fmt: skip
    for bs in batches:
        for name, arch in candidates(backbone, width).items():
            if time.time() > deadline:
                payload["cut"] = "time budget"
                _write(out / "a_split.json", payload)
                return
            proxy = ProxyConfig(epochs=epochs, batch_size=bs, width=width)
            row = direct_split(arch, data, proxy, device, interval=60.0)
            steps = row["steps"]
            row |= {"candidate": name, "batch_size": bs, "images_per_s": epochs * n_train / steps}
            row["ratio_to_steps"] = {
                k: row[k] / max(1e-9, steps)
                for k in ("data", "build", "validate", "checkpoint", "worker_other")
            }
            row["fixed_share"] = (row["wall"] - steps) / max(1e-9, row["wall"])
            payload["runs"].append(row)
            _write(out / "a_split.json", payload)


# ---- (b) and (d) trials per GPU-hour with k trainers sharing ------------------------------
def _plain_trainer(cfg: dict, archs: list, rank: int, go, results) -> None:
    """One trainer process: data on the device, wait for the common start, train its trials."""
    import torch

    from attnsearch.architecture import Architecture
    from attnsearch.settings import ProxyConfig
    from attnsearch.training import train_candidate

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // cfg["k"]))
    device = _device()
    data, _ = cifar_shaped(cfg["train_images"], cfg["val_images"], cfg["size"], seed=rank)
    if device.type == "cuda":
        torch.zeros(1, device=device)
    results.put({"rank": rank, "ready": time.time()})
    if not go.wait(timeout=max(1.0, cfg["stop_at"] - time.time())):
        return
    pc = ProxyConfig(epochs=cfg["epochs"], batch_size=cfg["batch_size"], width=cfg["width"])
    for i, a in enumerate(archs):
        if time.time() > cfg["stop_at"]:
            break
        r = train_candidate(Architecture.from_json(a), data, pc, trial_seed=i, device=device)
        results.put({"rank": rank, "seconds": r.train_seconds, "end": time.time()})


def plain_sharing(cfg: dict, k: int, stop_at: float, env: dict | None = None) -> dict:
    """k plain trainer processes (spawned, this process group) sharing the device."""
    import multiprocessing as mp
    import queue

    from attnsearch.latency import random_architectures
    from attnsearch.spaces import load_space

    space = load_space(cfg["backbone"])
    archs = random_architectures(space, cfg["trials"], seed=7, width=cfg["width"])
    archs = [a.to_json() for a in archs]
    old = dict(os.environ)
    os.environ.update(env or {})
    ctx = mp.get_context("spawn")
    results, go = ctx.Queue(), ctx.Event()
    c = {**cfg, "k": k, "stop_at": stop_at - cfg["last_trial_s"]}
    procs = [
        ctx.Process(target=_plain_trainer, args=(c, archs[r::k], r, go, results)) for r in range(k)
    ]
    launched = time.time()
    for p in procs:
        p.start()
    os.environ.clear()
    os.environ.update(old)
    trials, ready, start_at = [], 0, None
    while time.time() < stop_at and any(p.is_alive() for p in procs):
        with contextlib.suppress(queue.Empty):
            msg = results.get(timeout=0.5)
            if "ready" in msg:
                ready += 1
                if ready == k:  # every trainer has its data and context: the clock starts
                    start_at = time.time()
                    go.set()
            else:
                trials.append(msg)
    for p in procs:
        p.join(timeout=1)
        if p.is_alive():
            p.kill()
    while True:
        try:
            trials.append(results.get_nowait())
        except (queue.Empty, OSError, ValueError):
            break
    entry = {"trainers": k, "gpu_share": 1 / k, "trials": len(trials), "ready": ready}
    if trials and start_at is not None:
        wall = max(t["end"] for t in trials) - start_at
        entry |= {
            "startup_seconds": start_at - launched,
            "wall_seconds": wall,
            "mean_trial_seconds": sum(t["seconds"] for t in trials) / len(trials),
            "trials_per_device_hour": 3600 * len(trials) / max(1e-9, wall),
        }
    return entry


def ray_sharing(cfg: dict, k: int, stop_at: float, folder: Path) -> dict:
    """The real ``attnsearch run`` with k trials sharing the GPU (1/k each)."""
    cuda = _device().type == "cuda"
    name = f"share{k}"
    cmd = [
        sys.executable, "-m", "attnsearch", "run", "--budget", "1e15",
        "--space", cfg["backbone"], "--dataset", "synthetic", "--resolution", str(cfg["size"]),
        "--epochs", str(cfg["epochs"]), "--width", str(cfg["width"]),
        "--batch-size", str(cfg["batch_size"]), "--trials", str(cfg["ray_trials"] * k),
        "--concurrency", str(k), "--gpus-per-trial", f"{1 / k:g}" if cuda else "0",
        "--cpus-per-trial", f"{max(1, (os.cpu_count() or 1) // k)}",
        "--sampler", "random", "--references", "none", "--repeats", "1",
        "--results-dir", str(folder), "--name", name,
    ]  # fmt: skip
    if cfg.get("limit"):
        cmd += ["--limit", str(cfg["limit"])]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        text, _ = proc.communicate(timeout=max(5.0, stop_at - time.time()))
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # stop cleanly: running trials end at their epoch
        try:
            text, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            text, _ = proc.communicate()
    wall = time.time() - t0
    entry = {"trainers": k, "gpu_share": 1 / k if cuda else 0, "rc": proc.returncode,
             "wall_seconds_with_ray_start": wall, "tail": text[-600:]}  # fmt: skip
    try:
        import optuna

        from attnsearch.results import open_study
        from attnsearch.rundir import RunDir

        run = RunDir.open(folder, name)
        study = open_study(run.path, run.record.study_name)
        done = [t for t in study.trials if t.user_attrs.get("trained") and t.datetime_complete]
        done = [t for t in done if t.state == optuna.trial.TrialState.COMPLETE]
        if done:
            first = min(t.datetime_start for t in study.trials).timestamp()
            last = max(t.datetime_complete for t in done).timestamp()
            entry |= {
                "trials": len(done),
                "wall_seconds": last - first,
                "mean_trial_seconds": sum(t.user_attrs.get("train_seconds", 0) for t in done)
                / len(done),
                "trials_per_device_hour": 3600 * len(done) / max(1e-9, last - first),
            }
    except Exception as e:  # the run did not get as far as its study
        entry["read_error"] = f"{type(e).__name__}: {e}"[:300]
    return entry


def _sharing_cfg(smoke: bool) -> dict:
    if smoke:
        return {"backbone": "tiny", "width": 0.25, "size": 8, "epochs": 1, "batch_size": 32,
                "train_images": 64, "val_images": 32, "trials": 4, "ray_trials": 1,
                "limit": 64, "last_trial_s": 2, "ks": (1, 2),
                "ray_ks": (2,)}  # fmt: skip
    return {"backbone": "resnet50", "width": 0.5, "size": 32, "epochs": 2, "batch_size": 128,
            "train_images": 5_120, "val_images": 1_024, "trials": 48, "ray_trials": 3,
            "limit": None, "last_trial_s": 6, "ks": (1, 4, 8),
            "ray_ks": (1, 4, 8)}  # fmt: skip


def part_b_sharing(out: Path, smoke: bool, deadline: float) -> None:
    cfg = _sharing_cfg(smoke)
    info = probe()
    use_ray = info["attnsearch_run"]
    missing = ", ".join(m for m, ok in info["imports"].items() if not ok)
    payload = {
        "method": "attnsearch run (Ray Tune, fractional GPUs)"
        if use_ray
        else f"plain trainer processes (attnsearch run cannot import {missing})",
        "config": cfg,
        "modes": [],
    }
    folder = Path(tempfile.mkdtemp(prefix="gpu_checks_b"))
    ks = cfg["ray_ks"] if use_ray else cfg["ks"]
    for i, k in enumerate(ks):
        stop_at = time.time() + (deadline - time.time()) / (len(ks) - i)
        entry = ray_sharing(cfg, k, stop_at, folder) if use_ray else plain_sharing(cfg, k, stop_at)
        payload["modes"].append(entry)
        _write(out / "b_sharing.json", payload)
    base = payload["modes"][0].get("trials_per_device_hour")
    for m in payload["modes"]:
        if base and m.get("trials_per_device_hour"):
            m["x_one_trainer"] = m["trials_per_device_hour"] / base
    _write(out / "b_sharing.json", payload)


def part_d_mps(out: Path, smoke: bool, deadline: float) -> None:
    control = shutil.which("nvidia-cuda-mps-control")
    cfg = _sharing_cfg(smoke)
    payload: dict = {"mps_control": control, "modes": []}
    if control is None or _device().type != "cuda":
        payload["mps"] = "not started: " + ("no nvidia-cuda-mps-control" if control is None
                                            else "no CUDA device")  # fmt: skip
        if not smoke:
            _write(out / "d_mps.json", payload)
            return
        payload["note"] = "smoke: the sharing code path without MPS"
        payload["modes"].append(plain_sharing(cfg, cfg["ks"][-1], deadline))
        _write(out / "d_mps.json", payload)
        return
    pipe, logs = tempfile.mkdtemp(prefix="mps_pipe"), tempfile.mkdtemp(prefix="mps_log")
    env = {"CUDA_MPS_PIPE_DIRECTORY": pipe, "CUDA_MPS_LOG_DIRECTORY": logs}
    started = subprocess.run([control, "-d"], env={**os.environ, **env}, capture_output=True,
                             text=True, timeout=30)  # fmt: skip
    payload["mps"] = {"start_rc": started.returncode, "stderr": started.stderr[-300:]}
    _write(out / "d_mps.json", payload)
    try:
        if started.returncode == 0:
            ks = [k for k in cfg["ks"] if k > 1]
            for i, k in enumerate(ks):
                stop_at = time.time() + (deadline - 10 - time.time()) / (len(ks) - i)
                payload["modes"].append(plain_sharing(cfg, k, stop_at, env=env))
                _write(out / "d_mps.json", payload)
    finally:
        with contextlib.suppress(Exception):
            subprocess.run([control], input="quit\n", env={**os.environ, **env},
                           capture_output=True, text=True, timeout=10)  # fmt: skip


# ---- (c) reference against fast formulation ----------------------------------------------
def part_c_formulations(out: Path, smoke: bool, deadline: float) -> None:
    import torch
    import torch.nn.functional as F

    import attnsearch.modules as modules
    from attnsearch.backbones import build_network

    device = _device()
    cuda = device.type == "cuda"
    hook = getattr(modules, "formulation", None)
    forms = ("reference", "fast") if hook is not None else ("only",)
    backbone, width, bs, size = ("resnet18", 0.25, 4, 8) if smoke else ("resnet50", 0.5, 128, 32)
    steps, rounds = (2, 1) if smoke else (10, 3)
    payload = {
        "hook": "attnsearch.modules.formulation" if hook is not None
        else "attnsearch.modules.formulation not found: the one formulation there is, timed",
        "device": str(device), "backbone": backbone, "width": width, "batch": bs, "size": size,
        "steps": steps, "rounds": rounds, "rows": [],
    }  # fmt: skip
    x = torch.randn(bs, 3, size, size, device=device)
    y = torch.randint(0, 10, (bs,), device=device)
    mf = torch.channels_last if cuda else torch.contiguous_format
    x = x.contiguous(memory_format=mf)
    for type_name in ("none", "rfaconv", "rfcbamconv", "rfcaconv", "sa"):
        if time.time() > deadline:
            payload["cut"] = "time budget"
            break
        torch.manual_seed(0)
        arch = uniform(backbone, type_name, width)
        if arch is None:
            payload["rows"].append({"type": type_name, "skipped": "not buildable in every slot"})
            continue
        net = build_network(arch, stem="proxy", width=width, num_classes=10)
        net = net.to(device).to(memory_format=mf)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        best = dict.fromkeys(forms, float("inf"))

        def step(net=net, opt=opt):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        for _ in range(rounds):
            for form in forms:
                ctx = hook(form) if hook is not None else contextlib.nullcontext()
                with ctx:
                    step()  # warm-up (cuDNN plans of this form)
                    if cuda:
                        torch.cuda.synchronize()
                    t = time.perf_counter()
                    for _ in range(steps):
                        step()
                    if cuda:
                        torch.cuda.synchronize()
                best[form] = min(best[form], (time.perf_counter() - t) / steps)
        row = {"type": type_name, **{f"{f}_ms": best[f] * 1e3 for f in forms}}
        if hook is not None:
            row["reference_over_fast"] = best["reference"] / best["fast"]
        payload["rows"].append(row)
        _write(out / "c_formulations.json", payload)
    plain = next((r for r in payload["rows"] if r["type"] == "none"), None)
    if plain:
        for r in payload["rows"]:
            for f in forms:
                r[f"{f}_x_plain"] = r[f"{f}_ms"] / plain[f"{f}_ms"]
    _write(out / "c_formulations.json", payload)


# ---- (e) a uniform panel ------------------------------------------------------------------
def part_e_panel(out: Path, smoke: bool, deadline: float) -> None:
    from attnsearch.datasets import load_dataset
    from attnsearch.modules.registry import REGISTRY
    from attnsearch.settings import ProxyConfig, batch_size_for
    from attnsearch.training import train_candidate

    device = _device()
    data = load_dataset("digits", seed=0, limit=64 if smoke else None)
    backbone, width, epochs = ("resnet18", 0.25, 1) if smoke else ("resnet50", 0.5, 2)
    pc = ProxyConfig(epochs=epochs, batch_size=batch_size_for(len(data.train_x)), width=width)
    payload = {"device": str(device), "task": "digits, default proxy", "backbone": backbone,
               "width": width, "epochs": epochs, "rows": []}  # fmt: skip
    for type_name in ("none", "se") if smoke else tuple(REGISTRY):  # "none" is its first entry
        for seed in (0,) if smoke else (0, 1):
            if time.time() > deadline:
                payload["cut"] = "time budget"
                _write(out / "e_panel.json", payload)
                return
            arch = uniform(backbone, type_name, width)
            if arch is None:
                break
            t = time.perf_counter()
            r = train_candidate(arch, data, pc, trial_seed=seed, device=device, keep_state=False)
            payload["rows"].append({"type": type_name, "seed": seed, "accuracy": r.accuracy,
                                    "seconds": time.perf_counter() - t})  # fmt: skip
            _write(out / "e_panel.json", payload)


def part_z_hang(out: Path, smoke: bool, deadline: float) -> None:
    """A part that overruns and leaves a detached grandchild (tests the kill): it writes
    the grandchild's pid and start time to ``z_hang.json``, then sleeps past any budget."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
    )
    from attnsearch.search._session import _stat

    _write(out / "z_hang.json", {"pid": child.pid, "start": _stat(child.pid)[1]})
    time.sleep(600)


TEST_PARTS = {"z_hang": (16, 16)}  # only when --only names them

PART_FNS = {
    "z_hang": part_z_hang,
    "a_split": part_a_split,
    "b_sharing": part_b_sharing,
    "c_formulations": part_c_formulations,
    "d_mps": part_d_mps,
    "e_panel": part_e_panel,
}


# ---- the driver: parts in process groups, every descendant ended --------------------------
def _subreaper() -> bool:
    """Orphans of the parts (daemons, a Ray's processes) become this process's children."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # SET_CHILD_SUBREAPER
    except Exception:
        return False


def _descendants() -> dict[int, int]:
    """Every live descendant of this process: pid -> start time."""
    from attnsearch.search._session import _descendants as below
    from attnsearch.search._session import _table

    table = _table()
    return {p: table[p][1] for p in below({os.getpid()}, table)}


def _kill_descendants(grace: float) -> int:
    """SIGTERM, then after ``grace`` s SIGKILL, every descendant (start times checked)."""
    from attnsearch.search._session import _stat

    found = _descendants()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid, start in found.items():
            st = _stat(pid)
            if st is not None and st[1] == start:
                with contextlib.suppress(OSError):
                    os.kill(pid, sig)
        end = time.time() + grace
        while time.time() < end and any(_stat(p) for p in found):
            time.sleep(0.1)
        found |= _descendants()
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    return len(found)


def run_part(name: str, budget: float, out: Path, smoke: bool, log) -> dict:
    deadline = time.time() + budget - 8  # the part's own cut: room to write and end
    cmd = [sys.executable, __file__, "--part", name, "--out", str(out), "--deadline",
           f"{deadline:.1f}", *(["--smoke"] if smoke else [])]  # fmt: skip
    log.write(f"\n==== {name} (budget {budget:.0f} s) ====\n")
    log.flush()
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    state = "done"
    try:
        proc.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        state = "killed at its time budget (what it wrote stays)"
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    left = _kill_descendants(3.0)
    if state == "done" and proc.returncode != 0:
        state = f"failed (exit {proc.returncode}; see log.txt)"
    return {"state": state, "seconds": round(time.time() - t0, 1), "budget_s": round(budget, 1),
            "leftover_processes_killed": left}  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks/gpu_checks.py", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="the folder for the files ($OUT)")
    p.add_argument("--smoke", action="store_true", help="every part on the CPU, CI-sized")
    p.add_argument("--time-limit", type=float, default=None, help=f"default {TIME_LIMIT} s")
    p.add_argument("--only", default=None, help="comma-separated parts (default: all)")
    p.add_argument("--part", default=None, help=argparse.SUPPRESS)  # run one part, here
    p.add_argument("--deadline", type=float, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.part:
        if args.smoke:
            os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the CPU check, even on a GPU machine
            import torch

            torch.set_num_threads(1)  # CI machines are small and shared
        PART_FNS[args.part](args.out, args.smoke, args.deadline or time.time() + 60)
        return 0
    t0 = time.time()
    limit = args.time_limit or (sum(s for _, _, s in PARTS) if args.smoke else TIME_LIMIT)
    reaper = _subreaper()
    status = {"probe": probe(), "smoke": args.smoke, "subreaper": reaper, "parts": {},
              "files": list(FILES), "time_limit_s": limit}  # fmt: skip
    if args.smoke:
        status["probe"]["note"] = "smoke: parts run with CUDA hidden"
    _write(args.out / "status.json", status)
    wanted = set(args.only.split(",")) if args.only else {n for n, _, _ in PARTS}
    parts = [(n, full, small) for n, full, small in PARTS if n in wanted]
    parts += [(n, *TEST_PARTS[n]) for n in sorted(wanted & set(TEST_PARTS))]
    slack = 0.0
    with open(args.out / "log.txt", "a") as log:
        try:
            for i, (name, full, small) in enumerate(parts):
                own = small if args.smoke else full
                rest = sum((s if args.smoke else f) for _, f, s in parts[i + 1 :])
                left = limit - (time.time() - t0)
                budget = min(own + slack, left - min(rest, 20 * (len(parts) - i - 1)))
                if budget < 15:
                    status["parts"][name] = {"state": "skipped: no time left"}
                    _write(args.out / "status.json", status)
                    continue
                status["parts"][name] = {"state": "running"}
                _write(args.out / "status.json", status)
                print(f"[{name}] budget {budget:.0f} s", flush=True)
                result = run_part(name, budget, args.out, args.smoke, log)
                status["parts"][name] = result
                slack = max(0.0, budget - result["seconds"])
                _write(args.out / "status.json", status)
                print(f"[{name}] {result['state']} in {result['seconds']} s", flush=True)
        finally:
            status["left_killed_at_exit"] = _kill_descendants(3.0)
            status["seconds"] = round(time.time() - t0, 1)
            _write(args.out / "status.json", status)
    extra = sorted(set(x.name for x in args.out.iterdir()) - set(FILES))
    if extra:
        print(f"unexpected files under --out: {extra}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
