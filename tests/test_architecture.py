"""The Architecture: frozen, hashable, JSON round trip, and one clear error per invalid form."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from attnsearch import Architecture, ArchitectureError, SlotChoice
from attnsearch.errors import InputError
from attnsearch.modules import module_names

MIXED = {
    "backbone": "resnet18",
    "slots": [
        {"type": "se", "reduction": 8},
        {"type": "none"},
        {"type": "eca", "k_size": 3},
        {"type": "cbam", "kernel_size": 3},
        {"type": "sa", "groups": 16},
        {"type": "ca"},
        {"type": "epsa", "splits": 2},
        {"type": "rfcaconv"},
    ],
    "num_classes": 10,
    "input": [3, 64, 64],
}
# sha256 of the canonical JSON of MIXED, computed once and pinned: the digest names results
# and caches, so it must not change between processes, runs or versions.
MIXED_DIGEST = "3cd3777d58e6638d"
RESNET50_PLAIN_DIGEST = "3ed350bb644c379e"


def _r50(**overrides) -> dict:
    data = {"backbone": "resnet50", "all": {"type": "none"}}
    data.update(overrides)
    return data


# --------------------------------------------------------------------------- valid forms


def test_json_round_trip():
    arch = Architecture.from_json(MIXED)
    assert Architecture.from_json(arch.to_json()) == arch
    assert Architecture.from_json(arch.dumps()) == arch
    assert Architecture.from_json(arch.dumps(indent=2)) == arch
    assert Architecture.from_json(json.loads(json.dumps(arch.to_json()))) == arch
    data = arch.to_json()
    assert set(data) == {"backbone", "slots", "num_classes", "input"}
    assert data["num_classes"] == 10 and data["input"] == [3, 64, 64]
    assert len(data["slots"]) == 8


def test_round_trip_through_file(tmp_path):
    arch = Architecture.from_json(MIXED)
    path = tmp_path / "arch.json"
    path.write_text(arch.dumps(indent=2))
    assert Architecture.from_json(path) == arch
    assert Architecture.from_json(str(path)) == arch


def test_digest_is_pinned():
    arch = Architecture.from_json(MIXED)
    assert arch.digest() == MIXED_DIGEST
    assert Architecture.from_json(arch.to_json()).digest() == MIXED_DIGEST
    assert Architecture.uniform("resnet50").digest() == RESNET50_PLAIN_DIGEST
    assert Architecture.uniform("resnet50", "se").digest() != RESNET50_PLAIN_DIGEST


def test_all_form_equals_explicit_slots():
    arch = Architecture.from_json({"backbone": "resnet50", "all": {"type": "se"}})
    explicit = Architecture.from_json(
        {"backbone": "resnet50", "slots": [{"type": "se", "reduction": 16}] * 16}
    )
    assert arch == explicit == Architecture.uniform("resnet50", "se")
    assert len(arch.slots) == 16
    assert all(s == SlotChoice.make("se") for s in arch.slots)


def test_omitted_hyperparameters_take_defaults():
    arch = Architecture.from_json({"backbone": "resnet50", "all": {"type": "cbam"}})
    assert arch.slots[0].params == {"reduction": 16, "kernel_size": 7}
    partial = Architecture.from_json(
        {"backbone": "resnet50", "all": {"type": "cbam", "kernel_size": 3}}
    )
    assert partial.slots[0].params == {"reduction": 16, "kernel_size": 3}
    eca = Architecture.from_json({"backbone": "resnet50", "all": {"type": "eca"}})
    assert eca.slots[0].params == {"gamma": 2, "b": 1, "k_size": None}
    assert Architecture.from_json(eca.to_json()) == eca


def test_num_classes_and_input_are_optional():
    arch = Architecture.from_json({"backbone": "resnet18", "all": {"type": "none"}})
    assert arch.num_classes == 1000
    assert arch.input == (3, 224, 224)
    custom = Architecture.from_json(
        {"backbone": "resnet18", "all": {"type": "none"}, "num_classes": 7, "input": [1, 32, 48]}
    )
    assert custom.num_classes == 7 and custom.input == (1, 32, 48)


def test_frozen():
    arch = Architecture.uniform("resnet18")
    with pytest.raises(dataclasses.FrozenInstanceError):
        arch.backbone = "resnet50"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        arch.slots[0].type = "se"  # type: ignore[misc]
    assert isinstance(arch.slots, tuple)
    assert isinstance(arch.input, tuple)


def test_hashable_and_usable_as_dict_key():
    a = Architecture.from_json({"backbone": "resnet50", "all": {"type": "se"}})
    b = Architecture.uniform("resnet50", "se", reduction=16)
    c = Architecture.uniform("resnet50", "se", reduction=8)
    assert hash(a) == hash(b)
    table = {a: "first"}
    table[b] = "second"
    table[c] = "third"
    assert len(table) == 2 and table[a] == "second"
    assert len({Architecture.from_json(MIXED), Architecture.from_json(MIXED)}) == 1


def test_errors_are_input_errors():
    assert issubclass(ArchitectureError, InputError)
    assert issubclass(ArchitectureError, ValueError)


# --------------------------------------------------------------------------- invalid forms

INVALID = [
    pytest.param(_r50(bogus=1), ["bogus"], id="unknown-top-level-key"),
    pytest.param({"all": {"type": "none"}}, ["backbone", "missing"], id="missing-backbone"),
    pytest.param(
        _r50(backbone="resnet42"),
        ["backbone", "resnet42", "resnet18", "resnet101"],
        id="unknown-backbone",
    ),
    pytest.param(_r50(backbone=50), ["backbone"], id="backbone-not-a-string"),
    pytest.param(_r50(slots=[{"type": "none"}] * 16), ["slots", "all"], id="both-slots-and-all"),
    pytest.param({"backbone": "resnet50"}, ["slots", "all"], id="neither-slots-nor-all"),
    pytest.param(
        {"backbone": "resnet50", "slots": [{"type": "none"}] * 15},
        ["slots", "16", "15"],
        id="wrong-slot-count",
    ),
    pytest.param(
        {"backbone": "resnet50", "slots": {"type": "none"}},
        ["slots", "list"],
        id="slots-not-a-list",
    ),
    pytest.param(
        {
            "backbone": "resnet18",
            "slots": [{"type": "none"}] * 3 + [{"reduction": 16}] + [{"type": "none"}] * 4,
        },
        ["slots[3]", "type"],
        id="slot-without-type",
    ),
    pytest.param(
        {
            "backbone": "resnet18",
            "slots": [{"type": "none"}] * 2 + [{"type": "gcnet"}] + [{"type": "none"}] * 5,
        },
        ["slots[2]", "gcnet", *module_names()],
        id="unknown-type",
    ),
    pytest.param(
        _r50(all={"type": "gcnet"}), ["all", "gcnet", *module_names()], id="unknown-type-in-all"
    ),
    pytest.param(
        _r50(all={"type": "se", "ratio": 16}),
        ["all", "ratio", "reduction"],
        id="unknown-hyperparameter",
    ),
    pytest.param(
        {"backbone": "resnet18", "slots": [{"type": "se", "ratio": 4}] + [{"type": "none"}] * 7},
        ["slots[0]", "ratio", "reduction"],
        id="unknown-hyperparameter-in-slot",
    ),
    pytest.param(
        _r50(all={"type": "none", "reduction": 4}),
        ["all", "reduction"],
        id="hyperparameter-on-none",
    ),
    pytest.param(
        _r50(all={"type": "se", "reduction": "16"}),
        ["all", "reduction", "'16'"],
        id="string-for-int",
    ),
    pytest.param(
        _r50(all={"type": "se", "reduction": True}), ["all", "reduction"], id="bool-for-int"
    ),
    pytest.param(
        _r50(all={"type": "se", "reduction": 2.5}), ["all", "reduction"], id="float-for-int"
    ),
    pytest.param(
        _r50(all={"type": "se", "reduction": 0}), ["all", "reduction", "minimum"], id="out-of-range"
    ),
    pytest.param(
        _r50(all={"type": "cbam", "kernel_size": 5}),
        ["all", "kernel_size", "3, 7"],
        id="not-in-choices",
    ),
    pytest.param(
        _r50(all={"type": "rfaconv", "kernel_size": 4}),
        ["all", "kernel_size", "odd"],
        id="even-kernel",
    ),
    pytest.param(
        _r50(all={"type": "eca", "k_size": 4}), ["all", "k_size", "odd"], id="even-eca-kernel"
    ),
    pytest.param(
        _r50(all={"type": "sa", "groups": 256}),
        ["slots[0]", "sa", "groups=256", "divisible"],
        id="channels-not-divisible",
    ),
    pytest.param(
        {"backbone": "resnet18", "all": {"type": "sa"}},
        ["slots[0]", "channels=64", "groups=64"],
        id="sa-default-on-resnet18",
    ),
    pytest.param(_r50(input=[3, 224]), ["input"], id="input-two-values"),
    pytest.param(_r50(input=[3, 0, 224]), ["input"], id="input-zero"),
    pytest.param(_r50(input=[3, 224.5, 224]), ["input"], id="input-float"),
    pytest.param(_r50(input="3,224,224"), ["input"], id="input-string"),
    pytest.param(_r50(num_classes=0), ["num_classes"], id="num-classes-zero"),
    pytest.param(_r50(num_classes="10"), ["num_classes"], id="num-classes-string"),
    pytest.param(_r50(num_classes=True), ["num_classes"], id="num-classes-bool"),
    pytest.param("{not json", ["not valid JSON"], id="invalid-json-text"),
    pytest.param([1, 2], ["JSON object"], id="not-an-object"),
]


@pytest.mark.parametrize(("data", "fragments"), INVALID)
def test_invalid_forms_name_the_key(data, fragments):
    with pytest.raises(ArchitectureError) as info:
        Architecture.from_json(data)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "arch.json"
    for arg in (path, str(path)):
        with pytest.raises(ArchitectureError, match="arch.json"):
            Architecture.from_json(arg)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ArchitectureError, match=str(tmp_path.name)):
        Architecture.from_json(tmp_path)


def test_invalid_json_in_file(tmp_path):
    path = tmp_path / "arch.json"
    path.write_text('{"backbone": "resnet50", "all": ')
    with pytest.raises(ArchitectureError, match="not valid JSON"):
        Architecture.from_json(Path(path))


def test_json_file_holding_a_list(tmp_path):
    path = tmp_path / "arch.json"
    path.write_text("[1, 2]")
    with pytest.raises(ArchitectureError, match="JSON object"):
        Architecture.from_json(path)


def test_direct_construction_is_validated():
    with pytest.raises(ArchitectureError, match="backbone"):
        Architecture("vgg16", ())
    with pytest.raises(ArchitectureError, match="slots"):
        Architecture("resnet18", (SlotChoice(),) * 7)
    with pytest.raises(ArchitectureError, match="num_classes"):
        Architecture("resnet18", (SlotChoice(),) * 8, num_classes=0)
    with pytest.raises(ArchitectureError, match="input"):
        Architecture("resnet18", (SlotChoice(),) * 8, input=(3, 32))
    with pytest.raises(ArchitectureError, match=r"slots\[0\]"):
        Architecture.uniform("resnet50", "sa", groups=256)
    with pytest.raises(ArchitectureError, match="all"):
        Architecture.uniform("resnet50", "gcnet")


def test_from_file_names_the_file_once_whatever_its_name(tmp_path):
    """A file called like a key ('backbone') is still named: the prefix is added, not
    guessed from the message."""
    path = tmp_path / "backbone"
    path.write_text('{"slots": []}')
    with pytest.raises(ArchitectureError) as info:
        Architecture.from_file(path)
    assert str(info.value) == f"{path}: backbone: missing"
    (tmp_path / "null.json").write_text("null")
    with pytest.raises(ArchitectureError, match=r"null\.json: must be a JSON object"):
        Architecture.from_json(tmp_path / "null.json")  # a path goes through from_file
