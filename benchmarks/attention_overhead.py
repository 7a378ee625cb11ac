"""Training-step time of a ResNet with one attention type in every slot, against plain.

For each backbone (ResNet-50, ResNet-18) and each registered type, the deploy network
(ImageNet stem) with that type in every slot takes SGD training steps on one fixed random
batch; the plain network is measured in the same run, interleaved round by round with the
others, and every figure is a ratio against it, beside the ratio of analytic FLOPs.

CPU: float32 at a small size (default batch 8 × 3×64×64, so the script stays within a few
minutes on 2 cores). CUDA: bf16 autocast + channels_last, batch 64 × 3×224×224.

    python benchmarks/attention_overhead.py [--quick] [--device auto|cpu|cuda]
    python benchmarks/attention_overhead.py --profile sa   # torch.profiler excerpt
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

# Where a type's defaults cannot be built in every slot of a backbone, these are used.
FALLBACK = {"sa": {"groups": 32}}  # ResNet-18's 64-channel stage needs 2*G | 64


def _arch(backbone: str, type_name: str, size: int):
    from attnsearch.architecture import Architecture, ArchitectureError

    for hp in ({}, FALLBACK.get(type_name)):
        if hp is None:
            break
        try:
            arch = Architecture.uniform(backbone, type_name, **hp)
        except ArchitectureError:
            continue
        return Architecture(arch.backbone, arch.slots, 1000, (3, size, size)), hp
    return None, None


def _step_fn(model, x, y, device):
    import torch
    import torch.nn.functional as F

    cuda = device.type == "cuda"
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def _prepare(arch, batch: int, size: int, device):
    import torch

    from attnsearch.backbones import build_network

    model = build_network(arch).to(device).train()
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return model, x, y


def measure(backbone: str, types, batch, size, device, rounds, steps_per_round):
    """Median seconds per training step of each type, interleaved round by round."""
    from attnsearch.flops.analytic import analytic_flops

    entries = []
    for t in types:
        arch, hp = _arch(backbone, t, size)
        if arch is None:
            entries.append({"type": t, "skipped": "defaults invalid in some slot"})
            continue
        model, x, y = _prepare(arch, batch, size, device)
        step = _step_fn(model, x, y, device)
        for _ in range(2):  # warm-up (allocator, cudnn autotune, first-touch)
            step()
        C.sync(device)
        entries.append(
            {"type": t, "hparams": hp, "flops": analytic_flops(arch), "step": step, "times": []}
        )
    live = [e for e in entries if "step" in e]
    for _ in range(rounds):
        for e in live:
            t0 = time.perf_counter()
            for _ in range(steps_per_round):
                e["step"]()
            C.sync(device)
            e["times"].append((time.perf_counter() - t0) / steps_per_round)
    base = next(e for e in live if e["type"] == "none")
    base_t = min(base["times"])
    for e in live:
        e["median_seconds"] = statistics.median(e["times"])
        e["seconds"] = min(e["times"])
        e["time_ratio"] = e["seconds"] / base_t
        e["flops_ratio"] = e["flops"] / base["flops"]
        extra = e["flops_ratio"] - 1
        e["excess"] = (e["time_ratio"] - 1) / extra if extra > 1e-9 else float("nan")
        del e["step"]
    return entries


def profile(type_name: str, backbone: str, batch: int, size: int, device, top: int) -> str:
    """torch.profiler table of one training step of the uniform-``type_name`` network."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as tprofile

    arch, _ = _arch(backbone, type_name, size)
    model, x, y = _prepare(arch, batch, size, device)
    step = _step_fn(model, x, y, device)
    for _ in range(2):
        step()
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with tprofile(activities=activities) as prof:
        for _ in range(3):
            step()
        C.sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=top, max_name_column_width=40)


def main(argv=None) -> int:
    p = C.parser("attention_overhead", __doc__.splitlines()[0])
    p.add_argument("--backbones", default="resnet50,resnet18")
    p.add_argument("--types", default=None, help="comma-separated (default: all registered)")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--size", type=int, default=None, help="input side (deploy stem)")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--profile", metavar="TYPE", default=None, help="profile one type and exit")
    p.add_argument("--top", type=int, default=15, help="profiler rows")
    args = p.parse_args(argv)

    import torch

    from attnsearch import modules

    device = C.resolve_device(args.device)
    cuda = device.type == "cuda"
    batch = args.batch or (64 if cuda else 8)
    size = args.size or (224 if cuda else 64)
    if args.quick:
        batch, size = (16, 128) if cuda else (4, 32)
    rounds = args.rounds or (3 if args.quick else 7)
    steps_per_round = 10 if cuda else 1
    backbones = args.backbones.split(",")
    types = args.types.split(",") if args.types else list(modules.REGISTRY)  # none first
    if "none" not in types:
        types.insert(0, "none")  # the baseline every ratio is against
    if cuda:
        torch.backends.cudnn.benchmark = True

    if args.profile:
        print(f"profile: {args.profile} in every slot of {backbones[0]}, batch {batch}×3×{size}²")
        print(profile(args.profile, backbones[0], batch, size, device, args.top))
        return 0

    mode = "bf16 autocast + channels_last" if cuda else "float32"
    busy = C.wait_for_quiet()
    print(
        f"{device} {mode}; batch {batch} × 3×{size}×{size}; best of {rounds} interleaved "
        f"rounds; CPUs busy before start: {busy:.0%}"
    )
    results = {}
    for bb in backbones:
        entries = measure(bb, types, batch, size, device, rounds, steps_per_round)
        results[bb] = entries
        rows = []
        for e in entries:
            if "skipped" in e:
                rows.append([e["type"], "-", "-", "-", "-", e["skipped"]])
                continue
            hp = ",".join(f"{k}={v}" for k, v in (e["hparams"] or {}).items())
            rows.append(
                [
                    e["type"] + (f" ({hp})" if hp else ""),
                    e["seconds"] * 1e3,
                    e["time_ratio"],
                    e["flops_ratio"],
                    e["excess"],
                    f"{e['flops'] / 1e9:.3f}",
                ]
            )
        C.print_table(
            f"{bb}: training step, {mode}, batch {batch}×3×{size}² (ratios vs none, same run)",
            ["type", "ms/step", "time ×", "FLOPs ×", "excess", "GFLOPs/img"],
            rows,
        )
    print("excess = (time× − 1) / (FLOPs× − 1): 1 means the extra time is what the FLOPs say")
    C.write_json(
        args.out,
        {
            "benchmark": "attention_overhead",
            "machine": C.machine(device),
            "mode": mode,
            "batch": batch,
            "input": [3, size, size],
            "rounds": rounds,
            "estimator": "min over interleaved rounds (median kept as median_seconds)",
            "busy_before_start": busy,
            "steps_per_round": steps_per_round,
            "results": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
