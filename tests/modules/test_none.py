"""The registry's identity entry, ``none``: the plain block, with no module and no cost."""

from __future__ import annotations

import pytest
import torch

import attnsearch
from attnsearch import modules
from attnsearch.architecture import Architecture, SlotChoice
from attnsearch.backbones import BACKBONES, build_block, slot_infos
from attnsearch.flops import count, count_params
from attnsearch.flops.analytic import analytic_flops

SIZE = 7


def test_none_is_the_one_identity_entry():
    spec = modules.plain()
    assert spec is modules.get("none") and spec.identity and spec.kind == "none"
    assert [n for n, s in modules.REGISTRY.items() if s.identity] == ["none"]
    assert spec.hparams == () and modules.resolve("none", {}) == {}
    assert spec.block_args() == {}
    assert SlotChoice.plain() == SlotChoice.make("none") == SlotChoice()
    assert SlotChoice.plain().is_plain and not SlotChoice.make("se").is_plain
    assert (spec.title, spec.arxiv) == (
        "Deep Residual Learning for Image Recognition",
        "1512.03385",
    )
    with pytest.raises(ValueError, match="reduction"):
        SlotChoice.make("none", reduction=4)


def test_a_second_identity_is_refused():
    spec = modules.plain()
    twin = type(spec)(**{**spec.__dict__, "name": "none2"})
    with pytest.raises(ValueError, match="identity"):
        modules.register(twin)
    assert "none2" not in modules.REGISTRY


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_none_is_the_plain_block_at_zero_cost(backbone):
    plain = modules.plain()
    for info in slot_infos(backbone, 0.25):
        assert plain.added_flops(info, SIZE, SIZE) == 0
        x = torch.randn(2, info.out_channels, SIZE, SIZE)
        assert plain.build(info)(x) is x  # the identity gate
        block = build_block(backbone, info, SlotChoice.plain())
        bare = build_block(backbone, info, None)
        assert repr(block) == repr(bare)  # no module added
        shape = (info.in_channels, SIZE, SIZE)
        assert count(block, shape).flops == count(bare, shape).flops


def test_plain_architecture_is_the_plain_resnet():
    arch = Architecture.plain("resnet50")
    assert arch == Architecture.uniform("resnet50") == Architecture.uniform("resnet50", "none")
    assert all(s.is_plain for s in arch.slots)
    assert count_params(attnsearch.build_model(arch)) == 25_557_032  # torchvision resnet50
    assert analytic_flops(arch) == 4_139_261_952
