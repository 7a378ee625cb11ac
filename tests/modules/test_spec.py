"""The registry entry's slot methods, for every registered type in every slot of every backbone.

:meth:`ModuleSpec.check_slot`, :meth:`~ModuleSpec.build`, :meth:`~ModuleSpec.block_args` and
:meth:`~ModuleSpec.added_flops` are the only way shared code places a type in a residual
block, so each is checked against what the block really does: the same slots accepted,
the built module sitting where the block puts it, and the FLOPs it adds equal to the traced
difference between the block with and without it. Slots with the same shape are tested once.
"""

from __future__ import annotations

import pytest
import torch

from attnsearch import modules
from attnsearch.architecture import SlotChoice
from attnsearch.backbones import BACKBONES, build_block, slot_infos
from attnsearch.flops import count

SIZE = 7  # odd: a stride-2 block maps 7 -> 4


def _slots() -> list:
    cases, seen = [], set()
    for backbone in BACKBONES:
        for width in (0.25,):  # narrow, so the traced counts stay fast
            for info in slot_infos(backbone, width):
                shape = (BACKBONES[backbone].block, *[getattr(info, f) for f in _SHAPE])
                if shape not in seen:
                    seen.add(shape)
                    cases.append((backbone, info))
    return cases


_SHAPE = ("in_channels", "out_channels", "stride", "conv_in", "conv_out")
SLOTS = _slots()
# the types that place a module in a block (the identity, "none", is tests/modules/test_none.py's)
PLACED = [name for name, spec in modules.REGISTRY.items() if not spec.identity]
CASES = [
    pytest.param(name, backbone, info, id=f"{name}-{backbone}-{info.in_channels}-{info.stride}")
    for name in PLACED
    for backbone, info in SLOTS
]


# the positional arguments each block argument's factory receives (STYLE.md §2's contracts)
_ARGS = {
    "attn_layer": lambda info: (info.out_channels,),
    "conv_layer": lambda info: (info.conv_in, info.conv_out, info.stride),
}


def _fits(name: str, info) -> bool:
    try:
        modules.get(name).check_slot(info, **modules.get(name).defaults())
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(("name", "backbone", "info"), CASES)
def test_spec_places_its_module_in_the_slot(name, backbone, info):
    spec = modules.get(name)
    hp = spec.defaults()
    if not _fits(name, info):
        with pytest.raises(ValueError, match=name):
            spec.build(info, **hp)
        return
    module = spec.build(info, **hp)
    assert type(module) is spec.cls
    (argument, factory), *rest = spec.block_args(**hp).items()
    assert not rest and argument in ("attn_layer", "conv_layer")
    choice = SlotChoice.make(name, **hp)
    block = build_block(backbone, info, choice)
    plain = build_block(backbone, info, None)
    inside = [m for m in block.modules() if type(m) is spec.cls]
    assert len(inside) == 1
    assert (
        count_params(inside[0])
        == count_params(module)
        == count_params(factory(*_ARGS[argument](info)))
    )
    shape = (info.in_channels, SIZE, SIZE)
    x = torch.randn(2, *shape)
    block.eval(), plain.eval()
    with torch.no_grad():
        assert block(x).shape == plain(x).shape
    added = count(block, shape).flops - count(plain, shape).flops
    assert spec.added_flops(info, SIZE, SIZE, **hp) == added


def count_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name", list(modules.REGISTRY))
def test_every_type_fits_some_slot_and_canonical_keeps_defaults(name):
    spec = modules.get(name)
    assert any(_fits(name, info) for _, info in SLOTS)
    assert spec.canonical(spec.defaults()) == spec.defaults()
    assert spec.ignored_given({}) <= {h.name for h in spec.hparams}
