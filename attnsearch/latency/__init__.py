"""Measured latency as a cost: per-slot lookup tables for one device (issue 13).

FLOPs are not what users pay: an attention block's time depends on memory traffic, kernel
launches and layout as much as on multiply-accumulates. A :class:`LatencyTable` stores the
measured inference time of every choice a space allows in every slot, plus the stem and
the head; the predicted latency of an architecture is ``scale × (stem + Σ slots + head)``.

Private parts, one role each: ``_table`` (the table, what it is measured under, its JSON
file) and ``_measure`` (timing blocks and networks, calibration, validation). The table as
a search cost is :class:`attnsearch.cost.LatencyCost`. :func:`load_or_build`, which joins
the two, is here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from attnsearch.latency._measure import (
    Progress,
    Validation,
    build_table,
    device_info,
    floor_ms,
    measure_network,
    random_architectures,
    validate,
)
from attnsearch.latency._table import (
    DEVICES,
    DTYPES,
    FORMAT_VERSION,
    LatencyError,
    LatencyTable,
    Settings,
    choice_key,
    slot_choices,
    space_digest,
)

if TYPE_CHECKING:
    from attnsearch.spaces import SearchSpace

__all__ = [
    "DEVICES",
    "DTYPES",
    "FORMAT_VERSION",
    "LatencyError",
    "LatencyTable",
    "Progress",
    "Settings",
    "Validation",
    "build_table",
    "choice_key",
    "device_info",
    "floor_ms",
    "load_or_build",
    "measure_network",
    "random_architectures",
    "slot_choices",
    "space_digest",
    "validate",
]


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
        table.check_space(space)
        return table
    table = build_table(space, settings, calibrate=calibrate, progress=progress)
    table.save(path)
    return table
