"""Convolutional Block Attention Module (CBAM): a channel gate, then a spatial gate.

Paper: "CBAM: Convolutional Block Attention Module", Woo, Park, Lee and Kweon
(arXiv:1807.06521).
Official code: https://github.com/Jongchan/attention-module (``MODELS/cbam.py``,
``MODELS/model_resnet.py``).

Channel gate: a shared MLP ``C -> C // r -> C`` (with biases, ReLU between) is applied to the
average-pooled and the max-pooled channel descriptors; the two outputs are summed and a
sigmoid gives one weight per channel. Spatial gate: the channel-wise max and mean maps are
stacked (max first), a ``k x k`` convolution (no bias) and a BatchNorm (``eps=1e-5,
momentum=0.01``) give one map, and a sigmoid turns it into a per-pixel weight.

Where the official code departs from the paper, followed here:

* The paper's spatial gate is ``sigmoid(conv(...))``; the official ``SpatialGate`` puts a
  BatchNorm between the convolution and the sigmoid (two extra parameters per block).
* The pooling order of the spatial descriptor is ``[max, mean]`` (the paper writes
  ``[AvgPool; MaxPool]``); it only permutes the conv's input channels.
* The official ResNet initialisation (``model_resnet.py``) sets every bias to zero and the
  spatial gate's BatchNorm weight to zero, so the spatial gate starts at a constant 0.5.
  :meth:`CBAM.reset_parameters` does the same for this module's own parameters; a
  backbone that re-initialises all BatchNorm weights to one afterwards undoes it.

The submodule names (``ChannelGate.mlp.1``, ``SpatialGate.spatial.conv``, ...) mirror the
official ones so that official state dicts load unchanged.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from attnsearch.modules.registry import HParam, ModuleSpec, check_positive, register

__all__ = ["CBAM", "check", "flops"]

_NAME = "cbam"
_REDUCTION = HParam(
    "reduction", int, 16, low=1, help="channel reduction r of the channel gate's MLP"
)
_KERNEL_SIZE = HParam(
    "kernel_size", int, 7, choices=(3, 7), help="kernel size of the spatial gate's conv"
)


def check(channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
    """Raise ``ValueError`` if CBAM with these hyperparameters cannot be built on ``channels``.

    Args:
        channels: number of input (and output) channels.
        reduction: reduction ratio r of the channel MLP; the hidden width is ``channels // r``.
        kernel_size: spatial conv kernel size (3 or 7).

    Raises:
        ValueError: naming the module, the value and the rule broken.
    """
    check_positive(_NAME, channels=channels)
    reduction = _REDUCTION.validate(_NAME, reduction)
    _KERNEL_SIZE.validate(_NAME, kernel_size)
    if channels // reduction < 1:
        raise ValueError(
            f"{_NAME}: reduction={reduction} is larger than channels={channels} "
            f"(the hidden width channels // reduction must be at least 1)"
        )


class _ChannelGate(nn.Module):
    """Shared MLP over the average- and max-pooled descriptors, summed, sigmoid."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = channels // reduction
        self.mlp = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels, hidden),
            nn.ReLU(),
            nn.Linear(hidden, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean((2, 3), keepdim=True))
        mx = self.mlp(x.amax((2, 3), keepdim=True))
        return x * torch.sigmoid(avg + mx)[:, :, None, None]


class _SpatialGate(nn.Module):
    """``[max, mean]`` over channels, ``k x k`` conv, BatchNorm, sigmoid."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.spatial = nn.Sequential(
            OrderedDict(
                conv=nn.Conv2d(
                    2, 1, kernel_size, stride=1, padding=(kernel_size - 1) // 2, bias=False
                ),
                bn=nn.BatchNorm2d(1, eps=1e-5, momentum=0.01, affine=True),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat((x.amax(1, keepdim=True), x.mean(1, keepdim=True)), dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class CBAM(nn.Module):
    """CBAM gate: channel gate, then spatial gate.

    Args:
        channels: number of input (and output) channels C.
        reduction: reduction ratio r of the channel MLP; the hidden width is ``C // r``.
        kernel_size: spatial conv kernel size (3 or 7).
    """

    def __init__(self, channels: int, *, reduction: int = 16, kernel_size: int = 7) -> None:
        check(channels, reduction=reduction, kernel_size=kernel_size)
        super().__init__()
        self.ChannelGate = _ChannelGate(channels, int(reduction))  # official attribute names
        self.SpatialGate = _SpatialGate(int(kernel_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official initialisation of the gate's own biases and BatchNorm weight."""
        for m in (self.ChannelGate.mlp[1], self.ChannelGate.mlp[3]):
            nn.init.zeros_(m.bias)
        nn.init.zeros_(self.SpatialGate.spatial.bn.weight)
        nn.init.zeros_(self.SpatialGate.spatial.bn.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.SpatialGate(self.ChannelGate(x))


def flops(channels: int, h: int, w: int, reduction: int = 16, kernel_size: int = 7) -> int:
    """FLOPs of one CBAM gate on a ``(channels, h, w)`` input, batch of one.

    Channel gate: average pool ``C*h*w + C`` (max pool 0); the MLP twice ``4*C*(C//r)``;
    sum ``C``; sigmoid ``C``; gating ``C*h*w``. Spatial gate: channel mean ``C*h*w + h*w``
    (max 0); conv ``2*k*k*h*w``; BatchNorm ``4*h*w``; sigmoid ``h*w``; gating ``C*h*w``.
    """
    check(channels, reduction=reduction, kernel_size=kernel_size)
    c, hw, k = channels, h * w, int(kernel_size)
    hidden = c // int(reduction)
    channel_gate = (c * hw + c) + 4 * c * hidden + c + c + c * hw
    spatial_gate = (c * hw + hw) + 2 * k * k * hw + 4 * hw + hw + c * hw
    return channel_gate + spatial_gate


register(
    ModuleSpec(
        name=_NAME,
        placement="gate",
        cls=CBAM,
        hparams=(_REDUCTION, _KERNEL_SIZE),
        paper="CBAM: Convolutional Block Attention Module (arXiv:1807.06521)",
        code="https://github.com/Jongchan/attention-module",
        requires="channels // reduction >= 1",
        check=check,
        flops=flops,
    )
)
