"""EPSANet: An Efficient Pyramid Squeeze Attention Block on Convolutional Neural Network.

Hu Zhang, Keke Zu, Jian Lu, Yuru Zou, Deyu Meng; arXiv:2105.14447. Official code:
https://github.com/murufeng/EPSANet (``models/epsanet.py``: ``PSAModule``;
``models/SE_weight_module.py``: ``SEWeightModule``).

The PSA module replaces a block's 3×3 convolution. It has ``S`` branches (``splits``);
branch ``i`` is a convolution with kernel ``3 + 2i`` (padding ``k // 2``, the block's
stride, no bias) and ``groups = 1`` for ``i = 0``, ``2 ** (i + 1)`` otherwise, producing
``out_channels // S`` channels. One SE weight module (avgpool → 1×1 conv with bias →
ReLU → 1×1 conv with bias → sigmoid) scores every branch; the S score vectors are
softmaxed *across branches*, multiply the branch outputs, and the results are
concatenated along channels.

This follows the official code, which the paper's tables were produced with. Where the
code departs from the paper:

* **Every branch convolves all input channels.** The paper's SPC module splits the input
  into S channel groups, one per branch; ``PSAModule`` gives each branch the whole input
  and only splits the *output* channels.
* **Group counts.** The paper's rule ``G = 2 ** ((k - 1) / 2)`` gives 2 for the 3×3
  branch; the code uses 1 (groups 1, 4, 8, 16 for kernels 3, 5, 7, 9).
* **One SE module shared by all branches**, not one per scale.
* **Reverse concatenation order.** The official loop ``out = cat((x_i, out), 1)`` puts
  the last (largest-kernel) branch first; kept here so official weights and the following
  BN line up channel for channel.
* The official module hard-codes ``S = 4`` (``planes // 4`` channels per branch, silently
  dropping channels when ``planes`` is not a multiple of 4); here S is a hyperparameter
  and indivisible channel counts raise ``ValueError`` instead.

Parameter names match the official module (``conv_1`` … ``conv_S``, ``se.fc1``,
``se.fc2``), so an official ``PSAModule`` state dict loads directly for ``S = 4``.
"""

from __future__ import annotations

import torch
from torch import nn

from attnsearch.modules.registry import HParam, ModuleSpec, check_positive, register

__all__ = ["PSAModule", "SEWeightModule", "branch_groups", "branch_kernels", "check", "flops"]

_NAME = "epsa"


def branch_kernels(splits: int) -> list[int]:
    """Kernel sizes of the S branches: 3, 5, 7, …"""
    return [3 + 2 * i for i in range(splits)]


def branch_groups(splits: int) -> list[int]:
    """Convolution groups of the S branches: 1, then ``2 ** (i + 1)`` (4, 8, 16, …)."""
    return [1 if i == 0 else 2 ** (i + 1) for i in range(splits)]


def check(
    in_channels: int, out_channels: int, stride: int, splits: int = 4, reduction: int = 16
) -> None:
    """Raise ``ValueError`` if a PSA module with these settings cannot be built.

    Args:
        in_channels: channels of the block's input to the replaced convolution.
        out_channels: channels it must produce.
        stride: the replaced convolution's stride.
        splits: number of branches S.
        reduction: SE reduction ratio inside each branch's weight module.
    """
    check_positive(
        _NAME,
        in_channels=in_channels,
        out_channels=out_channels,
        stride=stride,
        splits=splits,
        reduction=reduction,
    )
    if out_channels % splits:
        raise ValueError(
            f"{_NAME}: out_channels={out_channels} is not divisible by splits={splits}"
        )
    split = out_channels // splits
    for i, (k, g) in enumerate(zip(branch_kernels(splits), branch_groups(splits), strict=True)):
        if in_channels % g:
            raise ValueError(
                f"{_NAME}: in_channels={in_channels} is not divisible by groups={g} "
                f"of branch {i + 1} (kernel {k}) with splits={splits}"
            )
        if split % g:
            raise ValueError(
                f"{_NAME}: out_channels/splits={split} (out_channels={out_channels}, "
                f"splits={splits}) is not divisible by groups={g} of branch {i + 1} (kernel {k})"
            )
    if split // reduction < 1:
        raise ValueError(
            f"{_NAME}: out_channels/splits={split} is smaller than reduction={reduction} "
            f"(the SE hidden width would be 0)"
        )


def flops(
    in_channels: int,
    out_channels: int,
    stride: int,
    h: int,
    w: int,
    splits: int = 4,
    reduction: int = 16,
) -> int:
    """FLOPs of one forward pass on a ``(in_channels, h, w)`` input, batch of one.

    Equals :func:`attnsearch.flops.count` of :class:`PSAModule` exactly (same rules: conv
    MACs without bias, pooling = inputs + outputs, sigmoid and mul one per element,
    softmax ``rows * (3n - 1)``).
    """
    ho, wo = -(-h // stride), -(-w // stride)
    split = out_channels // splits
    hidden = split // reduction
    total = 0
    for k, g in zip(branch_kernels(splits), branch_groups(splits), strict=True):
        total += ho * wo * split * (in_channels // g) * k * k  # branch convolution
    total += splits * (split * ho * wo + split)  # SE average pool, per branch
    total += splits * 2 * hidden * split  # SE fc1 + fc2 (1x1 convs)
    total += splits * split  # SE sigmoid
    total += split * (3 * splits - 1)  # softmax across the S branches
    total += out_channels * ho * wo  # feats * attention
    return total


class SEWeightModule(nn.Module):
    """SE scoring of one branch: avgpool → 1×1 conv → ReLU → 1×1 conv → sigmoid.

    Both 1×1 convolutions carry a bias, as in the official ``SEWeightModule``. Returns the
    weights ``(b, channels, 1, 1)``, not the reweighted input.
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))


class PSAModule(nn.Module):
    """Pyramid split attention, a drop-in for a 3×3 convolution (stride inside).

    Args:
        in_channels: input channels.
        out_channels: output channels; a multiple of ``splits``.
        stride: spatial stride; the output is ``ceil(h / stride) × ceil(w / stride)``.
        splits: number of branches S (kernels 3, 5, 7, …; groups 1, 4, 8, 16, …).
        reduction: SE reduction ratio; the SE hidden width is
            ``(out_channels // splits) // reduction``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        splits: int = 4,
        reduction: int = 16,
    ):
        check(in_channels, out_channels, stride, splits=splits, reduction=reduction)
        super().__init__()
        self.splits = splits
        self.split_channels = out_channels // splits
        kernels, groups = branch_kernels(splits), branch_groups(splits)
        for i, (k, g) in enumerate(zip(kernels, groups, strict=True)):
            conv = nn.Conv2d(
                in_channels,
                self.split_channels,
                kernel_size=k,
                stride=stride,
                padding=k // 2,
                groups=g,
                bias=False,
            )
            self.add_module(f"conv_{i + 1}", conv)
        self.se = SEWeightModule(self.split_channels, reduction)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        feats = torch.stack(
            [getattr(self, f"conv_{i + 1}")(x) for i in range(self.splits)], dim=1
        )  # (b, S, split, h, w)
        h, w = feats.shape[-2:]
        # The shared SE scores every branch; running it once on the branches folded into
        # the batch is the same computation as the official per-branch calls.
        scores = self.se(feats.reshape(b * self.splits, self.split_channels, h, w))
        attention = self.softmax(scores.reshape(b, self.splits, self.split_channels, 1, 1))
        weighted = feats * attention
        # Reverse branch order, as the official concatenation loop produces.
        return torch.cat(weighted.unbind(1)[::-1], dim=1)


register(
    ModuleSpec(
        name=_NAME,
        placement="conv",
        cls=PSAModule,
        hparams=(
            HParam(
                "splits",
                int,
                4,
                low=1,
                help="branches S: kernels 3,5,7,… and conv groups 1,4,8,16,…",
            ),
            HParam(
                "reduction", int, 16, low=1, help="SE reduction ratio of the shared weight module"
            ),
        ),
        paper="EPSANet: An Efficient Pyramid Squeeze Attention Block on Convolutional "
        "Neural Network (arXiv:2105.14447)",
        code="https://github.com/murufeng/EPSANet",
        requires="out_channels divisible by splits; in_channels and out_channels/splits "
        "divisible by every branch's groups (1, 4, 8, 16, … = 2**(i+1)); "
        "out_channels/splits >= reduction",
        check=check,
        flops=flops,
    )
)
