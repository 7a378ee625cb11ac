"""Device-aware formulations of the RFA family and Shuffle Attention.

Each module file keeps the *reference* formulation, which follows the official code line
by line and is what the export copies and what the FLOPs are counted on. This file holds
a second, *fast* formulation of the same maths for devices where the reference is slow
(RESULTS §11: on an H200 RFAConv trains at 10× plain's step time, SA leaves
``channels_last``). Both read the same parameters (no copy, no cache), so a state dict
loads into either and the choice can change between two calls.

What the fast forms change (the same sums and products, in another order or layout):

* RFA family: the receptive-field features stay folded as ``(b, C·k², h, w)``. The final
  ``k×k`` stride-``k`` convolution over the unfolded ``(C, h·k, w·k)`` map is the ``1×1``
  convolution over the folded tensor with the weight reshaped to ``(out, C·k², 1, 1)``
  (RESULTS §5), so the unfold copy disappears; every attention is applied as a broadcast
  multiply on the ``(b, C, k, k, h, w)`` view, in the input's memory format.
* RFAConv: the grouped ``1×1`` convolution ``C → C·k²`` (one input channel per output) is a
  broadcast multiply of the pooled map by the weight; the softmax runs over the axis that
  is contiguous in the input's layout.
* RFCBAMConv: only the two channel-pooled maps (2 of C channels) are unfolded for the
  ``3×3`` convolution; the gate is folded back as a strided view.
* RFCAConv: the two axis poolings are reductions over ``(w, k)`` and ``(h, k)`` of the
  folded view; only the pooled vectors are rearranged.
* SA: the groups become view axes instead of a batch reshape (which copies a
  ``channels_last`` input), the GroupNorm (one channel per group) becomes ``var_mean``
  folded into one scale and shift, computed in float32 as autocast runs GroupNorm, and
  the branches are stacked straight into the shuffled order, in the input's layout: no
  layout copy, and a ``channels_last`` input gives a ``channels_last`` output. With an odd
  number of groups the shuffle cannot be a view and costs one copy.

Which form runs (:func:`use_fast`) is decided per call from the process-wide mode:

* ``"reference"`` / ``"fast"``: that form everywhere;
* ``"auto"`` (the default): per device type, the types listed in :data:`AUTO_FAST` run
  the fast form; a device type not listed there (CUDA) runs every fast form. On the CPU
  the list holds the types whose fast form was measured faster there (RESULTS §14: the
  RFA family; SA's strided reductions cost more on the CPU than the reference's copies).

:func:`set_formulation` sets the mode, :func:`formulation` sets it for a ``with`` block
(the FLOPs counter counts the reference form this way), :func:`get_formulation` reads it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "AUTO_FAST",
    "FAST_TYPES",
    "MODES",
    "formulation",
    "get_formulation",
    "rfaconv",
    "rfcaconv",
    "rfcbamconv",
    "set_formulation",
    "shuffle_attention",
    "use_fast",
]

MODES = ("auto", "reference", "fast")
# the classes with a fast form (their ``forward`` asks :func:`use_fast`)
FAST_TYPES = ("RFAConv", "RFCBAMConv", "RFCAConv", "ShuffleAttention")
# device type -> the classes whose fast form ``auto`` runs there; not listed: all of them.
# CPU: measured by benchmarks/rfa_formulations.py (RESULTS §14)
AUTO_FAST: dict[str, frozenset[str]] = {"cpu": frozenset({"RFAConv", "RFCBAMConv", "RFCAConv"})}

_mode = "auto"


def _checked(mode: object) -> str:
    if mode not in MODES:
        raise ValueError(f"formulation: {mode!r} is not one of {', '.join(MODES)}")
    return str(mode)


def set_formulation(mode: str) -> None:
    """Choose the formulation of the RFA family and SA for the whole process.

    Args:
        mode: ``"auto"`` (the choice of :data:`AUTO_FAST` by device), ``"reference"``
            (the official formulation) or ``"fast"`` (the device formulation).

    Raises:
        ValueError: for any other value.
    """
    global _mode
    _mode = _checked(mode)


def get_formulation() -> str:
    """The current process-wide mode (``"auto"`` unless set)."""
    return _mode


@contextmanager
def formulation(mode: str) -> Iterator[None]:
    """Use ``mode`` (see :func:`set_formulation`) inside a ``with`` block, then restore."""
    global _mode
    previous, _mode = _mode, _checked(mode)
    try:
        yield
    finally:
        _mode = previous


def use_fast(module: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``module`` runs its fast form on the input ``x`` under the current mode."""
    if _mode == "auto":
        chosen = AUTO_FAST.get(x.device.type)
        return chosen is None or type(module).__name__ in chosen
    return _mode == "fast"


# --------------------------------------------------------------------------- RFA family


def _final(module: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """The ``k×k`` stride-``k`` convolution over the unfolded map, as the ``1×1``
    convolution over the folded ``(b, C·k², h, w)`` tensor ``y`` (the same weights)."""
    conv = module.conv[0]
    weight = conv.weight.reshape(conv.out_channels, -1, 1, 1)
    return F.conv2d(y, weight, conv.bias)


def _fold_map(t: torch.Tensor, k: int) -> torch.Tensor:
    """A ``(b, n, h·k, w·k)`` unfolded map as the ``(b, n, k, k, h, w)`` view (no copy); an
    axis of size 1 (a gate broadcast along it) stays 1 in both of its factors."""
    b, n, big_h, big_w = t.shape
    rows = (1, 1) if big_h == 1 else (big_h // k, k)
    cols = (1, 1) if big_w == 1 else (big_w // k, k)
    return t.view(b, n, *rows, *cols).permute(0, 1, 3, 5, 2, 4)


def _unfold_small(t: torch.Tensor) -> torch.Tensor:
    """``(b, n, k, k, h, w) -> (b, n, h·k, w·k)``, a copy: only for pooled, few-channel maps."""
    b, n, k, _, h, w = t.shape
    return t.permute(0, 1, 4, 2, 5, 3).reshape(b, n, h * k, w * k)


def rfaconv(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """:class:`~attnsearch.modules.rfaconv.RFAConv` in the fast form."""
    k = module.kernel_size
    k2 = k * k
    pool, grouped = module.get_weight
    pooled = pool(x)  # (b, C, h, w)
    b, c, h, w = pooled.shape
    weight = grouped.weight.reshape(c, k2).to(pooled.dtype)  # one input channel per output
    feature = module.generate_feature(x).view(b, c, k2, h, w)
    if feature.stride(2) == 1 and not feature.is_contiguous():
        # channels_last: (b, h, w, C, k²) is the memory order; the softmax runs over its
        # contiguous last axis, and the result is viewed back
        logits = pooled.permute(0, 2, 3, 1).unsqueeze(-1) * weight
        weighted = logits.softmax(-1).permute(0, 3, 4, 1, 2)
    else:
        weighted = (pooled.unsqueeze(2) * weight.view(1, c, k2, 1, 1)).softmax(2)
    return _final(module, (feature * weighted).reshape(b, c * k2, h, w))


def rfcbamconv(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """:class:`~attnsearch.modules.rfaconv.RFCBAMConv` in the fast form."""
    k = module.kernel_size
    b, c = x.shape[:2]
    channel_attention = module.se(x).view(b, c, 1, 1, 1, 1)
    generated = module.generate(x)
    h, w = generated.shape[-2:]
    folded = generated.view(b, c, k, k, h, w)
    # the channel max and mean of the unfolded map, unfolded for the 3×3 convolution
    max_feature = torch.max(folded, dim=1, keepdim=True)[0]
    mean_feature = torch.mean(folded, dim=1, keepdim=True)
    pooled = _unfold_small(torch.cat((max_feature, mean_feature), dim=1))
    rf_attention = _fold_map(module.get_weight(pooled), k)  # (b, 1, k, k, h, w) view
    weighted = folded * channel_attention * rf_attention
    return _final(module, weighted.reshape(b, c * k * k, h, w))


def rfcaconv(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """:class:`~attnsearch.modules.rfaconv.RFCAConv` in the fast form."""
    k = module.kernel_size
    b, c = x.shape[:2]
    generated = module.generate(x)
    h, w = generated.shape[-2:]
    folded = generated.view(b, c, k, k, h, w)  # unfolded row h·k + i, column w·k + j
    # average over each unfolded row (w, j) and column (h, i), in unfolded order; a sum
    # then a divide, so that the backward divides the small tensor, not the expanded one
    x_h = (folded.sum((3, 5)) / (w * k)).transpose(2, 3).reshape(b, c, h * k, 1)
    x_w = (folded.sum((2, 4)) / (h * k)).transpose(2, 3).reshape(b, c, w * k, 1)
    y = module.act(module.bn1(module.conv1(torch.cat([x_h, x_w], dim=2))))
    y_h, y_w = torch.split(y, [h * k, w * k], dim=2)
    a_h = module.conv_h(y_h).sigmoid()  # (b, C, h·k, 1)
    a_w = module.conv_w(y_w.permute(0, 1, 3, 2)).sigmoid()  # (b, C, 1, w·k)
    weighted = folded * _fold_map(a_w, k) * _fold_map(a_h, k)
    return _final(module, weighted.reshape(b, c * k * k, h, w))


# --------------------------------------------------------------------------- SA


def shuffle_attention(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """:class:`~attnsearch.modules.sa.ShuffleAttention` in the fast form.

    Channel ``g·C/G + br·C/(2G) + r`` of the input is group ``g``, branch ``br``, channel
    ``r`` of its half; output channel ``2i + j`` is channel ``j·C/2 + i`` before the
    shuffle. With G even, ``j`` is the lower or upper half of the groups
    (``g = j·G/2 + g'``) and ``i = g'·C/G + br·C/(2G) + r``: the input is viewed with the
    axes ``(j, g', br, r)`` and the branches are stacked in the order ``(g', br, r, j)``,
    which writes the shuffled tensor directly. Every axis is a view of the input's own
    layout (spatial axes last, or first for ``channels_last``), so the backward writes the
    input's gradient in that layout too.
    """
    b, c, h, w = x.shape
    groups = module.groups
    half = c // (2 * groups)
    even = groups % 2 == 0
    split = (2, groups // 2) if even else (groups,)  # (j, g') or (g,)
    last = x.stride(1) == 1 and not x.is_contiguous()  # channels_last
    if last:  # (b, h, w, *split, br, r)
        xv = x.permute(0, 2, 3, 1).view(b, h, w, *split, 2, half)
        spatial, param_shape = (1, 2), (half,)
    else:  # (b, *split, br, r, h, w)
        xv = x.view(b, *split, 2, half, h, w)
        spatial, param_shape = (-2, -1), (half, 1, 1)
    x0, x1 = xv.unbind(len(split) + (3 if last else 1))

    def param(p: torch.Tensor) -> torch.Tensor:
        return p.view(param_shape)

    # channel branch, as the reference
    pooled = x0.mean(spatial, keepdim=True)
    xn = x0 * torch.sigmoid(param(module.cweight) * pooled + param(module.cbias))
    # spatial branch: sweight·GN(x1) + sbias = x1·scale + shift per sample, group and
    # channel (GroupNorm with one channel per group), statistics in float32 as autocast
    # runs GroupNorm
    gn = module.gn
    xf = x1.float() if x1.dtype in (torch.float16, torch.bfloat16) else x1
    var, mean = torch.var_mean(xf, dim=spatial, correction=0, keepdim=True)
    sweight = param(module.sweight)
    scale = sweight * param(gn.weight) * torch.rsqrt(var + gn.eps)
    shift = sweight * param(gn.bias) + param(module.sbias) - mean * scale
    dtype = torch.promote_types(x.dtype, module.sweight.dtype)  # the reference's result type
    xs = x1 * torch.sigmoid(torch.addcmul(shift, xf, scale).to(dtype))

    if even and last:  # (b, h, w, j, g', r) -> (b, h, w, g', br, r, j)
        out = torch.stack([t.permute(0, 1, 2, 4, 5, 3) for t in (xn, xs)], dim=4)
        return out.reshape(b, h, w, c).permute(0, 3, 1, 2)
    if even:  # (b, j, g', r, h, w) -> (b, g', br, r, j, h, w)
        out = torch.stack([t.permute(0, 2, 3, 1, 4, 5) for t in (xn, xs)], dim=2)
        return out.reshape(b, c, h, w)
    # G odd: j splits a group, the shuffle is a copy
    if last:  # (b, h, w, g, r) -> (b, h, w, g, br, r)
        out = torch.stack((xn, xs), dim=4).reshape(b, h, w, 2, c // 2)
        return out.transpose(3, 4).reshape(b, h, w, c).permute(0, 3, 1, 2)
    out = torch.stack((xn, xs), dim=2).reshape(b, 2, c // 2, h, w)
    return out.transpose(1, 2).reshape(b, c, h, w)
