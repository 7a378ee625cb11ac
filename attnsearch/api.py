"""The Python API (DESIGN.md §2): build a deploy network, profile an architecture."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from attnsearch.architecture import Architecture, ArchitectureError
from attnsearch.backbones import build_network
from attnsearch.flops import count, count_params

__all__ = ["as_architecture", "build_model", "profile"]


def as_architecture(arch: Architecture | Mapping[str, Any] | str) -> Architecture:
    """Accept an Architecture, its JSON dict, a JSON string or a path to a JSON file."""
    if isinstance(arch, Architecture):
        return arch
    return Architecture.from_json(arch)


def build_model(arch: Architecture | Mapping[str, Any] | str) -> nn.Module:
    """Build the deploy network (ImageNet stem, full width, ``arch.num_classes`` outputs)."""
    return build_network(as_architecture(arch))


def profile(
    arch: Architecture | Mapping[str, Any] | str, input: Sequence[int] | None = None
) -> dict[str, Any]:
    """Params and FLOPs of the deploy network, by tracing one forward pass.

    Args:
        arch: the architecture (or its JSON).
        input: (C, H, W) to count on; defaults to ``arch.input`` (3×224×224).

    Returns:
        ``{"params", "flops", "macs_conv_linear", "input", "backbone", "num_classes",
        "architecture", "digest"}`` — ``flops`` counts every multiply-accumulate
        (README, "FLOPs convention"), ``macs_conv_linear`` only convolutions and linear
        layers.
    """
    arch = as_architecture(arch)
    shape = tuple(arch.input if input is None else input)
    if len(shape) != 3 or not all(isinstance(v, int) and v >= 1 for v in shape):
        raise ArchitectureError(f"input: must be three positive integers C,H,W, got {shape}")
    import torch

    with torch.device("meta"):  # shapes only: 3×16384×16384 costs no memory
        model = build_network(arch, in_channels=shape[0])
    result = count(model, shape)
    return {
        "backbone": arch.backbone,
        "params": count_params(model),
        "flops": result.flops,
        "macs_conv_linear": result.macs_conv_linear,
        "input": list(shape),
        "num_classes": arch.num_classes,
        "architecture": arch.to_json(),
        "digest": arch.digest(),
    }
