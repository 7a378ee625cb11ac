"""The ResNet layout as data and rules: backbones, slots, stems, strides, shortcuts.

One place for every decision about the shape of the network, read by the three things
that must agree on it: building (:mod:`attnsearch.backbones`), counting
(:mod:`attnsearch.flops.analytic`) and exporting (:mod:`attnsearch.export`, which copies
the rule functions below into the generated file beside the ResNet that calls them).

The layout is torchvision's and every official attention repository's "v1.5": the stride
sits on the 3×3 convolution, downsampling shortcuts are a strided 1×1 conv + BN. The
deploy shape (:data:`DEPLOY_INPUT`, :data:`DEPLOY_CLASSES`) is the papers' ImageNet one.

A leaf module: plain Python, nothing from the package, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "BACKBONES",
    "DEPLOY_CLASSES",
    "DEPLOY_INPUT",
    "STEM_NOTES",
    "BackboneDef",
    "SlotInfo",
    "block_stride",
    "get_backbone",
    "has_projection",
    "out_size",
    "slot_infos",
    "stage_channels",
    "stem_channels",
    "stem_layout",
]

DEPLOY_INPUT: tuple[int, int, int] = (3, 224, 224)  # the papers' deploy shape (C, H, W)
DEPLOY_CLASSES = 1000  # ImageNet, as in the papers' tables

Stem = Literal["deploy", "proxy"]

# what each stem is, in words (the exported file's comment; the numbers are stem_layout's)
STEM_NOTES: dict[str, str] = {
    "deploy": "ImageNet stem: 7×7/2 conv, BN, ReLU, 3×3/2 max-pool",
    "proxy": "small-image stem: 3×3/1 conv, BN, ReLU, no max-pool",
}


@dataclass(frozen=True)
class BackboneDef:
    """A named ResNet: block type and blocks per stage (the ResNet paper's depths)."""

    block: Literal["basic", "bottleneck"]
    depths: tuple[int, int, int, int]

    @property
    def expansion(self) -> int:
        return 4 if self.block == "bottleneck" else 1

    @property
    def num_slots(self) -> int:
        return sum(self.depths)


BACKBONES: dict[str, BackboneDef] = {
    "resnet18": BackboneDef("basic", (2, 2, 2, 2)),
    "resnet34": BackboneDef("basic", (3, 4, 6, 3)),
    "resnet50": BackboneDef("bottleneck", (3, 4, 6, 3)),
    "resnet101": BackboneDef("bottleneck", (3, 4, 23, 3)),
}


def get_backbone(name: str) -> BackboneDef:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(
            f"unknown backbone {name!r}; valid backbones: {', '.join(BACKBONES)}"
        ) from None


def stage_channels(width: float = 1.0) -> tuple[int, int, int, int]:
    """``planes`` of the four stages (64, 128, 256, 512 at width 1)."""
    if not width > 0:
        raise ValueError(f"width must be positive, got {width!r}")
    p1, p2, p3, p4 = (max(1, int(round(p * width))) for p in (64, 128, 256, 512))
    return p1, p2, p3, p4


def stem_channels(width: float = 1.0) -> int:
    return stage_channels(width)[0]


# ---- the rules: copied verbatim into exported files (plain Python, builtins only) ------
def stem_layout(stem: str) -> tuple[tuple[int, int, int], tuple[int, int, int] | None]:
    """The stem's conv ``(kernel, stride, padding)`` and the max-pool's after it, or None.

    ``deploy``: the ImageNet stem, 7×7/2 conv, BN, ReLU, 3×3/2 max-pool (224 → 56);
    ``proxy``: small proxy images (8–64 px), 3×3/1 conv, BN, ReLU, no max-pool.
    """
    if stem == "deploy":
        return (7, 2, 3), (3, 2, 1)
    if stem == "proxy":
        return (3, 1, 1), None
    raise ValueError(f"unknown stem {stem!r}; valid: deploy, proxy")


def block_stride(stage: int, block: int) -> int:
    """Stride of block ``block`` (0-based) of stage ``stage`` (1–4): 2 on the first block
    of stages 2–4, on its 3×3 conv (v1.5); else 1."""
    return 2 if stage > 1 and block == 0 else 1


def has_projection(in_channels: int, out_channels: int, stride: int) -> bool:
    """Whether the shortcut is a strided 1×1 conv + BN (where the shape changes), not the
    identity."""
    return stride != 1 or in_channels != out_channels


def out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output side of a convolution or pooling window."""
    return (size + 2 * padding - kernel) // stride + 1


# ---- slots -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SlotInfo:
    """Where a slot sits and the channels its attention sees.

    Attributes:
        index: slot number in network order.
        stage: 1..4.
        block: index of the block inside its stage.
        in_channels: channels entering the block.
        out_channels: channels leaving the block (what a gate sees).
        stride: stride of the block (on the 3×3 conv).
        conv_in: input channels of the 3×3 conv a conv-type choice replaces.
        conv_out: output channels of that conv (the block's ``planes``).
    """

    index: int
    stage: int
    block: int
    in_channels: int
    out_channels: int
    stride: int
    conv_in: int
    conv_out: int

    @property
    def projection(self) -> bool:
        """The block's shortcut is a 1×1 conv + BN (:func:`has_projection`)."""
        return has_projection(self.in_channels, self.out_channels, self.stride)

    def conv_out_size(self, h: int, w: int) -> tuple[int, int]:
        """Output size of the block's 3×3 conv (padding 1, the block's stride) on ``h × w``."""
        return out_size(h, 3, self.stride, 1), out_size(w, 3, self.stride, 1)


def slot_infos(backbone: str, width: float = 1.0) -> list[SlotInfo]:
    """Every slot of ``backbone`` at ``width``, in network order."""
    bdef = get_backbone(backbone)
    inplanes = stem_channels(width)
    infos = []
    index = 0
    for stage, (planes, depth) in enumerate(
        zip(stage_channels(width), bdef.depths, strict=True), start=1
    ):
        for block in range(depth):
            out = planes * bdef.expansion
            if bdef.block == "bottleneck":
                conv_in, conv_out = planes, planes
            else:
                conv_in, conv_out = inplanes, planes
            stride = block_stride(stage, block)
            infos.append(SlotInfo(index, stage, block, inplanes, out, stride, conv_in, conv_out))
            inplanes = out
            index += 1
    return infos
