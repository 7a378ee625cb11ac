"""Step time (forward + backward) of the RFA family and SA in both formulations.

For every slot shape of the ResNet-50 proxy (width 0.5, a 32×32 input, the small-image
stem), each module is built once and timed in the reference and the fast formulation
(:mod:`attnsearch.modules.formulations`), interleaved round by round in the same run; the
figure per shape is the minimum over the rounds (the machine may be shared), and the
"network" row sums the shapes weighted by how many slots of the proxy have them. Also
counted: the tensor copies one step dispatches (layout copies and other materialisations,
forward and backward; copies inside a kernel are not seen).

CPU: float32, one thread, the trainer's contiguous layout (``--channels-last`` for the
other); the time is the process's CPU time, which other work on the machine slows less
than wall time. CUDA: bf16 autocast + channels_last (the trainer's), wall time with a
synchronize.

    python benchmarks/rfa_formulations.py [--quick] [--device auto|cpu|cuda]
        [--batch N] [--rounds N] [--channels-last]

From another script, the formulation is chosen with
``attnsearch.modules.set_formulation("reference" | "fast" | "auto")`` or, for a block,
``with attnsearch.modules.formulation("fast"): ...``.
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

TYPES = ("rfaconv", "rfcbamconv", "rfcaconv", "sa")
FORMS = ("reference", "fast")


def _shapes(type_name: str, width: float, size: int, stem: str) -> Counter:
    """(in, out, stride, h, w) of each slot of a ResNet-50 -> how many slots."""
    from attnsearch import modules
    from attnsearch.backbones import slot_infos

    gate = modules.get(type_name).placement == "gate"
    shapes: Counter = Counter()
    # the small-image stem keeps the input size; the ImageNet stem divides it by 4
    h = size if stem == "proxy" else math.ceil(math.ceil(size / 2) / 2)
    for info in slot_infos("resnet50", width):
        h_out = -(-h // 2) if info.stride == 2 else h
        if gate:
            shapes[(info.out_channels, info.out_channels, 1, h_out, h_out)] += 1
        else:
            shapes[(info.conv_in, info.conv_out, info.stride, h, h)] += 1
        h = h_out
    return shapes


def _module(type_name: str, shape, device):
    import torch

    from attnsearch import modules

    spec = modules.get(type_name)
    cin, cout, stride = shape[:3]
    torch.manual_seed(0)
    if spec.placement == "gate":
        return spec.cls(cin).to(device)
    return spec.cls(cin, cout, stride).to(device)


def _step(module, x, device, forward_only: bool):
    import torch

    cuda = device.type == "cuda"

    def forward():
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            module(x)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            out = module(x)
        out.float().square().mean().backward()
        x.grad = None
        for p in module.parameters():
            p.grad = None

    return forward if forward_only else step


def _copies(step) -> int:
    """Tensor copies one step asks for (``clone``, ``copy_``, ``_to_copy`` dispatched by
    the formulation and its backward; copies inside a kernel are not seen)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Copies(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket.__name__ in ("clone", "copy_", "_to_copy"):
                Copies.n += 1
            return func(*args, **(kwargs or {}))

    with Copies():
        step()
    return Copies.n


def _time(step, device) -> float:
    C.sync(device)
    if device.type == "cpu":
        t0 = time.process_time()
        step()
        return time.process_time() - t0
    t0 = time.perf_counter()
    step()
    C.sync(device)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = C.parser("rfa_formulations", __doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=None, help="default: 32 on CPU, 128 on CUDA")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (default 7; quick 2)")
    p.add_argument("--width", type=float, default=0.5, help="proxy width (default 0.5)")
    p.add_argument("--size", type=int, default=32, help="input size (default 32)")
    p.add_argument("--stem", choices=("proxy", "deploy"), default="proxy", help="slot shapes")
    p.add_argument("--forward", action="store_true", help="eval forward only (latency)")
    p.add_argument("--channels-last", action="store_true", help="CPU: channels_last inputs")
    p.add_argument("--types", default=",".join(TYPES), help="comma-separated subset")
    args = p.parse_args(argv)

    import torch

    from attnsearch.modules import formulation

    device = C.resolve_device(args.device)
    cuda = device.type == "cuda"
    if not cuda:
        torch.set_num_threads(1)
    else:
        torch.backends.cudnn.benchmark = True
    batch = args.batch or (128 if cuda else 32)
    rounds = args.rounds or (2 if args.quick else 7)
    if args.quick:
        batch = min(batch, 4)
    channels_last = cuda or args.channels_last
    mf = torch.channels_last if channels_last else torch.contiguous_format
    types = [t for t in args.types.split(",") if t]
    unknown = sorted(set(types) - set(TYPES))
    if unknown:
        print(f"--types: unknown {', '.join(unknown)} (valid: {', '.join(TYPES)})")
        return 2

    busy = C.wait_for_quiet(timeout=0 if args.quick else 60)
    rows, records = [], []
    for type_name in types:
        shapes = _shapes(type_name, args.width, 8 if args.quick else args.size, args.stem)
        total = dict.fromkeys(FORMS, 0.0)
        for shape, n_slots in shapes.items():
            module = _module(type_name, shape, device).train(not args.forward)
            if channels_last:
                module = module.to(memory_format=torch.channels_last)
            gen = torch.Generator(device="cpu").manual_seed(1)
            x = torch.randn(batch, shape[0], shape[3], shape[4], generator=gen).to(device)
            x = x.contiguous(memory_format=mf).requires_grad_(not args.forward)
            step = _step(module, x, device, args.forward)
            best = dict.fromkeys(FORMS, float("inf"))
            copies = {}
            for form in FORMS:  # warm-up (cuDNN autotuning), then the copies of one step
                with formulation(form):
                    step()
                    step()
                    copies[form] = _copies(step)
            for _ in range(rounds):
                for form in FORMS:
                    with formulation(form):
                        best[form] = min(best[form], _time(step, device))
            for form in FORMS:
                total[form] += n_slots * best[form]
            cin, cout, stride, h, w = shape
            label = f"{cin}→{cout} s{stride} {h}²" if stride else f"{cin} {h}²"
            if type_name == "sa":
                label = f"{cin} ch, {h}²"
            ref, fast = best["reference"] * 1e3, best["fast"] * 1e3
            rows.append(
                [
                    type_name,
                    label,
                    n_slots,
                    f"{ref:.2f}",
                    f"{fast:.2f}",
                    f"{ref / fast:.2f}",
                    *(f"{copies[f]}" for f in FORMS),
                ]
            )
            records.append(
                {
                    "type": type_name,
                    "shape": list(shape),
                    "slots": n_slots,
                    "reference_ms": ref,
                    "fast_ms": fast,
                    "copies": copies,
                }
            )
        ref, fast = total["reference"] * 1e3, total["fast"] * 1e3
        rows.append(
            [
                type_name,
                "network (slot-weighted)",
                16,
                f"{ref:.1f}",
                f"{fast:.1f}",
                f"{ref / fast:.2f}",
                "",
                "",
            ]
        )
        records.append({"type": type_name, "network_reference_ms": ref, "network_fast_ms": fast})

    what = "CPU time, 1 thread, float32" if not cuda else "wall, bf16 autocast"
    what += ", eval forward" if args.forward else ", training fwd+bwd"
    what += f", ResNet-50 {args.stem} slots at width {args.width}, {args.size}² input"
    layout = "channels_last" if channels_last else "contiguous"
    columns = ["type", "slot shape", "slots", "reference ms", "fast ms", "ref/fast"]
    columns += ["copies ref", "copies fast"]
    C.print_table(
        f"per step, batch {batch}, {what}, {layout}, min of {rounds} rounds "
        f"(CPU busy before start: {busy if busy is None else f'{busy:.0%}'})",
        columns,
        rows,
    )
    info = C.machine(device)
    info.update(
        batch=batch,
        rounds=rounds,
        layout=layout,
        busy_before=busy,
        stem=args.stem,
        width=args.width,
        size=args.size,
        forward_only=args.forward,
    )
    C.write_json(args.out, {"machine": info, "results": records})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
