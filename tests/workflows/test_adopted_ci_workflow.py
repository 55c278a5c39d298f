"""ci.yml in act, in a repository whose bot is not ours: tests/fixtures/owner_bot (module ``bot``,
requirements.txt, no uv.lock, no pyproject of its own) after ``ci-tools adopt --yes --pin``, the
setup action's pylock.toml pinned to a wheel of the pipeline (an adopted repository pins a
commit; offline, a wheel built from this checkout stands in for it). ci-tools comes from the pin
alone: the repository holds no ci_tools package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.world import World, git
from tests.workflows.act import Act
from tests.workflows.scenarios import REPOSITORY, adopted_owner_bot, push

# The owner's tests, a script of their own: their module compiles, and the pipeline put one
# command on PATH and nothing else (no python, pip or uv of its own in the bot's way).
OWNERS_TESTS = """\
set -euo pipefail
python3 -m compileall -q bot
[ "$(ls "$(dirname "$(command -v ci-tools)")")" = ci-tools ]
echo owner-tests-ran
"""
TESTS = 'test_command = "bash tests/run.sh"'


def owner_repository(root: Path, wheel: str, ci: str) -> Path:
    """The owner's bot, adopted (``ci-tools adopt --yes --pin <wheel>``), with tests of their own."""
    adopted_owner_bot(root, wheel)
    with (root / "pyproject.toml").open("a") as config:
        config.write(ci)
    (root / "tests").mkdir()
    (root / "tests" / "run.sh").write_text(OWNERS_TESTS)
    return root


@pytest.fixture
def adopted(tmp_path: Path, pipeline_wheel: str) -> Iterator[tuple[World, Act]]:
    source = owner_repository(tmp_path / "owner", pipeline_wheel, f"\n[tool.ci_tools.ci]\n{TESTS}\n")
    with World(tmp_path / "world", step=0.05, source=source) as world:
        git(world.repo, "remote", "add", "origin", f"https://github.com/{REPOSITORY}.git")
        yield world, Act(world, tmp_path / "act")


def configure(world: World, ci: str) -> str:
    """A commit on feature/tests whose [tool.ci_tools.ci] is ``ci``; its SHA."""
    git(world.repo, "checkout", "-q", "-B", "feature/tests", "main")
    config = world.repo / "pyproject.toml"
    text = config.read_text()
    config.write_text(text.split("\n[tool.ci_tools.ci]")[0].rstrip("\n") + "\n" + ci)
    git(world.repo, "commit", "-q", "-am", "the owner's tests")
    return git(world.repo, "rev-parse", "HEAD")


def test_ci_installs_the_pinned_pipeline_and_runs_the_owners_tests(adopted):
    world, act = adopted
    assert not (world.repo / "uv.lock").exists() and not (world.repo / "ci_tools").exists()
    sha = world.commit("feature/tests", "the owner's change")
    run = act.run("ci.yml", "push", secrets={}, payload=push("feature/tests", sha))
    assert run.ok, run.tail()
    assert "ci-tools 0.1.0, as pinned by .github/actions/setup-ci-tools/pylock.toml" in run.log
    assert "running the bot's tests ([tool.ci_tools.ci] test_command in pyproject.toml)" in run.log
    assert "owner-tests-ran" in run.log and "✓ the bot's tests passed" in run.log


def test_ci_without_tests_says_so_and_a_failing_test_fails_it(adopted):
    world, act = adopted
    sha = configure(world, "\n")
    run = act.run("ci.yml", "push", secrets={}, payload=push("feature/tests", sha))
    assert run.ok, run.tail()
    assert "no tests configured: set [tool.ci_tools.ci] test_command in pyproject.toml" in run.log
    sha = configure(world, '\n[tool.ci_tools.ci]\ntest_command = "echo FAILED test_bot.py; exit 1"\n')
    run = act.run("ci.yml", "push", secrets={}, payload=push("feature/tests", sha))
    assert not run.ok, run.tail()
    assert "FAILED test_bot.py" in run.log and "the bot's tests failed: test_command exited with 1" in run.log
