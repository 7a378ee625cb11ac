"""The terminal object prints user text as it is: no rich markup from paths or names."""

from __future__ import annotations

import pytest

from attnsearch.cli._terminal import Terminal


@pytest.mark.parametrize("text", ["/data/[v2]/run", "a [/x] b", "[bold]x[/bold]", "[red"])
def test_user_text_is_not_markup(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    t = Terminal()
    t.line(f"results: {text}")
    t.note(f"note {text}")
    t.error(f"bad {text}")
    t.table(f"title {text}", ["col"], [[f"{text} " + "-" * 40]])
    out, err = capsys.readouterr()
    assert f"results: {text}" in out
    assert f"title {text}" in out and f"│ {text}" in out
    assert f"note {text}" in err
    assert f"error: bad {text}" in err
