"""``ci-tools rehearse``: the whole migration plan against local stand-ins, in under a minute."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from ci_tools.context import Context
from ci_tools.errors import InputError, VerificationError
from ci_tools.output import Report, report, say
from ci_tools.settings import load_config


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    reh = subparsers.add_parser("rehearse")
    reh.add_argument("--keep", type=Path, help="keep the sandbox's files (logs, snapshots) in this folder")
    reh.add_argument("--threads", action="store_true", help="run bots in threads instead of processes (faster)")
    reh.add_argument(
        "--bot",
        type=Path,
        metavar="PATH",
        help="rehearse with your bot instead of the reference one: PATH is its repository after `ci-tools adopt` "
        "(each deploy builds and starts it as its render.yaml says)",
    )
    reh.set_defaults(func=run)


def run(ctx: Context, args: argparse.Namespace) -> int:
    from sandbox.contract import LEDGER, describe  # optional: the stand-ins ship with a checkout, not the wheel
    from sandbox.rehearsal import rehearse  # optional: the stand-ins ship with a checkout, not the wheel

    bot = adopted_bot(args.bot) if args.bot else None
    say("rehearsing the migration plan against local stand-ins (nothing outside this machine is touched)")
    if bot is not None:
        say(f"with your bot: {bot} (its render.yaml's commands, its [tool.ci_tools])")
    mark_contracts = LEDGER.mark()
    phases = rehearse(ctx.config.path.parent, process=not args.threads, keep=args.keep, bot=bot)
    rows = [[p.mark, p.name, f"{p.seconds:.1f}s", p.detail] for p in phases]
    report(ctx.runner, Report("Rehearsal", ["", "phase", "time", "what happened"], rows, shown=len(rows)))
    failed = [p for p in phases if p.ok is not True]
    if failed:
        raise VerificationError(f"the rehearsal stopped at: {failed[0].name}: {failed[0].detail}")
    # The stand-ins held every exchange to the providers' published descriptions.
    broken = LEDGER.since(mark_contracts)
    say(LEDGER.line())
    if broken:
        say(describe(broken), err=True)
        raise VerificationError(
            f"{len(broken)} exchange(s) with the stand-ins broke the providers' published descriptions",
            hint="the lines above name each operation and JSON path: fix the client or the stand-in",
        )
    skipped = [p for p in phases if p.warning]
    aside = f" ({len(skipped)} not rehearsed with this bot: ⚠ above)" if skipped else ""
    say(f"✓ all {len(phases)} phases passed in {sum(p.seconds for p in phases):.0f}s{aside}")
    return 0


def adopted_bot(path: Path) -> Path:
    """``--bot PATH``: a git repository that ``ci-tools adopt`` set up (its config names staging and
    production, its render.yaml their services); one line naming what is missing otherwise."""
    root = path.expanduser().resolve()
    if not root.is_dir():
        raise InputError(f"--bot {path}: no such directory", hint="give your bot's repository")
    for name in ("pyproject.toml", "render.yaml"):
        if not (root / name).is_file():
            raise InputError(
                f"--bot {path} has no {name}", hint=f"run `ci-tools adopt {path}` first: it writes the pipeline's files"
            )
    inside = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=False
    )
    if inside.returncode != 0 or Path(inside.stdout.strip()).resolve() != root:
        raise InputError(f"--bot {path} is not the root of a git repository", hint="give your bot's repository root")
    config = load_config(root / "pyproject.toml")
    for env in ("staging", "production"):
        config.env(env)
    return root
