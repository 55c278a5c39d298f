"""The rehearsal is the runbook against the stand-ins: the daily user's bot must know them
before every phase until they move, and the check must bite when it does not."""

from __future__ import annotations

import pytest

from ci_tools.runbook import step
from sandbox.rehearsal import Rehearsal
from tests.support import ROOT


@pytest.mark.timeout(300)  # the whole runbook, seventeen phases, on a busy machine
def test_the_runbook_in_order_never_hides_the_daily_users_memory(tmp_path):
    rehearsal = Rehearsal(tmp_path, ROOT, process=False, log=lambda line: None)
    phases = rehearsal.run()
    failed = [(p.name, p.detail) for p in phases if not p.ok]
    assert not failed, failed
    names = [p.name for p in phases]
    # Step 4 asks what exists before @BotFather (step 1), everything after it; the prefix comes after the move.
    assert (
        names.index(f"before {step(1).label()}: preflight, only what exists")
        < names.index(step(1).label())
        < names.index(f"{step(4).label()}, everything")
    )
    # The way back comes in the window after the move; the old bot goes to the testers last.
    window = next(n for n in names if n.startswith(f"the way back, before {step(9).label()}"))
    finished = next(n for n in names if n.startswith(f"{step(9).label()}: finish-move refused before the window"))
    assert names.index("the user talks to the new bot; it remembers") < names.index(window)
    assert names[-1] == finished
    moved = names.index("the user talks to the new bot; it remembers")
    assert rehearsal.recalls == moved + 1  # the seed's own check, then one before each phase up to the move


def test_a_staging_prefix_before_the_move_is_caught_at_the_first_deploy(tmp_path):
    """What render.yaml's KEY_PREFIX "dev:" did to the daily user: the bot they use forgot them."""
    phases = Rehearsal(tmp_path, ROOT, process=False, log=lambda line: None, legacy_staging=False).run()
    assert phases[0].ok is False
    assert "forgot" in phases[0].detail and "@mindmate_dev_bot" in phases[0].detail
    assert all(p.ok is None for p in phases[1:])  # nothing after it ran
