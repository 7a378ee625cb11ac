"""Latency tables: what one is measured under, how it predicts, its JSON file (issue 13).

A :class:`LatencyTable` stores the measured inference time (ms) of every choice a space
allows in every slot of one backbone on one device, plus the stem and the head, and the
calibration ``scale``. :meth:`LatencyTable.predict` is ``scale × (stem + Σ slots + head)``:
dict lookups. :meth:`LatencyTable.save` / :meth:`LatencyTable.load` are the file format
(:data:`FORMAT_VERSION`), refusing a table measured under other conditions. Measuring is
:mod:`attnsearch.latency._measure`'s; the table as a search cost is
:class:`attnsearch.cost.LatencyCost`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnsearch.errors import InputError
from attnsearch.resnet_layout import DEPLOY_CLASSES, DEPLOY_INPUT

if TYPE_CHECKING:
    from attnsearch.architecture import Architecture, SlotChoice
    from attnsearch.spaces import SearchSpace

FORMAT_VERSION = 1
DTYPES = ("float32", "bfloat16")
DEVICES = ("cpu", "cuda")


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
            return [self.entry(i, c) for i, c in enumerate(arch.slots)]

    def entry(self, index: int, choice: SlotChoice) -> float:
        """Measured ms of slot ``index`` holding ``choice``.

        Raises:
            LatencyError: the table has no such entry.
        """
        try:
            return self.slots[index][choice]
        except (KeyError, IndexError):
            raise LatencyError(
                f"the latency table has no entry for {choice.label()} in slot {index}; "
                "build one for this space with `attnsearch latency-table`"
            ) from None

    def covers(self, arch: Architecture) -> bool:
        """Whether every slot choice of ``arch`` has an entry."""
        return (
            arch.backbone == self.backbone
            and len(arch.slots) == len(self.slots)
            and all(c in t for t, c in zip(self.slots, arch.slots, strict=True))
        )

    def check_space(self, space: SearchSpace) -> None:
        """Refuse a table that cannot cost every architecture of ``space``.

        Raises:
            LatencyError: another backbone, or a choice ``space`` can put in a slot (at the
                deploy width, ``none`` included) has no entry there.
        """
        if space.backbone != self.backbone:
            raise LatencyError(
                f"the latency table is for {self.backbone}, space {space.name!r} is "
                f"{space.backbone}; build one for this space with `attnsearch latency-table`"
            )
        where = {s: space.unit_name(u) for u in space.units for s in space.unit_slots(u)}
        for i, choices in enumerate(slot_choices(space)):
            for c in choices:
                if c not in self.slots[i]:
                    raise LatencyError(
                        f"the latency table has no entry for {c.label()} in "
                        f"{where.get(i, f'slot {i}')}; "
                        f"build one for space {space.name!r} with `attnsearch latency-table`"
                    )

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
        from attnsearch.safeio import json_dumps, write_atomic

        write_atomic(path, json_dumps(self.to_json(), indent=1) + "\n", LatencyError)

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


def slot_choices(space: SearchSpace) -> list[list[SlotChoice]]:
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
