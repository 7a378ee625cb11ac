"""Tests of the convolution-replacing attention types: epsa, rfaconv, rfcbamconv, rfcaconv.

Parameter counts are pinned from the formulas by hand; the numerics are compared with
reference re-implementations written here in the official repositories' formulation
(murufeng/EPSANet ``models/epsanet.py``; Liuchen1997/RFAConv ``classification/RF*resnet.py``).
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from attnsearch.flops import count
from attnsearch.modules import registry
from attnsearch.modules.epsa import PSAModule, branch_groups, branch_kernels
from attnsearch.modules.rfaconv import RFAConv, RFCAConv, RFCBAMConv

TYPES = ("epsa", "rfaconv", "rfcbamconv", "rfcaconv")


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# --------------------------------------------------------------------------- parameters

# (type, in, out, stride, hparams, expected) — each worked out from the formulas:
# epsa: sum_i split*(in/g_i)*k_i^2 + SE (split*hid + hid + hid*split + split)
# rfaconv: 9C (1x1 grouped) + 81C (depthwise gen) + 18C (BN) + 9*C*out + out   (k=3)
# rfcbamconv: 32C (SE) + 99C (gen+BN) + 18 (2->1 3x3) + 9*C*out + out          (k=3)
# rfcaconv: 99C + (C*mip + mip) + 2*mip + 2*(mip*C + C) + 9*C*out + out        (k=3)
PINNED = [
    # 16*64*9 + 16*16*25 + 16*8*49 + 16*4*81 = 27072; SE hid 1: 17 + 32
    ("epsa", 64, 64, 1, {}, 27_121),
    # 32*128*9 + 32*32*25 + 32*16*49 + 32*8*81 = 108288; SE hid 2: 66 + 96
    ("epsa", 128, 128, 2, {}, 108_450),
    # S=2 (kernels 3, 5; groups 1, 4): 64*64*9 + 64*16*25 = 62464; SE hid 8: 520 + 576
    ("epsa", 64, 128, 1, {"splits": 2, "reduction": 8}, 63_560),
    # 108*64 + 9*64*64 + 64
    ("rfaconv", 64, 64, 1, {}, 43_840),
    # 108*64 + 9*64*128 + 128
    ("rfaconv", 64, 128, 2, {}, 80_768),
    # k=5: 25C + 625C + 50C + 25*C*out + out, C=32, out=64
    ("rfaconv", 32, 64, 1, {"kernel_size": 5}, 73_664),
    # 131*64 + 18 + 9*64*64 + 64
    ("rfcbamconv", 64, 64, 1, {}, 45_330),
    # 131*128 + 18 + 9*128*256 + 256
    ("rfcbamconv", 128, 256, 2, {}, 311_954),
    # k=5: 32C + 675C + 18 + 25*C*out + out, C=out=32
    ("rfcbamconv", 32, 32, 1, {"kernel_size": 5}, 48_274),
    # mip 8: 6336 + 520 + 16 + 1152 + 36928
    ("rfcaconv", 64, 64, 1, {}, 44_952),
    # mip 16: 101*512 + 3*512*16 + 3*16 + 9*512*512 + 512
    ("rfcaconv", 512, 512, 2, {}, 2_436_144),
    # reduction 4 -> mip 16: 101*64 + 3*64*16 + 48 + 9*64*128 + 128
    ("rfcaconv", 64, 128, 1, {"reduction": 4}, 83_440),
]


@pytest.mark.parametrize(("name", "cin", "cout", "stride", "hp", "expected"), PINNED)
def test_pinned_parameter_counts(name, cin, cout, stride, hp, expected):
    spec = registry.get(name)
    assert _params(spec.cls(cin, cout, stride, **hp)) == expected


def test_branch_layout():
    assert branch_kernels(4) == [3, 5, 7, 9]
    assert branch_groups(4) == [1, 4, 8, 16]
    assert branch_kernels(1) == [3] and branch_groups(1) == [1]
    assert branch_groups(5)[-1] == 32


# --------------------------------------------------------------------------- FLOPs

PAIRS = [(16, 16), (32, 64), (64, 64), (64, 128)]
STRIDES = [1, 2]
SIZES = [(7, 7), (8, 8), (13, 13), (8, 13)]
HP_GRID = {
    "epsa": [{"splits": s, "reduction": r} for s in (1, 2, 4) for r in (4, 8, 16)],
    "rfaconv": [{"kernel_size": k} for k in (3, 5)],
    "rfcbamconv": [{"kernel_size": k} for k in (3, 5)],
    "rfcaconv": [{"kernel_size": k, "reduction": r} for k in (3, 5) for r in (8, 16, 32)],
}


@pytest.mark.parametrize("name", TYPES)
def test_analytic_flops_equal_traced(name):
    spec = registry.get(name)
    valid = total = 0
    for (cin, cout), stride, hp in itertools.product(PAIRS, STRIDES, HP_GRID[name]):
        total += 1
        try:
            spec.check(cin, cout, stride, **hp)
        except ValueError:
            continue
        valid += 1
        m = spec.cls(cin, cout, stride, **hp)
        for h, w in SIZES:
            traced = count(m, (cin, h, w)).flops
            assert spec.flops(cin, cout, stride, h, w, **hp) == traced, (
                cin,
                cout,
                stride,
                h,
                w,
                hp,
            )
    assert valid >= 0.8 * total, f"{name}: only {valid}/{total} grid points valid"


# --------------------------------------------------------------------------- check


def test_epsa_check_messages():
    with pytest.raises(ValueError, match=r"epsa: out_channels=60 is not divisible by splits=8"):
        PSAModule(64, 60, 1, splits=8)
    with pytest.raises(ValueError, match=r"in_channels=24 .*groups=16"):
        registry.get("epsa").check(24, 64, 1, splits=4, reduction=4)
    with pytest.raises(ValueError, match=r"out_channels/splits=4 .*groups=8"):
        registry.get("epsa").check(64, 16, 1, splits=4, reduction=1)
    with pytest.raises(ValueError, match=r"reduction=32"):
        PSAModule(64, 64, 1, splits=4, reduction=32)
    with pytest.raises(ValueError, match=r"epsa: splits=0"):
        registry.resolve("epsa", {"splits": 0})


@pytest.mark.parametrize("name", ["rfaconv", "rfcbamconv", "rfcaconv"])
def test_rf_even_kernel_rejected(name):
    with pytest.raises(ValueError, match=rf"{name}: kernel_size=4"):
        registry.resolve(name, {"kernel_size": 4})
    with pytest.raises(ValueError, match=rf"{name}: kernel_size=4 must be odd"):
        registry.get(name).check(16, 16, 1, kernel_size=4)
    with pytest.raises(ValueError, match=r"kernel_size=4"):
        registry.get(name).cls(16, 16, 1, kernel_size=4)


# --------------------------------------------------------------------------- numerics


class _RefSEWeight(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1, padding=0)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1, padding=0)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        return self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))


class _RefPSA(nn.Module):
    """The official PSAModule, with the branch count taken from the kernel list."""

    def __init__(self, inplans, planes, conv_kernels, stride, conv_groups, reduction=16):
        super().__init__()
        self.n = len(conv_kernels)
        for i, (k, g) in enumerate(zip(conv_kernels, conv_groups, strict=True)):
            conv = nn.Conv2d(inplans, planes // self.n, k, stride, k // 2, groups=g, bias=False)
            setattr(self, f"conv_{i + 1}", conv)
        self.se = _RefSEWeight(planes // self.n, reduction)
        self.split_channel = planes // self.n
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x):
        batch_size = x.shape[0]
        xs = [getattr(self, f"conv_{i + 1}")(x) for i in range(self.n)]
        feats = torch.cat(xs, dim=1)
        feats = feats.view(batch_size, self.n, self.split_channel, feats.shape[2], feats.shape[3])
        x_se = torch.cat([self.se(xi) for xi in xs], dim=1)
        attention_vectors = x_se.view(batch_size, self.n, self.split_channel, 1, 1)
        attention_vectors = self.softmax(attention_vectors)
        feats_weight = feats * attention_vectors
        out = feats_weight[:, 0, :, :]
        for i in range(1, self.n):
            x_se_weight_fp = feats_weight[:, i, :, :]
            out = torch.cat((x_se_weight_fp, out), 1)
        return out


def _ref_rearrange(t, k):
    """einops ``b c (n1 n2) h w -> b c (h n1) (w n2)``, written element by element."""
    b, c, _, h, w = t.shape
    out = t.new_empty(b, c, h * k, w * k)
    for n1 in range(k):
        for n2 in range(k):
            out[:, :, n1::k, n2::k] = t[:, :, n1 * k + n2]
    return out


def _ref_generate(c, k, stride):
    return nn.Sequential(
        nn.Conv2d(c, c * k * k, k, padding=k // 2, stride=stride, groups=c, bias=False),
        nn.BatchNorm2d(c * k * k),
        nn.ReLU(),
    )


class _RefRFA(nn.Module):
    def __init__(self, c, out, k, stride):
        super().__init__()
        self.kernel_size = k
        self.get_weight = nn.Sequential(
            nn.AvgPool2d(kernel_size=k, padding=k // 2, stride=stride),
            nn.Conv2d(c, c * k * k, kernel_size=1, groups=c, bias=False),
        )
        self.generate_feature = _ref_generate(c, k, stride)
        self.conv = nn.Sequential(nn.Conv2d(c, out, kernel_size=k, stride=k))

    def forward(self, x):
        b, c = x.shape[0:2]
        weight = self.get_weight(x)
        h, w = weight.shape[2:]
        weighted = weight.view(b, c, self.kernel_size**2, h, w).softmax(2)
        feature = self.generate_feature(x).view(b, c, self.kernel_size**2, h, w)
        return self.conv(_ref_rearrange(feature * weighted, self.kernel_size))


class _RefSE16(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gap = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Sequential(
            nn.Linear(c, 16, bias=False), nn.ReLU(), nn.Linear(16, c, bias=False), nn.Sigmoid()
        )

    def forward(self, x):
        b, c = x.shape[0:2]
        return self.fc(self.gap(x).view(b, c)).view(b, c, 1, 1)


class _RefRFCBAM(nn.Module):
    def __init__(self, c, out, k, stride):
        super().__init__()
        self.kernel_size = k
        self.generate = _ref_generate(c, k, stride)
        self.get_weight = nn.Sequential(nn.Conv2d(2, 1, 3, padding=1, bias=False), nn.Sigmoid())
        self.se = _RefSE16(c)
        self.conv = nn.Sequential(nn.Conv2d(c, out, k, stride=k))

    def forward(self, x):
        b, c = x.shape[0:2]
        channel_attention = self.se(x)
        g = self.generate(x)
        h, w = g.shape[2:]
        g = _ref_rearrange(g.view(b, c, self.kernel_size**2, h, w), self.kernel_size)
        unfold_feature = g * channel_attention
        max_feature, _ = torch.max(g, dim=1, keepdim=True)
        mean_feature = torch.mean(g, dim=1, keepdim=True)
        rfa = self.get_weight(torch.cat((max_feature, mean_feature), dim=1))
        return self.conv(unfold_feature * rfa)


class _RefRFCA(nn.Module):
    def __init__(self, c, out, k, stride, reduction=32):
        super().__init__()
        self.kernel_size = k
        self.generate = _ref_generate(c, k, stride)
        self.pool_h = nn.AdaptiveAvgPool2d((None, 1))
        self.pool_w = nn.AdaptiveAvgPool2d((1, None))
        mip = max(8, c // reduction)
        self.conv1 = nn.Conv2d(c, mip, 1)
        self.bn1 = nn.BatchNorm2d(mip)
        self.conv_h = nn.Conv2d(mip, c, 1)
        self.conv_w = nn.Conv2d(mip, c, 1)
        self.conv = nn.Sequential(nn.Conv2d(c, out, k, stride=k))

    def forward(self, x):
        b, c = x.shape[0:2]
        g = self.generate(x)
        h, w = g.shape[2:]
        g = _ref_rearrange(g.view(b, c, self.kernel_size**2, h, w), self.kernel_size)
        x_h = self.pool_h(g)
        x_w = self.pool_w(g).permute(0, 1, 3, 2)
        y = self.bn1(self.conv1(torch.cat([x_h, x_w], dim=2)))
        y = y * (nn.functional.relu6(y + 3) / 6)
        h, w = g.shape[2:]
        x_h, x_w = torch.split(y, [h, w], dim=2)
        a_h = self.conv_h(x_h).sigmoid()
        a_w = self.conv_w(x_w.permute(0, 1, 3, 2)).sigmoid()
        return self.conv(g * a_w * a_h)


def _randomize(m: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in m.state_dict().items():
            if not t.is_floating_point():
                continue
            r = torch.randn(t.shape, generator=gen, dtype=t.dtype)
            t.copy_(r.abs() + 0.5 if name.endswith("running_var") else 0.3 * r)


EQUIV = [  # (label, in_channels, ours, official formulation)
    (
        "epsa4",
        32,
        lambda: PSAModule(32, 64, 2),
        lambda: _RefPSA(32, 64, [3, 5, 7, 9], 2, [1, 4, 8, 16]),
    ),
    (
        "epsa2",
        16,
        lambda: PSAModule(16, 32, 1, splits=2, reduction=4),
        lambda: _RefPSA(16, 32, [3, 5], 1, [1, 4], reduction=4),
    ),
    ("rfa3", 8, lambda: RFAConv(8, 16, 2), lambda: _RefRFA(8, 16, 3, 2)),
    ("rfa5", 8, lambda: RFAConv(8, 12, 1, kernel_size=5), lambda: _RefRFA(8, 12, 5, 1)),
    ("rfcbam3", 8, lambda: RFCBAMConv(8, 16, 2), lambda: _RefRFCBAM(8, 16, 3, 2)),
    ("rfcbam5", 8, lambda: RFCBAMConv(8, 12, 1, kernel_size=5), lambda: _RefRFCBAM(8, 12, 5, 1)),
    ("rfca3", 16, lambda: RFCAConv(16, 16, 2), lambda: _RefRFCA(16, 16, 3, 2)),
    (
        "rfca5",
        16,
        lambda: RFCAConv(16, 8, 1, kernel_size=5, reduction=2),
        lambda: _RefRFCA(16, 8, 5, 1, reduction=2),
    ),
]


@pytest.mark.parametrize(("label", "cin", "make", "make_ref"), EQUIV, ids=[e[0] for e in EQUIV])
@pytest.mark.parametrize("size", [(9, 9), (8, 11)])
def test_matches_official_formulation(label, cin, make, make_ref, size):
    ours, ref = make().double().eval(), make_ref().double().eval()
    _randomize(ours, seed=sum(map(ord, label)))
    ref.load_state_dict(ours.state_dict())  # the official parameter names
    x = torch.randn(2, cin, *size, dtype=torch.float64)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- whole networks


class _Basic(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride, conv):
        super().__init__()
        self.conv1 = conv(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride, conv):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or inplanes != planes * 4:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4)
            )

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def _conv3x3(cin, cout, stride):
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


def _resnet(block, layers, conv=_conv3x3, num_classes=1000) -> nn.Sequential:
    """A torchvision-layout ResNet whose blocks' 3×3 conv (stride inside) is ``conv``."""
    mods = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
    ]
    inplanes = 64
    for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
        for j in range(n):
            stride = 2 if i > 0 and j == 0 else 1
            mods.append(block(inplanes, planes, stride, conv))
            inplanes = planes * block.expansion
    mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(inplanes, num_classes)]
    return nn.Sequential(*mods)


@pytest.mark.parametrize(
    ("conv", "expected"),
    [
        (_conv3x3, 11_689_512),
        (RFAConv, 11_850_408),
        (RFCBAMConv, 11_884_408),
        (RFCAConv, 11_887_936),
    ],
    ids=["resnet18", "rfa", "rfcbam", "rfca"],
)
def test_resnet18_totals(conv, expected):
    net = _resnet(_Basic, [2, 2, 2, 2], conv)
    assert _params(net) == expected


def test_epsanet50_total():
    assert _params(_resnet(_Bottleneck, [3, 4, 6, 3])) == 25_557_032
    assert _params(_resnet(_Bottleneck, [3, 4, 6, 3], PSAModule)) == 22_561_715


def test_rfca_resnet18_forward():
    net = _resnet(_Basic, [2, 2, 2, 2], RFCAConv, num_classes=10).eval()
    assert net(torch.randn(1, 3, 32, 32)).shape == (1, 10)
