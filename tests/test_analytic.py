"""Analytic FLOPs (:mod:`attnsearch.flops.analytic`) equal the traced count EXACTLY.

The search checks budgets with the analytic :class:`CostTable`; the traced counter is the
definition. They must agree on every backbone, every type, odd input sizes, both stems and
narrow widths.

Most traces here run on the ``meta`` device: the counter's rules read only shapes, so a
network built under ``torch.device("meta")`` is counted in milliseconds instead of seconds.
:func:`test_meta_trace_equals_cpu_trace` pins that shortcut against real CPU traces, and the
slow-marked CPU variant of the 224×224 grid repeats the main case without it.
"""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attnsearch import modules
from attnsearch.architecture import Architecture, ArchitectureError, SlotChoice, check_choice
from attnsearch.backbones import BACKBONES, build_network, slot_infos
from attnsearch.flops import count
from attnsearch.flops.analytic import CostTable, analytic_flops, cost_table

TYPES = modules.module_names()  # "none" first, then every registered type

# Values the random architectures draw from, per type and hyperparameter (each one valid
# for the schema; channel-dependent validity is checked per slot).
VALUES = {
    "none": {},
    "se": {"reduction": (4, 8, 16)},
    "eca": {"k_size": (None, 3, 5), "gamma": (1, 2, 3), "b": (0, 1, 2)},
    "cbam": {"reduction": (8, 16), "kernel_size": (3, 7)},
    "sa": {"groups": (1, 2, 4, 8, 16, 32)},
    "ca": {"reduction": (8, 16, 32)},
    "epsa": {"splits": (1, 2, 4), "reduction": (4, 8, 16)},
    "rfaconv": {"kernel_size": (3, 5)},
    "rfcbamconv": {"kernel_size": (3, 5)},
    "rfcaconv": {"kernel_size": (3,), "reduction": (16, 32)},
}

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _meta_net(arch: Architecture, **kwargs) -> torch.nn.Module:
    with torch.device("meta"):
        return build_network(arch, **kwargs)


def _traced(arch: Architecture, shape, **kwargs) -> int:
    return count(_meta_net(arch, **kwargs), shape).flops


def _uniform_cases(backbones) -> list:
    cases = []
    for backbone in backbones:
        for name in TYPES:
            try:
                arch = Architecture.uniform(backbone, name)
            except ArchitectureError:  # e.g. sa's default G = 64 on a 64-channel ResNet-18
                continue
            cases.append(pytest.param(arch, id=f"{backbone}-{name}"))
    return cases


def test_values_cover_the_registry():
    assert set(VALUES) == set(TYPES)
    for name, table in VALUES.items():
        if name == "none":
            continue
        spec = modules.get(name)
        assert set(table) == {h.name for h in spec.hparams}, name
        for hname, values in table.items():
            hp = next(h for h in spec.hparams if h.name == hname)
            for v in values:
                assert hp.validate(name, v) == v


def test_uniform_grid_is_nearly_complete():
    """Only combinations whose defaults cannot fit the channels are skipped."""
    cases = _uniform_cases(BACKBONES)
    assert len(cases) >= len(BACKBONES) * len(TYPES) - 2


@pytest.mark.parametrize("arch", _uniform_cases(["resnet18", "resnet50"]))
def test_uniform_224(arch):
    assert analytic_flops(arch) == _traced(arch, (3, 224, 224))


@pytest.mark.slow
@pytest.mark.parametrize("arch", _uniform_cases(["resnet18", "resnet50"]))
def test_uniform_224_cpu(arch):
    assert analytic_flops(arch) == count(build_network(arch), (3, 224, 224)).flops


@pytest.mark.parametrize("size", [64, 97])
@pytest.mark.parametrize("arch", _uniform_cases(BACKBONES))
def test_uniform_small_inputs(arch, size):
    shape = (3, size, size)
    assert analytic_flops(arch, input_shape=shape) == _traced(arch, shape)


@pytest.mark.parametrize("width", [0.25, 0.5])
@pytest.mark.parametrize("arch", _uniform_cases(["resnet18", "resnet50"]))
def test_uniform_proxy(arch, width):
    shape = (3, 32, 32)
    try:
        net = _meta_net(arch, stem="proxy", width=width, num_classes=10)
    except ValueError:  # the type's defaults do not fit the narrowed channels
        pytest.skip("defaults invalid at this width")
    table = CostTable(arch.backbone, shape, num_classes=10, stem="proxy", width=width)
    assert table.total(arch.slots) == count(net, shape).flops


def _mixed(backbone: str, offset: int = 0, width: float = 1.0) -> Architecture:
    """The types (at defaults) in turn, one per slot, starting with ``TYPES[offset]``;
    a type that does not fit a slot's channels at ``width`` leaves that slot plain."""
    slots = []
    for i, info in enumerate(slot_infos(backbone, width)):
        choice = SlotChoice.make(TYPES[(i + offset) % len(TYPES)])
        try:
            check_choice(choice, info)
        except ValueError:
            choice = SlotChoice.make("none")
        slots.append(choice)
    return Architecture(backbone, tuple(slots))


@pytest.mark.parametrize(
    ("backbone", "offset", "shape", "kwargs"),
    [
        ("resnet50", 0, (3, 97, 97), {}),
        ("resnet18", 2, (3, 64, 64), {}),
        ("resnet18", 8, (1, 33, 33), {"stem": "proxy", "width": 0.5, "num_classes": 10}),
    ],
)
def test_meta_trace_equals_cpu_trace(backbone, offset, shape, kwargs):
    arch = _mixed(backbone, offset, kwargs.get("width", 1.0))
    kwargs = {**kwargs, "in_channels": shape[0]}
    cpu = count(build_network(arch, **kwargs), shape)
    meta = count(_meta_net(arch, **kwargs), shape)
    assert meta.flops == cpu.flops
    assert meta.macs_conv_linear == cpu.macs_conv_linear
    assert meta.by_op == cpu.by_op


# --------------------------------------------------------------------------- random


@st.composite
def _architectures(draw, widths, sizes):
    backbone = draw(st.sampled_from(["resnet18", "resnet50"]))
    width = draw(st.sampled_from(widths))
    slots = []
    for info in slot_infos(backbone, width):
        name = draw(st.sampled_from(TYPES))
        hp = {k: draw(st.sampled_from(v)) for k, v in VALUES[name].items()}
        choice = SlotChoice.make(name, **hp)
        try:
            check_choice(choice, info)
        except ValueError:  # invalid for this slot's channels: skip it
            choice = SlotChoice.make("none")
        slots.append(choice)
    size = draw(st.sampled_from(sizes))
    arch = Architecture(backbone, tuple(slots), input=(3, size, size))
    return arch, width


@SETTINGS
@given(_architectures(widths=(1.0,), sizes=(32, 64, 80)))
def test_random_architectures_deploy(case):
    arch, _ = case
    traced = _traced(arch, arch.input)
    assert analytic_flops(arch) == traced
    table = CostTable(arch.backbone, arch.input, arch.num_classes)
    assert table.total(arch.slots) == traced


@SETTINGS
@given(
    _architectures(widths=(0.25, 0.5), sizes=(16, 31, 32)),
    st.sampled_from([1, 3]),
    st.sampled_from([10, 100]),
)
def test_random_architectures_proxy(case, in_channels, num_classes):
    arch, width = case
    shape = (in_channels, *arch.input[1:])
    net = _meta_net(
        arch, stem="proxy", width=width, num_classes=num_classes, in_channels=in_channels
    )
    traced = count(net, shape).flops
    table = CostTable(arch.backbone, shape, num_classes=num_classes, stem="proxy", width=width)
    assert table.total(arch.slots) == traced
    assert analytic_flops(arch, stem="proxy", width=width, input_shape=shape) == cost_table(
        arch.backbone, shape, arch.num_classes, "proxy", width
    ).total(arch.slots)


def test_cached_table_equals_fresh_tables():
    """The memoised per-(slot, choice) costs give the same totals as fresh tables."""
    rng = random.Random(0)
    shared = cost_table("resnet50")
    infos = slot_infos("resnet50")
    for _ in range(200):
        slots = []
        for info in infos:
            name = rng.choice(TYPES)
            hp = {k: rng.choice(v) for k, v in VALUES[name].items()}
            choice = SlotChoice.make(name, **hp)
            try:
                check_choice(choice, info)
            except ValueError:
                choice = SlotChoice.make("none")
            slots.append(choice)
        fresh = CostTable("resnet50")
        assert shared.total(slots) == fresh.total(slots)
        assert shared.total(slots) == shared.total(tuple(slots))
    assert cost_table("resnet50") is shared
