"""The plan's acceptance checklist, each item checked against the real systems.

Which of them the bot can answer depends on its contract level (``pipeline/levels.py``), said in
its own row: at the health level and up ``/healthz`` says which bot the production service runs
and which commit the probe judges; at the base level Telegram does (the bot's webhook is on the
production service), and the probe judges what the base level can.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import redis

from ci_tools.checklist import BUDGET, TELEGRAM_DOWN, Item, unanswered
from ci_tools.clients.health import Updates
from ci_tools.clients.render import monotonic_deadline
from ci_tools.clients.telegram import TelegramError
from ci_tools.context import Context
from ci_tools.errors import FatalError, RemoteError
from ci_tools.memory.files import RecordFile
from ci_tools.memory.keys import KIT_ARRIVAL
from ci_tools.pipeline import safety_net as net
from ci_tools.pipeline.cutover import read_window
from ci_tools.pipeline.levels import Level, discover
from ci_tools.pipeline.probe import Probe, failures, run_probe, whose_token
from ci_tools.repo.github import check_if_possible
from ci_tools.settings import Environment

REPOSITORY_FILES = (
    ".github/workflows/branch-flow.yml",
    ".github/workflows/ci.yml",
    ".github/workflows/staging.yml",
    ".github/workflows/production.yml",
    ".github/rulesets/main.json",
    ".github/rulesets/develop.json",
)


def acceptance(
    ctx: Context,
    user_id: int,
    snapshot: Path | None,
    since: float | None,
    deadline: float = 30,
    repo_root: Path | None = None,
) -> list[Item]:
    config = ctx.config
    env = config.role("cutover_target")
    items: list[Item] = []
    root = repo_root or config.path.parent
    # What does not depend on the bot runs meanwhile, each on a short budget.
    pool = ThreadPoolExecutor(max_workers=5)
    memory = pool.submit(_memory_items, ctx, env.key_prefix, user_id, snapshot, since)
    later = [
        pool.submit(lambda: [_rollback_window(ctx)]),
        pool.submit(check_if_possible, ctx, root, budget=BUDGET),  # GitHub's settings in force
        pool.submit(lambda: [net.durability(ctx, budget=BUDGET)]),  # the memory safety net
        pool.submit(lambda: [net.last_snapshot(ctx, budget=BUDGET)]),
    ]
    token = ctx.optional("TELEGRAM_BOT_TOKEN")
    webhook_secret = ctx.optional("TELEGRAM_WEBHOOK_SECRET")
    me = None
    name = f"the new bot @{env.bot_username} exists"
    if not token:
        items.append(Item(name, None, "TELEGRAM_BOT_TOKEN not set", "export the production bot's token"))
    else:
        try:
            me = ctx.bot_info(token, budget=BUDGET)
            cause = whose_token(config, env, me.username)
            items.append(Item(name, cause is None, f"@{me.username}", cause or ""))
        except TelegramError as exc:
            items.append(Item(name, False, f"getMe: {exc.code}", "the token is wrong or revoked"))
        except RemoteError as exc:
            items.append(unanswered(name, exc, TELEGRAM_DOWN))
    found = discover(env, min(ctx.request_timeout(10), BUDGET))
    health = found.health
    level = Item("the bot's contract level", found.definite, found.line() if found.definite else found.why)
    if found.definite and found.unverified():
        level.warning, level.fix = True, "what each level takes: docs/CONTRACT.md"
    elif not found.definite:
        level.fix = "the production service does not answer: look at it"
    items.append(level)
    if health is not None:
        runs = me is not None and health.bot_id == me.id
        items.append(
            Item(
                "the production service runs it",
                runs,
                f"{env.health_path}: @{health.bot_username}",
                "" if runs else "run ci-tools cutover",
            )
        )
    elif token and me:  # the base level: Telegram says where the bot's updates go
        items.append(_webhook_on_service(ctx, token, env))
    else:
        items.append(Item("the production service runs it", None, "needs the bot", "fix the item above"))
    commit = (health.commit if health else None) or ""  # the base level's checks judge no commit
    if me and token and (commit or (found.definite and found.level is Level.BASE)):
        try:
            probe = Probe(ctx, env, commit, token, deadline=deadline, webhook_secret=webhook_secret, found=found)
            checks = run_probe(probe)
            failed = failures(checks)
            items.append(
                Item(
                    "the probe passes",
                    not failed,
                    f"{len(checks) - len(failed)}/{len(checks)} checks",
                    "; ".join(c.cause or c.detail for c in failed),
                )
            )
        except FatalError as exc:
            items.append(Item("the probe passes", False, exc.message, exc.hint or ""))
    else:
        items.append(Item("the probe passes", None, "needs the bot and /healthz", "fix the items above"))
    window, github_items, durability, last = (job.result() for job in later)
    memory_items, seen = memory.result()
    pool.shutdown()
    items += [*memory_items, seen.item(health.updates if health else None, found.level), *window]
    missing = [f for f in REPOSITORY_FILES if not (root / f).is_file()]
    items.append(
        Item(
            "the branch flow, its workflows and rulesets are in the repository",
            not missing,
            "all present" if not missing else "missing " + ", ".join(missing),
            "restore them from main" if missing else "",
        )
    )
    # Files in the repository are not the flow in force: GitHub's own settings are read back.
    return items + github_items + durability + last


def _webhook_on_service(ctx: Context, token: str, env: Environment) -> Item:
    """At the base level: does Telegram deliver the bot's updates to the production service?"""
    name = "the production service runs it"
    try:
        with ctx.telegram(token, budget=BUDGET) as telegram:
            url = telegram.webhook_info().url
    except TelegramError as exc:
        return Item(name, False, f"getWebhookInfo: {exc.code}", "the token is wrong or revoked")
    except RemoteError as exc:
        return unanswered(name, exc, TELEGRAM_DOWN)
    if env.owns_webhook(url):
        return Item(name, True, f"its webhook is on {env.base_url} (level base: Telegram's word, no health answer)")
    return Item(name, False, f"its webhook is {url or 'unset'}", f"run ci-tools cutover: it must be on {env.base_url}")


def _rollback_window(ctx: Context) -> Item:
    """Is the old bot still kept, and until when can ``cutover --back`` bring it back?"""
    name = "the old bot is kept for rollback"
    api_key, service_id = ctx.optional("RENDER_API_KEY"), ctx.optional("RENDER_SERVICE_ID")
    if not api_key or not service_id:
        return Item(
            name,
            None,
            "RENDER_API_KEY or RENDER_SERVICE_ID not set",
            "export both to read the window",
        )
    try:
        with ctx.render(api_key, service_id, deadline=monotonic_deadline(BUDGET), timeout=BUDGET) as api:
            window = read_window(api, ctx.config)
    except FatalError as exc:
        return Item(name, False, exc.message, exc.hint or "", remote=isinstance(exc, RemoteError))
    previous, ends, finished = window.previous, window.ends, window.finished
    if finished and not previous:
        on, _, old = finished.partition(" ")
        return Item(name, True, f"rollback window closed on {on} ({old} forgotten by cutover --finish)")
    if not previous or ends is None:
        return Item(name, False, "no cutover recorded on the production service", "run ci-tools cutover")
    return Item(
        name,
        True,
        f"{previous.split()[0]} kept until {ends:%Y-%m-%d}; `ci-tools cutover --back` available",
    )


TALKED = "the user has talked to the new bot"


@dataclass(frozen=True)
class Seen:
    """What says the user has talked to the new bot since the copy (``since``): the ``last`` of
    the kit's arrival record (``kit:arrival:<id>``, any bot served by the kit), else the profile's
    ``last_seen`` a mindmate deployed before the kit kept the record has under
    ``user:<id>:profile``, else the last update the health answer says the bot handled (whose, it
    never says)."""

    since: float | None = None
    last_seen: int | None = None
    profile: bool = False  # a per-user record answers: the kit's arrival record, or the legacy profile
    record: str = "user:<id>:profile"  # which record said it, for the item's detail
    unmet: Item | None = None  # Redis unset or silent: the item as it stands

    def item(self, updates: Updates | None, level: Level) -> Item:
        if self.unmet is not None:
            return self.unmet
        if self.profile:
            talked = self.last_seen is not None and self.since is not None and self.last_seen >= int(self.since)
            return Item(
                TALKED,
                talked,
                f"last seen {self.last_seen} ({self.record})" if self.last_seen else f"never ({self.record})",
                "" if talked else "send them the announcement (ci-tools announce)",
            )
        if updates is not None and updates.reports_last_handled:
            handled = updates.last_handled_at
            talked = handled is not None and self.since is not None and handled >= self.since
            return Item(
                TALKED,
                talked,
                f"the bot handled an update at {handled:.0f} (its health answer; it never says whose)"
                if handled
                else "the bot has handled no update since it started",
                "" if talked else "send them the announcement (ci-tools announce)",
            )
        return Item(
            TALKED,
            True,
            f"not verified: the bot keeps no user:<id>:profile and its level ({level}) reports no last_handled_at",
            "ask them; the kit's health answer says when the bot last handled an update",
            warning=True,
        )


def _memory_items(
    ctx: Context, prefix: str, user_id: int, snapshot: Path | None, since: float | None
) -> tuple[list[Item], Seen]:
    url = ctx.optional("REDIS_URL")
    if not url:
        unmet = Item(
            "the user's memory is in prod",
            None,
            "REDIS_URL not set",
            "export the production Redis URL",
        )
        return [unmet], Seen(unmet=Item(TALKED, None, "REDIS_URL not set", "export it"))
    client = redis.Redis.from_url(
        url,
        socket_connect_timeout=min(ctx.request_timeout(5), BUDGET),
        socket_timeout=min(ctx.request_timeout(10), BUDGET),
    )
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        said = f"Redis did not answer ({type(exc).__name__})"
        fix = "check REDIS_URL and the Key Value's allow list"
        return [Item("the user's memory is in prod", False, said, fix, remote=True)], Seen(
            unmet=Item(TALKED, False, said, fix, remote=True)
        )
    items = []
    if snapshot is None:
        items.append(
            Item(
                "the user's memory is in prod",
                None,
                "no snapshot given",
                "pass --snapshot (the copy printed its path)",
            )
        )
    else:
        file = RecordFile(snapshot, ctx.snapshot_fernet())
        source_prefix = str(file.header.get("prefix", "")).encode()
        missing, lost = [], 0
        first_read = None
        for record in file.records():
            first_read = record.read_at if first_read is None else min(first_read, record.read_at)
            if not record.exists or record.part:
                continue
            key = prefix.encode() + record.key[len(source_prefix) :]
            kind = client.type(key)
            found = kind.decode() if isinstance(kind, bytes) else str(kind)
            if found != record.type:
                missing.append(key.decode(errors="replace"))
            elif key.startswith(f"{prefix}memory:".encode()) and record.type == "list":
                facts = set(client.lrange(key, 0, -1))
                lost += sum(1 for fact in record.value if fact not in facts)
        ok = not missing and not lost
        detail = (
            "every key present, every remembered fact kept" if ok else f"missing {missing[:3]}, {lost} fact(s) lost"
        )
        items.append(
            Item(
                "the user's memory is in prod",
                ok,
                detail,
                "" if ok else "run ci-tools memory copy --apply",
            )
        )
        since = since if since is not None else (first_read or 0) / 1000
    arrival = prefix + KIT_ARRIVAL.format(user_id=user_id)
    last = client.hget(arrival, "last")
    if last:
        return items, Seen(since, int(float(last)), True, "the kit's arrival record")
    profile = f"{prefix}user:{user_id}:profile"
    last_seen = client.hget(profile, "last_seen")
    return items, Seen(since, int(last_seen) if last_seen else None, bool(client.exists(profile)))
