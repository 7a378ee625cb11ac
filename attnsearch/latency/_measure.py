"""Measuring latency tables: per-block timing, calibration, validation (issue 13).

Like FBNet's per-block lookup tables (Wu et al., arXiv:1812.03443) and nn-Meter (Zhang et
al., MobiSys 2021), every choice a space allows in every slot is measured as a whole
residual block in that slot's own context (input shape, stride, channels), plus the stem
and the head.

Isolated blocks do not add up exactly to the network (caches stay warm across repeats of
one block, boundaries between blocks cost something, a framework adds per-call overhead),
so :func:`build_table` times a few *calibration* networks end to end and fits one scale
factor ``measured ≈ scale × Σ parts`` (the median of the measured/summed ratios, robust
to one disturbed network), stored in the table and applied by
:meth:`~attnsearch.latency.LatencyTable.predict`; :meth:`~attnsearch.latency.LatencyTable.raw`
is the plain sum. :func:`validate` reports both errors on other, seeded random architectures.

Timing: ``torch.inference_mode``, eval mode, warm-up calls, then ``repeats`` samples; each
sample runs the module enough times to last ``min_sample_ms`` (so tiny blocks are not
lost in timer resolution) and the median per-call time is kept (``estimator="min"`` keeps
the fastest sample instead: on a shared machine contention only ever adds time, so the
minimum is the better estimate of the machine's own latency). On CUDA every sample ends
with a synchronize, tensors are channels_last and the dtype is applied with ``.to(dtype)``.
"""

from __future__ import annotations

import math
import os
import platform
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from attnsearch.latency._table import (
    LatencyError,
    LatencyTable,
    Settings,
    slot_choices,
    space_digest,
)

if TYPE_CHECKING:
    from attnsearch.architecture import Architecture
    from attnsearch.spaces import SearchSpace

# progress(done, total, label): called after each measurement
Progress = Callable[[int, int, str], None]


class _Timer:
    """Times modules under one :class:`Settings` (device, dtype, layout, threads)."""

    def __init__(self, settings: Settings):
        import torch

        self.s = settings
        self.torch = torch
        self.device = torch.device(settings.device)
        self.dtype = getattr(torch, settings.dtype)
        self.format = torch.channels_last if settings.channels_last else torch.contiguous_format

    def prepare(self, module):
        module = module.eval().to(self.device, dtype=self.dtype)
        if self.s.channels_last:
            module = module.to(memory_format=self.format)
        return module

    def tensor(self, shape: Sequence[int], seed: int = 0):
        g = self.torch.Generator().manual_seed(seed)
        x = self.torch.randn(*shape, generator=g).to(self.device, dtype=self.dtype)
        if len(shape) == 4 and self.s.channels_last:
            x = x.contiguous(memory_format=self.format)
        return x

    def _sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()

    def time_ms(self, module, x) -> float:
        """Median milliseconds of one ``module(x)`` call."""
        s = self.s
        with self.torch.inference_mode():
            for _ in range(s.warmup):
                module(x)
            self._sync()
            t0 = time.perf_counter()
            module(x)
            self._sync()
            once = time.perf_counter() - t0
            inner = max(1, math.ceil(s.min_sample_ms / 1e3 / max(once, 1e-7)))
            samples = []
            for _ in range(s.repeats):
                t0 = time.perf_counter()
                for _ in range(inner):
                    module(x)
                self._sync()
                samples.append((time.perf_counter() - t0) / inner)
        pick = min if s.estimator == "min" else statistics.median
        return pick(samples) * 1e3


class _ThreadScope:
    """Sets torch's intra-op threads for a block of work and restores them afterwards."""

    def __init__(self, threads: int | None):
        self.threads = threads

    def __enter__(self):
        import torch

        self.before = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc) -> None:
        import torch

        torch.set_num_threads(self.before)


def _plain_parts(backbone: str, num_classes: int, channels: int):
    """Stem and head modules of the deploy network (taken from a plain ResNet)."""
    from torch import nn

    from attnsearch.architecture import Architecture
    from attnsearch.backbones import build_network

    plain = Architecture.uniform(backbone)
    net = build_network(plain, num_classes=num_classes, in_channels=channels)
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    head = nn.Sequential(net.avgpool, nn.Flatten(1), net.fc)
    return net, stem, head


def floor_ms(space: SearchSpace, settings: Settings) -> float:
    """Measured milliseconds of the stem and the head alone (plain backbone, ``settings``):
    every architecture of ``space`` runs both, so a latency budget below this cannot be
    met. Two measurements, a fraction of a second: what a run checks before measuring a
    whole table."""
    import torch

    batch, (c, h, w) = settings.batch, settings.input
    net, stem, head = _plain_parts(space.backbone, space.num_classes, c)
    timer = _Timer(settings)
    with _ThreadScope(settings.threads), torch.no_grad():
        net.eval()
        x = torch.zeros(batch, c, h, w)
        x = stem.eval()(x)
        for block in [*net.layer1, *net.layer2, *net.layer3, *net.layer4]:
            x = block(x)
        head_shape = tuple(x.shape)
    with _ThreadScope(settings.threads):
        stem_ms = timer.time_ms(timer.prepare(stem), timer.tensor((batch, c, h, w)))
        head_ms = timer.time_ms(timer.prepare(head), timer.tensor(head_shape))
    return stem_ms + head_ms


def build_table(
    space: SearchSpace,
    settings: Settings,
    *,
    calibrate: int = 4,
    seed: int = 1000,
    progress: Progress | None = None,
) -> LatencyTable:
    """Measure every choice of ``space`` in every slot, plus stem and head, then calibrate.

    Slots that share a context (same input shape, channels, stride) are measured once per
    choice and the value shared.

    Args:
        space: the search space (its backbone, options and classes).
        settings: device, dtype, batch, input shape, threads, repeats.
        calibrate: random networks (plus the plain backbone) timed end to end to fit the
            table's scale; 0 keeps scale 1 (raw sums).
        seed: seed of the calibration networks (validation uses other seeds).
        progress: called after each measurement with (done, total, label).
    """
    import torch

    from attnsearch.architecture import Architecture
    from attnsearch.backbones import build_block, slot_infos

    started = time.perf_counter()
    timer = _Timer(settings)
    batch, (c, h, w) = settings.batch, settings.input
    per_slot = slot_choices(space)
    infos = slot_infos(space.backbone)
    # built outside inference mode: parameters made inside it are inference tensors, which a
    # later dtype/device copy (bf16, cuda) cannot use ("do not track version counter")
    net, stem, head = _plain_parts(space.backbone, space.num_classes, c)
    with _ThreadScope(settings.threads), torch.no_grad():
        net.eval()
        # shapes entering each block (independent of the choices: strides are fixed)
        x = torch.zeros(batch, c, h, w)
        x = stem.eval()(x)
        shapes = []
        for block in [*net.layer1, *net.layer2, *net.layer3, *net.layer4]:
            shapes.append(tuple(x.shape))
            x = block(x)
        head_shape = tuple(x.shape)
    contexts: dict[tuple, list[int]] = {}
    for info, shape in zip(infos, shapes, strict=True):
        key = (shape, info.in_channels, info.out_channels, info.stride, info.conv_in)
        contexts.setdefault(key, []).append(info.index)
    jobs = [(idxs, choice) for idxs in contexts.values() for choice in per_slot[idxs[0]]]
    # slots in one context get the same choices only if the space says so; measure the union
    for idxs in contexts.values():
        union = dict.fromkeys(ch for i in idxs for ch in per_slot[i])
        measured = set(per_slot[idxs[0]])
        jobs.extend((idxs, ch) for ch in union if ch not in measured)
    calib_archs = []
    if calibrate > 0:
        calib_archs = [Architecture.plain(space.backbone, space.num_classes, space.input)]
        calib_archs += random_architectures(space, calibrate, seed=seed)
    total = 2 + len(jobs) + len(calib_archs)
    done = 0

    def step(label: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, label)

    slot_tables: list[dict] = [{} for _ in infos]
    with _ThreadScope(settings.threads):
        stem_ms = timer.time_ms(timer.prepare(stem), timer.tensor((batch, c, h, w)))
        step("stem")
        for idxs, choice in jobs:
            info = infos[idxs[0]]
            block = timer.prepare(build_block(space.backbone, info, choice))
            ms = timer.time_ms(block, timer.tensor(shapes[idxs[0]]))
            for i in idxs:
                if choice in per_slot[i]:
                    slot_tables[i][choice] = ms
            step(f"slot {idxs[0]} {choice.label()}")
        head_ms = timer.time_ms(timer.prepare(head), timer.tensor(head_shape))
        step("head")
        table = LatencyTable(
            backbone=space.backbone,
            settings=settings,
            stem_ms=stem_ms,
            head_ms=head_ms,
            slots=slot_tables,
            num_classes=space.num_classes,
            space={"name": space.name, "digest": space_digest(space)},
        )
        calib = []
        for arch in calib_archs:
            measured = measure_network(arch, settings, timer=timer)
            calib.append((table.raw(arch), measured))
            step("calibration network")
    scale = 1.0
    if calib:
        scale = statistics.median(m / p for p, m in calib)
    table.scale = scale
    table.meta = {
        **device_info(settings.device),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(time.perf_counter() - started, 2),
        "measurements": len(jobs) + 2,
        "calibration": {
            "method": "scale = median(measured / raw sum) over the plain backbone + random networks",
            "seed": seed,
            "networks": len(calib),
            "predicted_raw_ms": [round(p, 4) for p, _ in calib],
            "measured_ms": [round(m, 4) for _, m in calib],
        },
    }
    return table


def device_info(device: str) -> dict[str, Any]:
    """Device kind and name, torch version, CPU count (provenance of a table)."""
    import torch

    info: dict[str, Any] = {
        "device_kind": device,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    if device == "cuda":
        info["device_name"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
        info["cudnn_benchmark"] = torch.backends.cudnn.benchmark
    else:
        info["device_name"] = _cpu_name()
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure_network(
    arch: Architecture, settings: Settings, *, timer: _Timer | None = None
) -> float:
    """Measured end-to-end latency (ms) of the deploy network of ``arch``."""
    from attnsearch.backbones import build_network

    timer = timer or _Timer(settings)
    with _ThreadScope(settings.threads):
        net = timer.prepare(build_network(arch, in_channels=settings.input[0]))
        x = timer.tensor((settings.batch, *settings.input))
        return timer.time_ms(net, x)


def random_architectures(
    space: SearchSpace, n: int, *, seed: int = 0, width: float = 1.0
) -> list[Architecture]:
    """``n`` seeded random architectures: per unit a uniform type, then a uniform combination.

    ``width``: draw only from the choices buildable at that proxy width (1.0: deploy).
    """
    from attnsearch.architecture import Architecture

    rng = random.Random(seed)
    options = space.options(width)
    out = []
    for _ in range(n):
        slots = list(Architecture.plain(space.backbone).slots)
        for unit, per_type in zip(space.units, options, strict=True):
            choice = rng.choice(per_type[rng.choice(sorted(per_type))])
            for s in space.unit_slots(unit):
                slots[s] = choice
        out.append(Architecture(space.backbone, tuple(slots), space.num_classes, space.input))
    return out


@dataclass(frozen=True)
class Validation:
    """Predicted vs measured end-to-end latency on random architectures.

    Attributes:
        rows: per architecture: (summary, measured ms, raw predicted ms, predicted ms).
        seed: seed of the architectures.
    """

    rows: list[tuple[str, float, float, float]]
    seed: int

    @staticmethod
    def _errors(pairs) -> list[float]:
        return [abs(p - m) / m for m, p in pairs]

    def summary(self) -> dict[str, Any]:
        raw = self._errors((m, r) for _, m, r, _ in self.rows)
        cor = self._errors((m, p) for _, m, _, p in self.rows)
        return {
            "networks": len(self.rows),
            "seed": self.seed,
            "raw_median_error": statistics.median(raw),
            "raw_worst_error": max(raw),
            "raw_mean_signed_error": statistics.fmean((r - m) / m for _, m, r, _ in self.rows),
            "median_error": statistics.median(cor),
            "worst_error": max(cor),
            "measured_ms": {
                "min": min(m for _, m, _, _ in self.rows),
                "max": max(m for _, m, _, _ in self.rows),
            },
        }


def validate(
    table: LatencyTable,
    space: SearchSpace,
    n: int = 20,
    *,
    seed: int = 0,
    progress: Progress | None = None,
) -> Validation:
    """Measure ``n`` seeded random architectures end to end and compare with the table."""
    if n < 1:
        raise LatencyError(f"validation needs at least one network, got {n}")
    timer = _Timer(table.settings)
    rows = []
    for i, arch in enumerate(random_architectures(space, n, seed=seed)):
        measured = measure_network(arch, table.settings, timer=timer)
        rows.append((arch.summary(), measured, table.raw(arch), table.predict(arch)))
        if progress is not None:
            progress(i + 1, n, "validation network")
    return Validation(rows, seed)
