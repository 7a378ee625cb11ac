"""Images/s and model-FLOPs utilisation of the proxy trainer, plain and with attention.

Runs :func:`attnsearch.training.train_candidate` itself (the code a search trial runs) on
CIFAR-10-shaped data: the CIFAR-10 archive from ``--data-dir`` when it is there, otherwise
random uint8 images of the same shape (throughput does not depend on the pixels). Each
candidate is the proxy network (3×3 stem, no max-pool, ``--width``) with one type in every
slot. The steady-state figure is the last epoch (training + the batched validation pass);
the first epoch carries the warm-up.

MFU = achieved model FLOP/s ÷ peak. Model FLOPs per image: the traced forward count with a
multiply-accumulate as 2 FLOPs for convolutions and linear layers and every other counted
op as 1, times 3 for a training image (forward + backward), times 1 for a validation image.
Peak: ``--peak-tflops``, else the table of known GPUs (bf16 dense), else — on CPU — a
large fp32 matmul measured in the same run (a stand-in, not a data-sheet peak).

``--compile`` also measures ``torch.compile`` (inductor) on the same training step: the
compile time against the per-step saving, and whether it pays within one trial.

    python benchmarks/proxy_throughput.py [--quick] [--compile] [--device auto|cpu|cuda]
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

# Where a type's defaults cannot be built at the proxy width, these are used instead.
FALLBACK = {"epsa": {"splits": 2}, "sa": {"groups": 16}}
CPU_TYPES = "none,se,eca,cbam,sa,ca,epsa,rfaconv"


def load_data(data_dir: str, n_train: int | None, n_val: int | None, seed: int = 0):
    """CIFAR-10 when its archive is present, else random data of the same shape."""
    import torch

    from attnsearch.datasets import Dataset, DatasetError, load_dataset

    try:
        data = load_dataset("cifar10", data_dir=data_dir, download=False, seed=seed)
        source = "cifar10"
    except DatasetError:
        g = torch.Generator().manual_seed(seed)
        n_tr, n_va = 45_000, 5_000
        data = Dataset(
            name="random-cifar10-shaped",
            train_x=torch.randint(0, 256, (n_tr, 3, 32, 32), dtype=torch.uint8, generator=g),
            train_y=torch.randint(0, 10, (n_tr,), generator=g),
            val_x=torch.randint(0, 256, (n_va, 3, 32, 32), dtype=torch.uint8, generator=g),
            val_y=torch.randint(0, 10, (n_va,), generator=g),
            num_classes=10,
            mean=(0.5, 0.5, 0.5),
            std=(0.29, 0.29, 0.29),
            classes=tuple(str(i) for i in range(10)),
        )
        source = "random uint8, CIFAR-10 shape (archive absent)"
    data = replace(
        data,
        train_x=data.train_x[:n_train],
        train_y=data.train_y[:n_train],
        val_x=data.val_x[:n_val],
        val_y=data.val_y[:n_val],
    )
    return data, source


def proxy_arch(backbone: str, type_name: str, width: float):
    """The uniform architecture of ``type_name`` that builds at the proxy ``width``."""
    from attnsearch.architecture import Architecture, ArchitectureError
    from attnsearch.backbones import build_network

    for hp in ({}, FALLBACK.get(type_name)):
        if hp is None:
            break
        try:
            arch = Architecture.uniform(backbone, type_name, **hp)
            build_network(arch, stem="proxy", width=width, num_classes=10)
        except (ArchitectureError, ValueError):
            continue
        return arch, hp
    return None, None


def model_flops_per_image(arch, width: float, shape) -> tuple[float, int]:
    """(forward model FLOPs with MAC = 2 for conv/linear, attnsearch's FLOPs figure)."""
    from attnsearch.backbones import build_network
    from attnsearch.flops.counter import count

    net = build_network(arch, stem="proxy", width=width, num_classes=10, in_channels=shape[0])
    c = count(net, shape)
    return 2 * c.macs_conv_linear + (c.flops - c.macs_conv_linear), c.flops


def run_trial(arch, data, cfg, device):
    """Train once; wall seconds per epoch from the trainer's own report callback."""
    from attnsearch.training import train_candidate

    marks = []

    def report(epoch, acc, state):
        C.sync(device)
        marks.append(time.perf_counter())

    t0 = time.perf_counter()
    result = train_candidate(arch, data, cfg, device=device, report=report)
    epochs = [b - a for a, b in zip([t0, *marks[:-1]], marks, strict=True)]
    return result, epochs


def compile_check(arch, data, cfg, device, steps: int) -> dict:
    """Eager vs ``torch.compile`` on the trainer's training step (same model, data, batch)."""
    import torch
    import torch.nn.functional as F

    from attnsearch.backbones import build_network

    cuda = device.type == "cuda"
    x = data.train_x[: cfg.batch_size].to(device)
    mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
    mf = torch.channels_last if cuda else torch.contiguous_format
    xb = ((x.float() / 255 - mean) / std).contiguous(memory_format=mf)
    yb = data.train_y[: cfg.batch_size].to(device)
    xv = data.val_x[:512].to(device)
    xv = ((xv.float() / 255 - mean) / std).contiguous(memory_format=mf)
    out = {}
    for label in ("eager", "compiled"):
        torch.manual_seed(0)
        model = build_network(arch, stem="proxy", width=cfg.width, num_classes=10).to(device)
        model = model.to(memory_format=mf)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
        fwd = torch.compile(model) if label == "compiled" else model

        def step(fwd=fwd, model=model, opt=opt):
            model.train()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                loss = F.cross_entropy(fwd(xb), yb, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        def evaluate(fwd=fwd, model=model):
            model.eval()
            with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=cuda):
                fwd(xv).argmax(1)

        if label == "compiled":
            torch._dynamo.reset()
        t0 = time.perf_counter()
        step()
        C.sync(device)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        evaluate()
        C.sync(device)
        first_eval = time.perf_counter() - t0
        step_s, _ = C.median_time(step, device, warmup=1, repeats=steps)
        eval_s, _ = C.median_time(evaluate, device, warmup=1, repeats=3)
        out[label] = {
            "first_step_s": first,
            "first_eval_s": first_eval,
            "step_s": step_s,
            "eval_s": eval_s,
        }
    e, c = out["eager"], out["compiled"]
    compile_s = (c["first_step_s"] - c["step_s"]) + (c["first_eval_s"] - c["eval_s"])
    compile_s -= (e["first_step_s"] - e["step_s"]) + (e["first_eval_s"] - e["eval_s"])
    saving = e["step_s"] - c["step_s"]
    out["compile_seconds"] = compile_s
    out["saving_per_step_s"] = saving
    out["break_even_steps"] = compile_s / saving if saving > 0 else float("inf")
    return out


def main(argv=None) -> int:
    p = C.parser("proxy_throughput", __doc__.splitlines()[0])
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--types", default=None, help="comma-separated (default: a CPU-sized set)")
    p.add_argument("--width", type=float, default=0.5)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train-images", type=int, default=None)
    p.add_argument("--val-images", type=int, default=None)
    p.add_argument("--data-dir", default="data")
    p.add_argument("--compile", action="store_true", help="also measure torch.compile")
    p.add_argument("--compile-types", default="none")
    args = p.parse_args(argv)

    import torch

    from attnsearch import modules
    from attnsearch.training import ProxyConfig

    device = C.resolve_device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        n_train, n_val, bs = args.train_images, args.val_images, args.batch_size or 512
        types = args.types or ",".join(modules.REGISTRY)  # "none" (the plain block) first
    else:
        n_train = args.train_images or (128 if args.quick else 256)
        n_val = args.val_images or (64 if args.quick else 128)
        bs = args.batch_size or 32  # 2 cores: a 128-image step of this proxy takes seconds
        types = args.types or ("none,se" if args.quick else CPU_TYPES)
    data, source = load_data(args.data_dir, n_train, n_val)
    shape = tuple(data.train_x.shape[1:])
    peak, peak_src = C.peak_tflops(device, args.peak_tflops)
    cfg = ProxyConfig(epochs=args.epochs, batch_size=bs, width=args.width, flip=True)
    mode = "bf16 autocast + channels_last" if cuda else "float32"
    print(
        f"{device} {mode}; {args.backbone} proxy width {args.width}, batch {bs}, "
        f"{len(data.train_x)} train + {len(data.val_x)} val images {shape}, {source}; "
        f"{cfg.epochs} epochs; peak {peak:.3g} TFLOP/s ({peak_src})"
    )

    rows, results = [], []
    base = None
    for t in types.split(","):
        arch, hp = proxy_arch(args.backbone, t, args.width)
        if arch is None:
            rows.append([t, "-", "-", "-", "-", "-", "not buildable at this width"])
            continue
        fwd, flops = model_flops_per_image(arch, args.width, shape)
        result, epochs = run_trial(arch, data, cfg, device)
        steady = epochs[-1]
        n_tr = (len(data.train_x) // min(bs, len(data.train_x))) * min(bs, len(data.train_x))
        n_va = len(data.val_x)
        img_s = n_tr / steady
        achieved = (3 * n_tr + n_va) * fwd / steady
        mfu = achieved / (peak * 1e12)
        entry = {
            "type": t,
            "hparams": hp,
            "epoch_seconds": epochs,
            "train_seconds": result.train_seconds,
            "images_per_s": img_s,
            "model_gflop_per_image_fwd": fwd / 1e9,
            "attnsearch_flops_per_image": flops,
            "achieved_tflops": achieved / 1e12,
            "mfu": mfu,
            "accuracy": result.accuracy,
        }
        base = base or entry
        entry["throughput_ratio"] = img_s / base["images_per_s"]
        entry["flops_ratio"] = fwd / (base["model_gflop_per_image_fwd"] * 1e9)
        results.append(entry)
        label = t + (" (" + ",".join(f"{k}={v}" for k, v in hp.items()) + ")" if hp else "")
        rows.append(
            [
                label,
                img_s,
                entry["throughput_ratio"],
                entry["flops_ratio"],
                fwd / 1e9 * 1e3,
                achieved / 1e9,
                f"{100 * mfu:.1f}%",
            ]
        )
    C.print_table(
        "proxy trainer, last epoch (train + validation), ratios vs none in the same run",
        ["type", "img/s", "img/s ×", "FLOPs ×", "MFLOP/img fwd", "GFLOP/s", "MFU"],
        rows,
    )

    payload = {
        "benchmark": "proxy_throughput",
        "machine": C.machine(device),
        "mode": mode,
        "data": source,
        "train_images": len(data.train_x),
        "val_images": len(data.val_x),
        "input": list(shape),
        "config": cfg.to_dict(),
        "backbone": args.backbone,
        "peak_tflops": peak,
        "peak_source": peak_src,
        "results": results,
    }
    if args.compile:
        steps_per_epoch = max(1, len(data.train_x) // bs)
        cifar_steps = 2 * (40_000 // bs)
        crow, compiled = [], {}
        for t in args.compile_types.split(","):
            arch, _ = proxy_arch(args.backbone, t, args.width)
            r = compile_check(arch, data, cfg, device, steps=3 if args.quick else 5)
            compiled[t] = r
            pays_here = r["break_even_steps"] <= cfg.epochs * steps_per_epoch
            pays_cifar = r["break_even_steps"] <= cifar_steps
            crow.append(
                [
                    t,
                    r["eager"]["step_s"] * 1e3,
                    r["compiled"]["step_s"] * 1e3,
                    r["eager"]["eval_s"] * 1e3,
                    r["compiled"]["eval_s"] * 1e3,
                    r["compile_seconds"],
                    r["break_even_steps"],
                    f"{'yes' if pays_here else 'no'} ({cfg.epochs * steps_per_epoch} steps)",
                    f"{'yes' if pays_cifar else 'no'} ({cifar_steps} steps)",
                ]
            )
        C.print_table(
            f"torch.compile (inductor) on the training step, batch {bs}",
            [
                "type",
                "eager ms/step",
                "compiled ms/step",
                "eager ms/eval",
                "compiled ms/eval",
                "compile s",
                "break-even steps",
                "pays in this trial",
                "pays in a 2-epoch CIFAR-10 trial",
            ],
            crow,
        )
        payload["compile"] = compiled
        payload["torch_threads"] = torch.get_num_threads()
    C.write_json(args.out, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
