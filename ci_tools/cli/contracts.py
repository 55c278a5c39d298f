"""``ci-tools contracts fetch|diff|cut``: watch the providers' API descriptions for changes.

``diff PROVIDER OLD NEW`` compares two copies of a provider's description in the operations
this project uses (``ci_tools.contracts.used``) and exits 5 listing each change, so a
scheduled run turns red when Render, GitHub or Telegram change what we rely on.
``fetch DIR`` downloads what each provider publishes now, for ``diff`` to compare (Telegram
publishes its Bot API only as a page: it is read into the vendored ``api.json`` shape).
``cut github FULL OUT`` cuts GitHub's 13 MB description down to those operations, which is
how ``ci_tools/contracts/specs/github-api.json`` is made.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ci_tools.context import Context
from ci_tools.contracts import diff, openapi
from ci_tools.contracts.fetch import Sources, fetch_all
from ci_tools.contracts.used import GITHUB, USED
from ci_tools.errors import VerificationError
from ci_tools.output import Report, report, say

PROVIDERS = ("render", "github", "telegram")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("contracts")
    sub = parser.add_subparsers(dest="contracts_command", required=True, metavar="ACTION")
    diff = sub.add_parser("diff", help="what changed between two copies, in the operations we use")
    diff.add_argument("provider", choices=PROVIDERS)
    diff.add_argument("old", type=Path, help="the vendored copy")
    diff.add_argument("new", type=Path, help="the copy published now")
    diff.add_argument("--json", action="store_true", help="machine-readable output")
    diff.set_defaults(func=diff_descriptions)
    fetch = sub.add_parser("fetch", help="download what Render, GitHub and Telegram publish now")
    fetch.add_argument("out", type=Path, help="folder for render.json, github.json, telegram.json")
    # Defaults: RENDER_SPEC_URL, NPM_REGISTRY_URL, TELEGRAM_SPEC_URL (the act tests point them at a
    # local "published" copy), else the providers' own addresses.
    fetch.add_argument("--render-url")
    fetch.add_argument("--npm-registry")
    fetch.add_argument("--telegram-url", help="the Bot API page (default https://core.telegram.org/bots/api)")
    fetch.set_defaults(func=fetch_descriptions)
    cut = sub.add_parser("cut", help="cut GitHub's full description to the operations we use")
    cut.add_argument("provider", choices=("github",))
    cut.add_argument("full", type=Path, help="api.github.com.json from @octokit/openapi")
    cut.add_argument("out", type=Path)
    cut.set_defaults(func=cut_description)


def diff_descriptions(ctx: Context, args: argparse.Namespace) -> int:
    found = diff.changes(args.provider, openapi.load(args.old), openapi.load(args.new))
    if not found and not args.json:
        say(f"✓ {args.provider}: no change in the {len(USED[args.provider])} operations we use")
        return 0
    rows = [[c.operation, c.field, c.before, c.after] for c in found]
    title = f"{args.provider}: {len(found)} change(s) in the operations we use"
    report(ctx.runner, Report(title, ["operation", "field", "before", "after"], rows, shown=200), as_json=args.json)
    if found:
        operations = sorted({c.operation for c in found})
        raise VerificationError(
            f"{args.provider}'s published description changed in {', '.join(operations)}",
            hint="read the rows above, update the client and the stand-in, then vendor the new copy",
        )
    return 0


def fetch_descriptions(ctx: Context, args: argparse.Namespace) -> int:
    specs = ctx.services.specs
    given = {
        "render": args.render_url or specs.get("render"),
        "npm_registry": args.npm_registry or specs.get("npm_registry"),
        "telegram": args.telegram_url or specs.get("telegram"),
    }
    sources = Sources(**{k: v for k, v in given.items() if v})
    for provider, origin in fetch_all(args.out, sources).items():
        say(f"✓ {provider}: {origin}")
    return 0


def cut_description(ctx: Context, args: argparse.Namespace) -> int:
    cut = openapi.subset(openapi.load(args.full), GITHUB)
    args.out.write_text(json.dumps(cut, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    say(f"✓ {args.out}: {len(GITHUB)} operations, {args.out.stat().st_size // 1024} KiB")
    return 0
