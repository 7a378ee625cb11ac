"""Numeric option types: a value that is not a number in range is refused as it enters.

``Number.of(Dataclass, "field")`` takes the bounds declared on the field
(:func:`attnsearch.settings.bounded`), so an option and the setting it fills share one range;
``Number(lo, hi, integer=...)`` is for the options that fill no dataclass field. NaN,
infinities, fractions for integers and numbers too long to be meant (an integer of
thousands of digits) are refused with one line naming the option.
"""

from __future__ import annotations

from typing import Any

import click

from attnsearch.settings import field_bounds, number_problem

__all__ = ["MAX_DIGITS", "Number", "budget_option", "cost_budget_option"]

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
    """Callback of a FLOPs option (``--max-flops``, ``fidelity --budget``): the
    :class:`~attnsearch.budget.Budget` it names (kind ``flops``), or None."""
    return _budget(value, latency=False)


def cost_budget_option(ctx: click.Context, param: click.Parameter, value: str | None):
    """Callback of ``run --budget``: the :class:`~attnsearch.budget.Budget` it names, FLOPs
    or a latency (``25ms``), or None. The one place the command line parses a budget."""
    return _budget(value, latency=True)


def _budget(value: str | None, *, latency: bool):
    if value is None:
        return None
    from attnsearch.budget import (
        Budget,
        BudgetError,
        budget_forms,
        parse_budget,
        parse_cost_budget,
    )

    text = str(value)
    if len(text) > MAX_DIGITS:
        raise click.BadParameter(
            f"{text[:12]}... ({len(text)} characters) is not a budget; use {budget_forms(latency)}"
        )
    try:
        if latency:
            return parse_cost_budget(text)
        return Budget("flops", parse_budget(text), text.strip())
    except BudgetError as e:
        raise click.BadParameter(str(e)) from None
