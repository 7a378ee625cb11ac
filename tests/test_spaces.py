from __future__ import annotations

import math

import optuna
import pytest

from attnsearch.architecture import Architecture
from attnsearch.flops.analytic import analytic_flops
from attnsearch.spaces import SpaceError, load_space, parse_space, space_names

GOOD = """
backbone: resnet18
granularity: stage
choices:
  none: {}
  se: {reduction: [8, 16]}
  eca: {k_size: [null, 3], gamma: [2], b: [1]}
"""


def test_shipped_spaces_load_with_sizes():
    names = space_names()
    assert {"resnet50", "resnet50-stages", "resnet18", "tiny"} <= set(names)
    for name in names:
        space = load_space(name)
        assert space.size() > 1
    r50 = load_space("resnet50")
    assert len(r50.units) == 16 and r50.granularity == "block"
    types = {t for t, _ in r50.choices}
    assert types == {
        "none",
        "se",
        "eca",
        "cbam",
        "sa",
        "ca",
        "epsa",
        "rfaconv",
        "rfcbamconv",
        "rfcaconv",
    }
    assert len(load_space("resnet50-stages").units) == 4


def test_size_counts_distinct_architectures():
    space = parse_space(GOOD, "good", "good.yaml")
    # per stage: none + 2 se + (eca adaptive + eca k=3) = 5 options, 4 stages
    assert space.size() == 5**4


def test_sampling_is_define_by_run_and_valid(tmp_path):
    space = load_space("resnet50")
    study = optuna.create_study(directions=["maximize", "minimize"])
    options = space.options(0.5)
    for _ in range(20):
        trial = study.ask()
        arch = space.sample(trial, options)
        assert isinstance(arch, Architecture)
        assert all(k.startswith("slot") for k in trial.params)
        assert "slot0.type" in trial.params
        # valid at deploy width and buildable at the proxy width
        Architecture.from_json(arch.to_json())
        study.tell(trial, [0.0, float(analytic_flops(arch))])


def test_proxy_width_narrows_options_without_changing_them():
    space = load_space("resnet50")
    full, half = space.options(1.0), space.options(0.5)
    # EPSA with 4 splits needs 64 channels in stage 1: gone at half width, kept later
    assert any(dict(c.hparams)["splits"] == 4 for c in full[0]["epsa"])
    assert not any(dict(c.hparams)["splits"] == 4 for c in half[0]["epsa"])
    assert any(dict(c.hparams)["splits"] == 4 for c in half[15]["epsa"])
    assert math.prod(sum(map(len, u.values())) for u in half) < space.size()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("backbone: resnet77\nchoices: {none: {}}", "backbone"),
        ("backbone: resnet18\nchoices: {foo: {}}", "choices.foo"),
        ("backbone: resnet18\nchoices: {se: {ratio: [4]}}", "choices.se.ratio"),
        ("backbone: resnet18\nchoices: {cbam: {kernel_size: [5]}}", "choices.cbam.kernel_size"),
        ("backbone: resnet18\nchoices: {se: {reduction: [x]}}", "choices.se.reduction"),
        ("backbone: resnet50\nchoices: {sa: {groups: [256]}}", "choices.sa"),
        ("backbone: resnet18\nslots: [0, 8]\nchoices: {none: {}}", "slots[1]"),
        ("backbone: resnet18\ngranularity: stage\nslots: [5]\nchoices: {none: {}}", "slots[0]"),
        ("backbone: resnet18\ngranularity: layer\nchoices: {none: {}}", "granularity"),
        ("backbone: resnet18\nchoices: {}", "choices"),
        ("backbone: resnet18\nchoice: {}", "choice"),
        ("backbone: resnet18\ninput: [3, 224]\nchoices: {none: {}}", "input"),
        ("backbone: resnet18\nchoices: {se: {reduction: [8, 8]}}", "choices.se.reduction"),
    ],
)
def test_bad_space_files_name_file_and_key(tmp_path, text, key):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpaceError) as e:
        load_space(path)
    msg = str(e.value)
    assert str(path) in msg and f"{key}:" in msg and "\n" not in msg


def test_not_yaml_and_unknown_names(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("backbone: [unclosed\n")
    with pytest.raises(SpaceError, match="not valid YAML"):
        load_space(path)
    with pytest.raises(SpaceError, match="unknown space 'nope'"):
        load_space("nope")
    with pytest.raises(SpaceError, match="no such space file"):
        load_space(tmp_path / "missing.yaml")
