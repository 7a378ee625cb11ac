"""RFAConv: Innovating Spatial Attention and Standard Convolutional Operation.

Xin Zhang, Chen Liu, Degang Yang, Tingting Song, Yichen Ye, Ke Li, Yingze Song;
arXiv:2304.03198 (later versions retitled "RFAConv: Receptive-Field Attention
Convolution for Improving Convolutional Neural Networks"). Official code:
https://github.com/Liuchen1997/RFAConv (``classification/RFAresnet.py``,
``classification/RFCBAMresnet.py``, ``classification/RFCAresnet.py``).

Three receptive-field attention convolutions, each a drop-in for a block's 3×3
convolution (stride inside). All three first *generate* the receptive-field features: a
depthwise ``k×k`` convolution with ``C·k²`` outputs (padding ``k // 2``, the block's stride,
no bias) → BN → ReLU, whose ``k²`` outputs per channel and position are unfolded into a
``k×k`` patch, giving a ``(C, h·k, w·k)`` map. An attention reweights that map, and a final
``k×k`` convolution with stride ``k`` (with bias, no BN or activation) reads each patch
once, producing ``(out_channels, h, w)``.

* ``rfaconv`` — :class:`RFAConv`: the attention is average pooling (``k×k``, the block's
  stride) → grouped 1×1 convolution to ``C·k²``, softmaxed over the ``k²`` patch positions.
* ``rfcbamconv`` — :class:`RFCBAMConv`: an SE channel attention computed from the *input*
  multiplies the unfolded map, and a CBAM-style spatial attention (sigmoid of a 3×3
  convolution of the channel max and mean) multiplies it again.
* ``rfcaconv`` — :class:`RFCAConv`: coordinate attention (pooling along each axis, a shared
  1×1 conv → BN → h-swish, then one 1×1 conv and sigmoid per axis) on the unfolded map.

This follows the official classification code, which produced the paper's ImageNet
tables. Points where it departs from the paper's description or from the attention it
borrows from:

* RFCBAMConv's SE hidden width is fixed at 16 (``SE(in_channel, ratio=16)`` passes 16 as the
  hidden *width*, not as a ratio), and the SE has no biases.
* RFCBAMConv's spatial attention pools the unfolded map *before* the channel reweighting
  (CBAM pools the channel-refined feature); the two attentions are then multiplied in.
* RFCAConv's hidden width is ``max(8, C // reduction)`` as in Coordinate Attention, and its
  1×1 convolutions carry biases.
* The final ``k×k`` stride-``k`` convolution has a bias although a BN follows it in the
  ResNet block; kept for exact parameter counts.
* The official RFCBAM/RFCA ``BasicBlock`` classes call ``RFACBAMConv`` / ``RFACAConv``,
  names the files never define; the intended classes are ``RFCBAMConv`` / ``RFCAConv``.
  RFCBAMConv's odd-kernel check is ``assert("...")`` (always true); here an even kernel size
  raises ``ValueError``.

Parameter names match the official modules, so their state dicts load directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnsearch.modules import formulations
from attnsearch.modules.formulations import use_fast
from attnsearch.modules.registry import HParam, ModuleSpec, check_positive, register

__all__ = [
    "RFAConv",
    "RFCAConv",
    "RFCBAMConv",
    "check_rfaconv",
    "check_rfcaconv",
    "check_rfcbamconv",
    "flops_rfaconv",
    "flops_rfcaconv",
    "flops_rfcbamconv",
]

_PAPER = (
    "RFAConv: Innovating Spatial Attention and Standard Convolutional Operation (arXiv:2304.03198)"
)
_CODE = "https://github.com/Liuchen1997/RFAConv"
_SE_WIDTH = 16  # RFCBAMConv's SE hidden width, fixed in the official code


def _check_common(
    name: str, in_channels: int, out_channels: int, stride: int, kernel_size: int
) -> None:
    check_positive(
        name,
        in_channels=in_channels,
        out_channels=out_channels,
        stride=stride,
        kernel_size=kernel_size,
    )
    if kernel_size % 2 == 0:
        raise ValueError(f"{name}: kernel_size={kernel_size} must be odd")


def check_rfaconv(in_channels: int, out_channels: int, stride: int, kernel_size: int = 3) -> None:
    """Raise ``ValueError`` if an RFAConv with these settings cannot be built."""
    _check_common("rfaconv", in_channels, out_channels, stride, kernel_size)


def check_rfcbamconv(
    in_channels: int, out_channels: int, stride: int, kernel_size: int = 3
) -> None:
    """Raise ``ValueError`` if an RFCBAMConv with these settings cannot be built."""
    _check_common("rfcbamconv", in_channels, out_channels, stride, kernel_size)


def check_rfcaconv(
    in_channels: int, out_channels: int, stride: int, kernel_size: int = 3, reduction: int = 32
) -> None:
    """Raise ``ValueError`` if an RFCAConv with these settings cannot be built."""
    _check_common("rfcaconv", in_channels, out_channels, stride, kernel_size)
    check_positive("rfcaconv", reduction=reduction)


def _out_size(h: int, w: int, stride: int) -> tuple[int, int]:
    return -(-h // stride), -(-w // stride)


def _generate_flops(c: int, k: int, ho: int, wo: int) -> int:
    # depthwise k×k conv to C·k² channels (k² MACs each) + affine BN (4 per element)
    return c * k**2 * ho * wo * (k**2 + 4)


def _final_conv_flops(c: int, out: int, k: int, ho: int, wo: int) -> int:
    return out * ho * wo * c * k**2


def flops_rfaconv(
    in_channels: int, out_channels: int, stride: int, h: int, w: int, kernel_size: int = 3
) -> int:
    """FLOPs of :class:`RFAConv` on a ``(in_channels, h, w)`` input, batch of one.

    Equals the traced :func:`attnsearch.flops.count` exactly.
    """
    c, k = in_channels, kernel_size
    ho, wo = _out_size(h, w, stride)
    n = c * k**2 * ho * wo  # elements of the (C·k², ho, wo) maps
    total = c * ho * wo * (k**2 + 1)  # k×k average pool: every window lies inside the padding
    total += n  # grouped 1×1 conv, one input channel per output
    total += c * ho * wo * (3 * k**2 - 1)  # softmax over the k² positions
    total += _generate_flops(c, k, ho, wo)
    total += n  # feature * weight
    total += _final_conv_flops(c, out_channels, k, ho, wo)
    return total


def flops_rfcbamconv(
    in_channels: int, out_channels: int, stride: int, h: int, w: int, kernel_size: int = 3
) -> int:
    """FLOPs of :class:`RFCBAMConv` on a ``(in_channels, h, w)`` input, batch of one.

    Equals the traced :func:`attnsearch.flops.count` exactly.
    """
    c, k = in_channels, kernel_size
    ho, wo = _out_size(h, w, stride)
    n = c * k**2 * ho * wo  # elements of the unfolded (C, ho·k, wo·k) map
    plane = k**2 * ho * wo  # one channel of it
    total = c * h * w + c  # SE global average pool of the input
    total += 2 * _SE_WIDTH * c  # SE linear layers C→16→C
    total += c  # SE sigmoid
    total += _generate_flops(c, k, ho, wo)
    total += n  # unfolded * channel attention
    total += n + plane  # mean over channels (max costs 0)
    total += plane * 2 * 9  # 3×3 conv 2→1
    total += plane  # sigmoid
    total += n  # * receptive-field attention
    total += _final_conv_flops(c, out_channels, k, ho, wo)
    return total


def flops_rfcaconv(
    in_channels: int,
    out_channels: int,
    stride: int,
    h: int,
    w: int,
    kernel_size: int = 3,
    reduction: int = 32,
) -> int:
    """FLOPs of :class:`RFCAConv` on a ``(in_channels, h, w)`` input, batch of one.

    Equals the traced :func:`attnsearch.flops.count` exactly.
    """
    c, k = in_channels, kernel_size
    ho, wo = _out_size(h, w, stride)
    big_h, big_w = ho * k, wo * k  # the unfolded map
    mip = max(8, c // reduction)
    n = c * big_h * big_w
    total = _generate_flops(c, k, ho, wo)
    total += (n + c * big_h) + (n + c * big_w)  # pool along width, pool along height
    total += (big_h + big_w) * mip * c  # conv1 1×1 C→mip
    total += 4 * (big_h + big_w) * mip  # BN
    total += 3 * (big_h + big_w) * mip  # h-swish: +3, /6, *
    total += (big_h + big_w) * c * mip  # conv_h + conv_w
    total += (big_h + big_w) * c  # sigmoids
    total += 2 * n  # * a_w * a_h
    total += _final_conv_flops(c, out_channels, k, ho, wo)
    return total


def _generate(in_channels: int, kernel_size: int, stride: int) -> nn.Sequential:
    """Depthwise k×k conv to C·k² channels → BN → ReLU (the receptive-field features)."""
    k2 = kernel_size**2
    return nn.Sequential(
        nn.Conv2d(
            in_channels,
            in_channels * k2,
            kernel_size,
            padding=kernel_size // 2,
            stride=stride,
            groups=in_channels,
            bias=False,
        ),
        nn.BatchNorm2d(in_channels * k2),
        nn.ReLU(),
    )


def _final_conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """k×k conv with stride k and bias, reading each unfolded patch once."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, stride=kernel_size))


def _unfold(feature: torch.Tensor, k: int) -> torch.Tensor:
    """``(b, c, k·k, h, w) -> (b, c, h·k, w·k)``; einops ``b c (n1 n2) h w -> b c (h n1) (w n2)``."""
    b, c, _, h, w = feature.shape
    return feature.reshape(b, c, k, k, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c, h * k, w * k)


class RFAConv(nn.Module):
    """Receptive-field attention convolution (official ``RFAConv``).

    Args:
        in_channels: input channels C.
        out_channels: output channels.
        stride: spatial stride; the output is ``ceil(h / stride) × ceil(w / stride)``.
        kernel_size: odd receptive-field size k.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, kernel_size: int = 3):
        check_rfaconv(in_channels, out_channels, stride, kernel_size=kernel_size)
        super().__init__()
        self.kernel_size = kernel_size
        k = kernel_size
        self.get_weight = nn.Sequential(
            nn.AvgPool2d(kernel_size=k, padding=k // 2, stride=stride),
            nn.Conv2d(
                in_channels, in_channels * k**2, kernel_size=1, groups=in_channels, bias=False
            ),
        )
        self.generate_feature = _generate(in_channels, k, stride)
        self.conv = _final_conv(in_channels, out_channels, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if use_fast(self, x):  # the device formulation; not exported
            return formulations.rfaconv(self, x)
        b, c = x.shape[:2]
        k2 = self.kernel_size**2
        weight = self.get_weight(x)
        h, w = weight.shape[-2:]
        weighted = weight.reshape(b, c, k2, h, w).softmax(2)
        feature = self.generate_feature(x).reshape(b, c, k2, h, w)
        return self.conv(_unfold(feature * weighted, self.kernel_size))


class _SE(nn.Module):
    """RFCBAMConv's channel attention: GAP → Linear(C, 16) → ReLU → Linear(16, C) → sigmoid."""

    def __init__(self, channels: int, width: int = _SE_WIDTH):
        super().__init__()
        self.gap = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Sequential(
            nn.Linear(channels, width, bias=False),
            nn.ReLU(),
            nn.Linear(width, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        return self.fc(self.gap(x).reshape(b, c)).reshape(b, c, 1, 1)


class RFCBAMConv(nn.Module):
    """Receptive-field CBAM convolution (official ``RFCBAMConv``).

    Args:
        in_channels: input channels C.
        out_channels: output channels.
        stride: spatial stride; the output is ``ceil(h / stride) × ceil(w / stride)``.
        kernel_size: odd receptive-field size k.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, kernel_size: int = 3):
        check_rfcbamconv(in_channels, out_channels, stride, kernel_size=kernel_size)
        super().__init__()
        self.kernel_size = kernel_size
        self.generate = _generate(in_channels, kernel_size, stride)
        self.get_weight = nn.Sequential(
            nn.Conv2d(2, 1, kernel_size=3, padding=1, bias=False), nn.Sigmoid()
        )
        self.se = _SE(in_channels)
        self.conv = _final_conv(in_channels, out_channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if use_fast(self, x):  # the device formulation; not exported
            return formulations.rfcbamconv(self, x)
        b, c = x.shape[:2]
        channel_attention = self.se(x)
        generated = self.generate(x)
        h, w = generated.shape[-2:]
        generated = _unfold(generated.reshape(b, c, self.kernel_size**2, h, w), self.kernel_size)
        unfolded = generated * channel_attention
        max_feature = torch.max(generated, dim=1, keepdim=True)[0]
        mean_feature = torch.mean(generated, dim=1, keepdim=True)
        rf_attention = self.get_weight(torch.cat((max_feature, mean_feature), dim=1))
        return self.conv(unfolded * rf_attention)


class _HSwish(nn.Module):
    """``x * relu6(x + 3) / 6`` in the official operation order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (F.relu6(x + 3) / 6)


class RFCAConv(nn.Module):
    """Receptive-field coordinate-attention convolution (official ``RFCAConv``).

    Args:
        in_channels: input channels C.
        out_channels: output channels.
        stride: spatial stride; the output is ``ceil(h / stride) × ceil(w / stride)``.
        kernel_size: odd receptive-field size k.
        reduction: coordinate-attention reduction; hidden width ``max(8, C // reduction)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        kernel_size: int = 3,
        reduction: int = 32,
    ):
        check_rfcaconv(
            in_channels, out_channels, stride, kernel_size=kernel_size, reduction=reduction
        )
        super().__init__()
        self.kernel_size = kernel_size
        self.generate = _generate(in_channels, kernel_size, stride)
        self.pool_h = nn.AdaptiveAvgPool2d((None, 1))
        self.pool_w = nn.AdaptiveAvgPool2d((1, None))
        mip = max(8, in_channels // reduction)
        self.conv1 = nn.Conv2d(in_channels, mip, kernel_size=1)
        self.bn1 = nn.BatchNorm2d(mip)
        self.act = _HSwish()
        self.conv_h = nn.Conv2d(mip, in_channels, kernel_size=1)
        self.conv_w = nn.Conv2d(mip, in_channels, kernel_size=1)
        self.conv = _final_conv(in_channels, out_channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if use_fast(self, x):  # the device formulation; not exported
            return formulations.rfcaconv(self, x)
        b, c = x.shape[:2]
        generated = self.generate(x)
        h, w = generated.shape[-2:]
        generated = _unfold(generated.reshape(b, c, self.kernel_size**2, h, w), self.kernel_size)
        big_h, big_w = generated.shape[-2:]
        x_h = self.pool_h(generated)  # (b, c, H, 1)
        x_w = self.pool_w(generated).permute(0, 1, 3, 2)  # (b, c, W, 1)
        y = self.act(self.bn1(self.conv1(torch.cat([x_h, x_w], dim=2))))
        y_h, y_w = torch.split(y, [big_h, big_w], dim=2)
        a_h = self.conv_h(y_h).sigmoid()
        a_w = self.conv_w(y_w.permute(0, 1, 3, 2)).sigmoid()
        return self.conv(generated * a_w * a_h)


_KERNEL = HParam(
    "kernel_size", int, 3, low=1, odd=True, help="receptive-field size k (odd); 3 in the paper"
)

register(
    ModuleSpec(
        name="rfaconv",
        placement="conv",
        cls=RFAConv,
        hparams=(_KERNEL,),
        paper=_PAPER,
        code=_CODE,
        requires="any channel counts",
        check=check_rfaconv,
        flops=flops_rfaconv,
    )
)
register(
    ModuleSpec(
        name="rfcbamconv",
        placement="conv",
        cls=RFCBAMConv,
        hparams=(_KERNEL,),
        paper=_PAPER,
        code=_CODE,
        requires="any channel counts (SE hidden width fixed at 16)",
        check=check_rfcbamconv,
        flops=flops_rfcbamconv,
    )
)
register(
    ModuleSpec(
        name="rfcaconv",
        placement="conv",
        cls=RFCAConv,
        hparams=(
            _KERNEL,
            HParam(
                "reduction",
                int,
                32,
                low=1,
                help="coordinate-attention reduction; hidden width max(8, C // reduction)",
            ),
        ),
        paper=_PAPER,
        code=_CODE,
        requires="any channel counts (hidden width max(8, in_channels // reduction))",
        check=check_rfcaconv,
        flops=flops_rfcaconv,
    )
)
