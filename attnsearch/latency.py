"""Measured latency as a cost: per-slot lookup tables for one device (issue 13).

FLOPs are not what users pay: an attention block's time depends on memory traffic, kernel
launches and layout as much as on multiply-accumulates. Like FBNet's per-block lookup
tables (Wu et al., arXiv:1812.03443) and nn-Meter (Zhang et al., MobiSys 2021), a
:class:`LatencyTable` stores the measured inference time of every choice a space allows in
every slot, each measured as a whole residual block in that slot's own context (input
shape, stride, channels), plus the stem and the head. The predicted latency of an
architecture is then ``stem + Σ slots + head``: dict lookups, microseconds of Python.

Isolated blocks do not add up exactly to the network (caches stay warm across repeats of
one block, boundaries between blocks cost something, a framework adds per-call overhead),
so :func:`build_table` times a few *calibration* networks end to end and fits one scale
factor ``measured ≈ scale × Σ parts`` (the median of the measured/summed ratios, robust
to one disturbed network), stored in the table and applied by :meth:`LatencyTable.predict`;
:meth:`LatencyTable.raw` is the plain sum. :func:`validate` reports both errors on other, seeded random architectures.

Timing: ``torch.inference_mode``, eval mode, warm-up calls, then ``repeats`` samples; each
sample runs the module enough times to last ``min_sample_ms`` (so tiny blocks are not
lost in timer resolution) and the median per-call time is kept (``estimator="min"`` keeps
the fastest sample instead: on a shared machine contention only ever adds time, so the
minimum is the better estimate of the machine's own latency). On CUDA every sample ends
with a synchronize, tensors are channels_last and the dtype is applied with ``.to(dtype)``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnsearch.errors import InputError
from attnsearch.resnet_layout import DEPLOY_CLASSES, DEPLOY_INPUT

if TYPE_CHECKING:
    from attnsearch.architecture import Architecture, SlotChoice
    from attnsearch.spaces import SearchSpace

__all__ = [
    "DTYPES",
    "FORMAT_VERSION",
    "LatencyCost",
    "LatencyError",
    "LatencyTable",
    "Settings",
    "Validation",
    "build_table",
    "choice_key",
    "floor_ms",
    "load_or_build",
    "measure_network",
    "random_architectures",
    "validate",
]

FORMAT_VERSION = 1
DTYPES = ("float32", "bfloat16")
DEVICES = ("cpu", "cuda")

# progress(done, total, label): called after each measurement
Progress = Callable[[int, int, str], None]


class LatencyError(InputError):
    """A latency table that cannot be used here (other device, shape, missing entry, bad file)."""


def choice_key(choice: SlotChoice) -> str:
    """Canonical text key of a slot choice: its JSON with sorted keys, no spaces."""
    return json.dumps(choice.to_json(), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Settings:
    """What a table is measured under (a mismatch makes its numbers meaningless).

    Attributes:
        device: ``"cpu"`` or ``"cuda"``.
        dtype: ``"float32"`` or ``"bfloat16"``.
        batch: images per forward pass.
        input: image shape (C, H, W).
        threads: torch intra-op threads (CPU); ``None`` keeps torch's default.
        warmup: untimed calls before timing.
        repeats: timed samples; the median is kept.
        min_sample_ms: each sample loops the module until it lasts at least this long.
        estimator: ``"median"`` or ``"min"`` of the samples.
    """

    device: str = "cpu"  # the machine the search's winners will run on
    dtype: str = "float32"  # bfloat16 on GPUs with tensor cores
    batch: int = 1  # single-image latency, the usual deployment question
    input: tuple[int, int, int] = DEPLOY_INPUT  # the spaces' deploy shape
    threads: int | None = None  # None: torch's default for this machine
    warmup: int = 3  # enough for the allocator and oneDNN/cuDNN to pick their kernels
    repeats: int = 7  # odd, so the median is one measured sample
    min_sample_ms: float = 2.0  # well above perf_counter's resolution and loop overhead
    estimator: str = "median"  # "min" on a shared machine, where contention only adds time

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise LatencyError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.estimator not in ("median", "min"):
            raise LatencyError(f"estimator must be median or min, got {self.estimator!r}")
        if self.dtype not in DTYPES:
            raise LatencyError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        for name in ("batch", "warmup", "repeats"):
            v = getattr(self, name)
            low = 0 if name == "warmup" else 1
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise LatencyError(f"{name} must be an integer ≥ {low}, got {v!r}")
        if len(self.input) != 3 or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in self.input
        ):
            raise LatencyError(f"input must be three positive integers C,H,W, got {self.input!r}")
        if self.threads is not None and (
            not isinstance(self.threads, int) or isinstance(self.threads, bool) or self.threads < 1
        ):
            raise LatencyError(f"threads must be a positive integer, got {self.threads!r}")

    @property
    def channels_last(self) -> bool:
        return self.device == "cuda"


@dataclass
class LatencyTable:
    """Per-slot measured latencies (milliseconds) of one backbone's choices on one device.

    Attributes:
        backbone: backbone name.
        settings: what it was measured under.
        stem_ms: stem (conv, BN, ReLU, max-pool).
        head_ms: head (global pool, flatten, classifier).
        slots: per slot index: choice -> ms (each measured as the whole residual block).
        num_classes: classifier outputs the head was measured with.
        space: name and digest of the space the table covers.
        scale: calibration factor applied by :meth:`predict` (1.0: none).
        meta: provenance (device name, torch version, dates, timings, calibration data).
    """

    backbone: str
    settings: Settings
    stem_ms: float
    head_ms: float
    slots: list[dict[SlotChoice, float]]
    num_classes: int = DEPLOY_CLASSES
    space: dict[str, str] = field(default_factory=dict)
    scale: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)

    # ---- prediction ----------------------------------------------------------------
    def parts(self, arch: Architecture) -> list[float]:
        """Stem, each slot, head (ms), the terms of :meth:`raw`."""
        return [self.stem_ms, *self._slot_ms(arch), self.head_ms]

    def raw(self, arch: Architecture) -> float:
        """Stem + Σ slots + head, in ms (no calibration)."""
        total = self.stem_ms  # summed in the order of parts(), so sum(parts) == raw exactly
        for ms in self._slot_ms(arch):
            total += ms
        return total + self.head_ms

    def predict(self, arch: Architecture) -> float:
        """Predicted end-to-end latency in ms: ``scale × raw(arch)``."""
        return self.scale * self.raw(arch)

    def _slot_ms(self, arch: Architecture) -> list[float]:
        if arch.backbone != self.backbone or len(arch.slots) != len(self.slots):
            raise LatencyError(
                f"the latency table is for {self.backbone}, the architecture is {arch.backbone}"
            )
        try:
            return [table[c] for table, c in zip(self.slots, arch.slots, strict=True)]
        except KeyError:
            for i, (table, c) in enumerate(zip(self.slots, arch.slots, strict=True)):
                if c not in table:
                    raise LatencyError(
                        f"the latency table has no entry for {c.label()} in slot {i}; "
                        "build one for this space with `attnsearch latency-table`"
                    ) from None
            raise

    def covers(self, arch: Architecture) -> bool:
        """Whether every slot choice of ``arch`` has an entry."""
        return (
            arch.backbone == self.backbone
            and len(arch.slots) == len(self.slots)
            and all(c in t for t, c in zip(self.slots, arch.slots, strict=True))
        )

    def cheapest(self, space: SearchSpace, width: float = 1.0) -> tuple[float, Architecture]:
        """The space's architecture with the lowest predicted latency, and that latency (ms).

        Slots are independent in the table, so this is a per-unit minimum (as
        :meth:`SearchSpace.cheapest` is for FLOPs); a budget below it admits nothing.
        """
        from attnsearch.architecture import Architecture

        slots = list(Architecture.plain(space.backbone).slots)
        for unit, per_type in zip(space.units, space.options(width), strict=True):
            members = space.unit_slots(unit)
            candidates = [c for cs in per_type.values() for c in cs]
            missing = [c for c in candidates for s in members if c not in self.slots[s]]
            if missing:
                raise LatencyError(
                    f"the latency table has no entry for {missing[0].label()} in "
                    f"{space.unit_name(unit)}; build one for space {space.name!r}"
                )
            best = min(candidates, key=lambda c: sum(self.slots[s][c] for s in members))
            for s in members:
                slots[s] = best
        arch = Architecture(space.backbone, tuple(slots), space.num_classes, space.input)
        return self.predict(arch), arch

    # ---- JSON ----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        s = self.settings
        return {
            "format": FORMAT_VERSION,
            "backbone": self.backbone,
            "num_classes": self.num_classes,
            "space": dict(self.space),
            "device": s.device,
            "dtype": s.dtype,
            "batch": s.batch,
            "input": list(s.input),
            "threads": s.threads,
            "channels_last": s.channels_last,
            "warmup": s.warmup,
            "repeats": s.repeats,
            "min_sample_ms": s.min_sample_ms,
            "estimator": s.estimator,
            "scale": self.scale,
            "meta": self.meta,
            "stem_ms": self.stem_ms,
            "head_ms": self.head_ms,
            "slots": [{choice_key(c): ms for c, ms in t.items()} for t in self.slots],
        }

    @classmethod
    def from_json(cls, data: Any, source: str = "latency table") -> LatencyTable:
        from attnsearch.architecture import SlotChoice
        from attnsearch.backbones import BACKBONES

        def fail(reason: str) -> LatencyError:
            return LatencyError(f"{source}: {reason}")

        if not isinstance(data, dict):
            raise fail("not a latency table (expected a JSON object)")
        if data.get("format") != FORMAT_VERSION:
            raise fail(f"unknown format {data.get('format')!r:.40} (expected {FORMAT_VERSION})")
        problem = _table_problem(data)
        if problem:
            raise fail(problem)
        try:
            backbone = data["backbone"]
            if backbone not in BACKBONES:
                raise fail(f"unknown backbone {backbone!r}")
            settings = Settings(
                device=data["device"],
                dtype=data["dtype"],
                batch=data["batch"],
                input=tuple(data["input"]),
                threads=data["threads"],
                warmup=data["warmup"],
                repeats=data["repeats"],
                min_sample_ms=float(data["min_sample_ms"]),
                estimator=data.get("estimator", "median"),
            )
            raw_slots = data["slots"]
            if not isinstance(raw_slots, list) or len(raw_slots) != BACKBONES[backbone].num_slots:
                raise fail(f"slots: expected {BACKBONES[backbone].num_slots} entries")
            slots = []
            for i, entries in enumerate(raw_slots):
                table = {}
                for key, ms in entries.items():
                    try:
                        choice = SlotChoice.from_json(json.loads(key))
                    except (ValueError, json.JSONDecodeError) as e:
                        raise fail(f"slots[{i}]: bad choice {key!r} ({e})") from None
                    table[choice] = _ms(ms, f"slots[{i}][{key}]", fail)
                slots.append(table)
            return cls(
                backbone=backbone,
                settings=settings,
                stem_ms=_ms(data["stem_ms"], "stem_ms", fail),
                head_ms=_ms(data["head_ms"], "head_ms", fail),
                slots=slots,
                num_classes=int(data["num_classes"]),
                space=dict(data.get("space", {})),
                scale=_ms(data.get("scale", 1.0), "scale", fail),
                meta=dict(data.get("meta", {})),
            )
        except KeyError as e:
            raise fail(f"missing key {e.args[0]!r}") from None
        except (TypeError, AttributeError, ValueError) as e:
            raise fail(f"malformed ({e})") from None
        except LatencyError as e:
            if str(e).startswith(source):
                raise
            raise fail(str(e)) from None

    def save(self, path: str | Path) -> None:
        """Write the table (atomically; never through a symlink)."""
        from attnsearch.safeio import write_atomic

        write_atomic(path, json.dumps(self.to_json(), indent=1) + "\n", LatencyError)

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        device: str | None = None,
        input: Sequence[int] | None = None,
        batch: int | None = None,
        dtype: str | None = None,
        force: bool = False,
    ) -> LatencyTable:
        """Read a table; refuse one measured under other conditions unless ``force``.

        Args:
            path: the JSON file.
            device: the device kind the caller will run on (``cpu``/``cuda``); None: no check.
            input: the input shape (C, H, W) the caller predicts for; None: no check.
            batch: the batch size; None: no check.
            dtype: ``float32``/``bfloat16``; None: no check.
            force: accept a mismatch (the numbers then describe other conditions).

        Raises:
            LatencyError: unreadable, malformed, or measured under other conditions.
        """
        from attnsearch.safeio import NestingError, json_loads, read_bytes, show

        path = Path(path)
        text = read_bytes(path, LatencyError)  # a FIFO or a device is refused, not read
        try:
            data = json_loads(text)
        except json.JSONDecodeError as e:
            raise LatencyError(
                f"{show(path)}: not valid JSON ({e.msg} at line {e.lineno})"
            ) from None
        except NestingError as e:
            raise LatencyError(f"{show(path)}: not valid JSON ({e})") from None
        except ValueError:
            raise LatencyError(f"{show(path)}: not valid JSON (a number too long)") from None
        table = cls.from_json(data, show(path))
        if not force:
            s = table.settings
            wanted = {
                "device kind": (device, s.device),
                "input shape": (None if input is None else tuple(input), s.input),
                "batch": (batch, s.batch),
                "dtype": (dtype, s.dtype),
            }
            for what, (want, have) in wanted.items():
                if want is not None and want != have:
                    show = (lambda v: ",".join(map(str, v))) if what == "input shape" else str
                    raise LatencyError(
                        f"{path}: measured with {what} {show(have)}, not {show(want)}; "
                        "build a table for these conditions or pass --force"
                    )
        return table


class LatencyCost:
    """``table``'s predicted latency of an architecture in integer nanoseconds: the cost
    function of a latency-budget search (:class:`attnsearch.proposal.Proposer`). Additive
    over slots up to rounding, so repair works on it as on FLOPs; a class, not a closure, so
    the searcher holding it can be pickled by Ray Tune."""

    def __init__(self, table: LatencyTable):
        self.table = table

    def __call__(self, arch: Architecture) -> int:
        return int(round(self.table.predict(arch) * 1e6))


def load_or_build(
    path: str | Path,
    space: SearchSpace,
    settings: Settings,
    *,
    force: bool = False,
    calibrate: int = 4,
    progress: Progress | None = None,
) -> LatencyTable:
    """The table at ``path`` if it exists (checked against ``settings``), else build and save it.

    What ``run --latency-table FILE`` needs: a table for the local device, measured once.

    Raises:
        LatencyError: the file exists but was measured under other conditions (unless
            ``force``), or it lacks a choice of ``space``.
    """
    path = Path(path)
    if path.exists():
        table = LatencyTable.load(
            path,
            device=settings.device,
            input=settings.input,
            batch=settings.batch,
            dtype=settings.dtype,
            force=force,
        )
        table.cheapest(space)  # raises when a choice of the space has no entry
        return table
    table = build_table(space, settings, calibrate=calibrate, progress=progress)
    table.save(path)
    return table


MAX_BATCH, MAX_THREADS, MAX_REPEATS = 65536, 4096, 10**6  # beyond these: not a table


def _table_problem(data: dict) -> str | None:
    """The first value of the wrong type or out of range in a table's JSON, or None."""
    from attnsearch.architecture import MAX_CLASSES, input_problem

    def count(key: str, lo: int, hi: int, optional: bool = False) -> str | None:
        v = data.get(key)
        if v is None and (optional or key not in data):
            return None
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            return f"{key}: expected an integer {lo}..{hi}, got {_short(v)}"
        return None

    checks = [
        count("num_classes", 1, MAX_CLASSES),
        count("batch", 1, MAX_BATCH),
        count("threads", 1, MAX_THREADS, optional=True),
        count("warmup", 0, MAX_REPEATS),
        count("repeats", 1, MAX_REPEATS),
    ]
    if "input" in data:
        problem = input_problem(data["input"])
        checks.append(f"input: {problem}" if problem else None)
    for key in ("space", "meta"):
        if key in data and not isinstance(data[key], dict):
            checks.append(f"{key}: expected a JSON object, got {_short(data[key])}")
    space = data.get("space")
    if isinstance(space, dict) and not all(isinstance(v, str) for v in space.values()):
        checks.append("space: expected string values")
    ms = data.get("min_sample_ms")
    if "min_sample_ms" in data and not (
        isinstance(ms, int | float) and not isinstance(ms, bool) and 0 <= ms <= 60_000
    ):
        checks.append(f"min_sample_ms: expected a number 0..60000, got {_short(ms)}")
    slots = data.get("slots")
    if isinstance(slots, list) and not all(isinstance(e, dict) for e in slots):
        checks.append("slots: expected a list of JSON objects (choice -> ms)")
    return next((c for c in checks if c), None)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _ms(value: Any, what: str, fail) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(f"{what}: expected a number of milliseconds, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise fail(f"{what}: expected a finite non-negative number, got {value!r}")
    return v


# ---- measurement ---------------------------------------------------------------------
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


def space_digest(space: SearchSpace) -> str:
    """sha256 (16 hex digits) of what decides a space's architectures."""
    data = {
        "backbone": space.backbone,
        "num_classes": space.num_classes,
        "granularity": space.granularity,
        "units": list(space.units),
        "choices": {t: {h: list(v) for h, v in hp} for t, hp in space.choices},
    }
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _slot_choices(space: SearchSpace) -> list[list[SlotChoice]]:
    """Per slot: every choice the space can put there (``none`` always, for unsearched slots)."""
    from attnsearch.architecture import Architecture

    per_slot: list[dict[SlotChoice, None]] = [
        {plain: None} for plain in Architecture.plain(space.backbone).slots
    ]
    for unit, per_type in zip(space.units, space.options(), strict=True):
        for s in space.unit_slots(unit):
            for choices in per_type.values():
                per_slot[s].update(dict.fromkeys(choices))
    return [list(d) for d in per_slot]


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
    per_slot = _slot_choices(space)
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
        plain = Architecture.uniform(space.backbone).slots
        calib_archs = [Architecture(space.backbone, plain, space.num_classes, space.input)]
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
