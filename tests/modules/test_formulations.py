"""The two formulations of the RFA family and SA (:mod:`attnsearch.modules.formulations`).

The fast (device) form must be the reference form in another order: the same outputs and
gradients (w.r.t. the input and every parameter) and the same BN running statistics, in
both memory layouts, training and eval; the same parameters and state-dict keys (weights
load across); the same counted FLOPs; and the export keeps the reference form.

Tolerances. float32: ``|fast - reference| <= 1e-5 · scale + 1e-4 · |reference|``, where
``scale`` is the largest magnitude of that kind (the output, the input gradient, or all
parameter gradients together: a gradient that is zero in exact arithmetic, such as a bias
before a BN in training, is noise at that scale). bfloat16 (CPU; all in bf16, or float32
weights under CPU autocast with a bf16 input): each form's error against the float32
reference stays within 2 % of the output's largest magnitude (measured worst: 0.88 % for
both forms), and the fast form's error is at most twice the reference form's plus 0.5 %.
"""

from __future__ import annotations

import ast

import pytest
import torch
from torch import nn

from attnsearch import modules
from attnsearch.architecture import Architecture, SlotChoice
from attnsearch.backbones import build_network
from attnsearch.export._source import Collector, attention_source
from attnsearch.flops import count, count_params
from attnsearch.modules import formulation, formulations, get_formulation, set_formulation
from attnsearch.modules.rfaconv import RFAConv, RFCAConv, RFCBAMConv
from attnsearch.modules.sa import ShuffleAttention

# (id, class, constructor arguments, input shape (C, h, w))
CASES = [
    ("rfa-s1", RFAConv, ((8, 12, 1), {}), (8, 7, 9)),
    ("rfa-s2", RFAConv, ((8, 12, 2), {}), (8, 7, 9)),
    ("rfa-s3-k5", RFAConv, ((6, 10, 3), {"kernel_size": 5}), (6, 10, 7)),
    ("rfa-k1", RFAConv, ((4, 8, 2), {"kernel_size": 1}), (4, 5, 5)),
    ("rfcbam-s1", RFCBAMConv, ((8, 12, 1), {}), (8, 7, 9)),
    ("rfcbam-s2", RFCBAMConv, ((16, 8, 2), {}), (16, 8, 5)),
    ("rfcbam-k5", RFCBAMConv, ((6, 6, 1), {"kernel_size": 5}), (6, 6, 5)),
    ("rfcbam-k1", RFCBAMConv, ((4, 8, 2), {"kernel_size": 1}), (4, 5, 4)),
    ("rfca-s1", RFCAConv, ((8, 12, 1), {}), (8, 7, 9)),
    ("rfca-s2-r4", RFCAConv, ((64, 32, 2), {"reduction": 4}), (64, 6, 5)),
    ("rfca-k5", RFCAConv, ((6, 10, 1), {"kernel_size": 5}), (6, 6, 5)),
    ("rfca-k1", RFCAConv, ((4, 8, 2), {"kernel_size": 1}), (4, 5, 4)),
    ("sa-g4", ShuffleAttention, ((32,), {"groups": 4}), (32, 5, 6)),
    ("sa-g3", ShuffleAttention, ((24,), {"groups": 3}), (24, 5, 6)),
    ("sa-g1", ShuffleAttention, ((8,), {"groups": 1}), (8, 3, 7)),
    ("sa-g64", ShuffleAttention, ((128,), {}), (128, 4, 4)),
    ("sa-g8-1x1", ShuffleAttention, ((16,), {"groups": 8}), (16, 1, 1)),
]
IDS = [c[0] for c in CASES]
LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
BATCH = 3


def _module(cls, ctor, seed: int = 0) -> nn.Module:
    """A module with every parameter and BN statistic random (gates start at constants)."""
    torch.manual_seed(seed)
    args, kwargs = ctor
    module = cls(*args, **kwargs)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return module


def _input(shape, layout=torch.contiguous_format, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, *shape, generator=gen).contiguous(memory_format=layout)


def _run(module: nn.Module, x: torch.Tensor, mode: str):
    """Output, input gradient and parameter gradients of one forward + backward in ``mode``."""
    x = x.detach().clone(memory_format=torch.preserve_format).requires_grad_()
    module.zero_grad(set_to_none=True)
    with formulation(mode):
        out = module(x)
    # a loss that weights every output differently, so no gradient is trivially shared
    weights = torch.linspace(-1, 2, out.numel()).reshape(out.shape)
    (out * weights).sum().backward()
    grads = {name: p.grad.clone() for name, p in module.named_parameters()}
    return out.detach(), x.grad, grads


def _assert_close(got, ref, scale=None, what=""):
    scale = ref.abs().max().item() if scale is None else scale
    torch.testing.assert_close(got, ref, atol=1e-5 * max(scale, 1e-6), rtol=1e-4, msg=what)


@pytest.mark.parametrize("layout", LAYOUTS, ids=list(LAYOUTS))
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(("case", "cls", "ctor", "shape"), CASES, ids=IDS)
def test_same_outputs_gradients_and_statistics(case, cls, ctor, shape, training, layout):
    module = _module(cls, ctor).train(training)
    twin = _module(cls, ctor).train(training)  # the same weights, for the fast form's statistics
    x = _input(shape, LAYOUTS[layout])
    out, gx, grads = _run(module, x, "reference")
    fast_out, fast_gx, fast_grads = _run(twin, x, "fast")

    _assert_close(fast_out, out, what=f"{case}: output")
    _assert_close(fast_gx, gx, what=f"{case}: input gradient")
    scale = max(g.abs().max().item() for g in grads.values())
    assert fast_grads.keys() == grads.keys()
    for name, g in grads.items():
        _assert_close(fast_grads[name], g, scale, f"{case}: gradient of {name}")
    for (name, a), (_, b) in zip(module.named_buffers(), twin.named_buffers(), strict=True):
        _assert_close(b.float(), a.float(), what=f"{case}: buffer {name}")
    assert fast_out.dtype == out.dtype and fast_out.shape == out.shape
    if layout == "channels_last" and min(shape[1:]) > 1:
        # the fast form keeps the layout it is given, in the output and the input gradient
        assert fast_out.is_contiguous(memory_format=torch.channels_last), case
        if isinstance(module, ShuffleAttention):
            assert fast_gx.is_contiguous(memory_format=torch.channels_last), case


def _bf16_errors(cls, ctor, shape, *, autocast: bool):
    """(error of the reference form, error of the fast form) in bf16, against float32."""
    module = _module(cls, ctor).eval()
    x = _input(shape)
    with torch.no_grad(), formulation("reference"):
        exact = module(x)
    errors = []
    for mode in ("reference", "fast"):
        with torch.no_grad(), formulation(mode):
            if autocast:  # float32 weights, convolutions in bf16 (the trainer's CUDA recipe)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    out = module(x.to(torch.bfloat16))
            else:  # everything in bf16
                out = module.to(torch.bfloat16)(x.to(torch.bfloat16))
                module.float()
        assert torch.isfinite(out.float()).all()
        errors.append(((out.float() - exact).abs().max().item(), out.dtype))
    return exact.abs().max().item(), errors


@pytest.mark.parametrize("autocast", [False, True], ids=["bf16", "autocast"])
@pytest.mark.parametrize(("case", "cls", "ctor", "shape"), CASES, ids=IDS)
def test_bfloat16_within_the_stated_tolerance(case, cls, ctor, shape, autocast):
    peak, ((ref_err, ref_dtype), (fast_err, fast_dtype)) = _bf16_errors(
        cls, ctor, shape, autocast=autocast
    )
    assert fast_dtype == ref_dtype, case
    assert ref_err <= 0.02 * peak, (case, ref_err, peak)
    assert fast_err <= 0.02 * peak, (case, fast_err, peak)
    assert fast_err <= 2 * ref_err + 0.005 * peak, (case, fast_err, ref_err, peak)


@pytest.mark.parametrize(("case", "cls", "ctor", "shape"), CASES, ids=IDS)
def test_weights_load_across_the_forms(case, cls, ctor, shape):
    source = _module(cls, ctor, seed=0).eval()
    target = _module(cls, ctor, seed=5).eval()
    state = source.state_dict()
    assert list(state) == list(target.state_dict())
    assert [v.shape for v in state.values()] == [v.shape for v in target.state_dict().values()]
    x = _input(shape)
    with torch.no_grad():
        with formulation("fast"):
            before = target(x)  # the fast form keeps no copy of the weights it read
            target.load_state_dict(state, strict=True)
            got = target(x)
        with formulation("reference"):
            expected = source(x)
    assert not torch.allclose(before, expected, atol=1e-3)
    _assert_close(got, expected, what=case)


@pytest.mark.parametrize(("case", "cls", "ctor", "shape"), CASES, ids=IDS)
def test_counted_flops_and_params_are_the_reference_forms(case, cls, ctor, shape):
    module = _module(cls, ctor)
    with formulation("reference"):
        ref = count(module, shape)
    with formulation("fast"):
        fast = count(module, shape)
        assert get_formulation() == "fast"  # count() restores the mode it found
    assert fast.flops == ref.flops and fast.by_op == ref.by_op, case
    assert fast.macs_conv_linear == ref.macs_conv_linear
    assert count_params(module) == sum(p.numel() for p in module.parameters())


def test_counted_flops_equal_the_analytic_figure_under_every_mode():
    for name in ("rfaconv", "rfcbamconv", "rfcaconv", "sa"):
        spec = modules.get(name)
        if spec.placement == "gate":
            module, shape, analytic = spec.cls(128), (128, 6, 6), spec.flops(128, 6, 6)
        else:
            module, shape = spec.cls(16, 32, 2), (16, 9, 9)
            analytic = spec.flops(16, 32, 2, 9, 9)
        for mode in formulations.MODES:
            with formulation(mode):
                assert count(module, shape).flops == analytic, (name, mode)


@pytest.mark.parametrize("case", ["rfa-s1", "rfca-s1", "sa-g4"])
def test_the_fast_form_alone_would_count_differently(case):
    """Why count() pins the reference form: traced as it runs, the fast form's figure
    differs op by op (RFAConv's grouped 1×1 convolution becomes a multiply, so even the
    convolution MACs change) or has ops with no rule (RFCAConv's ``sum``, SA's
    ``var_mean``), so the tests above can fail. (RFCBAMConv's fast form happens to trace to
    the same ops.)"""
    from attnsearch.flops import UncountedOpError
    from attnsearch.flops.counter import Count, _CountingMode

    _, cls, ctor, shape = next(c for c in CASES if c[0] == case)
    module = _module(cls, ctor).eval()
    traced = Count()
    try:
        with torch.no_grad(), formulation("fast"), _CountingMode(traced):
            module(torch.zeros(1, *shape))
    except UncountedOpError:
        assert not case.startswith("rfa-")
        return
    assert case.startswith("rfa-")
    assert +traced.by_op != +count(module, shape).by_op, case


# --------------------------------------------------------------------------- the switch


def test_mode_is_checked_and_restored():
    assert get_formulation() == "auto"
    with pytest.raises(ValueError, match="'gpu' is not one of auto, reference, fast"):
        set_formulation("gpu")
    with pytest.raises(ValueError, match="is not one of"), formulation("Fast"):
        pass
    with pytest.raises(RuntimeError, match="inside"), formulation("fast"):
        assert get_formulation() == "fast"
        raise RuntimeError("inside")
    assert get_formulation() == "auto"
    try:
        set_formulation("reference")
        assert get_formulation() == "reference"
    finally:
        set_formulation("auto")


@pytest.mark.parametrize("name", ["rfaconv", "rfcbamconv", "rfcaconv", "shuffle_attention"])
def test_auto_picks_the_fast_form_off_the_cpu(monkeypatch, name):
    """On a device type without a measured entry (``meta`` here, as CUDA is absent: it
    has none either) ``auto`` runs the fast form; on the CPU the measured table decides;
    ``reference``/``fast`` override both."""
    calls = []
    real = getattr(formulations, name)

    def spy(module, x):
        calls.append(x.device.type)
        return real(module, x)

    monkeypatch.setattr(formulations, name, spy)
    make, shape = {
        "rfaconv": (lambda: RFAConv(8, 8, 1), (8, 6, 6)),
        "rfcbamconv": (lambda: RFCBAMConv(8, 8, 1), (8, 6, 6)),
        "rfcaconv": (lambda: RFCAConv(8, 8, 1), (8, 6, 6)),
        "shuffle_attention": (lambda: ShuffleAttention(16, groups=2), (16, 6, 6)),
    }[name]
    module = make().eval()
    fast_on_cpu = type(module).__name__ in formulations.AUTO_FAST["cpu"]
    with torch.no_grad():
        module(torch.zeros(1, *shape))  # auto, CPU
        assert calls == (["cpu"] if fast_on_cpu else [])
        calls.clear()
        with formulation("reference"):
            module(torch.zeros(1, *shape))
        with formulation("fast"):
            module(torch.zeros(1, *shape))
        assert calls == ["cpu"]
        calls.clear()
        meta = make().to("meta").eval()
        out = meta(torch.zeros(1, *shape, device="meta"))  # auto, not the CPU
        assert calls == ["meta"] and out.device.type == "meta"
        with formulation("reference"):
            meta(torch.zeros(1, *shape, device="meta"))
        assert calls == ["meta"]


def test_auto_table_names_classes_with_a_fast_form():
    assert "cuda" not in formulations.AUTO_FAST  # CUDA: every fast form
    # measured on the CPU (RESULTS §14): the RFA family's fast form is faster there, SA's not
    assert formulations.AUTO_FAST["cpu"] == {"RFAConv", "RFCBAMConv", "RFCAConv"}
    for classes in formulations.AUTO_FAST.values():
        assert set(classes) <= set(formulations.FAST_TYPES)
    classes = {cls.__name__ for cls in (RFAConv, RFCBAMConv, RFCAConv, ShuffleAttention)}
    assert set(formulations.FAST_TYPES) == classes


# --------------------------------------------------------------------------- network, export


def test_network_of_every_fast_type_matches():
    """A proxy ResNet-18 with each type in two slots: outputs and every gradient agree."""
    choices = [
        SlotChoice.make("rfaconv"),
        SlotChoice.make("sa", groups=2),
        SlotChoice.make("rfcbamconv"),
        SlotChoice.make("sa", groups=1),
        SlotChoice.make("rfcaconv"),
        SlotChoice.make("rfaconv", kernel_size=5),
        SlotChoice.make("sa", groups=4),
        SlotChoice.make("rfcaconv"),
    ]
    arch = Architecture("resnet18", tuple(choices), 10, (3, 16, 16))
    torch.manual_seed(0)
    net = build_network(arch, stem="proxy", width=0.25).train()
    torch.manual_seed(0)
    twin = build_network(arch, stem="proxy", width=0.25).train()
    twin.load_state_dict(net.state_dict())
    x = _input((3, 16, 16), torch.channels_last)
    out, gx, grads = _run(net, x, "reference")
    fast_out, fast_gx, fast_grads = _run(twin, x, "fast")
    _assert_close(fast_out, out, what="logits")
    _assert_close(fast_gx, gx, what="input gradient")
    scale = max(g.abs().max().item() for g in grads.values())
    for name, g in grads.items():
        _assert_close(fast_grads[name], g, scale, name)


def test_export_keeps_the_reference_form():
    """The exported classes have no trace of the switch, and compute what the package's
    fast form computes (their own, readable, reference form)."""
    collector = Collector()
    source = attention_source(collector, ["sa", "rfaconv", "rfcbamconv", "rfcaconv"])
    assert "use_fast" not in source and "formulations" not in source
    text = "\n".join(sorted(collector.imports)) + "\n\n" + source
    ast.parse(text)
    namespace: dict = {}
    exec(compile(text, "<export>", "exec"), namespace)
    for case, cls, (args, kwargs), shape in CASES:
        package = _module(cls, (args, kwargs)).eval()
        exported = namespace[cls.__name__](*args, **kwargs).eval()
        exported.load_state_dict(package.state_dict(), strict=True)
        x = _input(shape)
        with torch.no_grad(), formulation("fast"):
            _assert_close(exported(x), package(x), what=case)


# --------------------------------------------------------------------------- compile


@pytest.mark.parametrize("case", ["rfa-s2", "rfcbam-s2", "rfca-s1", "sa-g4", "sa-g3"])
def test_fast_form_compiles_fullgraph(case):
    _, cls, ctor, shape = next(c for c in CASES if c[0] == case)
    torch._dynamo.reset()
    module = _module(cls, ctor).eval()
    x = _input(shape, torch.channels_last)
    with torch.no_grad(), formulation("fast"):
        compiled = torch.compile(module, backend="aot_eager", fullgraph=True)
        _assert_close(compiled(x), module(x), what=case)
