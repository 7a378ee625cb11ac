"""The papers' reference networks: pinned costs, expressibility in the shipped spaces, modes."""

from __future__ import annotations

import pytest

import attnsearch
from attnsearch.architecture import SlotChoice
from attnsearch.cost import FlopsCost
from attnsearch.errors import InputError
from attnsearch.flops import count_params
from attnsearch.flops.analytic import analytic_flops
from attnsearch.references import (
    PAPERS,
    reference_networks,
    references_for,
    references_left_out,
)
from attnsearch.spaces import load_space, parse_space

# params: the official implementations (tests/test_networks.py); FLOPs: the README table
# (complete count, 3×224×224, 1000 classes).
RESNET50 = {
    "ResNet-50": (25_557_032, 4_139_261_952),
    "SE-ResNet-50": (28_088_024, 4_152_845_824),
    "ECA-Net50": (25_557_112, 4_150_417_152),
    "CBAM-ResNet-50": (28_089_624, 4_167_856_760),
    "SA-Net50": (25_557_740, 4_166_888_960),
    "CA-ResNet-50": (27_474_864, 4_189_423_616),
    "EPSANet-50 (small)": (22_561_715, 3_650_755_472),
}
G = 10**9


def _nets(backbone: str) -> dict:
    return {name: arch for name, _, arch in reference_networks(backbone)}


def test_resnet50_reference_flops_pinned():
    nets = _nets("resnet50")
    assert set(nets) == set(RESNET50)
    for name, (_, flops) in RESNET50.items():
        assert analytic_flops(nets[name]) == flops, name


@pytest.mark.parametrize("name", sorted(RESNET50))
def test_resnet50_reference_params_pinned(name):
    model = attnsearch.build_model(_nets("resnet50")[name])
    assert count_params(model) == RESNET50[name][0]


def test_eca_kernels_per_stage_as_released():
    eca50 = _nets("resnet50")["ECA-Net50"]
    assert [s.params["k_size"] for s in eca50.slots] == [3] * 3 + [5] * 4 + [5] * 6 + [7] * 3
    eca101 = _nets("resnet101")["ECA-Net101"]
    assert [s.params["k_size"] for s in eca101.slots] == [3] * 3 + [3] * 4 + [5] * 23 + [7] * 3


def test_basic_block_references():
    assert set(_nets("resnet18")) == {
        "ResNet-18",
        "RFA-ResNet-18",
        "RFCBAM-ResNet-18",
        "RFCA-ResNet-18",
    }
    assert set(_nets("resnet34")) == {
        "ResNet-34",
        "RFA-ResNet-34",
        "RFCBAM-ResNet-34",
        "RFCA-ResNet-34",
    }
    rfca = _nets("resnet18")["RFCA-ResNet-18"]
    assert count_params(attnsearch.build_model(rfca)) == 11_887_936


def test_every_reference_cites_its_paper():
    for backbone in ("resnet18", "resnet34", "resnet50", "resnet101"):
        for _, key, _ in reference_networks(backbone):
            title, arxiv = PAPERS[key]
            assert title and arxiv.count(".") == 1


@pytest.mark.parametrize(
    ("space", "width", "expected"),
    [
        ("resnet50", 1.0, set(RESNET50)),
        # EPSA with 4 splits cannot be built in stage 1 at half width (32 channels)
        ("resnet50", 0.5, set(RESNET50) - {"EPSANet-50 (small)"}),
        ("resnet50-stages", 1.0, set(RESNET50)),
        ("resnet18", 0.5, {"ResNet-18", "RFA-ResNet-18", "RFCBAM-ResNet-18", "RFCA-ResNet-18"}),
        ("tiny", 1.0, {"ResNet-18", "RFA-ResNet-18"}),  # tiny has no rfcbamconv/rfcaconv
    ],
)
def test_expressible_in_shipped_spaces(space, width, expected):
    refs = references_for(load_space(space), width=width, budget=100 * G, mode="all")
    assert {r.name for r in refs} == expected
    assert all(r.fits for r in refs)


def test_space_without_a_value_cannot_express_its_reference():
    text = """
backbone: resnet50
choices:
  none: {}
  se: {reduction: [8]}
  eca: {k_size: [3, 5]}
"""
    space = parse_space(text, "custom", "custom.yaml")
    names = {r.name for r in references_for(space, width=1.0, budget=100 * G, mode="all")}
    assert names == {"ResNet-50"}  # SE needs r=16; ECA-Net50 needs k=7 in stage 4


def test_partial_space_expresses_only_plain():
    text = "backbone: resnet50\nslots: [0, 1]\nchoices: {none: {}, se: {reduction: [16]}}\n"
    space = parse_space(text, "partial", "partial.yaml")
    names = {r.name for r in references_for(space, width=1.0, budget=100 * G, mode="all")}
    assert names == {"ResNet-50"}


def test_modes_and_budget():
    space = load_space("resnet50")
    every = references_for(space, width=1.0, budget=4 * G, mode="all")
    fit = references_for(space, width=1.0, budget=4 * G, mode="fit")
    assert [r.name for r in fit] == ["EPSANet-50 (small)"]
    assert {r.name for r in every if r.fits} == {r.name for r in fit}
    assert len(every) == 7 and sum(not r.fits for r in every) == 6
    for r in every:
        assert r.fits == (r.flops <= 4 * G)
        assert r.to_json()["architecture"]["backbone"] == "resnet50"
    assert references_for(space, width=1.0, budget=4 * G, mode="none") == []
    looser = references_for(space, width=1.0, budget=int(4.17 * G), mode="fit")
    assert {r.name for r in looser} == set(RESNET50) - {"CA-ResNet-50"}


def test_what_is_left_out_and_why():
    """Every paper network of the backbone is either a reference of the run or left out with
    its reason: over the budget (with its cost), not buildable at the proxy width, or not in
    the space."""
    from attnsearch.search._driver import left_out_text

    space = load_space("resnet50")
    left = references_left_out(space, width=0.5, budget=4 * G)
    assert [n for n, _ in left["over_budget"]] == [
        "ResNet-50", "SE-ResNet-50", "ECA-Net50", "CBAM-ResNet-50", "SA-Net50", "CA-ResNet-50"
    ]  # fmt: skip
    assert all(c > 4 * G for _, c in left["over_budget"])
    assert left["proxy_width"] == [("EPSANet-50 (small)", None)] and not left["not_in_space"]
    text = left_out_text(left, 0.5, FlopsCost(space))
    assert text.startswith("references left out — over the budget: ResNet-50 4.14 GFLOPs")
    assert "cannot be built at proxy width 0.5: EPSANet-50 (small)" in text
    # `all` trains the over-budget ones as context: only the unbuildable one is left out
    every = references_left_out(space, width=0.5, budget=4 * G, mode="all")
    assert not every["over_budget"] and every["proxy_width"]
    wide = references_left_out(space, width=1.0, budget=5 * G)
    assert not any(wide.values()) and left_out_text(wide, 1.0, FlopsCost(space)) is None
    tiny = references_left_out(load_space("tiny"), width=1.0, budget=100 * G)
    assert [n for n, _ in tiny["not_in_space"]] == ["RFCBAM-ResNet-18", "RFCA-ResNet-18"]
    for mode, budget in (("fit", 4 * G), ("all", 4 * G), ("fit", 5 * G)):
        kept = {r.name for r in references_for(space, width=0.5, budget=budget, mode=mode)}
        out = references_left_out(space, width=0.5, budget=budget, mode=mode)
        gone = {n for names in out.values() for n, _ in names}
        assert kept | gone == set(RESNET50) and not kept & gone


def test_bad_mode_is_input_error():
    with pytest.raises(InputError, match="fit, all, none"):
        references_for(load_space("tiny"), width=1.0, budget=G, mode="some")


def test_reference_choices_are_the_space_options():
    space = load_space("resnet50")
    options = space.options(1.0)
    for r in references_for(space, width=1.0, budget=100 * G, mode="all"):
        chosen = space.unit_choices(r.architecture, options)
        assert chosen is not None
        assert all(isinstance(c, SlotChoice) for c in chosen)
