from __future__ import annotations

import pytest

from attnsearch.budget import BudgetError, format_flops, parse_budget
from attnsearch.errors import InputError


@pytest.mark.parametrize(
    ("text", "flops"),
    [
        ("4GFLOPs", 4_000_000_000),
        ("4G", 4_000_000_000),
        ("4e9", 4_000_000_000),
        ("350MFLOPs", 350_000_000),
        ("350M", 350_000_000),
        ("4 GFLOPs", 4_000_000_000),
        ("4gflops", 4_000_000_000),
        ("4GMACs", 4_000_000_000),
        ("4.5G", 4_500_000_000),
        ("0.5GFLOPs", 500_000_000),
        ("1200000", 1_200_000),
        ("1.2e3M", 1_200_000_000),
        ("  2G  ", 2_000_000_000),
        ("10KFLOP", 10_000),
    ],
)
def test_accepted_forms(text, flops):
    assert parse_budget(text) == flops


@pytest.mark.parametrize(
    "text",
    ["4GB", "four", "-4G", "0", "0G", "G", "", "4 G FLOPs", "4e9e9", "inf", "nan", "4XFLOPs"],
)
def test_rejected_forms_name_the_forms(text):
    with pytest.raises(BudgetError) as e:
        parse_budget(text)
    assert isinstance(e.value, InputError)
    msg = str(e.value)
    assert "budget" in msg and "\n" not in msg
    if text not in ("0", "0G"):
        assert "4GFLOPs" in msg  # shows the accepted forms


def test_format_flops():
    assert format_flops(4_139_261_952) == "4.14 GFLOPs"
    assert format_flops(350_000_000) == "350 MFLOPs"
