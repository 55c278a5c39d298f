"""The whole migration plan, run end to end against local stand-ins, before anyone touches production.

Two Redis servers, the Telegram and Render stand-ins, and the reference bot started
by each "deploy"; a daily user who already has memory in the dev bot. Each phase
calls the same code the real commands run. Nothing outside this machine is
contacted: each phase runs with a Context built from the sandbox's own secrets and the
stand-ins' addresses, never from this process's environment.

With ``bot`` (an adopted repository: ``ci-tools rehearse --bot PATH``) the sandbox's repository
is a copy of that one, and every deploy builds and starts the owner's bot by its own render.yaml.
Nothing of mindmate's is assumed then: the daily user says what the config says a user says
(``[tool.ci_tools.probe] turns``, then the replay's turns), their memory is the keys
``memory_patterns`` names, and "still known" means the bot answers the replay's turns as it did
at the seed (``[tool.ci_tools.replay] ignore`` masked). A phase the bot's level cannot show (a
tester gate, a bake's handler-failure counts, an unsigned update refused: the kit's) is not
rehearsed, and says so (⚠), as is one whose bad release sandbox/breaks.py cannot write in its code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import tomlkit

from ci_tools.checklist import Item
from ci_tools.context import Context, build
from ci_tools.errors import FatalError, InputError, VerificationError
from ci_tools.memory.model import Stage
from ci_tools.memory.ops import between, copy_user
from ci_tools.output import say
from ci_tools.pipeline.acceptance import acceptance
from ci_tools.pipeline.announce import announce, default_text
from ci_tools.pipeline.cutover import CutoverRequest, back, forward
from ci_tools.pipeline.deploy import deploy
from ci_tools.pipeline.finish_move import Finished, FinishRequest, finish_move
from ci_tools.pipeline.levels import Level, discover
from ci_tools.pipeline.preflight import preflight
from ci_tools.pipeline.release import ReleaseRequest, release
from ci_tools.pipeline.replay_judge import masked
from ci_tools.pipeline.send_back import SendBack, SentBack, send_back, undo_send_back
from ci_tools.repo.github import check, plan
from ci_tools.repo.workflow_files import secrets_by_environment
from ci_tools.runbook import step
from ci_tools.settings import load_config
from sandbox.breaks import NoBreak, commit_breaking
from sandbox.github import FakeGitHub
from sandbox.world import DAILY_USER, SECRETS, World, git

TESTER = 5550001  # the owner, testing on staging
OLD_PRODUCTION_BOT = "mywellnesscompanion_bot"  # what mindmate-prod runs before the cutover
FACTS = ("I take my tea without sugar", "My sister is called Mia", "I'm learning the cello")
NEW_FACT = "I started running on Tuesdays"  # told the new bot on day 1, never the old one


@dataclass
class Phase(Item):
    """A rehearsal phase: the one row type, with its duration."""

    ok: bool | None = None  # None: not reached
    seconds: float = 0.0


class NotRehearsed(Exception):
    """A phase this bot cannot show (its level, or no break known for its code): ⚠ with why."""


def require(condition: object, message: str = "a rehearsal check failed") -> None:
    """A phase's check: a VerificationError that names it (an assert would vanish under -O)."""
    if not condition:
        raise VerificationError(message)


class Rehearsal:
    def __init__(
        self,
        root: Path,
        project: Path,
        *,
        process: bool = True,
        log: Callable[[str], None] = say,
        legacy_staging: bool = True,
        bot: Path | None = None,
    ) -> None:
        self.root = root
        # An adopted repository whose bot is rehearsed (None: the reference bot); its config,
        # workflows and render.yaml are the ones the phases read.
        self.bot = bot
        self.repository = bot or project
        self.level: Level | None = None  # the owner's bot's, found at its first deploy
        self.said: tuple[str, ...] = ()  # its replies to the daily user's replay turns at the seed, masked
        self.seed_keys: dict[bytes, bytes] = {}  # the daily user's keys after the seed, and their DUMPs
        # False only to show the check biting: staging with its own prefix from the start hides
        # the daily user's unprefixed memory (what render.yaml's "dev:" once did).
        self.legacy_staging = legacy_staging
        self.project = project  # the checkout the rehearsal runs from: .github/ lives there
        self.process = process
        self.log = log
        self.phases: list[Phase] = []
        self.snapshot: Path | None = None
        self.recalls = 0  # how often the daily user asked their bot /recall before the move
        self._before_bad = ""  # main before the bad release a phase made (_bad, _fix)

    def plan(self) -> list[tuple[str, Callable[[World], str]]]:
        """The phases in the README runbook's order, each numbered step labelled from ci_tools.runbook.
        Until the daily user has moved (``user_moves``), the bot they use is staging's, and before
        every phase they ask it /recall: it must still know them."""
        production = load_config(self.repository / "pyproject.toml").env("production").render_service
        return [
            (
                "the seed: the daily user on the dev bot (unprefixed keys, no marker); "
                f"{production} runs the old production bot @{OLD_PRODUCTION_BOT}",
                self.dev_bot_in_use,
            ),
            (f"before {step(1).label()}: preflight, only what exists", self.preflight_before_new_bot),
            (step(1).label(), self.new_bot),
            (f"{step(3).label()} (environments, secrets, rulesets)", self.github),
            (f"{step(4).label()}, everything", self.preflight),
            (f"{step(5).label()} (new token, deploy main, probe), undone and redone", self.cutover),
            (f"{step(6).label()} (dry run, apply, verify)", self.copy),
            (step(7).label(), self.announce),
            ("the user talks to the new bot; it remembers", self.user_moves),
            (
                f"the way back, before {step(9).label()}: the new bot fails the daily user on day 1; send-back "
                "puts them on their old bot with what they told the new one; undone",
                self.sent_back,
            ),
            ("the replay gate stops a release that forgets the daily user, before Render", self.replay_gate),
            ("a release that breaks plain messages is rolled back in its bake window", self.bake_window),
            ("a bad release is rolled back automatically", self.bad_release),
            (
                "a release that overwrote memory is rolled back; memory restored from memory-before-<sha>",
                self.memory_restored,
            ),
            (f"{step(8).label()} checklist", self.acceptance),
            ("status and history of production, as the owner sees them", self.status_and_history),
            (
                f"{step(9).label()}: finish-move refused before the window, then forced: the old bot serves testers "
                "only (dev:), the daily user gets the new bot's link",
                self.move_finished,
            ),
        ]

    def run(self) -> list[Phase]:
        steps = self.plan()
        moved = next(i for i, (_, do) in enumerate(steps) if do == self.user_moves)
        self.phases = [Phase(name) for name, _ in steps]
        with (
            World(
                self.root, process=self.process, step=0.05, legacy_staging=self.legacy_staging, source=self.bot
            ) as world,
            contextlib.chdir(world.repo),  # deploys check branches in the sandbox's repository
        ):
            for index, (phase, (_, do)) in enumerate(zip(self.phases, steps, strict=True)):
                self.log(f"▶ {phase.name}")
                started = time.monotonic()
                try:
                    if 0 < index <= moved:
                        self.daily_user_still_known(world)
                    phase.detail = do(world)
                    phase.ok = True
                except NotRehearsed as exc:
                    phase.ok, phase.warning, phase.detail = True, True, f"not rehearsed: {exc}"
                except (FatalError, AssertionError, RuntimeError) as exc:
                    phase.ok, phase.detail = False, str(exc)
                phase.seconds = time.monotonic() - started
                self.log(f"  {phase.mark} {phase.detail} ({phase.seconds:.1f}s)")
                if not phase.ok:
                    break
        return self.phases

    # -- helpers ------------------------------------------------------------------------------
    def _ctx(self, world: World, env: str, **extra: str) -> Context:
        """What a command run in ``env``'s GitHub environment would have, against the stand-ins."""
        return build({**world.secrets(env), **extra})

    def _talk(self, world: World, env: str, text: str) -> str:
        """The bot's reply to the daily user's ``text``: within the webhook's answer (the kit), or
        sent a moment later (python-telegram-bot's own webhook queues the update)."""
        bot = world.bots[env]
        before = len(world.telegram.replies_to(bot, DAILY_USER))
        response = world.telegram.send_user_message(bot, DAILY_USER, text)
        require(
            response is not None and response.status_code == 200,
            f"@{bot.username} did not answer {text!r}",
        )
        deadline = time.monotonic() + 30
        while len(replies := world.telegram.replies_to(bot, DAILY_USER)) <= before:
            require(time.monotonic() < deadline, f"@{bot.username} took {text!r} and never replied")
            time.sleep(0.02)
        return replies[-1]

    # -- the owner's bot: the daily user as the config describes them ----------------------------
    def _replay_turns(self, world: World, env: str) -> tuple[str, ...]:
        """The bot's replies to the daily user's replay turns, masked as the replay masks them."""
        config = load_config(world.config)
        replies = tuple(self._talk(world, env, turn) for turn in config.replay.turns)
        return masked(replies, tuple(re.compile(p) for p in config.replay.ignore))

    def _daily_keys(self, world: World, env: str) -> dict[bytes, bytes]:
        """The daily user's keys under ``env``'s memory_patterns and prefix, and their DUMPs."""
        client = world.redis[env].client()
        names = load_config(world.config).env(env).memory_keys(DAILY_USER)
        return {name.encode(): dumped for name in names if (dumped := client.dump(name)) is not None}

    def _needs(self, level: Level, what: str) -> None:
        """A phase that shows what only ``level`` verifies: not rehearsed below it."""
        if self.level is not None and self.level < level:
            raise NotRehearsed(f"{what} needs the {level} level, and this bot meets {self.level}")

    def _breaking(self, world: World, how: str, message: str) -> str:
        try:
            return commit_breaking(world, how, message)
        except NoBreak as exc:
            raise NotRehearsed(str(exc)) from None

    def daily_user_still_known(self, world: World) -> None:
        """The daily user, on the bot they use every day, asks /recall: all their facts come back."""
        if self.bot is not None:
            said = self._replay_turns(world, "staging")
            require(
                said == self.said,
                f"the daily user's bot @{world.bots['staging'].username} answers them differently now: "
                f"{list(said)} (at the seed: {list(self.said)})",
            )
            self.recalls += 1
            return
        recall = self._talk(world, "staging", "/recall")
        missing = [fact for fact in FACTS if fact not in recall]
        require(not missing, f"the daily user's bot @{world.bots['staging'].username} forgot {missing}: {recall!r}")
        self.recalls += 1

    # -- the phases ---------------------------------------------------------------------------
    def dev_bot_in_use(self, world: World) -> str:
        # The new bot does not exist yet: mindmate-prod runs the old production bot, kept as
        # rollback or archive after the cutover (cutover --back puts it back).
        self.placeholder = world.telegram.add_bot(OLD_PRODUCTION_BOT)
        world.services["production"].env["TELEGRAM_BOT_TOKEN"] = self.placeholder.token
        if self.bot is not None:
            return self._owners_bot_in_use(world)
        # What today's dev bot left in the dev Redis: unprefixed keys, and no meta:env marker.
        legacy = world.redis["staging"].client()
        require(not legacy.exists("meta:env"), "the legacy Redis must start without a marker")
        now = int(time.time())
        legacy.hset(
            f"user:{DAILY_USER}:profile",
            mapping={"first_seen": now - 86400 * 90, "last_seen": now, "first_name": "Ada"},
        )
        legacy.rpush(f"memory:{DAILY_USER}", *FACTS)
        legacy.rpush(
            f"user:{DAILY_USER}:history",
            json.dumps({"ts": now, "text": "Had a long day, but the cello lesson went well"}),
        )
        sha = world.commit("develop", "the dev bot as it runs today")
        ctx = self._ctx(world, "staging")
        deploy(ctx, ctx.config.env("staging"), sha, timeout=60, poll=0.1)
        # The first deploy through the pipeline keeps the keys where they are (KEY_PREFIX=none)
        # and only claims the Redis for staging.
        self.daily_user_still_known(world)
        require(legacy.get("meta:env") == b"staging", "the first staging deploy did not claim the dev Redis")
        return (
            f"user {DAILY_USER} has {len(FACTS)} facts under unprefixed keys; the first staging deploy "
            "keeps them there (KEY_PREFIX=none) and /recall still lists them"
        )

    def _owners_bot_in_use(self, world: World) -> str:
        """The owner's bot on staging, as it runs today (its keys unprefixed, KEY_PREFIX=none), and
        a daily user who talks to it: the probe's turns (``{nonce}`` a word of theirs), then the
        replay's. What they leave under memory_patterns is their memory; what the bot answers to
        the replay's turns is what "still known" holds it to from here on."""
        ctx = self._ctx(world, "staging")
        env, config = ctx.config.env("staging"), ctx.config
        deploy(ctx, env, world.commit("develop", "the dev bot as it runs today"), timeout=60, poll=0.1)
        self.level = discover(env, 10).level
        told = [turn.replace("{nonce}", "daily") for turn in config.probe.turns]
        for turn in told:
            self._talk(world, "staging", turn)
        self.said = self._replay_turns(world, "staging")
        self.seed_keys = self._daily_keys(world, "staging")
        require(
            self.seed_keys,
            f"the daily user's conversation left no key matching memory_patterns {list(env.memory_patterns)} "
            "in staging's Redis: set them to your bot's keys for one user",
        )
        self.recalls += 1
        keys = ", ".join(k.decode() for k in self.seed_keys)
        return (
            f"user {DAILY_USER} told @{world.bots['staging'].username} {told} and asked {list(config.replay.turns)}; "
            f"their memory: {keys} (memory_patterns); the bot meets the {self.level} level"
        )

    def preflight_before_new_bot(self, world: World) -> str:
        items = preflight(self._ctx(world, "production", **self._preflight_values(world)), before_new_bot=True)
        unmet = [i for i in items if i.ok is not True]
        if unmet:
            raise VerificationError("; ".join(f"{i.name}: {i.fix}" for i in unmet))
        later = [i.name for i in items if i.detail == "not checked before the new bot exists"]
        return f"{len(items) - len(later)} items ✓ (⚠ where worth a look); after @BotFather: {', '.join(later)}"

    def new_bot(self, world: World) -> str:
        bot = world.bots["production"]
        return f"@{bot.username} created in @BotFather (usernames never change: this one has no 'dev')"

    def _preflight_values(self, world: World) -> dict[str, str]:
        values: dict[str, str] = {}
        for env in ("staging", "production"):
            secrets = world.secrets(env)
            values |= {
                f"{env.upper()}_TELEGRAM_BOT_TOKEN": secrets["TELEGRAM_BOT_TOKEN"],
                f"{env.upper()}_REDIS_URL": secrets["REDIS_URL"],
                f"{env.upper()}_RENDER_SERVICE_ID": secrets["RENDER_SERVICE_ID"],
                f"{env.upper()}_RENDER_API_KEY": secrets["RENDER_API_KEY"],  # each its own, scoped
            }
        return values

    def preflight(self, world: World) -> str:
        items = preflight(self._ctx(world, "production", **self._preflight_values(world)))
        unmet = [i for i in items if i.ok is not True]
        if unmet:
            raise VerificationError("; ".join(f"{i.name}: {i.fix}" for i in unmet))
        return f"{len(items)} items ✓"

    def github(self, world: World) -> str:
        """The repository's GitHub side, from nothing to as the repository says, on the stand-in."""
        config = load_config(self.repository / "pyproject.toml")
        wanted = secrets_by_environment(self.repository, list(config.environments))
        values = {
            f"{env.upper()}_{name}": world.secrets(env).get(name, f"sandbox-{env}-{name}")
            for env, names in wanted.items()
            if env in config.environments  # production-scheduled takes production's values
            for name in names
        }
        with (
            FakeGitHub() as server,
            build({"GITHUB_API_URL": server.url}).github(server.token, "mindmate/mindmate-release") as api,
        ):
            changes = plan(api, config, self.repository, values)
            for change in changes:
                change.apply(api)
            again = plan(api, config, self.repository, values)
            items = check(api, config, self.repository)
        require(not again, f"a second setup would still change: {[c.what for c in again]}")
        unmet = [i for i in items if i.ok is not True]
        require(not unmet, "; ".join(f"{i.name}: {i.detail}" for i in unmet))
        return (
            f"{len(changes)} changes applied (secrets by name only), then {len(items)} checks ✓; "
            "a second setup changes nothing"
        )

    def cutover(self, world: World) -> str:
        """Forward, back to the placeholder (as within the rollback window), forward again."""
        sha = world.commit("main", "release: production bot")
        secrets = world.secrets("production")
        request = CutoverRequest(
            sha,
            secrets["RENDER_API_KEY"],
            secrets["RENDER_SERVICE_ID"],
            secrets["TELEGRAM_WEBHOOK_SECRET"],
            timeout=60,
            deadline=20,
            poll=0.1,
        )
        new = world.bots["production"]
        ctx = self._ctx(world, "production")
        done = forward(ctx, request, new.token)
        undone = back(ctx, request, None)
        require(
            undone.now.username == self.placeholder.username,
            f"back went to @{undone.now.username}",
        )
        redone = forward(ctx, request, new.token)
        require(
            done.now.username == redone.now.username == new.username,
            "production is not the new bot",
        )
        ends = f"{redone.window_ends:%Y-%m-%d}" if redone.window_ends else "?"
        return (
            f"{world.services['production'].name} runs @{new.username} at {sha[:7]}, probe ✓; undone (back to "
            f"@{self.placeholder.username}, probe ✓) and redone; old bot kept until {ends}"
        )

    def copy(self, world: World) -> str:
        urls = {
            "SOURCE_REDIS_URL": world.redis["staging"].url,
            "TARGET_REDIS_URL": world.redis["production"].url,
        }
        ctx = self._ctx(world, "production", **urls)
        config = ctx.config
        # The legacy dev bot's keys carry no prefix and no marker. A bot below the health level
        # writes no marker on production either (the kit does): the copy runs as docs/MEMORY.md
        # tells its owner, with --unmarked-target (a marker naming another environment still refused).
        unmarked = self.level is Level.BASE
        request = between(
            config,
            DAILY_USER,
            "staging",
            "production",
            self.root / "memory-out",
            source_prefix="",
            legacy_source=True,
            legacy_target=unmarked,
        )
        keys = len(self.seed_keys) if self.bot is not None else 3
        plan = copy_user(ctx, request)
        require(plan.counts().get("create") == keys, f"unexpected dry-run plan {plan.counts()}")
        request.apply = True
        outcome = copy_user(ctx, request)
        again = copy_user(ctx, request)
        require(again.counts() == {"identical": keys}, f"second apply not a no-op: {again.counts()}")
        self.snapshot = outcome.snapshot
        target = config.env("production").key_prefix or "its own Key Value, no prefix"
        markers = " (--unmarked-target: a base-level bot writes no meta:env)" if unmarked else ""
        return (
            f"legacy source (no prefix, no marker) → {target}{markers}; dry run: {keys} to create; applied: "
            f"{len(outcome.written)} written, {outcome.verified} verified; again: all identical"
        )

    def announce(self, world: World) -> str:
        ctx = self._ctx(world, "staging")
        config = ctx.config
        sent = announce(ctx, world.bots["staging"].token, DAILY_USER)
        require(
            world.telegram.replies_to(world.bots["staging"], DAILY_USER)[-1] == default_text(config),
            "the user did not receive the announcement",
        )
        return f"the old bot said: {sent}"

    def user_moves(self, world: World) -> str:
        if self.bot is not None:
            said = self._replay_turns(world, "production")
            require(said == self.said, f"the new bot answers the daily user differently: {list(said)}")
            return (
                f"@{world.bots['production'].username} answers the daily user's turns as "
                f"@{world.bots['staging'].username} did; until now the daily user's bot answered them alike at "
                f"each of {self.recalls} checks"
            )
        reply = self._talk(world, "production", "/start")
        require("Good to see you again" in reply, f"the new bot did not recognise the user: {reply!r}")
        recall = self._talk(world, "production", "/recall")
        missing = [fact for fact in FACTS if fact not in recall]
        require(not missing, f"the new bot forgot {missing}")
        return (
            f"/recall on @{world.bots['production'].username} lists all {len(FACTS)} facts; until now the "
            f"daily user's bot @{world.bots['staging'].username} knew them at each of {self.recalls} /recall checks"
        )

    def _code_in_repository(self, world: World) -> None:
        """The sandbox's repository gets the bot's project, once (its commits so far held no files, and
        ran the installed bot): from then on Render builds each commit with its own render.yaml service.
        The owner's repository holds their bot from its first commit."""
        if self.bot is None and not (world.repo / "mindmate").exists():
            world.add_bot_project(self.project, "the bot's code in the repository")

    def _old_bot_values(self, world: World) -> dict[str, str]:
        """What production's environment holds of the old bot (staging's) for send-back and finish-move."""
        staging = world.secrets("staging")
        return {
            "STAGING_REDIS_URL": staging["REDIS_URL"],  # production's SOURCE_REDIS_URL
            "STAGING_TELEGRAM_BOT_TOKEN": staging["TELEGRAM_BOT_TOKEN"],
            "STAGING_RENDER_SERVICE_ID": staging["RENDER_SERVICE_ID"],
            "STAGING_RENDER_API_KEY": staging["RENDER_API_KEY"],  # staging's own, scoped
        }

    def sent_back(self, world: World) -> str:
        """Day 1 on the new bot: the daily user tells it something new, then a release breaks their plain
        messages (real code, built and run by the Render stand-in; --threads runs the installed bot, so
        there it is not broken). send-back puts them on their old bot with the new fact; undo puts the
        old bot's keys back; production is read, never written. The bad release is fixed forward."""
        if self.bot is not None:
            return self._owners_bot_sent_back(world)
        told = self._talk(world, "production", f"/remember {NEW_FACT}")
        require("I'll remember that" in told, f"the new bot did not take the new fact: {told!r}")
        broke = "--threads: no broken release (threads run the installed bot); "
        self._code_in_repository(world)
        if self.process:
            bad = commit_breaking(world, "plain text fails", "refactor: read the message's text")
            ctx = self._ctx(world, "production")
            deploy(ctx, ctx.config.env("production"), bad, timeout=60, poll=0.1)
            replies = len(world.telegram.replies_to(world.bots["production"], DAILY_USER))
            world.telegram.send_user_message(world.bots["production"], DAILY_USER, "I had a rough night")
            unanswered = len(world.telegram.replies_to(world.bots["production"], DAILY_USER)) == replies
            require(unanswered, f"{bad[:7]} answered the plain message: it was meant to fail it")
            broke = f"{bad[:7]} left their plain message unanswered; "
        prod, dev = world.redis["production"].client(), world.redis["staging"].client()
        production = {k: prod.dump(k) for k in prod.scan_iter(match=f"prod:*{DAILY_USER}*")}
        # Read, not asked: a message to the old bot after the move's copy is news the send-back
        # would refuse to overwrite (ci_tools/memory/moved.py).
        old_memory = dev.lrange(f"memory:{DAILY_USER}", 0, -1)
        require(NEW_FACT.encode() not in old_memory, "the old bot knew the new fact already")
        ctx = self._ctx(world, "production", **self._old_bot_values(world))
        result, refused = self._send_back(ctx)
        said = world.telegram.replies_to(world.bots["staging"], DAILY_USER)[-1]
        require(said == result.told == ctx.config.move.send_back_text, f"the old bot said {said!r}")
        recall = self._talk(world, "staging", "/recall")
        require(NEW_FACT in recall and all(f in recall for f in FACTS), f"the old bot answered {recall!r}")
        assert result.outcome.backup is not None
        _, records, left = undo_send_back(ctx, result.outcome.backup, self.root / "send-back-undo", apply=True)
        require(NEW_FACT not in self._talk(world, "staging", "/recall"), "the undo left the new fact on the old bot")
        after = {k: prod.dump(k) for k in prod.scan_iter(match=f"prod:*{DAILY_USER}*")}
        require(after == production, "send-back or its undo changed production's memory")
        require(dev.exists(f"memory:{DAILY_USER}"), "the undo lost the old bot's memory of them")
        if self.process:
            git(world.repo, "revert", "--no-edit", "HEAD")  # fixed forward, so later releases are sound
        # main's head goes live, the bot's project in it (with --threads too): the replay's live commit
        # must say how it starts (its render.yaml), which the empty commits before it cannot.
        ctx = self._ctx(world, "production")
        deploy(ctx, ctx.config.env("production"), git(world.repo, "rev-parse", "main"), timeout=60, poll=0.1)
        # The new bot fixed, they are back on it: it never lost what they told it.
        back = self._talk(world, "production", "/recall")
        require(NEW_FACT in back, f"the new bot forgot the new fact: {back!r}")
        return (
            f"{broke}{refused}send-back wrote {len(result.outcome.written)} key(s) to @{result.old.bot.username}, "
            f"verified {result.outcome.verified}; it said {said!r} and its /recall lists the new fact; "
            f"undone ({records - len(left)} of {records} put back, {len(left)} the user changed since left alone); "
            "production's memory unchanged throughout"
        )

    def _send_back(self, ctx: Context) -> tuple[SentBack, str]:
        """The owner's send-back. The daily user went on talking to their old bot after the move's
        copy (step 6) until they were told (step 7): that is news production lacks, so the first try
        is refused, naming the keys, and the owner sends them back by the named choice; its backup
        keeps what it replaces. Without such news it goes the first time."""
        request = SendBack(DAILY_USER, apply=True, stage=Stage.ALL, out_dir=self.root / "send-back")
        try:
            return send_back(ctx, request), ""
        except InputError as exc:
            require("more since the move's copy" in exc.message, f"send-back refused: {exc.message}")
            changed = exc.message.split("(", 1)[1].split(" changed there", 1)[0]
        replaced = send_back(ctx, dataclasses.replace(request, replace=True))
        return (
            replaced,
            f"refused first ({changed} changed on the old bot after the move's copy), then sent back by choice; ",
        )

    def _owners_bot_sent_back(self, world: World) -> str:
        """send-back with the owner's bot: the daily user tells the new bot something (a plain message:
        a bot that keeps the conversation keeps it under memory_patterns), send-back copies what
        production holds of them onto the old bot and the old bot tells them, undo puts the old bot's
        keys back; production is read, never written. The failing release that would send them back
        is the bake step's (plain text fails); what is rehearsed here is the way back itself."""
        prefix = load_config(world.config).env("production").key_prefix
        if world.redis["production"].client().get(f"{prefix}meta:env") is None:
            raise NotRehearsed(
                "send-back reads the daily user's memory only from a Redis its bot marked as production's "
                f"({prefix}meta:env: the kit writes it), and this bot writes none"
            )
        self._talk(world, "production", NEW_FACT)
        production, before = self._daily_keys(world, "production"), self._daily_keys(world, "staging")
        ctx = self._ctx(world, "production", **self._old_bot_values(world))
        result, refused = self._send_back(ctx)
        said = world.telegram.replies_to(world.bots["staging"], DAILY_USER)[-1]
        require(said == result.told == ctx.config.move.send_back_text, f"the old bot said {said!r}")
        carried = self._daily_keys(world, "staging")
        require(carried == production, "the old bot's keys are not what production holds of the daily user")
        assert result.outcome.backup is not None
        _, records, left = undo_send_back(ctx, result.outcome.backup, self.root / "send-back-undo", apply=True)
        require(self._daily_keys(world, "staging") == before, "the undo did not put the old bot's keys back")
        require(self._daily_keys(world, "production") == production, "send-back or its undo changed production")
        self.said = self._replay_turns(world, "production")  # what they told the new bot is theirs now
        new = sorted(k.decode() for k in production if production[k] != before.get(k))
        return (
            f"the new bot kept {new or 'nothing new'} of their message; {refused}send-back wrote "
            f"{len(result.outcome.written)} key(s) to @{result.old.bot.username}, verified "
            f"{result.outcome.verified}, equal to production's; it said {said!r}; undone ({records - len(left)} of "
            f"{records} put back); production's memory unchanged throughout"
        )

    def move_finished(self, world: World) -> str:
        """Runbook step 9 at the end: refused before the window (3 days after the daily user's first message to the
        new bot), then forced. The old bot serves the testers under dev:, anyone else gets the new bot's
        link, and nothing the daily user writes to it is stored; the cutover's window closes with it."""
        ctx = self._ctx(world, "production", **self._old_bot_values(world))
        staging = world.redis["staging"].client()
        legacy = sorted(staging.keys(f"*{DAILY_USER}*"))  # their legacy keys, which staging's jobs read
        request = FinishRequest(
            DAILY_USER, (TESTER,), timeout=60, deadline=20, poll=0.1, out_dir=self.root / "finish-move"
        )
        try:
            finish_move(ctx, request)
        except InputError as refused:
            refusal = refused.message
        else:
            raise VerificationError("finish-move ran before the window was over")
        require(sorted(staging.keys(f"*{DAILY_USER}*")) == legacy, "the refused finish-move removed legacy keys")
        if self.level is Level.BASE and "kit.run_webhook(application" in refusal:
            # No kit, no arrival record (release_kit/arrival.py): the window has no start to wait from.
            raise NotRehearsed(f"finish-move refused without force, as it must: {refusal}")
        require("the move may finish from" in refusal, f"refused for another reason: {refusal}")
        done = finish_move(ctx, dataclasses.replace(request, force=True))
        require(done.forced, "the forced run does not say it was forced")
        news, named = "", len(legacy)
        if done.retired is not None and done.retired.news:
            # What they told the old bot after the move's copy (the way back kept it there): production never got
            # it, so it stays, named, until the owner chooses (the report's hint: legacy_news retire).
            left = sorted(staging.keys(f"*{DAILY_USER}*"))
            require(set(done.retired.news) <= set(left), "finish-move removed what production never got")
            news = f"left {done.retired.names_news} (production never got it), then retired as the owner chose; "
            done, named = finish_move(ctx, dataclasses.replace(request, force=True, retire_news=True)), len(left)
        retired = news + self._legacy_retired(world, done, named)
        # What `ci-tools init --staging-prefix dev: --tester-ids …` then writes, so the repository agrees.
        document: Any = tomlkit.parse(world.config.read_text())
        document["tool"]["ci_tools"]["environments"]["staging"]["key_prefix"] = "dev:"
        world.config.write_text(tomlkit.dumps(document))
        self._needs(
            Level.CONVERSATION,
            f"finish-move ran (refused, then forced: {done.window.split(':')[0]}; {retired}); the old bot's "
            "signpost (testers only, the new bot's link: the kit's TESTER_IDS gate)",
        )
        dev = world.redis["staging"].client()
        before = dev.dbsize()
        reply = self._talk(world, "staging", "/remember something new")
        link = f"https://t.me/{world.bots['production'].username}"
        require(reply == link, f"the old bot answered {reply!r}, not the link")
        require(dev.dbsize() == before, "the dev Redis grew: the daily user's words were stored on staging")
        return (
            f"refused: {refusal.split(',')[0]}; forced: @{world.bots['staging'].username} reads dev: for "
            f"tester {TESTER} and answered the daily user with {link}; {done.window.split(':')[0]}; {retired}"
        )

    def _legacy_retired(self, world: World, done: Finished, named: int) -> str:
        """After step 9 staging's Redis holds none of the daily user's keys (every develop and
        feature/* job reads it), production's are as they were, and the backup holds what left."""
        retired = done.retired
        require(retired is not None and retired.backup is not None, "finish-move retired nothing, and kept no backup")
        assert retired is not None and retired.backup is not None
        left = sorted(world.redis["staging"].client().keys(f"*{DAILY_USER}*"))
        require(not left, f"the daily user's legacy keys are still in staging's Redis: {left}")
        require(not retired.changed, f"finish-move left {retired.names_changed}: changed since its backup")
        require(named and len(retired.deleted) >= named, f"finish-move retired {len(retired.deleted)} of {named}")
        production = load_config(world.config).env("production").key_prefix
        kept = world.redis["production"].client().keys(f"{production}*{DAILY_USER}*")
        require(kept, "production's memory of the daily user is gone")
        return (
            f"the daily user's legacy keys retired from staging's Redis ({len(retired.deleted)} of them, "
            f"{named} named them before), backed up first in {retired.backup.name}"
        )

    def replay_gate(self, world: World) -> str:
        """production.yml's replay stage, as it runs before a deploy: the daily user's conversation on
        a private copy of production's snapshot, by the live commit and by a candidate that moved
        their facts to another key. It must stop before anything reaches the Render stand-in."""
        from cryptography.fernet import Fernet

        from ci_tools.memory import restore_points
        from ci_tools.pipeline.replay import ReplayRequest, replay

        service = world.services["production"]
        live = next(d for d in service.deploys if d["status"] == "live")["commit"]["id"]
        self._code_in_repository(world)
        candidate = self._breaking(world, "forgets the daily user", "refactor: remembered facts under facts:")
        key = Fernet.generate_key().decode()  # production's MEMORY_SNAPSHOT_KEY
        ctx = self._ctx(world, "production", MEMORY_SNAPSHOT_KEY=key)
        env = ctx.config.env("production")
        fernet = Fernet(key)

        def base_level() -> str:  # a base-level bot writes no meta:env (copy, above)
            return "its bot is at the base level and writes none"

        taken = restore_points.take_snapshot(
            world.redis["production"].client(),
            env,
            self.root / f"memory-before-{candidate}",
            server="sandbox",
            max_mb=100,
            protected=(DAILY_USER,),
            commit=candidate,
            writes_no_marker=base_level if self.level is Level.BASE else None,  # as `memory snapshot` takes it
            fernet=fernet,
        )
        deploys = len(service.deploys)
        outcome = replay(ctx, ReplayRequest(env, taken.path, candidate, live, (DAILY_USER,)))
        git(world.repo, "revert", "--no-edit", candidate)  # fixed forward, so later releases are sound
        require(outcome.stops, f"the replay let {candidate[:7]} through")
        require("answers differently" in outcome.stops[0], f"stopped for another reason: {outcome.stops[0]}")
        require(len(service.deploys) == deploys, "a deploy of the candidate reached Render")
        leaked = [fact for fact in (FACTS if self.bot is None else self.said) if fact in " ".join(outcome.stops)]
        require(not leaked, "the replay's finding quotes the daily user's memory")
        return f"{candidate[:7]} stopped: {outcome.stops[0][:90]}…; nothing deployed, {live[:7]} still live"

    def _bad(self, world: World, message: str, *breaks: str) -> str:
        """A bad release on main: real code broken as ``breaks`` say (sandbox/breaks.py), built and run
        by the Render stand-in; with --threads (the installed bot runs) the stand-in's fault switches
        play it instead, the only place they still do. ``_fix`` reverts it afterwards."""
        self._before_bad = git(world.repo, "rev-parse", "main")
        if not self.process and self.bot is None:
            bad = world.commit("main", message)
            overwrites = {f"prod:memory:{DAILY_USER}": "[]"} if "rewrites memory at start" in breaks else {}
            world.render.fault(world.services["production"], bad, open_webhook=True, overwrites=overwrites)
            return bad
        bad = ""
        for how in breaks:
            bad = self._breaking(world, how, message)
        return bad

    def _fix(self, world: World) -> None:
        """Fixed forward on main, as the owner would: later releases build sound code again."""
        if self.process or self.bot is not None:
            git(world.repo, "checkout", "-q", "main")
            git(world.repo, "revert", "--no-edit", f"{self._before_bad}..main")

    def bake_window(self, world: World) -> str:
        """production.yml's bake, scaled down (10 min → 6 s): a release whose probe passes but whose
        plain-message handler fails is rolled back once the daily user writes a plain message."""
        if not self.process and self.bot is None:
            return "not run with --threads: threads run the installed bot, not the commit's code"
        self._needs(Level.HEALTH, "a bake that sees a handler fail (the health answer's counts)")
        service = world.services["production"]
        good = next(d for d in service.deploys if d["status"] == "live")["commit"]["id"]
        bad = self._breaking(world, "plain text fails", "refactor: read the message's text")
        ctx = self._ctx(world, "production")
        health = ctx.config.env("production").health_url
        env = dataclasses.replace(ctx.config.env("production"), bake_minutes=0.1, bake_interval_seconds=0.5)
        ctx = ctx.with_config(
            dataclasses.replace(ctx.config, environments={**ctx.config.environments, "production": env})
        )

        def daily_user_writes() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    if httpx.get(str(health), timeout=5).json().get("commit") == bad:
                        break
                time.sleep(0.1)
            world.telegram.send_user_message(world.bots["production"], DAILY_USER, "a long day, but a good one")

        user = threading.Thread(target=daily_user_writes, daemon=True)
        user.start()
        try:
            release(ctx, dataclasses.replace(_production_release(world, ctx, bad), env=env))
        except VerificationError as failed:
            outcome = failed.message
        else:
            raise VerificationError("the release that breaks plain messages passed its bake")
        finally:
            user.join(10)
        git(world.repo, "revert", "--no-edit", bad)  # fixed forward
        live = next(d for d in service.deploys if d["status"] == "live")["commit"]["id"]
        require("failed its bake" in outcome, f"not stopped by its bake: {outcome}")
        require(live == good, f"production serves {live[:7]}, not {good[:7]}")
        why = outcome.split("[")[-1].rstrip("]")
        return f"{bad[:7]} passed its probe and failed its bake ({why}); back on {good[:7]}"

    def bad_release(self, world: World) -> str:
        """The same rule the release workflow runs (ci_tools.pipeline.release), against a bad build."""
        self._needs(Level.CONVERSATION, "a probe that sends an unsigned update (the webhook secret bound by the kit)")
        service = world.services["production"]
        good = next(d for d in service.deploys if d["status"] == "live")
        bad = self._bad(world, "release: a webhook that forgets its secret", "open webhook")
        ctx = self._ctx(world, "production")
        try:
            release(ctx, _production_release(world, ctx, bad))
        except VerificationError as failed:
            outcome = failed.message
        else:
            raise VerificationError("the bad release passed its probe")
        finally:
            self._fix(world)
        live = next(d for d in service.deploys if d["status"] == "live")
        if live["commit"]["id"] != good["commit"]["id"] or "the rollback probe passed" not in outcome:
            raise VerificationError(f"not rolled back to {good['commit']['id'][:7]}: {outcome}")
        back_to = good["commit"]["id"][:7]
        return f"probe caught {bad[:7]}; rolled back to {back_to}; probe ✓ (the workflow run fails, as it must)"

    def memory_restored(self, world: World) -> str:
        """Rolling back the code leaves the damage in Redis: the snapshot taken before the
        release (as production.yml keeps it) puts the daily user's memory back, byte for byte."""
        from cryptography.fernet import Fernet

        from ci_tools.memory import restore_points

        self._needs(Level.CONVERSATION, "a rollback that restores memory (the bad release is caught by its probe)")
        ctx = self._ctx(world, "production")
        config = ctx.config
        env = config.env("production")
        client = world.redis["production"].client()
        if self.bot is None:
            keys = sorted(k for k in client.scan_iter(match="prod:*") if str(DAILY_USER).encode() in k)
            memory_key = f"prod:memory:{DAILY_USER}"
        else:  # the daily user's keys where production keeps them, the first pattern's the one a migration hits
            keys = sorted(self._daily_keys(world, "production"))
            memory_key = env.memory_keys(DAILY_USER)[0]
        before = {k: client.dump(k) for k in keys}
        bad = self._bad(
            world,
            "release: a migration that rewrites every memory (and a bad webhook)",
            "open webhook",
            "rewrites memory at start",
        )
        out = self.root / f"memory-before-{bad}"
        fernet = Fernet(Fernet.generate_key())  # production's MEMORY_SNAPSHOT_KEY
        taken = restore_points.take_snapshot(
            client,
            env,
            out,
            server="sandbox",
            max_mb=config.memory_backup.max_mb,
            protected=(),
            commit=bad,
            fernet=fernet,
        )
        try:
            release(ctx, _production_release(world, ctx, bad))
        except VerificationError as failed:
            if "rolled back" not in failed.message:
                raise
        else:
            raise VerificationError("the release that overwrote memory passed its probe")
        finally:
            self._fix(world)
        if client.dump(memory_key) == before.get(memory_key.encode()):
            raise VerificationError("the bad release did not damage the memory it was meant to")
        restore = restore_points.RestoreRequest(
            snapshot=taken.path, env=env, out_dir=self.root / "restore", apply=True, user_id=DAILY_USER
        )
        outcome = restore_points.restore_point(restore, client, "sandbox", fernet)
        after = {k: client.dump(k) for k in keys}
        if after != before:
            raise VerificationError(
                f"restored memory differs from the snapshot in {sorted(k for k in keys if after[k] != before[k])}"
            )
        return (
            f"{bad[:7]} rolled back with {memory_key} overwritten; {taken.keys} keys in {out.name[:21]}…; "
            f"restored {len(outcome.written)} key(s) of user {DAILY_USER}, DUMP equal"
        )

    def status_and_history(self, world: World) -> str:
        """What ``ci-tools status production`` and ``history production`` show after it all."""
        from ci_tools.checklist import BUDGET
        from ci_tools.output import table
        from ci_tools.pipeline.history import history
        from ci_tools.pipeline.status import status

        ctx = self._ctx(world, "production")
        items, live = status(ctx, ["production"])
        with ctx.render(
            world.render.api_key, world.services["production"].id, deadline=time.monotonic() + BUDGET
        ) as api:
            releases = history(api, 10, world.repo)
        table(
            "ci-tools status production",
            ["", "check", "seen"],
            [[i.mark, i.name, i.detail] for i in items],
        )
        table(
            "ci-tools history production",
            ["deploy", "commit", "trigger", "status", "started", "took"],
            [r.row() for r in releases],
        )
        unhealthy = [i for i in items if i.ok is not True]
        if unhealthy:
            raise VerificationError("status: " + "; ".join(f"{i.name}: {i.detail}" for i in unhealthy))
        rollbacks = sum(1 for r in releases if r.back_to)
        return (
            f"{len(items)} checks ✓, {live['production'][:7]} live; "
            f"{len(releases)} deploys, {rollbacks} rollbacks linked"
        )

    def acceptance(self, world: World) -> str:
        if self.bot is not None:
            # The daily user talks to the new bot every day now. A bot without our profile key is seen
            # to have talked by its health answer's last handled update, which counts from the instance's
            # start: the releases rehearsed since the move started new ones.
            require(self._replay_turns(world, "production") == self.said, "the new bot answers the daily user anew")
        ctx = self._ctx(world, "production", CI_TOOLS_CONFIG=str(world.config))
        items = acceptance(ctx, DAILY_USER, self.snapshot, None, deadline=10, repo_root=self.repository)
        unmet = [i for i in items if i.ok is not True]
        if unmet:
            raise VerificationError("; ".join(f"{i.name}: {i.detail}" for i in unmet))
        window = next(i.detail for i in items if i.name == "the old bot is kept for rollback")
        return f"{len(items)} items ✓ ({window})"


def _production_release(world: World, ctx: Context, commit: str) -> ReleaseRequest:
    """A release of ``commit`` to production as production.yml runs it, on the sandbox's clock."""
    return ReleaseRequest(
        ctx.config.env("production"),
        commit,
        world.bots["production"].token,
        timeout=60,
        deadline=10,
        poll=0.1,
        webhook_secret=SECRETS["production"],
    )


def rehearse(
    project: Path,
    *,
    process: bool = True,
    keep: Path | None = None,
    log: Callable[[str], None] = say,
    bot: Path | None = None,
) -> list[Phase]:
    """The plan against the stand-ins; ``project`` is the checkout it runs from (its .github/),
    ``bot`` an adopted repository whose bot is rehearsed instead of the reference one."""
    previous = signal.getsignal(signal.SIGTERM)
    if callable(previous):
        # Under ci-tools' main() (or a caller's own handler): main's already interrupts, and also
        # records the cancel for the memory writes' checkpoints and ignores the next signal while
        # this unwinds (ci_tools/cancel.py). One put over it would do neither.
        return _rehearse_in(project, keep, process, log, bot)

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        return _rehearse_in(project, keep, process, log, bot)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _rehearse_in(
    project: Path, keep: Path | None, process: bool, log: Callable[[str], None], bot: Path | None
) -> list[Phase]:
    if keep:
        return Rehearsal(keep, project, process=process, log=log, bot=bot).run()
    with tempfile.TemporaryDirectory(prefix="ci-tools-rehearse-") as root:
        return Rehearsal(Path(root), project, process=process, log=log, bot=bot).run()
