"""Gate attention modules (se, eca, cbam, sa, ca): parameter counts, FLOPs, checks, numerics.

Parameter counts are pinned from the formulas worked out by hand (never from the code):

* se:   ``2*C*(C//r) + C//r + C``           (two FCs with biases, as in the Caffe model)
* eca:  ``k``                                (one bias-free 1-D conv)
* cbam: ``2*C*(C//r) + C//r + C + 2*k*k + 2`` (MLP with biases, 2->1 conv, BN(1))
* sa:   ``6 * C/(2G)``                       (cweight, cbias, sweight, sbias, GN weight, bias)
* ca:   ``3*C*mip + 3*mip + 2*C``, ``mip = max(8, C//r)``

The numeric checks compare each module with a re-implementation written here in the official
code's own formulation, with the same weights loaded.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnsearch.flops.counter import count, count_params
from attnsearch.modules import registry
from attnsearch.modules.ca import CoordAttention
from attnsearch.modules.cbam import CBAM
from attnsearch.modules.eca import ECA, adaptive_kernel_size
from attnsearch.modules.sa import ShuffleAttention
from attnsearch.modules.se import SqueezeExcitation

GATES = ("se", "eca", "cbam", "sa", "ca")

# --------------------------------------------------------------------------- parameter counts

PINNED_PARAMS = [
    # se: 2*C*(C//r) + C//r + C
    ("se", 64, {"reduction": 16}, 580),  # 2*64*4 + 4 + 64
    ("se", 100, {"reduction": 16}, 1_306),  # 2*100*6 + 6 + 100
    ("se", 256, {"reduction": 16}, 8_464),  # 2*256*16 + 16 + 256
    ("se", 256, {"reduction": 4}, 33_088),  # 2*256*64 + 64 + 256
    ("se", 2048, {"reduction": 16}, 526_464),  # 2*2048*128 + 128 + 2048
    # eca: k
    ("eca", 64, {}, 3),  # int((6 + 1) / 2) = 3, odd
    ("eca", 100, {}, 3),  # int((6.64 + 1) / 2) = 3
    ("eca", 256, {}, 5),  # int((8 + 1) / 2) = 4 -> 5
    ("eca", 2048, {}, 7),  # int((11 + 1) / 2) = 6 -> 7
    ("eca", 2048, {"k_size": 3}, 3),  # fixed k overrides gamma/b
    ("eca", 256, {"gamma": 1, "b": 2}, 11),  # int(8 + 2) = 10 -> 11
    # cbam: 2*C*(C//r) + C//r + C + 2*k*k + 2
    ("cbam", 256, {}, 8_564),  # 8192 + 16 + 256 + 98 + 2
    ("cbam", 512, {"kernel_size": 3}, 33_332),  # 32768 + 32 + 512 + 18 + 2
    ("cbam", 2048, {}, 526_564),  # 524288 + 128 + 2048 + 98 + 2
    ("cbam", 64, {"reduction": 8, "kernel_size": 3}, 1_116),  # 1024 + 8 + 64 + 18 + 2
    # sa: 6 * C/(2G)
    ("sa", 256, {}, 12),  # C/(2G) = 2
    ("sa", 2048, {}, 96),  # C/(2G) = 16
    ("sa", 96, {"groups": 16}, 18),  # C/(2G) = 3
    ("sa", 64, {"groups": 1}, 192),  # C/(2G) = 32
    # ca: 3*C*mip + 3*mip + 2*C
    ("ca", 64, {}, 1_688),  # mip = 8: 1536 + 24 + 128
    ("ca", 256, {}, 6_680),  # mip = 8: 6144 + 24 + 512
    ("ca", 2048, {}, 397_504),  # mip = 64: 393216 + 192 + 4096
    ("ca", 256, {"reduction": 8}, 25_184),  # mip = 32: 24576 + 96 + 512
]


def _build(name: str, channels: int, hp: dict) -> nn.Module:
    spec = registry.get(name)
    return spec.cls(channels, **registry.resolve(name, hp))


@pytest.mark.parametrize(("name", "channels", "hp", "expected"), PINNED_PARAMS)
def test_pinned_param_counts(name, channels, hp, expected):
    assert count_params(_build(name, channels, hp)) == expected


RESNET50_PARAMS = 25_557_032  # torchvision resnet50
RESNET50_STAGES = ((256, 3), (512, 4), (1024, 6), (2048, 3))  # (gate channels, blocks)


def _resnet50_gate_params(name: str, hp_per_stage: list[dict]) -> int:
    return sum(
        blocks * count_params(_build(name, c, hp))
        for (c, blocks), hp in zip(RESNET50_STAGES, hp_per_stage, strict=True)
    )


def test_resnet50_gate_totals():
    """The gates' share of the official ResNet-50 variants (backbone count added)."""
    # SE-ResNet-50 (Caffe, FC biases): 28,088,024; without the biases it would be 28,071,976
    assert RESNET50_PARAMS + _resnet50_gate_params("se", [{}] * 4) == 28_088_024
    # CBAM-ResNet-50: SE's share + 16 * (2*7*7 + 2)
    assert RESNET50_PARAMS + _resnet50_gate_params("cbam", [{}] * 4) == 28_089_624
    # SA-ResNet-50 (G=64): 3*12 + 4*24 + 6*48 + 3*96 = 708
    assert RESNET50_PARAMS + _resnet50_gate_params("sa", [{}] * 4) == 25_557_740
    # ECA-ResNet-50 as released (k3557): 3*3 + 4*5 + 6*5 + 3*7 = 80
    ks = [{"k_size": k} for k in (3, 5, 5, 7)]
    assert RESNET50_PARAMS + _resnet50_gate_params("eca", ks) == 25_557_112


def test_adaptive_kernel_size():
    # ResNet-50 stage widths with the paper's gamma=2, b=1: 5, 5, 5, 7
    assert [adaptive_kernel_size(c, 2, 1) for c in (256, 512, 1024, 2048)] == [5, 5, 5, 7]
    assert adaptive_kernel_size(64, 2, 1) == 3
    assert adaptive_kernel_size(1, 2, 0) == 1  # t = 0 -> 1
    assert adaptive_kernel_size(16, 1, 2) == 7  # t = 6 -> 7


# --------------------------------------------------------------------------------- FLOPs

GRID = {
    "se": [{"reduction": r} for r in (4, 8, 16)],
    "eca": [{"gamma": g, "b": b} for g in (1, 2, 3) for b in (0, 1, 2)]
    + [{"k_size": k} for k in (3, 5, 7)],
    "cbam": [{"reduction": r, "kernel_size": k} for r in (8, 16) for k in (3, 7)],
    "sa": [{"groups": g} for g in (1, 4, 8, 16, 32, 64)],
    "ca": [{"reduction": r} for r in (8, 16, 32)],
}
CHANNELS = (16, 32, 64, 128, 256)
SIZES = ((1, 1), (7, 7), (14, 14), (13, 13), (7, 9), (9, 7))


def _valid(name: str, channels: int, hp: dict) -> bool:
    try:
        registry.get(name).check(channels, **registry.resolve(name, hp))
    except ValueError:
        return False
    return True


FLOPS_CASES = [
    pytest.param(name, c, hp, id=f"{name}-{c}-" + "-".join(f"{k}{v}" for k, v in hp.items()))
    for name, hps in GRID.items()
    for hp in hps
    for c in CHANNELS
    if _valid(name, c, hp)
]


@pytest.mark.parametrize(("name", "channels", "hp"), FLOPS_CASES)
def test_analytic_flops_equal_traced(name, channels, hp):
    spec = registry.get(name)
    hp = registry.resolve(name, hp)
    module = spec.cls(channels, **hp)
    for h, w in SIZES:
        if name == "sa" and hp["groups"] == 1 and h * w == 1:
            continue  # GroupNorm refuses one value per group (batch 1, G=1, 1x1), as upstream
        traced = count(module, (channels, h, w)).flops
        assert spec.flops(channels, h, w, **hp) == traced, (h, w)


def test_flops_grid_covers_every_gate():
    assert {case.values[0] for case in FLOPS_CASES} == set(GATES)
    # sa: G=64 needs C divisible by 128
    assert {case.values[1] for case in FLOPS_CASES if case.values[0] == "sa"} == set(CHANNELS)


def test_flops_pinned_example():
    # se(256, r=16) on 256x14x14: pool 50176+256, FCs 2*256*16, sigmoid 256, gate 50176
    assert registry.get("se").flops(256, 14, 14, reduction=16) == 109_056


# -------------------------------------------------------------------------------- checks


@pytest.mark.parametrize(
    ("name", "channels", "hp", "fragments"),
    [
        ("sa", 96, {"groups": 64}, ("sa:", "channels=96", "2*groups=128")),
        ("sa", 100, {"groups": 8}, ("sa:", "channels=100", "2*groups=16")),
        ("se", 8, {"reduction": 16}, ("se:", "reduction=16", "channels=8")),
        ("cbam", 12, {"reduction": 16}, ("cbam:", "reduction=16", "channels=12")),
        ("cbam", 64, {"kernel_size": 5}, ("cbam:", "kernel_size=5")),
        ("eca", 64, {"k_size": 4}, ("eca:", "k_size=4", "odd")),
        ("se", 0, {}, ("se:", "channels=0")),
        ("ca", 64, {"reduction": 0}, ("ca:", "reduction=0")),
    ],
)
def test_check_raises(name, channels, hp, fragments):
    spec = registry.get(name)
    full = {**spec.defaults(), **hp}
    with pytest.raises(ValueError) as info:
        spec.check(channels, **full)
    for fragment in fragments:
        assert fragment in str(info.value)
    with pytest.raises(ValueError):  # the class calls check first
        spec.cls(channels, **full)


def test_resolve_rejects_even_eca_kernel():
    with pytest.raises(ValueError, match="k_size=4"):
        registry.resolve("eca", {"k_size": 4})
    assert registry.resolve("eca", {})["k_size"] is None
    assert registry.resolve("eca", {"k_size": 5}) == {"gamma": 2, "b": 1, "k_size": 5}


def test_eca_fixed_kernel_makes_gamma_and_b_canonical():
    """A fixed k_size overrides gamma and b: the entry records them at their defaults, and
    says they have no effect (the search then does not sample them)."""
    spec = registry.get("eca")
    fixed = spec.canonical({"gamma": 3, "b": 0, "k_size": 5})
    assert fixed == {"gamma": 2, "b": 1, "k_size": 5}
    assert spec.canonical({"gamma": 3, "b": 0, "k_size": None}) == {
        "gamma": 3,
        "b": 0,
        "k_size": None,
    }
    assert spec.ignored_given({"k_size": 3}) == {"gamma", "b"}
    assert spec.ignored_given({"k_size": None}) == set() == spec.ignored_given({})
    assert count_params(ECA(256, gamma=3, b=0, k_size=5)) == count_params(ECA(256, **fixed)) == 5


# ----------------------------------------------------------------- references (official form)


class RefSE(nn.Module):
    """The Caffe SE block: global pool, 1x1 conv (bias), ReLU, 1x1 conv (bias), sigmoid, scale."""

    def __init__(self, channel, reduction=16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.down = nn.Conv2d(channel, channel // reduction, 1)
        self.up = nn.Conv2d(channel // reduction, channel, 1)

    def forward(self, x):
        y = torch.sigmoid(self.up(F.relu(self.down(self.avg_pool(x)))))
        return x * y.expand_as(x)


class RefECA(nn.Module):
    """Official ``eca_layer``: squeeze/transpose, Conv1d, transpose/unsqueeze, sigmoid."""

    def __init__(self, channel, k_size=3):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv1d(1, 1, kernel_size=k_size, padding=(k_size - 1) // 2, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        y = self.avg_pool(x)
        y = self.conv(y.squeeze(-1).transpose(-1, -2)).transpose(-1, -2).unsqueeze(-1)
        return x * self.sigmoid(y).expand_as(x)


class _RefBasicConv(nn.Module):
    def __init__(self, in_planes, out_planes, kernel_size, padding):
        super().__init__()
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_planes, eps=1e-5, momentum=0.01, affine=True)

    def forward(self, x):
        return self.bn(self.conv(x))


class _RefChannelGate(nn.Module):
    def __init__(self, gate_channels, reduction_ratio):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Flatten(),
            nn.Linear(gate_channels, gate_channels // reduction_ratio),
            nn.ReLU(),
            nn.Linear(gate_channels // reduction_ratio, gate_channels),
        )

    def forward(self, x):
        size = (x.size(2), x.size(3))
        att = self.mlp(F.avg_pool2d(x, size, stride=size))
        att = att + self.mlp(F.max_pool2d(x, size, stride=size))
        return x * torch.sigmoid(att).unsqueeze(2).unsqueeze(3).expand_as(x)


class _RefSpatialGate(nn.Module):
    def __init__(self, kernel_size):
        super().__init__()
        self.spatial = _RefBasicConv(2, 1, kernel_size, padding=(kernel_size - 1) // 2)

    def forward(self, x):
        compress = torch.cat((torch.max(x, 1)[0].unsqueeze(1), torch.mean(x, 1).unsqueeze(1)), 1)
        return x * torch.sigmoid(self.spatial(compress))


class RefCBAM(nn.Module):
    """Official ``CBAM`` (pool types avg and max, spatial gate on)."""

    def __init__(self, gate_channels, reduction_ratio=16, kernel_size=7):
        super().__init__()
        self.ChannelGate = _RefChannelGate(gate_channels, reduction_ratio)
        self.SpatialGate = _RefSpatialGate(kernel_size)

    def forward(self, x):
        return self.SpatialGate(self.ChannelGate(x))


class RefSA(nn.Module):
    """Official ``sa_layer``: reshape, chunk, two branches, cat, reshape, channel_shuffle."""

    def __init__(self, channel, groups=64):
        super().__init__()
        self.groups = groups
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        half = channel // (2 * groups)
        self.cweight = nn.Parameter(torch.zeros(1, half, 1, 1))
        self.cbias = nn.Parameter(torch.ones(1, half, 1, 1))
        self.sweight = nn.Parameter(torch.zeros(1, half, 1, 1))
        self.sbias = nn.Parameter(torch.ones(1, half, 1, 1))
        self.sigmoid = nn.Sigmoid()
        self.gn = nn.GroupNorm(half, half)

    @staticmethod
    def channel_shuffle(x, groups):
        b, c, h, w = x.shape
        x = x.reshape(b, groups, -1, h, w)
        x = x.permute(0, 2, 1, 3, 4)
        return x.reshape(b, -1, h, w)

    def forward(self, x):
        b, c, h, w = x.shape
        x = x.reshape(b * self.groups, -1, h, w)
        x_0, x_1 = x.chunk(2, dim=1)
        xn = self.avg_pool(x_0)
        xn = self.cweight * xn + self.cbias
        xn = x_0 * self.sigmoid(xn)
        xs = self.gn(x_1)
        xs = self.sweight * xs + self.sbias
        xs = x_1 * self.sigmoid(xs)
        out = torch.cat([xn, xs], dim=1)
        out = out.reshape(b, -1, h, w)
        return self.channel_shuffle(out, 2)


class _RefHSwish(nn.Module):
    def __init__(self):
        super().__init__()
        self.relu = nn.ReLU6(inplace=True)

    def forward(self, x):
        return x * (self.relu(x + 3) / 6)


class RefCA(nn.Module):
    """Official ``CoordAtt`` with ``inp == oup``."""

    def __init__(self, inp, reduction=32):
        super().__init__()
        self.pool_h = nn.AdaptiveAvgPool2d((None, 1))
        self.pool_w = nn.AdaptiveAvgPool2d((1, None))
        mip = max(8, inp // reduction)
        self.conv1 = nn.Conv2d(inp, mip, kernel_size=1, stride=1, padding=0)
        self.bn1 = nn.BatchNorm2d(mip)
        self.act = _RefHSwish()
        self.conv_h = nn.Conv2d(mip, inp, kernel_size=1, stride=1, padding=0)
        self.conv_w = nn.Conv2d(mip, inp, kernel_size=1, stride=1, padding=0)

    def forward(self, x):
        identity = x
        n, c, h, w = x.size()
        x_h = self.pool_h(x)
        x_w = self.pool_w(x).permute(0, 1, 3, 2)
        y = self.act(self.bn1(self.conv1(torch.cat([x_h, x_w], dim=2))))
        x_h, x_w = torch.split(y, [h, w], dim=2)
        x_w = x_w.permute(0, 1, 3, 2)
        a_h = self.conv_h(x_h).sigmoid()
        a_w = self.conv_w(x_w).sigmoid()
        return identity * a_w * a_h


def _randomize(module: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        for name, buf in module.named_buffers():
            if name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=gen) + 0.5)
            elif name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=gen) * 0.1)


def _se_weights(ours: SqueezeExcitation) -> dict:
    sd = ours.state_dict()
    return {
        "down.weight": sd["fc1.weight"][:, :, None, None],
        "down.bias": sd["fc1.bias"],
        "up.weight": sd["fc2.weight"][:, :, None, None],
        "up.bias": sd["fc2.bias"],
    }


REFERENCE_CASES = [
    ("se", 64, {"reduction": 16}, lambda: RefSE(64, 16), _se_weights),
    ("se", 96, {"reduction": 8}, lambda: RefSE(96, 8), _se_weights),
    ("eca", 64, {}, lambda: RefECA(64, 3), None),
    ("eca", 256, {"k_size": 7}, lambda: RefECA(256, 7), None),
    ("eca", 100, {"gamma": 1, "b": 2}, lambda: RefECA(100, 9), None),  # int(6.64+2)=8 -> 9
    ("cbam", 64, {}, lambda: RefCBAM(64, 16, 7), None),
    ("cbam", 128, {"reduction": 8, "kernel_size": 3}, lambda: RefCBAM(128, 8, 3), None),
    ("sa", 256, {}, lambda: RefSA(256, 64), None),
    ("sa", 96, {"groups": 4}, lambda: RefSA(96, 4), None),
    ("sa", 64, {"groups": 1}, lambda: RefSA(64, 1), None),
    ("ca", 64, {}, lambda: RefCA(64, 32), None),
    ("ca", 256, {"reduction": 8}, lambda: RefCA(256, 8), None),
]


@pytest.mark.parametrize(("name", "channels", "hp", "make_ref", "convert"), REFERENCE_CASES)
@pytest.mark.parametrize("training", [False, True])
def test_matches_official_formulation(name, channels, hp, make_ref, convert, training):
    ours = _build(name, channels, hp)
    _randomize(ours, seed=channels)
    ref = make_ref()
    ref.load_state_dict(convert(ours) if convert else ours.state_dict(), strict=True)
    ours.train(training)
    ref.train(training)
    gen = torch.Generator().manual_seed(1)
    for shape in ((2, channels, 7, 9), (3, channels, 8, 8)):
        x = torch.randn(shape, generator=gen)
        expected = ref(x.clone())
        actual = ours(x)
        assert actual.shape == x.shape
        assert (actual - expected).abs().max().item() <= 1e-6


def test_class_names():
    assert registry.get("se").cls is SqueezeExcitation
    assert registry.get("eca").cls is ECA
    assert registry.get("cbam").cls is CBAM
    assert registry.get("sa").cls is ShuffleAttention
    assert registry.get("ca").cls is CoordAttention


def test_cbam_official_init():
    """model_resnet.py zeroes every bias and the spatial gate's BN weight."""
    module = CBAM(64)
    assert not module.SpatialGate.spatial.bn.weight.any()
    assert not module.ChannelGate.mlp[1].bias.any()
    assert not module.ChannelGate.mlp[3].bias.any()


def test_sa_official_init():
    module = ShuffleAttention(256)
    for name in ("cweight", "sweight"):
        assert torch.equal(getattr(module, name), torch.zeros(1, 2, 1, 1))
    for name in ("cbias", "sbias"):
        assert torch.equal(getattr(module, name), torch.ones(1, 2, 1, 1))
