"""``none``: the plain residual block, as the registry's identity entry.

Paper: "Deep Residual Learning for Image Recognition", He, Zhang, Ren and Sun
(arXiv:1512.03385). Official code: https://github.com/KaimingHe/deep-residual-networks
(Caffe models).

A slot holding ``none`` keeps the block of the ResNet paper (in its v1.5 layout, see
:mod:`attnsearch.resnet_layout`). The entry is an identity gate: it adds nothing to the
block (its :meth:`~attnsearch.modules.ModuleSpec.block_args` is empty, so the network is
exactly the plain one), no parameters, no FLOPs, and takes no hyperparameters. The class
below exists so the entry keeps the gate contract wherever a module is asked of it
(:meth:`~attnsearch.modules.ModuleSpec.build`); no network ever contains it.
"""

from __future__ import annotations

import torch
from torch import nn

from attnsearch.modules.registry import ModuleSpec, check_positive, register

__all__ = ["Identity", "check", "flops"]

_NAME = "none"


def check(channels: int) -> None:
    """Raise ``ValueError`` unless ``channels`` is a positive integer (any count works)."""
    check_positive(_NAME, channels=channels)


class Identity(nn.Module):
    """The plain block's gate: returns its input.

    Args:
        channels: number of input (and output) channels (checked, otherwise unused).
    """

    def __init__(self, channels: int) -> None:
        check(channels)
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def flops(channels: int, h: int, w: int) -> int:
    """FLOPs of the identity: none."""
    check(channels)
    return 0


register(
    ModuleSpec(
        name=_NAME,
        placement="gate",
        cls=Identity,
        hparams=(),
        paper="Deep Residual Learning for Image Recognition (arXiv:1512.03385)",
        code="https://github.com/KaimingHe/deep-residual-networks",
        requires="nothing",
        check=check,
        flops=flops,
        identity=True,
    )
)
