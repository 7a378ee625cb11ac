"""Whole networks: the official parameter counts, the FLOPs conventions, stems and widths.

The pinned parameter counts are those of the official implementations (torchvision's
ResNets, ECA-Net ``eca_resnet50`` with k = 3, 5, 5, 7, SA-Net ``sa_resnet50``, EPSANet-50
small, CBAM ``ResidualNet('ImageNet', 50, 1000, 'CBAM')``, the Caffe SE-ResNet-50 with FC
biases, and the RFAConv repository's ResNet-18 variants).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import attnsearch
from attnsearch import Architecture
from attnsearch.architecture import SlotChoice
from attnsearch.backbones import BasicBlock, Bottleneck, build_network, slot_infos
from attnsearch.flops import count, count_params

thop = pytest.importorskip("thop")

RESNET50_DEPTHS = (3, 4, 6, 3)


def _eca_k3557() -> Architecture:
    ks = [k for k, n in zip((3, 5, 5, 7), RESNET50_DEPTHS, strict=True) for _ in range(n)]
    return Architecture("resnet50", tuple(SlotChoice.make("eca", k_size=k) for k in ks))


OFFICIAL_PARAMS = [
    ("resnet50", lambda: Architecture.uniform("resnet50"), 25_557_032),
    ("eca_resnet50_k3557", _eca_k3557, 25_557_112),
    ("sa_resnet50", lambda: Architecture.uniform("resnet50", "sa", groups=64), 25_557_740),
    ("epsanet50_small", lambda: Architecture.uniform("resnet50", "epsa"), 22_561_715),
    ("cbam_resnet50", lambda: Architecture.uniform("resnet50", "cbam"), 28_089_624),
    ("se_resnet50", lambda: Architecture.uniform("resnet50", "se"), 28_088_024),
    ("resnet18", lambda: Architecture.uniform("resnet18"), 11_689_512),
    ("rfa_resnet18", lambda: Architecture.uniform("resnet18", "rfaconv"), 11_850_408),
    ("rfcbam_resnet18", lambda: Architecture.uniform("resnet18", "rfcbamconv"), 11_884_408),
    ("rfca_resnet18", lambda: Architecture.uniform("resnet18", "rfcaconv"), 11_887_936),
    ("resnet34", lambda: Architecture.uniform("resnet34"), 21_797_672),
    ("resnet101", lambda: Architecture.uniform("resnet101"), 44_549_160),
]

RESNET50_MACS_CONV_LINEAR = 4_089_184_256  # torchvision ResNet-50, conv + linear, 224×224


@pytest.mark.parametrize(
    ("make", "expected"),
    [pytest.param(make, n, id=label) for label, make, n in OFFICIAL_PARAMS],
)
def test_official_parameter_counts(make, expected):
    model = attnsearch.build_model(make())
    assert count_params(model) == expected


@pytest.fixture(scope="module")
def resnet50_profile() -> dict:
    return attnsearch.profile(Architecture.uniform("resnet50"))


def test_resnet50_macs_conv_linear(resnet50_profile):
    assert resnet50_profile["macs_conv_linear"] == RESNET50_MACS_CONV_LINEAR
    assert resnet50_profile["params"] == 25_557_032


def test_profile_keys_and_types(resnet50_profile):
    result = resnet50_profile
    for key in ("params", "flops", "macs_conv_linear"):
        assert type(result[key]) is int, key
    assert result["input"] == [3, 224, 224]
    assert 0 < result["macs_conv_linear"] < result["flops"]
    assert 4.0e9 < result["flops"] < 4.2e9  # "ResNet-50 at 1×3×224×224 is ≈4.1 G"
    assert result["backbone"] == "resnet50"
    assert result["num_classes"] == 1000
    assert Architecture.from_json(result["architecture"]) == Architecture.uniform("resnet50")


def test_profile_accepts_json_dict(resnet50_profile):
    result = attnsearch.profile(
        {"backbone": "resnet50", "all": {"type": "none"}}, input=(3, 64, 64)
    )
    assert result["input"] == [3, 64, 64]
    assert result["params"] == resnet50_profile["params"]
    assert result["flops"] < resnet50_profile["flops"]


def test_resnet50_flops_are_thop_plus_residual_adds(resnet50_profile):
    """thop counts every module it knows; the 16 residual adds are what it misses."""
    model = build_network(Architecture.uniform("resnet50")).eval()
    residual = []
    blocks = [m for m in model.modules() if isinstance(m, (Bottleneck, BasicBlock))]
    assert len(blocks) == 16
    hooks = [b.register_forward_hook(lambda m, i, o: residual.append(o.numel())) for b in blocks]
    macs, _ = thop.profile(model, inputs=(torch.zeros(1, 3, 224, 224),), verbose=False)
    for h in hooks:
        h.remove()
    assert len(residual) == 16
    assert resnet50_profile["flops"] - sum(residual) == int(macs)
    assert int(macs) == macs


def _thop_only_nets() -> list:
    pooled = (5, 3)  # 13×15 -> 5×3: windows of unequal sizes
    return [
        pytest.param(
            nn.Sequential(
                nn.Conv2d(3, 8, 3, padding=1),
                nn.BatchNorm2d(8),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.AvgPool2d(3, stride=2, padding=1),
                nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
                nn.AdaptiveAvgPool2d(pooled),
                nn.GroupNorm(2, 8),
                nn.Flatten(),
                nn.Linear(8 * pooled[0] * pooled[1], 10),
                nn.Softmax(dim=1),
            ),
            (3, 53, 61),
            id="conv-bn-pools-gn-linear-softmax",
        ),
        pytest.param(
            nn.Sequential(
                nn.Conv2d(3, 16, 5, stride=2, groups=1, bias=False),
                nn.BatchNorm2d(16),
                nn.ReLU6(),
                nn.Conv2d(16, 32, 3, groups=4),
                nn.GroupNorm(4, 32, affine=False),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
                nn.Linear(32, 7, bias=False),
                nn.Softmax(dim=-1),
            ),
            (3, 31, 29),
            id="grouped-conv-adaptive1",
        ),
        pytest.param(
            nn.Sequential(
                nn.Conv2d(3, 6, 1),
                nn.AdaptiveAvgPool2d((7, 7)),  # 11×13 -> 7×7, non-divisible both ways
                nn.BatchNorm2d(6, affine=False),
                nn.Flatten(),
                nn.Linear(6 * 49, 5),
            ),
            (3, 11, 13),
            id="adaptive-nondivisible",
        ),
    ]


@pytest.mark.parametrize(("net", "shape"), _thop_only_nets())
def test_thop_only_network_gives_thops_figure(net, shape):
    net.eval()
    ours = count(net, shape).flops
    macs, _ = thop.profile(net, inputs=(torch.zeros(1, *shape),), verbose=False)
    assert ours == int(macs)
    assert int(macs) == macs


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_deploy_forward_shape(backbone):
    model = attnsearch.build_model(Architecture.uniform(backbone)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 1000)
    assert torch.isfinite(out).all()


def test_mixed_architecture_forward_shape():
    """Every type in one network (gates and conv replacements in both block kinds)."""
    types = ["se", "eca", "cbam", "sa", "ca", "epsa", "rfaconv", "rfcbamconv"]
    slots = [SlotChoice.make(types[i % len(types)]) for i in range(16)]
    arch = Architecture("resnet50", tuple(slots), num_classes=10)
    model = attnsearch.build_model(arch).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


def _convs(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_proxy_stem_and_half_width(backbone):
    arch = Architecture.uniform(backbone)
    proxy = build_network(arch, stem="proxy", width=0.5, num_classes=10, in_channels=1)
    deploy = build_network(arch)
    proxy.eval()
    with torch.no_grad():
        out = proxy(torch.randn(2, 1, 16, 16))
    assert out.shape == (2, 10)

    assert proxy.maxpool is None and deploy.maxpool is not None
    assert proxy.conv1.kernel_size == (3, 3) and proxy.conv1.stride == (1, 1)
    assert deploy.conv1.kernel_size == (7, 7) and deploy.conv1.stride == (2, 2)
    assert proxy.conv1.in_channels == 1
    p_convs, d_convs = _convs(proxy), _convs(deploy)
    assert len(p_convs) == len(d_convs)
    for i, (p, d) in enumerate(zip(p_convs, d_convs, strict=True)):
        assert 2 * p.out_channels == d.out_channels, i
        if i > 0:
            assert 2 * p.in_channels == d.in_channels, i
    assert 2 * proxy.fc.in_features == deploy.fc.in_features
    half = slot_infos(backbone, 0.5)
    full = slot_infos(backbone)
    assert [2 * s.out_channels for s in half] == [s.out_channels for s in full]
