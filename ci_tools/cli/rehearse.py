"""``ci-tools rehearse``: the whole migration plan against local stand-ins, in under a minute."""

from __future__ import annotations

import argparse
from pathlib import Path

from ci_tools.context import Context
from ci_tools.errors import VerificationError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    reh = subparsers.add_parser("rehearse", help="run the whole plan locally against stand-ins (under a minute)")
    reh.add_argument("--keep", type=Path, help="keep the sandbox's files (logs, snapshots) in this folder")
    reh.add_argument("--threads", action="store_true", help="run bots in threads instead of processes (faster)")
    reh.set_defaults(func=run)


def run(ctx: Context, args: argparse.Namespace) -> int:
    from ci_tools.output import Report, report, say
    from sandbox.contract import LEDGER, describe
    from sandbox.rehearsal import rehearse

    say("rehearsing the migration plan against local stand-ins (nothing outside this machine is touched)")
    mark_contracts = LEDGER.mark()
    phases = rehearse(ctx.config.path.parent, process=not args.threads, keep=args.keep)
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
    say(f"✓ all {len(phases)} phases passed in {sum(p.seconds for p in phases):.0f}s")
    return 0
