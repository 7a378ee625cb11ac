"""ResNet backbones (v1.5 layout) whose residual blocks are attention *slots*.

Plain torch, no torchvision. The layout is torchvision's and every official attention
repository's "v1.5": the stride sits on the 3×3 convolution, downsampling shortcuts are a
strided 1×1 conv + BN. A slot's choice is either a *gate* (applied after the block's last
BN, before the residual add) or a *conv* replacement of the block's 3×3 convolution
(bottleneck ``conv2``; basic block ``conv1``, as the RFAConv paper does).

Two stems:

* ``deploy`` — the ImageNet stem: 7×7/2 conv, BN, ReLU, 3×3/2 max-pool (input 224 → 56).
* ``proxy`` — for small proxy images (8–64 px): 3×3/1 conv, BN, ReLU, no max-pool.

``width`` multiplies every stage's channel count (proxy training of narrow networks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from attnsearch import modules as _modules

if TYPE_CHECKING:
    from attnsearch.architecture import Architecture, SlotChoice

__all__ = [
    "BACKBONES",
    "BackboneDef",
    "SlotInfo",
    "ResNet",
    "build_block",
    "build_network",
    "slot_infos",
    "stage_channels",
]

Stem = Literal["deploy", "proxy"]


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
    return tuple(max(1, int(round(p * width))) for p in (64, 128, 256, 512))


def stem_channels(width: float = 1.0) -> int:
    return stage_channels(width)[0]


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
        conv_out: output channels of that conv.
    """

    index: int
    stage: int
    block: int
    in_channels: int
    out_channels: int
    stride: int
    conv_in: int
    conv_out: int

    def gate_channels(self) -> int:
        return self.out_channels


def slot_infos(backbone: str, width: float = 1.0) -> list[SlotInfo]:
    """Every slot of ``backbone`` at ``width``, in network order."""
    bdef = get_backbone(backbone)
    planes_per_stage = stage_channels(width)
    inplanes = stem_channels(width)
    infos = []
    index = 0
    for stage, (planes, depth) in enumerate(zip(planes_per_stage, bdef.depths, strict=True)):
        for block in range(depth):
            stride = 2 if (stage > 0 and block == 0) else 1
            out = planes * bdef.expansion
            if bdef.block == "bottleneck":
                conv_in, conv_out = planes, planes
            else:
                conv_in, conv_out = inplanes, planes
            infos.append(
                SlotInfo(index, stage + 1, block, inplanes, out, stride, conv_in, conv_out)
            )
            inplanes = out
            index += 1
    return infos


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


def _gate(info: SlotInfo, choice: SlotChoice | None) -> nn.Module | None:
    if choice is None or choice.type == "none":
        return None
    spec = _modules.get(choice.type)
    if spec.kind != "gate":
        return None
    return spec.cls(info.out_channels, **choice.params)


def _conv(info: SlotInfo, choice: SlotChoice | None) -> nn.Module:
    if choice is not None and choice.type != "none":
        spec = _modules.get(choice.type)
        if spec.kind == "conv":
            return spec.cls(info.conv_in, info.conv_out, info.stride, **choice.params)
    return _conv3x3(info.conv_in, info.conv_out, info.stride)


def _downsample(info: SlotInfo) -> nn.Module | None:
    if info.stride == 1 and info.in_channels == info.out_channels:
        return None
    return nn.Sequential(
        _conv1x1(info.in_channels, info.out_channels, info.stride),
        nn.BatchNorm2d(info.out_channels),
    )


class BasicBlock(nn.Module):
    """ResNet-18/34 block; a conv-type choice replaces ``conv1`` (the strided 3×3)."""

    def __init__(self, info: SlotInfo, choice: SlotChoice | None = None):
        super().__init__()
        self.conv1 = _conv(info, choice)
        self.bn1 = nn.BatchNorm2d(info.conv_out)
        self.conv2 = _conv3x3(info.conv_out, info.out_channels)
        self.bn2 = nn.BatchNorm2d(info.out_channels)
        self.attn = _gate(info, choice)
        self.downsample = _downsample(info)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.attn is not None:
            out = self.attn(out)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """ResNet-50/101 block; a conv-type choice replaces ``conv2`` (the strided 3×3)."""

    def __init__(self, info: SlotInfo, choice: SlotChoice | None = None):
        super().__init__()
        self.conv1 = _conv1x1(info.in_channels, info.conv_in)
        self.bn1 = nn.BatchNorm2d(info.conv_in)
        self.conv2 = _conv(info, choice)
        self.bn2 = nn.BatchNorm2d(info.conv_out)
        self.conv3 = _conv1x1(info.conv_out, info.out_channels)
        self.bn3 = nn.BatchNorm2d(info.out_channels)
        self.attn = _gate(info, choice)
        self.downsample = _downsample(info)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.attn is not None:
            out = self.attn(out)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """A ResNet whose blocks carry the given slot choices.

    Args:
        backbone: ``resnet18``, ``resnet34``, ``resnet50`` or ``resnet101``.
        choices: one :class:`SlotChoice` (or ``None``) per slot.
        num_classes: classifier outputs.
        in_channels: image channels.
        stem: ``"deploy"`` (ImageNet) or ``"proxy"`` (small images).
        width: channel multiplier.
    """

    def __init__(
        self,
        backbone: str,
        choices: list[SlotChoice | None] | tuple[SlotChoice | None, ...],
        num_classes: int = 1000,
        in_channels: int = 3,
        stem: Stem = "deploy",
        width: float = 1.0,
    ):
        super().__init__()
        infos = slot_infos(backbone, width)
        if len(choices) != len(infos):
            raise ValueError(f"{backbone} has {len(infos)} slots, got {len(choices)} choices")
        c0 = stem_channels(width)
        if stem == "deploy":
            self.conv1 = nn.Conv2d(in_channels, c0, 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module | None = nn.MaxPool2d(3, stride=2, padding=1)
        elif stem == "proxy":
            self.conv1 = nn.Conv2d(in_channels, c0, 3, stride=1, padding=1, bias=False)
            self.maxpool = None
        else:
            raise ValueError(f"unknown stem {stem!r}; valid: deploy, proxy")
        self.bn1 = nn.BatchNorm2d(c0)
        self.relu = nn.ReLU(inplace=True)
        stages = []
        for s in range(4):
            blocks = [
                build_block(backbone, info, choice)
                for info, choice in zip(infos, choices, strict=True)
                if info.stage == s + 1
            ]
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(infos[-1].out_channels, num_classes)
        self.stem_kind = stem
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's ResNet initialisation; modules that set their own (SA's zeros/ones,
        # CBAM's spatial BN) are re-initialised by their reset_parameters afterwards.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters") and _owns_custom_init(m):
                m.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def build_block(backbone: str, info: SlotInfo, choice: SlotChoice | None) -> nn.Module:
    """One residual block of ``backbone`` for slot ``info`` holding ``choice``."""
    block_cls = Bottleneck if get_backbone(backbone).block == "bottleneck" else BasicBlock
    return block_cls(info, choice)


def _owns_custom_init(m: nn.Module) -> bool:
    """Attention modules that define their own ``reset_parameters`` (not torch's layers)."""
    return type(m).__module__.startswith("attnsearch.modules")


def build_network(
    arch: Architecture,
    *,
    stem: Stem = "deploy",
    width: float = 1.0,
    num_classes: int | None = None,
    in_channels: int | None = None,
) -> ResNet:
    """Build ``arch`` as a :class:`ResNet` (deploy network unless told otherwise)."""
    return ResNet(
        arch.backbone,
        arch.slots,
        num_classes=arch.num_classes if num_classes is None else num_classes,
        in_channels=arch.input[0] if in_channels is None else in_channels,
        stem=stem,
        width=width,
    )
