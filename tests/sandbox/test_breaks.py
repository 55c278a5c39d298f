"""Every bad release in sandbox/breaks.py still finds the code it breaks: a refactor that moves the
line (the webhook's secret check moved from mindmate/app.py into release_kit) must move the break."""

from __future__ import annotations

import pytest

from sandbox.breaks import BREAKS
from tests.support import ROOT


@pytest.mark.parametrize("how", sorted(BREAKS))
def test_each_break_still_reads_the_code_it_breaks(how):
    found = BREAKS[how]
    edits = (found,) if isinstance(found[0], str) else found
    for path, old, _new in edits:
        assert old in (ROOT / path).read_text(), f"{how!r}: {path} no longer holds the line it breaks"
