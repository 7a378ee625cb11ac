"""Analytic FLOPs: total = stem + Σ slots + head, with closed forms per layer.

Every formula follows the rules of the traced counter (:mod:`attnsearch.flops.counter`)
and must equal it exactly (tested over every module, grids of configurations and random
architectures). The search checks budgets with :class:`CostTable` — one Python dict lookup
per slot once a choice has been seen — so a candidate costs microseconds, not a trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from attnsearch import modules
from attnsearch.resnet_layout import (
    DEPLOY_CLASSES,
    DEPLOY_INPUT,
    SlotInfo,
    get_backbone,
    out_size,
    slot_infos,
    stage_channels,
    stem_layout,
)

__all__ = ["CostTable", "analytic_flops", "conv_flops", "bn_flops", "out_size"]


def conv_flops(cin: int, cout: int, kernel: int, h_out: int, w_out: int, groups: int = 1) -> int:
    """Convolution: one MAC per output element per (C_in / groups) * k * k."""
    return cout * h_out * w_out * (cin // groups) * kernel * kernel


def bn_flops(channels: int, h: int, w: int) -> int:
    """Affine batch norm: thop's 2 * elements, doubled for the affine transform."""
    return 4 * channels * h * w


def _stem_flops(stem: str, cin: int, c0: int, h: int, w: int) -> tuple[int, int, int]:
    """FLOPs of the stem and the spatial size it hands to the first stage."""
    (kernel, stride, padding), pool = stem_layout(stem)
    h1, w1 = out_size(h, kernel, stride, padding), out_size(w, kernel, stride, padding)
    flops = conv_flops(cin, c0, kernel, h1, w1) + bn_flops(c0, h1, w1)  # ReLU, max-pool: 0
    if pool is not None:
        h1, w1 = out_size(h1, *pool), out_size(w1, *pool)
    return flops, h1, w1


def _block_flops(bottleneck: bool, info: SlotInfo, choice, h: int, w: int) -> int:
    """FLOPs of one block with a plain 3×3 conv, plus what the choice adds (its registry
    entry knows whether it gates the output or replaces the conv)."""
    ho, wo = info.conv_out_size(h, w)
    co = info.out_channels
    conv = conv_flops(info.conv_in, info.conv_out, 3, ho, wo)
    if bottleneck:
        mid = info.conv_in
        total = conv_flops(info.in_channels, mid, 1, h, w) + bn_flops(mid, h, w)
        total += conv + bn_flops(mid, ho, wo)
        total += conv_flops(mid, co, 1, ho, wo) + bn_flops(co, ho, wo)
    else:
        total = conv + bn_flops(info.conv_out, ho, wo)
        total += conv_flops(info.conv_out, co, 3, ho, wo) + bn_flops(co, ho, wo)
    if choice is not None:  # (the plain block adds 0)
        total += modules.get(choice.type).added_flops(info, h, w, **choice.params)
    if info.projection:
        total += conv_flops(info.in_channels, co, 1, ho, wo) + bn_flops(co, ho, wo)
    total += co * ho * wo  # the residual add
    return total


@dataclass(frozen=True)
class _Key:
    backbone: str
    input: tuple[int, int, int]
    num_classes: int
    stem: str
    width: float


class CostTable:
    """Per-slot FLOPs of one backbone at one input shape; memoised per (slot, choice).

    Args:
        backbone: backbone name.
        input_shape: (C, H, W) counted on.
        num_classes: classifier outputs.
        stem: ``"deploy"`` or ``"proxy"``.
        width: channel multiplier.
    """

    def __init__(
        self,
        backbone: str,
        input_shape: tuple[int, int, int] = DEPLOY_INPUT,
        num_classes: int = DEPLOY_CLASSES,
        stem: str = "deploy",
        width: float = 1.0,
    ):
        bdef = get_backbone(backbone)
        self.bottleneck = bdef.block == "bottleneck"
        self.infos = slot_infos(backbone, width)
        cin, h, w = input_shape
        c0 = stage_channels(width)[0]
        self.stem, h, w = _stem_flops(stem, cin, c0, h, w)
        self.sizes: list[tuple[int, int]] = []
        for info in self.infos:
            self.sizes.append((h, w))
            h, w = info.conv_out_size(h, w)
        c_last = self.infos[-1].out_channels
        # global average pool (one add per input, one divide per output) + linear
        self.head = c_last * h * w + c_last + num_classes * c_last
        self._cache: dict[tuple[int, object], int] = {}

    def slot(self, index: int, choice) -> int:
        """FLOPs of slot ``index`` holding ``choice`` (a SlotChoice or None)."""
        key = (index, choice)
        cost = self._cache.get(key)
        if cost is None:
            h, w = self.sizes[index]
            cost = _block_flops(self.bottleneck, self.infos[index], choice, h, w)
            self._cache[key] = cost
        return cost

    def total(self, choices) -> int:
        """FLOPs of the whole network with these slot choices."""
        return self.stem + sum(self.slot(i, c) for i, c in enumerate(choices)) + self.head


@lru_cache(maxsize=64)
def _table(key: _Key) -> CostTable:
    return CostTable(key.backbone, key.input, key.num_classes, key.stem, key.width)


def cost_table(
    backbone: str,
    input_shape: tuple[int, int, int] = DEPLOY_INPUT,
    num_classes: int = DEPLOY_CLASSES,
    stem: str = "deploy",
    width: float = 1.0,
) -> CostTable:
    """A shared, memoised :class:`CostTable`."""
    c, h, w = input_shape
    return _table(_Key(backbone, (int(c), int(h), int(w)), num_classes, stem, float(width)))


def analytic_flops(arch, *, stem: str = "deploy", width: float = 1.0, input_shape=None) -> int:
    """FLOPs of ``arch`` (an Architecture) without tracing; equal to the traced count."""
    shape = tuple(arch.input if input_shape is None else input_shape)
    return cost_table(arch.backbone, shape, arch.num_classes, stem, width).total(arch.slots)
