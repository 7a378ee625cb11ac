"""ResNet backbones (v1.5 layout) whose residual blocks are attention *slots*.

Plain torch, no torchvision. The layout is torchvision's and every official attention
repository's "v1.5": the stride sits on the 3×3 convolution, downsampling shortcuts are a
strided 1×1 conv + BN. A slot's choice is either a *gate* (applied after the block's last
BN, before the residual add) or a *conv* replacement of the block's 3×3 convolution
(bottleneck ``conv2``; basic block ``conv1``, as the RFAConv paper does).

Two stems: ``deploy`` (the ImageNet stem: 7×7/2 conv, BN, ReLU, 3×3/2 max-pool; input
224 → 56) and ``proxy`` (small proxy images, 8–64 px: 3×3/1 conv, BN, ReLU, no max-pool).
The layout's numbers and rules (depths, widths, stems, strides, shortcuts, the deploy
shape) live in :mod:`attnsearch.resnet_layout`, shared with the FLOPs count and the export.

The blocks and the ResNet know no attention type: a slot's choice reaches them as layer
factories from its registry entry (:func:`block_args`). ``attnsearch export`` copies these
classes verbatim into the generated file.

``width`` multiplies every stage's channel count (proxy training of narrow networks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from attnsearch import modules as _modules
from attnsearch.resnet_layout import (
    BACKBONES,
    DEPLOY_CLASSES,
    BackboneDef,
    SlotInfo,
    Stem,
    block_stride,
    get_backbone,
    has_projection,
    slot_infos,
    stage_channels,
    stem_channels,
    stem_layout,
)

if TYPE_CHECKING:
    from attnsearch.architecture import Architecture, SlotChoice

__all__ = [
    "BACKBONES",
    "BackboneDef",
    "SlotInfo",
    "ResNet",
    "block_args",
    "block_class",
    "build_block",
    "build_network",
    "get_backbone",
    "slot_infos",
    "stage_channels",
    "stem_channels",
]

# ---- the network: plain torch, copied verbatim into exported files ---------------------
# Everything from here to ``ResNet`` is what ``attnsearch export`` writes out (with the
# attention modules and a few lines of data), so it uses nothing but torch and knows no
# attention type: a block receives layer factories (timm's ``attn_layer`` style).


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


def downsample(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    """Strided 1×1 conv + BN on the shortcut where the shape changes (ResNet v1.5)."""
    if not has_projection(in_channels, out_channels, stride):
        return None
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    """ResNet-18/34 block.

    Args:
        in_channels: channels entering the block.
        planes: channels of both 3×3 convs (and of the output).
        stride: stride of the first 3×3 conv.
        conv_layer: ``conv_layer(in_channels, out_channels, stride)`` builds what replaces
            ``conv1`` (the strided 3×3); ``None``: a plain 3×3 conv.
        attn_layer: ``attn_layer(channels)`` builds the gate applied after the last BN,
            before the residual add; ``None``: no gate.
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        conv_layer: Callable[..., nn.Module] | None = None,
        attn_layer: Callable[..., nn.Module] | None = None,
    ):
        super().__init__()
        make_conv = conv3x3 if conv_layer is None else conv_layer
        self.conv1 = make_conv(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.attn = None if attn_layer is None else attn_layer(planes)
        self.downsample = downsample(in_channels, planes, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.attn is not None:
            out = self.attn(out)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """ResNet-50/101 block.

    Args:
        in_channels: channels entering the block.
        planes: channels of the 3×3 conv; the output has ``4 * planes``.
        stride: stride of the 3×3 conv.
        conv_layer: ``conv_layer(in_channels, out_channels, stride)`` builds what replaces
            ``conv2`` (the strided 3×3); ``None``: a plain 3×3 conv.
        attn_layer: ``attn_layer(channels)`` builds the gate applied after the last BN,
            before the residual add; ``None``: no gate.
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        conv_layer: Callable[..., nn.Module] | None = None,
        attn_layer: Callable[..., nn.Module] | None = None,
    ):
        super().__init__()
        out_channels = planes * self.expansion
        make_conv = conv3x3 if conv_layer is None else conv_layer
        self.conv1 = conv1x1(in_channels, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = make_conv(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.attn = None if attn_layer is None else attn_layer(out_channels)
        self.downsample = downsample(in_channels, out_channels, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.attn is not None:
            out = self.attn(out)
        return self.relu(out + identity)


def has_custom_init(m: nn.Module) -> bool:
    """Attention modules that define their own ``reset_parameters`` (not torch's layers)."""
    return hasattr(m, "reset_parameters") and not type(m).__module__.startswith("torch.")


class ResNet(nn.Module):
    """A ResNet (v1.5: stride on the 3×3 conv) whose blocks carry per-slot attention layers.

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        depths: blocks per stage.
        planes: ``planes`` of the four stages.
        slots: one dict of block arguments per block, network order (``{}``: plain block,
            else ``conv_layer`` and/or ``attn_layer``).
        num_classes: classifier outputs.
        in_channels: image channels.
        stem: ``"deploy"`` — 7×7/2 conv, BN, ReLU, 3×3/2 max-pool (ImageNet, 224 → 56);
            ``"proxy"`` — 3×3/1 conv, BN, ReLU, no max-pool (small proxy images).
    """

    def __init__(
        self,
        block: type[nn.Module],
        depths: tuple[int, ...],
        planes: tuple[int, ...],
        slots: list[dict],
        num_classes: int = DEPLOY_CLASSES,
        in_channels: int = 3,
        stem: str = "deploy",
    ):
        super().__init__()
        if len(slots) != sum(depths):
            raise ValueError(f"expected {sum(depths)} slots, got {len(slots)}")
        (kernel, stride, padding), pool = stem_layout(stem)
        self.conv1 = nn.Conv2d(
            in_channels, planes[0], kernel, stride=stride, padding=padding, bias=False
        )
        self.maxpool = None if pool is None else nn.MaxPool2d(pool[0], pool[1], pool[2])
        self.bn1 = nn.BatchNorm2d(planes[0])
        self.relu = nn.ReLU(inplace=True)
        args = iter(slots)
        in_ch = planes[0]
        for stage, (width, depth) in enumerate(zip(planes, depths, strict=True), start=1):
            blocks = []
            for i in range(depth):
                blocks.append(block(in_ch, width, block_stride(stage, i), **next(args)))
                in_ch = width * block.expansion
            self.add_module(f"layer{stage}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(in_ch, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's ResNet initialisation; attention modules that set their own (zero or
        # one gate weights, a spatial BN) are re-initialised by their reset_parameters after.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if m is not self and has_custom_init(m):
                m.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


# ---- from an Architecture -------------------------------------------------------------
def block_class(backbone: str) -> type[nn.Module]:
    """The residual block class of ``backbone``."""
    return Bottleneck if get_backbone(backbone).block == "bottleneck" else BasicBlock


def block_args(choice: SlotChoice | None) -> dict[str, Callable[..., nn.Module]]:
    """A slot choice as residual-block arguments (its registry entry decides which; the
    plain block, ``None`` or ``none``, gets none)."""
    if choice is None:
        return {}
    return _modules.get(choice.type).block_args(**choice.params)


def build_block(backbone: str, info: SlotInfo, choice: SlotChoice | None) -> nn.Module:
    """One residual block of ``backbone`` for slot ``info`` holding ``choice``."""
    return block_class(backbone)(info.in_channels, info.conv_out, info.stride, **block_args(choice))


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
        block_class(arch.backbone),
        get_backbone(arch.backbone).depths,
        stage_channels(width),
        [block_args(choice) for choice in arch.slots],
        num_classes=arch.num_classes if num_classes is None else num_classes,
        in_channels=arch.input[0] if in_channels is None else in_channels,
        stem=stem,
    )
