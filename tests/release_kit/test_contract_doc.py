"""docs/CONTRACT.md shows exactly the lines an owner adds: the patch the tests apply and run."""

from __future__ import annotations

import re

from release_kit import PROBE_HEADER
from release_kit import __version__ as KIT_VERSION
from release_kit.probe import PROBE_TTL
from release_kit.server import PROBE_PATH
from tests.release_kit.owner import PATCH
from tests.support import ROOT

DOC = ROOT / "docs" / "CONTRACT.md"
MARK = "<!-- patch: tests/fixtures/owner_bot_kit.patch -->\n```diff\n"


def shown_patch() -> str:
    text = DOC.read_text()
    assert text.count(MARK) == 1, f"{DOC.name}: the patch listing's marker is missing"
    return text.split(MARK, 1)[1].split("```\n", 1)[0]


def changed(patch: str, path: str) -> list[str]:
    """The added lines of ``path`` in a git diff."""
    section = patch.split(f"diff --git a/{path} b/{path}\n", 1)[1].split("\ndiff --git ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("+") and not line.startswith("+++")]


def test_the_doc_shows_the_patch_the_tests_run_line_for_line():
    assert shown_patch() == PATCH.read_text()


def test_the_counts_the_doc_gives_are_the_patchs():
    patch = PATCH.read_text()
    bot, requirements = changed(patch, "bot/__main__.py"), changed(patch, "requirements.txt")
    builder = [line for line in bot if "kit.builder()" in line]
    assert (len(bot), len(requirements), len(builder)) == (7, 2, 1)
    assert len(bot) + len(requirements) <= 15  # the target for the conversation level
    text = DOC.read_text()
    assert f"**{len(bot)} lines** in `bot/__main__.py`" in text
    assert f"**{len(bot) - len(builder)} lines** in `bot/__main__.py`" in text  # the health level
    assert {line.lstrip("+").split(">=")[0] for line in requirements} == {"starlette", "uvicorn"}


READS = re.compile(r'(?:environ\.get|_required\(environ,|_username\(environ,)\(?\s*"([A-Z_]+)"')


def test_the_doc_names_what_the_kit_answers_and_every_variable_it_reads():
    text = DOC.read_text()
    assert f"`{PROBE_HEADER}`" in text and f'"probe_path": "{PROBE_PATH}"' in text
    assert f'"kit": "{KIT_VERSION}"' in text and f"for {PROBE_TTL // 60} minutes" in text
    variables = set(READS.findall((ROOT / "release_kit" / "config.py").read_text()))
    assert {"ENV", "KEY_PREFIX", "REDIS_URL", "TESTER_IDS", "MOVED_TO", "TELEGRAM_API_URL"} <= variables
    table = text.split("## What the kit reads", 1)[1].split("\n## ", 1)[0]
    assert sorted(name for name in variables if f"`{name}`" not in table) == []
