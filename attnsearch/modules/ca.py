"""Coordinate Attention (CA) gate.

Paper: "Coordinate Attention for Efficient Mobile Network Design", Hou, Zhou and Feng
(arXiv:2103.02907).
Official code: https://github.com/houqb/CoordAttention (``coordatt.py``, ``CoordAtt``).

The input is average-pooled along the width (one ``h x 1`` map per channel) and along the
height (one ``1 x w`` map); the two are concatenated along the spatial axis and share a
1x1 convolution ``C -> mip`` (with bias), a BatchNorm and an h-swish
(``x * relu6(x + 3) / 6``). The result is split back; two 1x1 convolutions
``mip -> C`` (with bias) and sigmoids give a height gate and a width gate, and the output is
``x * a_w * a_h``.

Following the official ``CoordAtt``:

* ``mip = max(8, C // reduction)``: the bottleneck never drops below 8 channels, so every
  channel count and reduction works.
* The activation is h-swish (the paper's figure says "non-linear"); its ``relu6`` acts on a
  temporary, never on the input.
* The module takes ``inp`` and ``oup`` separately; as a gate both are ``channels``.

The submodule names (``conv1``, ``bn1``, ``conv_h``, ``conv_w``) mirror the official ones so
that official state dicts load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnsearch.modules.registry import HParam, ModuleSpec, check_positive, register

__all__ = ["CoordAttention", "check", "flops"]

_NAME = "ca"
_REDUCTION = HParam(
    "reduction", int, 32, low=1, help="reduction r; bottleneck width is max(8, C // r)"
)


def _mip(channels: int, reduction: int) -> int:
    return max(8, channels // reduction)


def check(channels: int, reduction: int = 32) -> None:
    """Raise ``ValueError`` if CA with ``reduction`` cannot be built on ``channels``.

    CA works with any channel count (its bottleneck is at least 8 wide); this checks the
    values themselves.

    Args:
        channels: number of input (and output) channels.
        reduction: reduction ratio r; the bottleneck width is ``max(8, channels // r)``.

    Raises:
        ValueError: naming the module, the value and the rule broken.
    """
    check_positive(_NAME, channels=channels)
    _REDUCTION.validate(_NAME, reduction)


class CoordAttention(nn.Module):
    """CA gate (the official ``CoordAtt`` with ``inp == oup == channels``).

    Args:
        channels: number of input (and output) channels C.
        reduction: reduction ratio r; the bottleneck width is ``max(8, C // r)``.
    """

    def __init__(self, channels: int, *, reduction: int = 32) -> None:
        check(channels, reduction=reduction)
        super().__init__()
        mip = _mip(channels, int(reduction))
        self.pool_h = nn.AdaptiveAvgPool2d((None, 1))  # (B, C, h, 1): pooled over the width
        self.pool_w = nn.AdaptiveAvgPool2d((1, None))  # (B, C, 1, w): pooled over the height
        self.conv1 = nn.Conv2d(channels, mip, kernel_size=1, stride=1, padding=0)
        self.bn1 = nn.BatchNorm2d(mip)
        self.conv_h = nn.Conv2d(mip, channels, kernel_size=1, stride=1, padding=0)
        self.conv_w = nn.Conv2d(mip, channels, kernel_size=1, stride=1, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        x_h = self.pool_h(x)
        x_w = self.pool_w(x).permute(0, 1, 3, 2)  # (B, C, w, 1)

        y = self.bn1(self.conv1(torch.cat((x_h, x_w), dim=2)))
        y = y * (F.relu6(y + 3) / 6)  # h-swish

        y_h, y_w = torch.split(y, [h, w], dim=2)
        a_h = torch.sigmoid(self.conv_h(y_h))  # (B, C, h, 1)
        a_w = torch.sigmoid(self.conv_w(y_w.permute(0, 1, 3, 2)))  # (B, C, 1, w)
        return x * a_w * a_h


def flops(channels: int, h: int, w: int, reduction: int = 32) -> int:
    """FLOPs of one CA gate on a ``(channels, h, w)`` input, batch of one.

    Pools ``2*C*h*w + C*(h+w)``; conv1 ``C*mip*(h+w)`` (bias not counted); BatchNorm
    ``4*mip*(h+w)``; h-swish ``3*mip*(h+w)`` (add, divide, multiply; relu6 0); conv_h and
    conv_w ``C*mip*(h+w)``; sigmoids ``C*(h+w)``; gating ``2*C*h*w``.
    """
    check(channels, reduction=reduction)
    c, hw, s = channels, h * w, h + w
    mip = _mip(channels, int(reduction))
    return (
        (2 * c * hw + c * s)
        + c * mip * s
        + 4 * mip * s
        + 3 * mip * s
        + c * mip * s
        + (c * s)
        + 2 * c * hw
    )


register(
    ModuleSpec(
        name=_NAME,
        placement="gate",
        cls=CoordAttention,
        hparams=(_REDUCTION,),
        paper="Coordinate Attention for Efficient Mobile Network Design (arXiv:2103.02907)",
        code="https://github.com/houqb/CoordAttention",
        requires="any channel count (bottleneck max(8, channels // reduction))",
        check=check,
        flops=flops,
    )
)
