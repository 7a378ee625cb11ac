"""Squeeze-and-Excitation (SE) channel gate.

Paper: "Squeeze-and-Excitation Networks", Hu, Shen, Albanie, Sun and Wu (arXiv:1709.01507).
Official code: https://github.com/hujie-frank/SENet (Caffe; e.g. ``models/SE-ResNet-50.prototxt``).

Global average pooling squeezes each channel to one number; two fully connected layers
(``C -> C // r -> C``, ReLU between, sigmoid after) produce one weight per channel, and the
input is rescaled by it.

Where this departs from the paper / popular ports:

* The official Caffe models implement the two FC layers as 1x1 convolutions **with bias**
  (``bias_term`` left at its default ``true``). This file keeps the biases, so parameter counts
  match the released models. Common PyTorch ports drop them (e.g. ``SELayer`` in
  moskomule/senet.pytorch uses ``nn.Linear(..., bias=False)``): SE-ResNet-50 has
  28,088,024 parameters with the biases and 28,071,976 without.
* ``nn.Linear`` on the pooled vector is used instead of a 1x1 convolution; the two are the
  same map with the same parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from attnsearch.modules.registry import HParam, ModuleSpec, check_positive, register

__all__ = ["SqueezeExcitation", "check", "flops"]

_NAME = "se"
_REDUCTION = HParam(
    "reduction", int, 16, low=1, help="channel reduction r of the bottleneck MLP (C -> C//r -> C)"
)


def check(channels: int, reduction: int = 16) -> None:
    """Raise ``ValueError`` if SE with ``reduction`` cannot be built on ``channels``.

    Args:
        channels: number of input (and output) channels.
        reduction: reduction ratio r; the hidden width is ``channels // r``.

    Raises:
        ValueError: naming the module, the value and the rule broken.
    """
    check_positive(_NAME, channels=channels)
    reduction = _REDUCTION.validate(_NAME, reduction)
    if channels // reduction < 1:
        raise ValueError(
            f"{_NAME}: reduction={reduction} is larger than channels={channels} "
            f"(the hidden width channels // reduction must be at least 1)"
        )


class SqueezeExcitation(nn.Module):
    """SE gate: ``x * sigmoid(fc2(relu(fc1(avgpool(x)))))``.

    Args:
        channels: number of input (and output) channels C.
        reduction: reduction ratio r; the hidden width is ``C // r``.
    """

    def __init__(self, channels: int, *, reduction: int = 16) -> None:
        check(channels, reduction=reduction)
        super().__init__()
        hidden = channels // int(reduction)
        self.fc1 = nn.Linear(channels, hidden)  # Caffe: conv*_1x1_down, with bias
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden, channels)  # Caffe: conv*_1x1_up, with bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean((2, 3))  # squeeze: (B, C)
        y = self.fc2(self.relu(self.fc1(y)))  # excitation
        return x * torch.sigmoid(y)[:, :, None, None]


def flops(channels: int, h: int, w: int, reduction: int = 16) -> int:
    """FLOPs of one SE gate on a ``(channels, h, w)`` input, batch of one.

    Pool ``C*h*w + C``; two FCs ``2*C*(C//r)`` (bias not counted); sigmoid ``C``;
    gating multiply ``C*h*w``.
    """
    check(channels, reduction=reduction)
    c, hw = channels, h * w
    hidden = c // int(reduction)
    return (c * hw + c) + 2 * c * hidden + c + c * hw


register(
    ModuleSpec(
        name=_NAME,
        placement="gate",
        cls=SqueezeExcitation,
        hparams=(_REDUCTION,),
        paper="Squeeze-and-Excitation Networks (arXiv:1709.01507)",
        code="https://github.com/hujie-frank/SENet",
        requires="channels // reduction >= 1",
        check=check,
        flops=flops,
    )
)
