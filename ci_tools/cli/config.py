"""``ci-tools config show|check``: what the pipeline believes, and whether render.yaml agrees."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from ci_tools.context import Context
from ci_tools.errors import ConfigError
from ci_tools.output import emit_json, say, table
from ci_tools.repo.blueprint import blueprint_problems, load_blueprint


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config")
    sub = parser.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = sub.add_parser("show", help="print the environments and the branch flow")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=show_config)
    check = sub.add_parser("check", help="check that render.yaml agrees with [tool.ci_tools]")
    check.add_argument("--blueprint", type=Path, help="path to render.yaml (default: beside pyproject.toml)")
    check.set_defaults(func=check_config)


def show_config(ctx: Context, args: argparse.Namespace) -> int:
    config = ctx.config
    if args.json:
        emit_json(
            {
                "config": str(config.path),
                "flow": {base: list(heads) for base, heads in config.flow.items()},
                "ci": {"test_command": config.ci.test_command},
                "environments": {
                    name: {
                        **asdict(env),
                        "health_url": env.health_url,
                    }
                    for name, env in config.environments.items()
                },
            }
        )
        return 0
    rows = [
        [e.name, e.branch, e.render_service, "@" + e.bot_username, e.key_prefix, e.base_url]
        for e in config.environments.values()
    ]
    table(f"Environments ({config.path})", ["env", "branch", "service", "bot", "prefix", "url"], rows)
    for base, heads in config.flow.items():
        say(f"PRs into {base}: from {', '.join(heads)}")
    say(f"the bot's tests (ci.yml): {config.ci.test_command or 'none configured ([tool.ci_tools.ci] test_command)'}")
    return 0


def check_config(ctx: Context, args: argparse.Namespace) -> int:
    config = ctx.config
    path = args.blueprint or config.path.with_name("render.yaml")
    problems = blueprint_problems(config, load_blueprint(path))
    for problem in problems:
        say(f"✗ {problem}", err=True)
    if problems:
        raise ConfigError(
            f"{path.name} disagrees with {config.path.name} in {len(problems)} place(s)",
            hint="fix the lines above",
        )
    say(f"✓ {path.name} agrees with [tool.ci_tools] in {config.path.name}")
    return 0
