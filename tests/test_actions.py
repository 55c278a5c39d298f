from __future__ import annotations

import io
import re

import pytest

from ci_tools import actions
from ci_tools.actions import Runner

TOKEN = "7712345678:AAHk2-secretTokenValue_abcdefghijklmn"


def test_escaping_matches_actions_toolkit():
    assert actions.escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert actions.escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"


def test_everything_is_a_noop_outside_actions(tmp_path):
    out = io.StringIO()
    laptop = Runner.from_environ({"GITHUB_OUTPUT": str(tmp_path / "out")})  # no GITHUB_ACTIONS
    laptop.annotate("error", "boom", out=out)
    laptop.mask("value", out=out)
    assert not laptop.set_output("a", "b")
    assert not laptop.add_summary("# hi")
    assert out.getvalue() == "" and not (tmp_path / "out").exists()


@pytest.fixture
def runner(tmp_path) -> Runner:
    """A runner whose files (GITHUB_OUTPUT, GITHUB_STEP_SUMMARY) are in tmp_path."""
    return Runner.from_environ(
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_OUTPUT": str(tmp_path / "output"),
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
        }
    )


def test_annotation_in_actions(runner):
    out = io.StringIO()
    runner.annotate("error", f"bad token {TOKEN}\nline 2", title="deploy: a,b", file="x.yml", line=3, out=out)
    assert out.getvalue() == "::error title=deploy%3A a%2Cb,file=x.yml,line=3::bad token ***%0Aline 2\n"
    with pytest.raises(ValueError, match="unknown annotation level"):
        runner.annotate("fatal", "x")


def test_outputs_survive_newlines_and_are_redacted(runner):
    assert runner.set_output("deploy_id", "dep-123")
    assert runner.set_output("multi", f"a\nb {TOKEN}")
    text = runner.output.read_text()
    blocks = re.findall(r"^(\w+)<<(ghadelimiter_[\w-]+)\n(.*?)\n\2$", text, re.S | re.M)
    assert [(name, value) for name, _, value in blocks] == [
        ("deploy_id", "dep-123"),
        ("multi", "a\nb ***"),
    ]


def test_summary_and_mask(runner):
    runner.add_summary(actions.markdown_table(["check", "result"], [["token", f"ok {TOKEN}"], ["a|b", "x"]]))
    summary = runner.summary.read_text()
    assert TOKEN not in summary and "| a\\|b | x |" in summary
    out = io.StringIO()
    runner.mask("s3cret", out=out)
    assert out.getvalue() == "::add-mask::s3cret\n"
