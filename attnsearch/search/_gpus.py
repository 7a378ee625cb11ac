"""GPUs per trial: ``--gpus-per-trial auto`` resolved against the connected Ray cluster, and
the checks that keep a GPU search from training on CPUs without saying so.

The rule for ``auto`` (the default): no GPU in the cluster, 0 (trials train on CPUs); with
GPUs, each trial gets ``1/k`` of a GPU, where ``k = ceil(concurrency / GPUs)`` trials share
one, at most :data:`MAX_SHARING`: the whole ``--concurrency`` runs at once on the cluster's
GPUs, never more trials on one GPU than were measured to gain from it (benchmarks/RESULTS.md
§11: 4 proxies sharing an H200 gave 1.61x the trials per GPU-hour of one; more per GPU were
never measured). Fewer trials than GPUs get a whole GPU each.
"""

from __future__ import annotations

import math
import os

from attnsearch.errors import InputError

MAX_SHARING = 4  # trials per GPU at most under auto (RESULTS.md §11: 4 per H200, 1.61x)


def cluster_gpus() -> float:
    """GPUs of the alive nodes of the connected Ray cluster, in all."""
    import ray

    return float(sum(n.get("Resources", {}).get("GPU", 0.0) for n in ray.nodes() if n.get("Alive")))


def auto_share(gpus: float, concurrency: int) -> float:
    """The GPU share of one trial under ``auto`` (see the module docstring)."""
    if gpus <= 0:
        return 0.0
    per_gpu = min(MAX_SHARING, max(1, math.ceil(concurrency / gpus)))
    return 1.0 / per_gpu


def torch_cuda_problem() -> str | None:
    """Why this process's torch cannot train on CUDA at all (a CPU-only build), or None."""
    import torch

    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return f"torch {torch.__version__} is built without CUDA"
    return None


def cuda_problem() -> str | None:
    """Why this process cannot train on CUDA (CPU-only torch, no visible device, a driver
    that fails to initialise), or None when it can."""
    problem = torch_cuda_problem()
    if problem:
        return problem
    import torch

    try:
        if not torch.cuda.is_available():
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            return f"torch.cuda.is_available() is False (CUDA_VISIBLE_DEVICES={visible!r})"
        torch.cuda.init()
    except Exception as e:  # a broken driver raises here
        return f"CUDA cannot be initialised: {type(e).__name__}: {e}".splitlines()[0][:200]
    return None


def resolve_gpus(requested: float | None, concurrency: int) -> tuple[float, str | None]:
    """``(share, line)``: the GPUs each trial reserves on the connected cluster, and the one
    line the start of the run shows about it (None: nothing to say).

    ``requested`` None is ``auto``. Call after connecting to Ray, before any trial; then
    :func:`check_driver_torch`.
    """
    gpus = cluster_gpus()
    if requested is None:
        share = auto_share(gpus, concurrency)
        if share == 0:
            return 0.0, None
        per_gpu = round(1 / share)
        line = (
            f"GPUs: {share:g} GPU per trial (--gpus-per-trial auto: {concurrency} trial(s) at "
            f"once on the cluster's {gpus:g} GPU(s), at most {MAX_SHARING} sharing one"
            f"{'' if per_gpu < MAX_SHARING else ', the most measured to gain (1.61x)'})"
        )
    else:
        share = float(requested)
        line = None
        if share == 0 and gpus > 0:
            return 0.0, (
                f"warning: --gpus-per-trial 0 on a Ray cluster with {gpus:g} GPU(s): trials "
                "train on CPUs (the default, auto, uses the GPUs)"
            )
    return share, line


def check_driver_torch(share: float) -> None:
    """Refuse trials that reserve GPUs when this driver's torch is built without CUDA.

    Raises:
        InputError: one line saying why and what to do.
    """
    if share <= 0:
        return
    problem = torch_cuda_problem()
    if problem:
        raise InputError(
            f"trials would reserve {share:g} GPU each but this {problem} (no trial can "
            "train on a GPU): install a CUDA build of torch, or pass --gpus-per-trial 0 "
            "to train on CPUs"
        )


def trial_device(reserved_gpus: float):
    """The device of a trial that reserved ``reserved_gpus`` GPUs: CUDA when it reserved
    some, the CPU otherwise.

    Raises:
        RuntimeError: it reserved a GPU but cannot use CUDA (the message says why); the
            trial fails with that reason instead of training on the CPU.
    """
    import torch

    if reserved_gpus <= 0:
        return torch.device("cpu")
    problem = cuda_problem()
    if problem:
        raise RuntimeError(f"reserved {reserved_gpus:g} GPU but cannot use CUDA: {problem}")
    return torch.device("cuda")
