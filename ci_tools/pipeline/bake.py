"""After the probe: the bake window, where the new release meets the daily user.

The probe speaks as the probe user with ``/start``, ``/remember`` and ``/recall``. A release
that breaks something else the user does — a plain message, a photo, an edited message —
passes it, and the bot answers 200 for a handler's exception (a retry would fail the same
way), so neither Telegram's ``last_error`` nor ``/healthz``'s status shows anything. For
``bake_minutes`` (production: 10) the pipeline therefore watches the new commit's own signals
every ``bake_interval_seconds``, counted from ``since``, the moment the new commit serves
(``ci_tools.pipeline.serving``: not the moment the deploy began, while the old instance served):

- ``/healthz``'s ``updates``: the updates a handler of *this instance* failed on (it started
  with this commit, so every count is the new commit's);
- Telegram's ``getWebhookInfo``: a delivery error dated at or after ``since``, pending updates
  rising over three looks;
- the read-only conversation probe, retried until the look's deadline (the interval, at least
  5 s): a failure still standing then, definite or not, is the commit's while Redis answers.

A failure of the new commit rolls it back exactly as a failed probe does (the caller's rule).

What it can watch depends on the bot's contract level (``ci_tools.pipeline.levels``, found by the
probe, else by the window's first health answer): at **base** Telegram's signals only (a delivery
error, a growing backlog), and the result says that handler-failure counts were not available; at
**health** also ``/healthz``'s ``updates`` and Redis; at **conversation** also the conversation probe.
A base level found by a 4xx is no commit's word (the old instance may have answered it while the
public URL still routed there): the health path is asked again each look, and this commit's own
health answer raises the window to its level, with the checks of that level the probe skipped.

A look that cannot judge the new commit is *inconclusive* and pauses the judgement (Kayenta's
NODATA, Argo Rollouts' "inconclusive" analysis): it neither passes nor fails the commit.

- **Redis**: ``/healthz`` says ``redis.ok`` false. The bot then answers Telegram 503 on purpose
  (so Telegram delivers the update again), Telegram records that as a delivery error and holds
  the updates, and the probe's conversation cannot keep its fact: a rollback would not bring
  Redis back. Render stops routing to an instance that fails its health check this way, so
  ``/healthz`` not answering after it said Redis was down is the same stretch.

  The excuse is bounded: ``REDIS_LOOKS`` (5) such looks in a row, counting an unanswered
  ``/healthz`` after it said Redis was down; the next one, while Telegram answers, ends the window
  *unresolved*: the run fails and the owner is told, and nothing is rolled back. Why not blame the
  commit: the release step holds no Redis URL and production's Key Value admits the runner only for
  the snapshot (production.yml closes it again before the deploy), so the pipeline cannot ask Redis
  itself, and "redis not ok" looks the same whether the Key Value is down (a rollback cannot help,
  and its own probe would fail) or the commit broke its own connection (a misread ``REDIS_URL``, a
  reconnect bug: a rollback helps). So a person decides, with the rollback one dispatch away.
  5 looks is 2.5 min at the production interval: a Key Value restart fits inside it.
- **Render**: its edge does not answer the public URL at all (connection refused or timed out).
  A 5xx or no answer *from the instance* still counts towards ``UNANSWERED_LOOKS`` (a crashed
  new commit looks just like it), unless Redis was down.
- **Telegram**: ``getWebhookInfo`` unreachable, 5xx or 429: nothing to judge that look by. Pending
  updates rising with no delivery error at all (``last_error_date`` unset) are Telegram's lag too:
  a bot that hangs or refuses leaves one ("Read timeout expired", "Wrong response from the
  webhook": ``last_error_message``, core.telegram.org/bots/api#webhookinfo), so Telegram had not
  tried it. Rising with a delivery error is confirmed against ``/healthz`` like the others.

A delivery error, growing pending updates or a failed conversation are confirmed against
``/healthz`` before they count: seen while Redis is down, they are inconclusive too. A Redis blip
shorter than the interval leaves no trace on ``/healthz`` but one in Telegram: a delivery error
"503" (the bot's "deliver again"), answered while Redis was down. Such an error is excused once,
and the excuse holds until Telegram has delivered everything it held (pending back to 0): a fresh
503 before that, while ``/healthz`` says Redis answers, is the new commit's (a storage failure of
its own making keeps refusing what Telegram delivers again). After an inconclusive stretch
``since`` moves to the moment the signals answered again, so errors from inside the stretch are
not counted later. At the base level (no health answer) nothing tells Redis's part, and every
delivery error after ``since`` counts. A handler failure counted on ``/healthz`` is the new commit's
whatever Redis does: the health contract keeps storage failures (answered 503) out of it.

The window does not pass silently: the result names what was inconclusive, for how many looks
(the caller tells the owner once). A window with no conclusive look at all, like one with no
traffic, leaves the release live and says so: a rollback cannot fix what the commit did not
cause. Another commit serving ends the window early (``/healthz`` reports it, or Render's newest
``live`` deploy is another commit's): it is not this commit's to judge any more. A deploy still
building, which may fail and leave this commit serving, and a redeploy of this same commit do not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ci_tools.clients.health import Health, NotTheContract, Unreachable, Updates, health_of
from ci_tools.clients.telegram import TelegramError
from ci_tools.context import Context
from ci_tools.errors import RemoteError
from ci_tools.pipeline import levels
from ci_tools.pipeline.levels import COUNTS, Found, Level
from ci_tools.pipeline.probe import ANOTHER_COMMIT, ASKED_AGAIN, Probe, failures, run_probe
from ci_tools.settings import Environment

Status = Callable[[str], None]
UNANSWERED_LOOKS = 3  # /healthz not answering this many looks in a row is a failure, not a blip
# Looks in a row that /healthz says Redis is not ok (or, after it said so, does not answer) before the
# stretch is the new commit's: the release step cannot reach the Key Value itself (module docstring).
REDIS_LOOKS = 5
GROWING_LOOKS = 3  # pending updates rising over this many looks: Telegram holds what the bot refuses
EDGE_SILENT = ("ConnectError", "ConnectTimeout")  # nothing answered the public URL: Render's edge

# Why a look could not judge the new commit: one phrase per cause, counted per window.
REDIS = "Redis unreachable (/healthz: redis not ok)"
REDIS_BETWEEN = "Redis unreachable between two looks (the bot answered Telegram 503: deliver again)"
RENDER = "Render's edge did not answer the public URL"
TELEGRAM = "Telegram's getWebhookInfo did not answer"
TELEGRAM_LAG = "Telegram held more updates with no delivery error (it had not tried the bot)"
# What a bake at the base level says: what it judged, and what it could not see.
BASE_ONLY = f"judged by Telegram's signals only; {COUNTS} were not available (no health answer)"


@dataclass(frozen=True)
class Look:
    """One look's verdict: a failure of the new commit, or why it could not judge, or neither."""

    failed: str | None = None
    paused: str | None = None  # one of REDIS, REDIS_BETWEEN, RENDER, TELEGRAM, TELEGRAM_LAG
    unresolved: str | None = None  # too long to excuse, impossible to blame: a person decides
    seen: str = ""  # what was seen, for the run's log


CLEAN = Look()


@dataclass(frozen=True)
class BakeResult:
    passed: bool
    detail: str  # what failed and when; or what was seen
    handled: int = 0  # user updates the new instance handled during the window
    ended_early: bool = False
    inconclusive: str | None = None  # the looks that could not judge the commit, and why
    unresolved: bool = False  # failed to pass, but not the commit's to be rolled back for: a person looks


@dataclass
class BakeWatch:
    """One release's window: what it has seen so far."""

    ctx: Context
    env: Environment
    commit: str
    token: str
    # Epoch seconds the new commit serves (pipeline/serving.py): delivery errors before it are
    # history. Moved forward when the signals answer again after an inconclusive stretch.
    since: float
    webhook_secret: str | None
    found: Found | None  # the bot's contract level: what there is to watch (None: the first answer says)
    conversation: bool = True  # False: --no-conversation, the probe user is not talked to here either
    unanswered: int = 0
    pending: tuple[int, ...] = ()
    first: Updates | None = None
    last: Updates | None = None
    uncounted_said: bool = False
    redis_down: bool = False  # the last /healthz answer said redis not ok
    conversation_503: bool = False  # a conversation 503 already excused as a Redis blip
    pausing: bool = False  # the last look was inconclusive (not counting an excused 503)
    excused: bool = False  # a 503 delivery error was excused as a Redis blip; Telegram still holds updates
    healthy_at: float = 0.0  # epoch seconds /healthz last said Redis answers
    redis_looks: int = 0  # looks in a row excused as Redis down, since /healthz last said Redis answers

    def look(self, on_status: Status) -> Look:
        """One look. Raises ``Newer`` when another commit serves."""
        verdict = self._health(on_status) or self._webhook(on_status) or self._conversation(on_status) or CLEAN
        if verdict.paused == REDIS:
            verdict = self._redis_stretch(verdict)
        if verdict.paused:
            self.pending = ()  # growth is measured across looks that judge, from a fresh baseline
        # An excused 503 moves since by itself: a resume would excuse the errors until the next look too.
        self.pausing = verdict.paused not in (None, REDIS_BETWEEN)
        return verdict

    def _redis_stretch(self, verdict: Look) -> Look:
        """Excuse "Redis down" for ``REDIS_LOOKS`` looks in a row; past that, while Telegram answers,
        it is the new commit's: nothing here can tell Redis down from a connection the commit broke."""
        self.redis_looks += 1
        if self.redis_looks <= REDIS_LOOKS or not self._telegram_answers():
            return verdict
        return Look(
            unresolved=f"{self.env.health_path} reported Redis unreachable {self.redis_looks} looks in a row while "
            f"Telegram answered ({verdict.seen}): the pipeline cannot reach this Redis to tell an outage from a "
            f"connection {self.commit[:12]} broke"
        )

    def _telegram_answers(self) -> bool:
        try:
            with self.ctx.telegram(self.token, budget=self.ctx.request_timeout(10)) as telegram:
                telegram.webhook_info()
        except (TelegramError, RemoteError):
            return False
        return True

    def _resume(self) -> None:
        """A signal answered after an inconclusive stretch: what it recorded inside it is not counted."""
        if self.pausing:
            self.since = max(self.since, time.time())

    @property
    def level(self) -> Level:
        """The level watched: until an answer says, what the config allows (a health path: health)."""
        if self.found is not None:
            return self.found.level
        return Level.HEALTH if self.env.health_url else Level.BASE

    def know(self, found: Found, on_status: Status) -> None:
        self.found = found
        if found.level is Level.BASE:
            on_status(f"⚠ level base ({found.why}): {BASE_ONLY}")
        elif found.level is Level.CONVERSATION and not self.conversation:
            on_status("the bot meets the conversation level; its conversation is not watched: --no-conversation")
        else:
            on_status(f"the bot meets the {found.level} level")

    def _health(self, on_status: Status) -> Look | None:
        if self.env.health_url is None:
            return None
        if self.level < Level.HEALTH:
            return self._base_no_more(on_status)
        try:
            health = health_of(self.env.health_url, self.ctx.request_timeout(10))
        except NotTheContract as exc:
            if self.found is None and levels.bots_word(exc.http_status):
                self.know(levels.found(self.env, exc), on_status)  # no health endpoint: the base level
                return None
            return self._unanswered(exc)
        except Unreachable as exc:
            return self._unanswered(exc)
        self.unanswered = 0
        if self.found is None:
            self.know(levels.found(self.env, health), on_status)
        if health.commit and health.commit != self.commit:
            raise Newer(f"{health.commit[:12]} serves now")
        failed = self._counts(health, on_status)
        if failed:
            return Look(failed)
        self.redis_down = not health.redis_ok
        if self.redis_down:
            return Look(paused=REDIS, seen=f"{self.env.health_path} answered {health.http_status}")
        self.healthy_at = time.time()
        self.redis_looks = 0
        self._resume()
        return None

    def _base_no_more(self, on_status: Status) -> Look | None:
        """At the base level found by a 4xx, the health path is asked again each look: that 4xx is
        no commit's word, and while Render's public URL still routed to the old instance after live
        (``serving``: a base bot's release is judged from Render's word at once) it was the old
        one's. This commit's own health answer is its level: the checks it owes are run once (the
        probe's, which skipped them), and the window watches at that level from then on. Anything
        else leaves the base level's judgement as it was."""
        if self.found is None or self.found.health is not None or not self.found.answered:
            return None
        assert self.env.health_url is not None
        try:
            health = health_of(self.env.health_url, self.ctx.request_timeout(10))
        except (NotTheContract, Unreachable):
            return None
        if health.commit != self.commit:
            return None  # not this commit's word (Render's newest live deploy says when another serves)
        self.found = seen = levels.found(self.env, health)
        on_status(
            f"the bot meets the {seen.level} level: {self.env.health_path} answers for {self.commit[:12]} now "
            "(the probe was answered by the instance before it); its checks of that level run now"
        )
        probe = self._probe(seen)
        owed = [name for name, _ in probe.tests() if name in ("health", "unsigned webhook refused")]
        failed = failures(run_probe(probe, only=owed))
        if failed:
            first = failed[0]
            return self._confirmed(f"at the {seen.level} level, {first.name}: {first.cause or first.detail}")
        return None

    def _unanswered(self, exc: Unreachable | NotTheContract) -> Look | None:
        """The health path gave no health answer at a level that has one."""
        if isinstance(exc, Unreachable) and exc.kind in EDGE_SILENT:
            return Look(paused=RENDER, seen=exc.kind)
        if self.redis_down:  # Render stops routing to an instance that fails its health check for its Redis
            return Look(paused=REDIS, seen=f"{self.env.health_path}: {exc}, after it said Redis was down")
        self.unanswered += 1
        if self.unanswered >= UNANSWERED_LOOKS:
            return Look(f"{self.env.health_path} did not answer {self.unanswered} looks in a row ({exc})")
        return None

    def _counts(self, health: Health, on_status: Status) -> str | None:
        if health.updates is None:
            if not self.uncounted_said:
                on_status(
                    "⚠ the bot's /healthz has no update counts: a handler's failure cannot be seen (docs/CONTRACT.md)"
                )
                self.uncounted_said = True
            return None
        self.first = self.first or health.updates
        self.last = health.updates
        if health.updates.failed:
            return (
                f"{health.updates.failed} of {health.updates.handled} update(s) failed in a handler of "
                f"{self.commit[:12]} (last: {health.updates.last()})"
            )
        return None

    def _webhook(self, on_status: Status) -> Look | None:
        try:
            with self.ctx.telegram(self.token, budget=self.ctx.request_timeout(10)) as telegram:
                info = telegram.webhook_info()
        except (TelegramError, RemoteError) as exc:
            return Look(paused=TELEGRAM, seen=exc.message)
        self._resume()
        if info.pending_update_count == 0:
            self.excused = False  # Telegram delivered everything it held: a blip is over
        if info.last_error_date and info.last_error_date >= self.since:
            failure = f"Telegram's delivery to it failed after the deploy: {info.last_error_message}"
            if self._blip(info.last_error_date, info.last_error_message):
                return Look(paused=REDIS_BETWEEN, seen=failure)
            return self._confirmed(failure)
        self.pending = (*self.pending, info.pending_update_count)[-GROWING_LOOKS:]
        rising = all(a < b for a, b in zip(self.pending, self.pending[1:], strict=False))
        if len(self.pending) == GROWING_LOOKS and rising:
            growing = f"Telegram is holding more and more updates ({' → '.join(map(str, self.pending))})"
            if not info.last_error_date:  # Telegram never failed to deliver: it has not tried the bot
                return Look(paused=TELEGRAM_LAG, seen=growing)
            return self._confirmed(growing)
        return None

    def _blip(self, date: int, message: str | None) -> bool:
        """Excuse a 503 (the bot's "deliver again") once while Telegram holds updates; errors from
        the next whole second after it, and after /healthz said Redis answers, count."""
        if self.level < Level.HEALTH or self.excused or not ASKED_AGAIN.search(message or ""):
            return False
        self.excused = True
        self.since = max(self.since, self.healthy_at, date + 1.0)
        return True

    def _probe(self, found: Found) -> Probe:
        """The probe's checks of this commit at the level ``found``, for one look: failures since the
        window's ``since`` count, retried for at most a look's interval (never under 5 s)."""
        return Probe(
            self.ctx,
            self.env,
            self.commit,
            self.token,
            since=self.since,
            deadline=max(5.0, self.env.bake_interval_seconds),
            webhook_secret=self.webhook_secret,
            found=found,
        )

    def _conversation(self, on_status: Status) -> Look | None:
        if self.found is None or self.level < Level.CONVERSATION or not self.conversation:
            return None
        failed = failures(run_probe(self._probe(self.found), only=["conversation"]))
        if not failed:
            self.conversation_503 = False
        if not failed or self.unanswered or failed[0].detail == ANOTHER_COMMIT:
            return None  # /healthz did not answer (UNANSWERED_LOOKS judges it), or another commit answered
        # Retried to the look's deadline (or definite): still failing is the commit's, while Redis answers.
        verdict = self._confirmed(f"the conversation probe failed: {failed[0].detail} ({failed[0].cause})")
        if verdict.failed and failed[0].detail.endswith("answered 503") and not self.conversation_503:
            # The bot's own "storage unavailable" (503), with Redis answering again by the time
            # /healthz was asked: a blip between the two, excused once as Telegram's 503s are; the
            # same again on the next look, while Redis answers, is the commit's.
            self.conversation_503 = True
            return Look(paused=REDIS_BETWEEN, seen=verdict.failed)
        return verdict

    def _confirmed(self, failure: str) -> Look:
        """A failure Telegram or the probe saw is the new commit's only while its Redis answers."""
        if self.env.health_url is None or self.level < Level.HEALTH:  # the base level cannot tell: it counts
            return Look(failure)
        try:
            down = not health_of(self.env.health_url, self.ctx.request_timeout(10)).redis_ok
        except (Unreachable, NotTheContract):
            down = self.redis_down
        if down:
            self.redis_down = True
            return Look(paused=REDIS, seen=failure)
        return Look(failure)

    def handled(self) -> int:
        if self.last is None:
            return 0
        return self.last.handled


class Newer(Exception):
    """Another release serves now: the window is its own."""


@dataclass
class Pauses:
    """The looks that could not judge the commit, by cause."""

    looks: int = 0
    by_cause: dict[str, int] = field(default_factory=dict)

    def count(self, verdict: Look, commit: str, on_status: Status) -> None:
        self.looks += 1
        if verdict.paused is None:
            return
        if verdict.paused not in self.by_cause:
            on_status(f"⚠ inconclusive: {verdict.paused} ({verdict.seen}); the bake does not judge {commit[:12]} by it")
        self.by_cause[verdict.paused] = self.by_cause.get(verdict.paused, 0) + 1

    def summary(self, commit: str) -> str | None:
        """None when every look judged; else one line: how many looks could not, and why."""
        if not self.by_cause:
            return None
        paused = sum(self.by_cause.values())
        why = "; ".join(f"{cause}: {n} look(s)" for cause, n in self.by_cause.items())
        if paused == self.looks:
            return f"no look could judge {commit[:12]} ({why}): the bake was inconclusive; nothing was rolled back"
        return f"{paused} of {self.looks} looks could not judge {commit[:12]} ({why}); nothing was rolled back for it"


def bake(
    ctx: Context,
    env: Environment,
    commit: str,
    token: str,
    since: float,
    *,
    webhook_secret: str | None,
    level: Found | None = None,
    conversation: bool = True,
    newer: Callable[[], str | None] = lambda: None,
    on_status: Status = lambda line: None,
) -> BakeResult:
    """Watch ``commit`` for ``env.bake_minutes`` from ``since`` (epoch seconds it serves); the verdict.
    ``level``: the bot's contract level as its probe found it (default: the first health answer says);
    ``conversation`` False: the probe user is not talked to (``--no-conversation``, as in the probe)."""
    minutes, interval = env.bake_minutes, env.bake_interval_seconds
    found = level or (levels.found(env, None) if env.health_url is None else None)
    watch = BakeWatch(ctx, env, commit, token, since, webhook_secret, found, conversation)
    pauses = Pauses()
    started = time.monotonic()
    end = started + minutes * 60
    on_status(f"baking {commit[:12]} for {minutes:g} min, a look every {interval:g} s")
    if found is not None:
        watch.know(found, on_status)
    while (now := time.monotonic()) < end:
        time.sleep(min(interval, end - now))
        elapsed = time.monotonic() - started
        started_by = newer()
        if started_by:
            return _early(f"ended after {elapsed:.0f} s: {started_by}", watch, pauses, commit)
        try:
            verdict = watch.look(on_status)
        except Newer as other:
            return _early(f"ended after {elapsed:.0f} s: {other}", watch, pauses, commit)
        if verdict.failed:
            return BakeResult(False, f"{verdict.failed}, {elapsed:.0f} s into the bake", watch.handled())
        if verdict.unresolved:
            detail = f"{verdict.unresolved}, {elapsed:.0f} s into the bake"
            return BakeResult(False, detail, watch.handled(), unresolved=True)
        pauses.count(verdict, commit, on_status)
    handled = watch.handled()
    if watch.found is not None and watch.found.level is Level.BASE:
        note = f"no delivery error and no growing backlog in {minutes:g} min; level base: {BASE_ONLY}"
    elif handled == 0:
        note = f"no user traffic during the bake: 0 updates in {minutes:g} min (inconclusive, not a failure)"
    else:
        note = f"{handled} user update(s) handled in {minutes:g} min, none failed"
    inconclusive = pauses.summary(commit)
    return BakeResult(True, f"{note}; {inconclusive}" if inconclusive else note, handled, inconclusive=inconclusive)


def _early(detail: str, watch: BakeWatch, pauses: Pauses, commit: str) -> BakeResult:
    return BakeResult(True, detail, watch.handled(), ended_early=True, inconclusive=pauses.summary(commit))
