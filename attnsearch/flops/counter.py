"""Traced FLOPs: count every aten op a forward pass executes, with one rule per op.

The convention (documented in the README, "FLOPs convention"):

* One multiply-accumulate counts once, as in the attention papers' tables and as thop
  reports MACs. For every op thop counts, the rule here *is* thop's rule (ultralytics-thop
  2.x, ``thop/vision/basic_hooks.py``), so a network made only of modules thop knows gets
  exactly thop's figure (tested):

  - convolution: ``out_elements * (C_in / groups) * k_h * k_w`` (bias not counted);
  - linear / matmul: ``out_elements * in_features`` (bias not counted);
  - batch / group / layer norm: ``2 * elements``, doubled when affine (``4 * elements``);
  - average pooling, adaptive or not, and ``mean``: one add per pooled input plus one
    divide per output;
  - ReLU, ReLU6, max pooling and max reductions: 0 (comparisons, no arithmetic);
  - softmax: ``rows * (3 * n - 1)`` (exp, adds, divides).

* Ops thop misses (they are functional calls, not modules) are counted too:

  - elementwise arithmetic (add, sub, mul, div; the residual add, the attention gating
    ``x * a``, ``x + 3``, ``/ 6``): one per output element;
  - sigmoid, tanh, exp: one per output element;
  - pure data movement (view, reshape, permute, cat, split, chunk, contiguous, ...): 0.

* Any op without a rule raises :class:`UncountedOpError`, so nothing is silently left out.

:func:`count` runs the model once in eval mode without gradients, batch size 1, in the
modules' reference formulation (:mod:`attnsearch.modules.formulations`): the figure is the
paper's module's, whichever formulation the device would run.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from attnsearch.modules.formulations import formulation

__all__ = ["Count", "UncountedOpError", "count", "count_params"]


class UncountedOpError(RuntimeError):
    """A forward pass executed an aten op that has no counting rule."""


def _numel(t) -> int:
    return t.numel() if isinstance(t, torch.Tensor) else 0


def _first_tensor(out):
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for o in out:
            if isinstance(o, torch.Tensor):
                return o
    return None


def _conv(args, kwargs, out):
    weight = args[1]
    transposed = args[6] if len(args) > 6 else kwargs.get("transposed", False)
    if transposed:
        raise UncountedOpError("transposed convolution has no counting rule")
    per_output = math.prod(weight.shape[1:])  # (C_in / groups) * kernel volume
    return _numel(out) * per_output


def _addmm(args, kwargs, out):
    return _numel(out) * args[1].shape[-1]


def _mm(args, kwargs, out):
    return _numel(out) * args[0].shape[-1]


def _norm(weight_index: int):
    def rule(args, kwargs, out):
        x = args[0]
        weight = args[weight_index] if len(args) > weight_index else None
        flops = 2 * x.numel()
        return 2 * flops if weight is not None else flops

    return rule


def _mean(args, kwargs, out):
    return args[0].numel() + _numel(out)


def _pool_windows(size: int, out: int, k: int, s: int, p: int, include_pad: bool) -> int:
    lower, upper = (-p, size + p) if include_pad else (0, size)
    return sum(max(min(i * s - p + k, upper) - max(i * s - p, lower), 0) for i in range(out))


def _avg_pool2d(args, kwargs, out):
    x = args[0]
    kernel = args[1]
    stride = args[2] if len(args) > 2 and args[2] else kernel
    padding = args[3] if len(args) > 3 else 0
    include_pad = args[5] if len(args) > 5 else kwargs.get("count_include_pad", True)
    kernel, stride, padding = (
        (v, v) if isinstance(v, int) else tuple(v) for v in (kernel, stride, padding)
    )
    windows = 1
    for d in range(2):
        windows *= _pool_windows(
            x.shape[-2 + d], out.shape[-2 + d], kernel[d], stride[d], padding[d], include_pad
        )
    return math.prod(x.shape[:-2]) * windows + out.numel()


def _adaptive_avg_pool2d(args, kwargs, out):
    x = args[0]
    total = 1
    for i, o in zip(x.shape, out.shape, strict=True):
        total *= o if i == o else sum(-(-(j + 1) * i // o) - j * i // o for j in range(o))
    return total + out.numel()


def _softmax(args, kwargs, out):
    x = args[0]
    dim = args[1]
    n = x.shape[dim] if x.dim() else 1
    rows = x.numel() // n if n else 0
    return rows * (3 * n - 1)


def _elementwise(args, kwargs, out):
    return _numel(_first_tensor(out))


def _zero(args, kwargs, out):
    return 0


_CONV_LINEAR = {"convolution", "addmm", "mm", "bmm"}

_RULES: dict[str, Callable] = {
    # thop-covered ops, thop's rules
    "convolution": _conv,
    "addmm": _addmm,
    "mm": _mm,
    "bmm": _mm,
    "_native_batch_norm_legit_no_training": _norm(1),
    "_native_batch_norm_legit": _norm(1),
    "native_batch_norm": _norm(1),
    "native_group_norm": _norm(1),
    "native_layer_norm": _norm(2),
    "mean": _mean,
    "avg_pool2d": _avg_pool2d,
    "_adaptive_avg_pool2d": _adaptive_avg_pool2d,
    "_softmax": _softmax,
    "relu": _zero,
    "hardtanh": _zero,
    "max_pool2d_with_indices": _zero,
    "max_pool2d": _zero,
    "max": _zero,
    "amax": _zero,
    # ops thop misses
    "add": _elementwise,
    "sub": _elementwise,
    "mul": _elementwise,
    "div": _elementwise,
    "sigmoid": _elementwise,
    "tanh": _elementwise,
    "exp": _elementwise,
    # data movement
    **{
        name: _zero
        for name in (
            "view",
            "_unsafe_view",
            "reshape",
            "permute",
            "transpose",
            "t",
            "cat",
            "stack",
            "split",
            "split_with_sizes",
            "chunk",
            "unbind",
            "clone",
            "contiguous",
            "expand",
            "unsqueeze",
            "squeeze",
            "select",
            "slice",
            "detach",
            "alias",
            "as_strided",
            "_to_copy",
            "copy",
            "empty_like",
            "flatten",
            "lift_fresh",
            "channel_shuffle",
            "native_channel_shuffle",
            "pixel_shuffle",
            "_reshape_alias",
            "expand_as",
            "view_as",
            # allocations
            "empty",
            "empty_strided",
            "new_empty",
            "new_empty_strided",
            "zeros",
            "zeros_like",
            "ones",
            "ones_like",
            "full",
            "fill",
            "zero",
            "resize",
            "arange",
        )
    },
}


def _op_name(func) -> str:
    name = func.overloadpacket.__name__
    if name.endswith("_") and not name.endswith("__"):
        name = name[:-1]
    return name


@dataclass
class Count:
    """Result of one traced count."""

    flops: int = 0  # every counted op, the budget figure
    macs_conv_linear: int = 0  # convolutions and linear layers only (the classic convention)
    by_op: Counter = field(default_factory=Counter)  # flops per aten op name


class _CountingMode(TorchDispatchMode):
    def __init__(self, result: Count):
        super().__init__()
        self.result = result

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = _op_name(func)
        rule = _RULES.get(name)
        if rule is None:
            raise UncountedOpError(f"no FLOPs rule for aten op {name!r} ({func})")
        flops = int(rule(args, kwargs, out))
        self.result.flops += flops
        self.result.by_op[name] += flops
        if name in _CONV_LINEAR:
            self.result.macs_conv_linear += flops
        return out


def count(model: nn.Module, input_shape: Sequence[int]) -> Count:
    """Trace one forward pass of ``model`` on a batch of one and count its FLOPs.

    Args:
        model: the network (or a single module).
        input_shape: the shape of one sample, e.g. ``(3, 224, 224)``.

    Returns:
        The :class:`Count` with ``flops`` and ``macs_conv_linear``.
    """
    training = {m: m.training for m in model.modules()}
    result = Count()
    try:
        model.eval()
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        x = torch.zeros(1, *input_shape, device=device)
        with torch.no_grad(), formulation("reference"), _CountingMode(result):
            model(x)
    finally:
        for m, mode in training.items():
            m.training = mode
    return result


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in model.parameters())
