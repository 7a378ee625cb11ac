"""Shuffle Attention (SA) gate.

Paper: "SA-Net: Shuffle Attention for Deep Convolutional Neural Networks", Zhang and Yang
(arXiv:2102.00240).
Official code: https://github.com/wofmanaf/SA-Net (``models/sa_resnet.py``, ``sa_layer``).

The channels are split into G groups (folded into the batch axis) and each group into two
halves of ``C / (2G)`` channels. The first half gets a channel gate,
``sigmoid(cweight * avgpool(x) + cbias)``; the second a spatial gate,
``sigmoid(sweight * GroupNorm(x) + sbias)``. The halves are concatenated, the groups
unfolded, and a channel shuffle with 2 groups mixes the two branches.

Following the official ``sa_layer`` exactly:

* The GroupNorm has ``C / (2G)`` groups over ``C / (2G)`` channels, i.e. every channel is
  normalised on its own (an instance norm over h x w) with its own affine weight and bias.
* ``cweight`` and ``sweight`` start at zero and ``cbias``/``sbias`` at one, so both gates
  start at the constant ``sigmoid(1)``.
* Because the groups are folded into the batch axis, the ``cweight``, ``cbias``,
  ``sweight``, ``sbias`` and GroupNorm parameters are shared by all G groups: a block has
  ``6 * C / (2G)`` parameters.
* The output is ``channel_shuffle(out, 2)`` of the re-assembled tensor: channel
  ``i * 2 + j`` of the result is channel ``j * C/2 + i`` before the shuffle.
"""

from __future__ import annotations

import torch
from torch import nn

from attnsearch.modules import formulations
from attnsearch.modules.formulations import use_fast
from attnsearch.modules.registry import HParam, ModuleSpec, check_positive, register

__all__ = ["ShuffleAttention", "check", "flops"]

_NAME = "sa"
_GROUPS = HParam("groups", int, 64, low=1, help="number of groups G (channels must divide by 2*G)")


def check(channels: int, groups: int = 64) -> None:
    """Raise ``ValueError`` if SA with ``groups`` cannot be built on ``channels``.

    Args:
        channels: number of input (and output) channels.
        groups: number of groups G; ``channels`` must be divisible by ``2 * G``.

    Raises:
        ValueError: naming the module, the value and the rule broken.
    """
    check_positive(_NAME, channels=channels)
    groups = _GROUPS.validate(_NAME, groups)
    if channels % (2 * groups):
        raise ValueError(
            f"{_NAME}: channels={channels} is not divisible by 2*groups={2 * groups} "
            f"(groups={groups})"
        )


class ShuffleAttention(nn.Module):
    """SA gate (the official ``sa_layer``).

    Args:
        channels: number of input (and output) channels C.
        groups: number of groups G; C must be divisible by ``2 * G``.
    """

    def __init__(self, channels: int, *, groups: int = 64) -> None:
        check(channels, groups=groups)
        super().__init__()
        self.groups = int(groups)
        half = channels // (2 * self.groups)
        self.cweight = nn.Parameter(torch.zeros(1, half, 1, 1))
        self.cbias = nn.Parameter(torch.ones(1, half, 1, 1))
        self.sweight = nn.Parameter(torch.zeros(1, half, 1, 1))
        self.sbias = nn.Parameter(torch.ones(1, half, 1, 1))
        self.gn = nn.GroupNorm(half, half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if use_fast(self, x):  # the device formulation; not exported
            return formulations.shuffle_attention(self, x)
        b, c, h, w = x.shape
        x0, x1 = x.reshape(b * self.groups, c // self.groups, h, w).chunk(2, dim=1)

        # channel branch: per-channel gate from the spatial mean
        xn = x0 * torch.sigmoid(self.cweight * x0.mean((2, 3), keepdim=True) + self.cbias)
        # spatial branch: per-pixel gate from the normalised map
        xs = x1 * torch.sigmoid(self.sweight * self.gn(x1) + self.sbias)

        out = torch.cat((xn, xs), dim=1).reshape(b, c, h, w)
        # channel shuffle with 2 groups
        return out.reshape(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)


def flops(channels: int, h: int, w: int, groups: int = 64) -> int:
    """FLOPs of one SA gate on a ``(channels, h, w)`` input, batch of one.

    Channel branch (C/2 channels): pool ``C/2*h*w + C/2``; affine ``2 * C/2``; sigmoid
    ``C/2``; gating ``C/2*h*w``. Spatial branch (C/2 channels): GroupNorm
    ``4 * C/2*h*w``; affine ``2 * C/2*h*w``; sigmoid ``C/2*h*w``; gating ``C/2*h*w``.
    Reshapes, concatenation and shuffle: 0. Total ``5*C*h*w + 2*C``.
    """
    check(channels, groups=groups)
    half, hw = channels // 2, h * w
    channel_branch = (half * hw + half) + 2 * half + half + half * hw
    spatial_branch = 4 * half * hw + 2 * half * hw + half * hw + half * hw
    return channel_branch + spatial_branch


register(
    ModuleSpec(
        name=_NAME,
        placement="gate",
        cls=ShuffleAttention,
        hparams=(_GROUPS,),
        paper="SA-Net: Shuffle Attention for Deep Convolutional Neural Networks (arXiv:2102.00240)",
        code="https://github.com/wofmanaf/SA-Net",
        requires="channels divisible by 2*groups",
        check=check,
        flops=flops,
    )
)
