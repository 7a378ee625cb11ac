"""Export an architecture as one standalone PyTorch file (DESIGN.md §7).

The file needs only torch. It holds the package's own code — the attention classes the
architecture uses (from :mod:`attnsearch.modules`, the registry's checks left out) and the
residual block and ResNet of :mod:`attnsearch.backbones` — plus the architecture as data
(``ARCHITECTURE``), its provenance (``PROVENANCE``) and ``build_model()``. Its state-dict
keys and shapes equal :func:`attnsearch.backbones.build_network`'s for the same settings,
so weights load with ``strict=True``; built under the same seed, it starts from the same
weights.

Two ways in:

* :func:`export_arch` / :func:`generate_code` — an
  :class:`~attnsearch.architecture.Architecture` to a file / to source text.
* :func:`export_run` — a trial of a search (``results/NAME``), optionally as the proxy
  network that was trained, with its final checkpoint's weights written beside the code
  as ``<output stem>.pt``.

An existing output file is never overwritten unless ``force`` is given.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

from attnsearch.architecture import Architecture
from attnsearch.export._choose import check_state, choose_trial, find_checkpoint, load_state
from attnsearch.export._codegen import generate_code
from attnsearch.export._errors import ExportError

__all__ = [
    "ExportError",
    "choose_trial",
    "export_arch",
    "export_run",
    "find_checkpoint",
    "generate_code",
    "weights_path",
]


def weights_path(output: str | Path) -> Path:
    """Where ``export --proxy --weights`` writes the weights: ``<output stem>.pt`` beside it."""
    output = Path(output)
    return output.with_name(f"{output.stem}.pt")


def _meta_network(arch: Architecture, **kwargs):
    """The network on the meta device: shapes and counts without memory or init cost."""
    import torch

    from attnsearch.backbones import build_network

    with torch.device("meta"):
        return build_network(arch, **kwargs)


def _deploy_meta(arch: Architecture) -> dict[str, Any]:
    from attnsearch.flops.analytic import analytic_flops

    net = _meta_network(arch)
    return {
        "flops": int(analytic_flops(arch)),
        "params": sum(p.numel() for p in net.parameters()),
    }


def _check_targets(paths: list[Path], force: bool) -> None:
    """Refuse folders, symlinks and other non-regular files, and existing files unless
    ``force`` (checked before anything is written)."""
    from attnsearch.safeio import check_target, show

    for path in paths:
        if path.is_dir() and not path.is_symlink():
            raise ExportError(f"{show(path)} is a folder; give a file name such as model.py")
        check_target(path, ExportError)
        if path.exists() and not force:
            raise ExportError(f"{show(path)} exists; give --force to overwrite it")


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file beside it, renamed over it
    once complete (an interrupted export leaves no half file and never writes through a
    symlink)."""
    from attnsearch.safeio import atomic_open, show

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot write {show(path)} ({e.strerror or e})") from None
    with atomic_open(path, "w", ExportError) as f:
        f.write(text)


def export_arch(arch: Architecture, output: str | Path, *, force: bool = False) -> dict[str, Any]:
    """Write the deploy network of ``arch`` to ``output``; returns a summary."""
    output = Path(output)
    _check_targets([output], force)
    meta = _deploy_meta(arch)
    _write(output, generate_code(arch, meta=meta))
    return {"output": str(output), "architecture": arch.to_json(), **meta}


def _latency_meta(picked: dict[str, Any]) -> dict[str, Any]:
    """The predicted latency of a latency-budget search's trial and the device it was
    measured on (from the run's latency table); nothing for a FLOPs search."""
    ms = picked.get("latency_ms")
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms):
        return {}
    out: dict[str, Any] = {"latency_ms": float(ms)}
    table_path = getattr(picked["run"].settings, "latency_table", None)
    if table_path:
        from attnsearch.errors import InputError
        from attnsearch.latency import LatencyTable

        try:
            t = LatencyTable.load(Path(picked["run_dir"]) / table_path)
            s = t.settings
            out["latency_device"] = (
                f"{s.device} ({t.meta.get('device_name', 'unknown')}), {s.dtype}, batch "
                f"{s.batch}, input {'x'.join(map(str, s.input))}, threads {s.threads}"
            )
        except InputError:
            out["latency_device"] = "unknown (the run's latency table is unreadable)"
    return out


def export_run(
    results_dir: str | Path,
    name: str,
    output: str | Path,
    *,
    trial: int | None = None,
    best: bool = False,
    max_flops: int | None = None,
    proxy: bool = False,
    weights: bool = False,
    force: bool = False,
) -> dict[str, Any]:
    """Export a trial of search ``name``: its deploy network, or (``proxy``) the network it
    trained, with (``weights``) the final checkpoint written as ``<output stem>.pt`` beside it.

    Returns:
        A summary: ``output``, ``weights`` (path or None), ``trial``, ``accuracy``, ``flops``,
        ``params``, ``architecture``.
    """
    if weights and not proxy:
        raise ExportError("--weights needs --proxy (the weights are the proxy network's)")
    output = Path(output)
    picked = choose_trial(results_dir, name, trial=trial, best=best, max_flops=max_flops)
    _check_targets([output, weights_path(output)] if weights else [output], force)
    arch = Architecture.from_json(picked["architecture"])
    meta: dict[str, Any] = _deploy_meta(arch)
    if isinstance(picked["flops"], int) and not isinstance(picked["flops"], bool):
        meta["flops"] = picked["flops"]
    meta.update(search=name, trial=picked["trial"], accuracy=picked["accuracy"])
    meta.update(_latency_meta(picked))
    summary: dict[str, Any] = {
        "output": str(output),
        "weights": None,
        "search": name,
        "trial": picked["trial"],
        "accuracy": picked["accuracy"],
        "architecture": arch.to_json(),
    }
    if not proxy:
        _write(output, generate_code(arch, meta=meta))
        return {**summary, "flops": meta["flops"], "params": meta["params"]}

    width = picked["run"].settings.proxy.width
    if not (isinstance(width, float) and math.isfinite(width) and width > 0):
        raise ExportError(f"search {name!r}: run.yaml width {width!r} is not a positive number")
    ckpt = find_checkpoint(picked["run_dir"], picked["trial"], picked["tune_trial_id"])
    state, epoch = load_state(ckpt)
    try:
        num_classes = int(state["fc.weight"].shape[0])
        in_channels = int(state["conv1.weight"].shape[1])
    except KeyError:
        raise ExportError(f"{ckpt} holds no ResNet state dict (no fc/conv1 weights)") from None
    kwargs = dict(stem="proxy", width=width, num_classes=num_classes, in_channels=in_channels)
    net = _meta_network(arch, **kwargs)
    check_state(state, net.state_dict(), ckpt)
    meta.update(proxy_params=sum(p.numel() for p in net.parameters()), weights=weights, epoch=epoch)
    target = weights_path(output)
    code = generate_code(arch, meta=meta, weights_file=target.name, **kwargs)
    if weights:  # both files or neither: the code is renamed into place only after them
        from attnsearch.safeio import atomic_open

        with contextlib.suppress(OSError):  # (as _write; a failure shows in atomic_open)
            target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(target, "wb", ExportError) as f:
            import torch

            torch.save(state, f)
            _write(output, code)
    else:
        _write(output, code)
    summary.update(
        flops=meta["flops"],
        params=meta["params"],
        proxy_params=meta["proxy_params"],
        num_classes=num_classes,
        in_channels=in_channels,
        width=width,
        checkpoint=str(ckpt),
    )
    if weights:
        summary["weights"] = str(target)
    return summary
