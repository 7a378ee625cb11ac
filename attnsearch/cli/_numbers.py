"""Numeric option types: a value that is not a number in range is refused as it enters.

``Number.of(Dataclass, "field")`` takes the bounds declared on the field
(:func:`attnsearch.proxy.bounded`), so an option and the setting it fills share one range;
``Number(lo, hi, integer=...)`` is for the options that fill no dataclass field. NaN,
infinities, fractions for integers and numbers too long to be meant (an integer of
thousands of digits) are refused with one line naming the option.
"""

from __future__ import annotations

from typing import Any

import click

from attnsearch.proxy import field_bounds, number_problem

__all__ = ["MAX_DIGITS", "Number", "budget_option"]

MAX_DIGITS = 40  # longer text is not a number anyone means (and int() of 5000 digits fails)


class Number(click.ParamType):
    """An int or float option in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``)."""

    def __init__(self, lo: float, hi: float, *, integer: bool, lo_open: bool = False):
        self.lo, self.hi, self.integer, self.lo_open = lo, hi, integer, lo_open
        self.name = "integer" if integer else "float"

    @classmethod
    def of(cls, dataclass: type, field: str) -> Number:
        lo, hi, lo_open, integer = field_bounds(dataclass, field)
        return cls(lo, hi, integer=integer, lo_open=lo_open)

    def convert(self, value: Any, param, ctx) -> int | float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = value
        else:
            text = str(value).strip()
            if len(text) > MAX_DIGITS:
                self.fail(f"{text[:12]}... ({len(text)} characters) is not a number", param, ctx)
            try:
                number = int(text) if self.integer else float(text)
            except ValueError:
                kind = "an integer" if self.integer else "a number"
                self.fail(f"{text!r} is not {kind}", param, ctx)
        problem = number_problem(
            number, self.lo, self.hi, lo_open=self.lo_open, integer=self.integer
        )
        if problem:
            self.fail(problem, param, ctx)
        return number


def budget_option(ctx: click.Context, param: click.Parameter, value: str | None):
    """Callback of a FLOPs option (``--max-flops``): refuse what
    :func:`attnsearch.budget.parse_budget` or the settings' bounds refuse; keep the text."""
    return _budget(value, latency=False)


def cost_budget_option(ctx: click.Context, param: click.Parameter, value: str | None):
    """Callback of ``run --budget``: FLOPs or a latency (``25ms``), checked as
    :func:`attnsearch.budget.parse_cost_budget` and the settings' bounds say; keep the text."""
    return _budget(value, latency=True)


def _budget(value: str | None, *, latency: bool):
    if value is None:
        return None
    from attnsearch.budget import BudgetError, parse_budget, parse_cost_budget
    from attnsearch.search._settings import RunSettings

    text = str(value)
    if len(text) > MAX_DIGITS:
        raise click.BadParameter(f"{text[:12]}... ({len(text)} characters) is not a budget")
    try:
        if latency:
            budget = parse_cost_budget(text)
            if budget.kind == "latency":
                lo, hi, lo_open, _ = field_bounds(RunSettings, "latency_budget_ms")
                problem = number_problem(budget.value, lo, hi, lo_open=lo_open)
                if problem:
                    raise click.BadParameter(problem)
                return value
            flops = int(budget.value)
        else:
            flops = parse_budget(text)
    except BudgetError as e:
        raise click.BadParameter(str(e)) from None
    lo, hi, lo_open, _ = field_bounds(RunSettings, "budget")
    problem = number_problem(flops, lo, hi, lo_open=lo_open, integer=True)
    if problem:
        raise click.BadParameter(problem)
    return value
