"""Efficient Channel Attention (ECA) gate.

Paper: "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks",
Wang, Wu, Zhu, Li, Zuo and Hu (arXiv:1910.03151).
Official code: https://github.com/BangguWu/ECANet (``models/eca_module.py``).

Global average pooling gives one descriptor per channel; a 1-D convolution of size k (no
bias) slides across the channel axis, so each channel's weight depends on its k neighbours;
a sigmoid turns that into a gate.

Where the official code departs from the paper:

* The paper chooses k adaptively from the channel count,
  ``t = int(abs((log2(C) + b) / gamma))``, ``k = t if t is odd else t + 1`` (gamma=2, b=1).
  The official ``eca_layer`` takes a fixed ``k_size`` instead, and the released ECA-Net
  models use hand-picked per-stage kernels (README: ``eca_resnet50_k3557``, i.e. 3, 5, 5, 7
  for the four stages of ECA-ResNet-50; ``k3357`` for ResNet-101/152; ``[3, 3, 3, 3]`` is
  the code default), where the adaptive rule would give 5, 5, 5, 7 for ResNet-50's 256 to
  2048 channels. ``k_size`` here is that fixed kernel: when given it overrides ``gamma``
  and ``b``; when ``None`` the paper's adaptive rule is used (:func:`adaptive_kernel_size`).
* The 1-D convolution is zero-padded by ``(k - 1) // 2`` at both ends of the channel axis,
  as in the official code.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from attnsearch.modules.registry import HParam, ModuleSpec, check_positive, register

__all__ = ["ECA", "adaptive_kernel_size", "check", "flops", "ignored"]

_NAME = "eca"
_GAMMA = HParam("gamma", int, 2, low=1, help="gamma of the adaptive kernel-size rule")
_B = HParam("b", int, 1, low=0, help="b of the adaptive kernel-size rule")
_K_SIZE = HParam(
    "k_size",
    int,
    None,
    low=1,
    optional=True,
    odd=True,
    help="fixed 1-D kernel size (odd); overrides gamma and b when given",
)


def adaptive_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    """The paper's adaptive kernel size: the odd number nearest above ``|log2(C) + b| / gamma``.

    Args:
        channels: channel count C.
        gamma: gamma of the rule.
        b: b of the rule.

    Returns:
        ``t`` if ``t`` is odd else ``t + 1``, with ``t = int(abs((log2(C) + b) / gamma))``.
    """
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


def check(channels: int, gamma: int = 2, b: int = 1, k_size: int | None = None) -> None:
    """Raise ``ValueError`` if ECA with these hyperparameters cannot be built on ``channels``.

    ECA works with any channel count; this checks the values themselves (``gamma >= 1``,
    ``b >= 0``, ``k_size`` odd and positive or ``None``).

    Args:
        channels: number of input (and output) channels.
        gamma: gamma of the adaptive kernel-size rule.
        b: b of the adaptive kernel-size rule.
        k_size: fixed kernel size, or ``None`` for the adaptive rule.

    Raises:
        ValueError: naming the module, the value and the rule broken.
    """
    check_positive(_NAME, channels=channels)
    _GAMMA.validate(_NAME, gamma)
    _B.validate(_NAME, b)
    _K_SIZE.validate(_NAME, k_size)


def ignored(params) -> tuple[str, ...]:
    """``gamma`` and ``b`` have no effect once a fixed ``k_size`` is given."""
    return ("gamma", "b") if params.get("k_size") is not None else ()


def _kernel(channels: int, gamma: int, b: int, k_size: int | None) -> int:
    return int(k_size) if k_size is not None else adaptive_kernel_size(channels, gamma, b)


class ECA(nn.Module):
    """ECA gate: ``x * sigmoid(conv1d_k(avgpool(x)))`` with the conv across channels.

    Args:
        channels: number of input (and output) channels C.
        gamma: gamma of the adaptive kernel-size rule.
        b: b of the adaptive kernel-size rule.
        k_size: fixed odd kernel size; overrides ``gamma`` and ``b`` when given.
    """

    def __init__(
        self, channels: int, *, gamma: int = 2, b: int = 1, k_size: int | None = None
    ) -> None:
        check(channels, gamma=gamma, b=b, k_size=k_size)
        super().__init__()
        k = _kernel(channels, gamma, b, k_size)
        self.k_size = k
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=(k - 1) // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean((2, 3)).unsqueeze(1)  # (B, 1, C): channels as a 1-D sequence
        y = self.conv(y).squeeze(1)  # (B, C)
        return x * torch.sigmoid(y)[:, :, None, None]


def flops(
    channels: int, h: int, w: int, gamma: int = 2, b: int = 1, k_size: int | None = None
) -> int:
    """FLOPs of one ECA gate on a ``(channels, h, w)`` input, batch of one.

    Pool ``C*h*w + C``; 1-D conv ``C*k``; sigmoid ``C``; gating multiply ``C*h*w``.
    """
    check(channels, gamma=gamma, b=b, k_size=k_size)
    c, hw = channels, h * w
    k = _kernel(channels, gamma, b, k_size)
    return (c * hw + c) + c * k + c + c * hw


register(
    ModuleSpec(
        name=_NAME,
        placement="gate",
        cls=ECA,
        hparams=(_GAMMA, _B, _K_SIZE),
        paper=(
            "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks "
            "(arXiv:1910.03151)"
        ),
        code="https://github.com/BangguWu/ECANet",
        requires="any channel count",
        check=check,
        flops=flops,
        ignored=ignored,
    )
)
