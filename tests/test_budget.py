from __future__ import annotations

import pytest

from attnsearch.budget import (
    NS_PER_MS,
    Budget,
    BudgetError,
    format_flops,
    format_latency,
    ms_to_ns,
    ns_to_ms,
    parse_budget,
    parse_cost_budget,
)
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
    ["4GB", "four", "-4G", "0", "0G", "G", "", "4 G FLOPs", "4e9e9", "inf", "nan", "4XFLOPs",
     "0.1", "1e19", "1e400"],
)  # fmt: skip
def test_rejected_forms_name_the_forms(text):
    """Every refusal shows the accepted forms, out-of-range values included (DESIGN §1)."""
    with pytest.raises(BudgetError) as e:
        parse_budget(text)
    assert isinstance(e.value, InputError)
    msg = str(e.value)
    assert "budget" in msg and "\n" not in msg
    assert "4GFLOPs" in msg  # shows the accepted forms
    if text == "1e400":
        assert "not a finite number" in msg  # not "must be positive"


def test_format_flops():
    assert format_flops(4_139_261_952) == "4.14 GFLOPs"
    assert format_flops(350_000_000) == "350 MFLOPs"


def test_huge_flops_budget_is_refused():
    with pytest.raises(BudgetError, match="FLOPs"):
        parse_budget("1e30")


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("25ms", 25.0),
        ("25 ms", 25.0),
        ("25MS", 25.0),
        ("800us", 0.8),
        ("800µs", 0.8),
        ("0.02s", 20.0),
        ("1.5s", 1500.0),
        (".5ms", 0.5),
        ("2e1ms", 20.0),
        ("  3 ms ", 3.0),
    ],
)
def test_latency_forms(text, ms):
    b = parse_cost_budget(text)
    assert b.kind == "latency"
    assert b.value == pytest.approx(ms, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "flops"),
    [("4GFLOPs", 4_000_000_000), ("350M", 350_000_000), ("4e9", 4_000_000_000), (1200, 1200)],
)
def test_cost_budget_keeps_flops(text, flops):
    b = parse_cost_budget(text)
    assert b == Budget("flops", flops)
    assert isinstance(b.value, int)
    assert b.value == parse_budget(text)


@pytest.mark.parametrize(
    "text",
    [
        "nan",
        "inf",
        "-25ms",
        "0ms",
        "0s",
        "5parsecs",
        "",
        "   ",
        "1e9s",
        "25 m s",
        "ms",
        "25msec",
        "nanms",
        "infs",
        "1e30",
        "0.0000001ms",
        "1e400ms",
    ],
)
def test_bad_cost_budgets_show_the_forms(text):
    with pytest.raises(BudgetError) as e:
        parse_cost_budget(text)
    assert isinstance(e.value, InputError)
    msg = str(e.value)
    assert "budget" in msg and "\n" not in msg
    assert "25ms" in msg or "4GFLOPs" in msg  # shows the accepted forms
    if text in ("", "5parsecs", "nan", "inf", "25msec"):
        assert "25ms" in msg and "4GFLOPs" in msg  # both kinds when the kind is unclear


@pytest.mark.parametrize(
    ("a", "b"),
    [("700us", "0.7ms"), ("3300 µs", "3.3ms"), ("7e-1ms", "700us"), ("5100us", "5.1ms")],
)
def test_a_latency_is_one_value_in_any_spelling(a, b):
    """Kept to the integer nanosecond its cost compares in: the float rounding of one
    spelling (700 × 1e-3 = 0.7000000000000001) never makes two limits of one (each of these
    pairs compared unequal before)."""
    x, y = parse_cost_budget(a), parse_cost_budget(b)
    assert x == y and x.value == y.value and hash(x) == hash(y)
    assert x.value * NS_PER_MS == ms_to_ns(x.value)  # a whole number of ns
    assert Budget.from_dict(x.to_dict()) == y  # and as run.yaml stores it
    old = {"kind": "latency", "value": 0.7000000000000001}  # a run.yaml written before
    assert Budget.from_dict(old) == Budget("latency", 0.7)


def test_a_budget_option_too_long_to_be_a_number_shows_the_forms():
    import click

    from attnsearch.cli._numbers import cost_budget_option

    with pytest.raises(click.BadParameter) as e:
        cost_budget_option(None, None, "9" * 200 + "G")  # type: ignore[arg-type]
    assert "is not a budget" in str(e.value) and "4GFLOPs" in str(e.value)
    assert "25ms" in str(e.value)


def test_a_latency_below_a_nanosecond_is_refused():
    with pytest.raises(BudgetError, match="less than a nanosecond"):
        parse_cost_budget("0.0001us")
    with pytest.raises(BudgetError, match="less than a nanosecond"):
        Budget("latency", 1e-7)
    assert ns_to_ms(ms_to_ns(25.0)) == 25.0 and ms_to_ns(0.3) == 300_000


def test_budget_str_and_format_latency():
    assert str(parse_cost_budget("25ms")) == "25 ms"
    assert str(parse_cost_budget("4G")) == "4 GFLOPs"
    assert format_latency(0.8) == "800 µs"
    assert format_latency(1500) == "1.5 s"
