"""One row type for every checked item, with one set of glyphs."""

from __future__ import annotations

from ci_tools.checklist import Item
from ci_tools.pipeline.probe import Check, summary_rows
from sandbox.rehearsal import Phase


def test_the_probe_the_checklists_and_the_rehearsal_draw_a_verdict_the_same_way():
    for row in (Item, Check, Phase):
        assert issubclass(row, Item)
        assert [row("x", ok).mark for ok in (True, False, None)] == ["✓", "✗", "·"]
    assert Item("x", True, warning=True).mark == "⚠"
    assert summary_rows([Check("webhook", None, "not checked")])[0][0] == "·"
