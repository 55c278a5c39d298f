"""Every command's --help names the variables it reads and where each comes from."""

from __future__ import annotations

import argparse

from ci_tools.__main__ import build_parser
from ci_tools.needs import Needs, _origin, describe


def commands(parser: argparse.ArgumentParser, path: str = "ci-tools"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                yield f"{path} {name}", command
                yield from commands(command, f"{path} {name}")


def test_each_command_lists_every_variable_its_needs_declare_with_its_origin():
    seen = 0
    for path, command in commands(build_parser()):
        needs = command.get_default("needs")
        if needs is None or not needs.names:
            continue
        text = command.format_help()
        for name in needs.names:
            assert name in text, f"{path} --help does not name {name}"
            assert _origin(name), f"{name} ({path}) has no origin in ci_tools/needs.py ORIGINS"
        seen += 1
    assert seen >= 12  # preflight, cutover, deploy, memory copy, …


def test_preflight_help_lists_both_environments_secrets():
    pre = dict(commands(build_parser()))["ci-tools preflight"].format_help()
    for name in ("STAGING_TELEGRAM_BOT_TOKEN", "PRODUCTION_REDIS_URL", "RENDER_API_KEY"):
        assert name in pre
    assert "@BotFather" in pre and "optional" in pre


def test_a_command_without_variables_says_nothing_about_them():
    assert describe(Needs()) == ""
    assert "required" in describe(Needs(required=("TELEGRAM_BOT_TOKEN",)))
