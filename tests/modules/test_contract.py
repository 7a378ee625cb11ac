"""The contract every registered attention type keeps, checked by one parametrised suite.

Like ``optuna/testing/pytest_samplers.py``: each registry entry plugs into the same tests,
with no per-module special cases. A gate is built as ``cls(channels, **defaults)``, a conv
replacement as ``cls(in_channels, out_channels, stride, **defaults)``, at a typical size —
both through the entry's own :meth:`~attnsearch.modules.ModuleSpec.build` for one slot.

The gate size is 128 channels, not 64: ``sa``'s default (G = 64) needs channels divisible by
2·G = 128, so 128 is the smallest power of two at which every type's defaults are valid
(checked by :func:`test_defaults_pass_check`).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from attnsearch import modules
from attnsearch.backbones import SlotInfo
from attnsearch.flops import count
from attnsearch.modules import registry

GATE_CHANNELS = 128
CONV_IN, CONV_OUT = 32, 64
SIZE = 9  # odd, so a stride-2 output is ceil(9 / 2) = 5
BATCH = 2

# The DESIGN.md §2 contract: hyperparameter names and defaults of every type.
CONTRACT = {
    "none": ("gate", {}),  # the plain block: the identity gate
    "se": ("gate", {"reduction": 16}),
    "eca": ("gate", {"gamma": 2, "b": 1, "k_size": None}),
    "cbam": ("gate", {"reduction": 16, "kernel_size": 7}),
    "sa": ("gate", {"groups": 64}),
    "ca": ("gate", {"reduction": 32}),
    "epsa": ("conv", {"splits": 4, "reduction": 16}),
    "rfaconv": ("conv", {"kernel_size": 3}),
    "rfcbamconv": ("conv", {"kernel_size": 3}),
    "rfcaconv": ("conv", {"kernel_size": 3, "reduction": 32}),
}


def _cases() -> list:
    """(type, stride): gates once, conv replacements at stride 1 and 2."""
    cases = []
    for name, spec in modules.REGISTRY.items():
        strides = (1,) if spec.placement == "gate" else (1, 2)
        cases += [pytest.param(name, s, id=f"{name}-s{s}") for s in strides]
    return cases


CASES = _cases()
TYPES = list(modules.REGISTRY)


def _slot(stride: int) -> SlotInfo:
    """A bottleneck-like slot: the gate sees GATE_CHANNELS, the 3×3 conv maps CONV_IN -> CONV_OUT."""
    return SlotInfo(0, 1, 0, CONV_IN, GATE_CHANNELS, stride, CONV_IN, CONV_OUT)


def _build(name: str, stride: int) -> nn.Module:
    return modules.get(name).build(_slot(stride), **registry.resolve(name, {}))


def _in_channels(name: str) -> int:
    return GATE_CHANNELS if modules.get(name).placement == "gate" else CONV_IN


def _input(name: str, seed: int = 0, size=(SIZE, SIZE), **kwargs) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, _in_channels(name), *size, generator=gen, **kwargs)


def _expected_shape(name: str, stride: int, size=(SIZE, SIZE)) -> tuple[int, ...]:
    h, w = size
    if modules.get(name).placement == "gate":
        return (BATCH, GATE_CHANNELS, h, w)
    return (BATCH, CONV_OUT, math.ceil(h / stride), math.ceil(w / stride))


def _randomize(module: nn.Module, seed: int = 0) -> None:
    """Give every parameter a small random value (some types initialise gates to zero)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


# --------------------------------------------------------------------------- registry


def test_registry_matches_design_contract():
    assert set(modules.REGISTRY) == set(CONTRACT)
    assert modules.module_names() == list(modules.REGISTRY)
    assert modules.module_names()[0] == "none" == modules.plain().name
    for name, (kind, defaults) in CONTRACT.items():
        spec = modules.get(name)
        assert spec.placement == kind, name
        assert spec.defaults() == defaults, name


@pytest.mark.parametrize("name", TYPES)
def test_registry_entry(name):
    spec = modules.get(name)
    assert spec.name == name
    assert spec.placement in ("gate", "conv")
    assert isinstance(spec.cls, type) and issubclass(spec.cls, nn.Module)
    assert spec.cls.__doc__ and spec.requires
    assert "arXiv:" in spec.paper
    assert spec.code.startswith("https://github.com/")
    names = [h.name for h in spec.hparams]
    assert len(names) == len(set(names))
    for h in spec.hparams:
        assert h.type in (int, float)
        assert h.help
        assert h.validate(name, h.default) == h.default
        if h.choices is not None:
            assert h.default in h.choices
    as_json = spec.to_json()
    assert as_json["name"] == name and as_json["kind"] == spec.kind
    assert [h["name"] for h in as_json["hparams"]] == names


@pytest.mark.parametrize("name", TYPES)
def test_defaults_pass_resolve(name):
    spec = modules.get(name)
    assert registry.resolve(name, {}) == spec.defaults()
    assert registry.resolve(name, spec.defaults()) == spec.defaults()


@pytest.mark.parametrize(("name", "stride"), CASES)
def test_defaults_pass_check(name, stride):
    spec = modules.get(name)
    spec.check_slot(_slot(stride), **registry.resolve(name, {}))


@pytest.mark.parametrize("name", TYPES)
def test_unknown_hyperparameter_lists_valid_ones(name):
    spec = modules.get(name)
    with pytest.raises(ValueError, match="no_such_hparam") as info:
        registry.resolve(name, {"no_such_hparam": 1})
    message = str(info.value)
    assert name in message
    for h in spec.hparams:
        assert h.name in message


def test_unknown_type_lists_valid_ones():
    for call in (lambda: modules.get("no_such_type"), lambda: registry.resolve("no_such_type", {})):
        with pytest.raises(ValueError, match="no_such_type") as info:
            call()
        for name in modules.module_names():
            assert name in str(info.value)


# --------------------------------------------------------------------------- forward


@pytest.mark.parametrize(("name", "stride"), CASES)
@pytest.mark.parametrize("size", [(SIZE, SIZE), (8, 8), (8, 13)], ids=["odd", "even", "rect"])
def test_output_shape_and_dtype(name, stride, size):
    module = _build(name, stride)
    out = module(_input(name, size=size))
    assert out.shape == _expected_shape(name, stride, size)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(("name", "stride"), CASES)
def test_channels_last_gives_the_same_output(name, stride):
    module = _build(name, stride).eval()
    _randomize(module)
    x = _input(name)
    with torch.no_grad():
        expected = module(x)
        got = module(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("name", "stride"), CASES)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_input_not_modified(name, stride, training):
    module = _build(name, stride).train(training)
    _randomize(module)
    x = _input(name)
    before, version = x.clone(), x._version
    module(x)
    assert x._version == version
    assert torch.equal(x, before)


@pytest.mark.parametrize(("name", "stride"), CASES)
def test_backward_gives_finite_grads(name, stride):
    module = _build(name, stride).train()
    _randomize(module)
    x = _input(name, requires_grad=True)
    out = module(x)
    assert not torch.isnan(out).any()
    out.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for pname, p in module.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize(("name", "stride"), CASES)
def test_bfloat16_forward(name, stride):
    module = _build(name, stride).eval()
    _randomize(module)
    x = _input(name)
    with torch.no_grad():
        ref = module(x)
        out = module.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16
    assert out.shape == ref.shape
    assert torch.isfinite(out.float()).all()
    err = (out.float() - ref).abs().max().item()
    assert err <= 0.05 * ref.abs().max().item() + 1e-3


@pytest.mark.parametrize(("name", "stride"), CASES)
def test_compile_aot_eager_fullgraph(name, stride):
    torch._dynamo.reset()
    module = _build(name, stride).eval()
    _randomize(module)
    x = _input(name)
    compiled = torch.compile(module, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), module(x), atol=1e-5, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "stride"), CASES)
def test_compile_inductor_fullgraph(name, stride):
    torch._dynamo.reset()
    module = _build(name, stride).eval()
    _randomize(module)
    x = _input(name)
    compiled = torch.compile(module, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), module(x), atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- FLOPs


@pytest.mark.parametrize(("name", "stride"), CASES)
def test_analytic_flops_equal_traced(name, stride):
    spec = modules.get(name)
    hp = registry.resolve(name, {})
    module = _build(name, stride)
    traced = count(module, (_in_channels(name), SIZE, SIZE)).flops
    if spec.placement == "gate":
        analytic = spec.flops(GATE_CHANNELS, SIZE, SIZE, **hp)
    else:
        analytic = spec.flops(CONV_IN, CONV_OUT, stride, SIZE, SIZE, **hp)
    assert isinstance(analytic, int)
    assert analytic == traced
