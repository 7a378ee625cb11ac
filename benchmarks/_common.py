"""Shared helpers of the benchmark scripts: flags, devices, timing, peaks, tables, JSON.

Not part of the package and never imported by the tests. Every script runs with plain
``python benchmarks/NAME.py`` from the repository root.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) from the vendors' data sheets.
PEAK_TFLOPS = {
    "H100 SXM": 989.0,
    "H100 PCIe": 756.0,
    "H200": 989.0,
    "A100": 312.0,
}


def parser(name: str, description: str) -> argparse.ArgumentParser:
    """The flags every script shares: --device, --quick, --out, --peak-tflops."""
    p = argparse.ArgumentParser(prog=f"benchmarks/{name}.py", description=description)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--quick", action="store_true", help="smoke mode: tiny sizes, few repeats")
    p.add_argument(
        "--out",
        type=Path,
        default=HERE / "results" / f"{name}.json",
        help=f"where the JSON goes (default: benchmarks/results/{name}.json)",
    )
    p.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="device peak for MFU (default: table of known GPUs; CPU: measured matmul)",
    )
    return p


def resolve_device(flag: str):
    import torch

    if flag == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is visible")
    if flag == "auto":
        flag = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(flag)


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def median_time(
    fn: Callable[[], Any], device, *, warmup: int = 2, repeats: int = 5
) -> tuple[float, list[float]]:
    """Median wall seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def _cpu_ticks() -> tuple[int, int]:
    with open("/proc/stat") as f:
        parts = [int(v) for v in f.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


def system_busy(seconds: float = 1.0) -> float | None:
    """Share of all CPUs busy over ``seconds`` (Linux; None elsewhere)."""
    try:
        b0, t0 = _cpu_ticks()
        time.sleep(seconds)
        b1, t1 = _cpu_ticks()
    except OSError:
        return None
    return (b1 - b0) / max(1, t1 - t0)


def wait_for_quiet(limit: float = 0.25, timeout: float = 120.0) -> float | None:
    """Wait (up to ``timeout`` s) until other work uses at most ``limit`` of the CPUs.

    Returns the last busy share measured. On a shared machine the figures are still
    best-of-rounds, but starting in a quiet moment avoids most of the noise.
    """
    deadline = time.monotonic() + timeout
    busy = system_busy()
    while busy is not None and busy > limit and time.monotonic() < deadline:
        busy = system_busy(2.0)
    return busy


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device) -> dict[str, Any]:
    """What the figures were measured on (goes into every JSON)."""
    import torch

    info = {
        "date": _dt.date.today().isoformat(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    try:
        rev = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        info["git"] = rev or None
    except OSError:
        info["git"] = None
    return info


def measured_cpu_peak_tflops(n: int = 2048, repeats: int = 5) -> float:
    """fp32 TFLOP/s of a large matmul on this CPU: a *measured stand-in* for the peak."""
    import torch

    a = torch.randn(n, n)
    b = torch.randn(n, n)
    sec, _ = median_time(lambda: a @ b, torch.device("cpu"), warmup=2, repeats=repeats)
    return 2 * n**3 / sec / 1e12


def peak_tflops(device, flag: float | None) -> tuple[float, str]:
    """(peak TFLOP/s, where it came from) for MFU."""
    if flag is not None:
        return flag, "--peak-tflops"
    if device.type == "cuda":
        import torch

        name = torch.cuda.get_device_name(device)
        for key, value in PEAK_TFLOPS.items():
            if all(part in name for part in key.split()):
                return value, f"table ({key} bf16 dense)"
        for key, value in PEAK_TFLOPS.items():
            if key.split()[0] in name:
                return value, f"table ({key} bf16 dense)"
        sys.exit(f"no peak known for {name!r}; pass --peak-tflops")
    return measured_cpu_peak_tflops(), "measured fp32 2048² matmul (stand-in for the peak)"


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A rich table when rich is importable, else plain aligned text."""
    cells = [[_fmt(v) for v in row] for row in rows]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        print(title)
        print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
        for r in cells:
            print("  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)))
        return
    print(title)
    table = Table()
    for i, c in enumerate(columns):
        table.add_column(c, justify="left" if i == 0 else "right")
    for r in cells:
        table.add_row(*r)
    Console(width=160).print(table)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v:  # NaN
            return "-"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.3g}" if abs(v) < 0.01 else f"{v:.2f}"
    return str(v)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"wrote {path}")
