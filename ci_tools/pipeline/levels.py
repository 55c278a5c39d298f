"""The contract level a bot meets: discovered from what it answers, never configured.

An owner's bot is not ours, and it need not have been written for the pipeline. What the pipeline
can verify depends on what the bot tells it, in three levels, each holding the one below:

- **base**: any bot, unchanged. Render's deploy and its own health check, and Telegram: the token
  is the expected bot, the webhook is on this service's ``base_url`` (any path), no delivery error
  and no growing backlog since it went live.
- **health**: ``GET <health_path>`` answers the health JSON (``clients/health.schema.json``): which
  environment, commit, bot, Redis and key prefix it runs, and (``updates``) what its handlers failed on.
- **conversation**: that JSON says ``"contract": {"level": "conversation", "probe_path": …}``: the
  probe talks to it as the reserved probe user and reads the replies at ``<probe_path>/<nonce>``,
  signed with the webhook secret, so the secret is bound too.

``health_path = ""`` in the config is the owner saying there is none: base, without asking. Every
phase says which level it verified and what it could not (``Found.line``), and a release whose bot
reaches a lower level than the live release had fails (``dropped``): losing ``/healthz`` must not
quietly turn the probe into a weaker one.

Verdicts are pure functions of what was seen (``found``, ``dropped``); ``discover`` is the one fetch.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from ci_tools.clients.health import BotSurface, Health, NotTheContract, Unreachable, health_of
from ci_tools.settings import Environment


class Level(IntEnum):
    BASE = 0
    HEALTH = 1
    CONVERSATION = 2

    def __str__(self) -> str:
        return self.name.lower()


COUNTS = "handler-failure counts"  # what a bake and a watch read in the health answer's ``updates``


@dataclass(frozen=True)
class Found:
    """The level a bot meets, what it answered, and why it is not higher."""

    level: Level
    health: Health | None = None  # the health answer, at the health level and up
    why: str = ""  # why not the next level up, in words
    # The answer is the bot's own word (a health answer, a 4xx, or no health_path at all), not a
    # blip on the way (no answer, a 5xx from the platform): only then may a lower level be a verdict.
    definite: bool = True
    answered: bool = True  # False: nothing answered the health path (refused, timed out)
    http_status: int | None = None  # the status of an answer that was not the health JSON

    @property
    def probe_path(self) -> str | None:
        return self.health.probe_path if self.health and self.level is Level.CONVERSATION else None

    def unverified(self) -> list[str]:
        """What the phases cannot verify at this level, each with its reason."""
        if self.level is Level.BASE:
            return [f"health ({self.why})", f"{COUNTS} (read in the health answer)", "conversation (needs health)"]
        missing = [f"conversation ({self.why})"] if self.level is Level.HEALTH else []
        if self.health is not None and self.health.updates is None:
            missing.append(f"{COUNTS} (the health answer has no updates)")
        return missing

    def line(self) -> str:
        """``base — not verified: health (…), …``: the level row of a probe, status or acceptance."""
        missing = self.unverified()
        return f"{self.level}" + (f" — not verified: {', '.join(missing)}" if missing else "")


# Answers that are no one's last word on the path: the request timed out on the way (408), or the
# edge in front of the bot rate-limited the runner (429). Like a 5xx, they say nothing of the bot.
NOT_THE_BOTS_WORD = (408, 429)


def bots_word(status: int | None) -> bool:
    """Is an answer with this status, not the health JSON, the bot saying it has none (the base
    level for good), rather than something on the way failing (no answer, a 5xx, a 408 or 429)?"""
    return status is not None and status < 500 and status not in NOT_THE_BOTS_WORD


def found(env: Environment, answer: Health | NotTheContract | Unreachable | None) -> Found:
    """The level ``answer`` (what ``GET <health_path>`` gave; None: health_path is empty) shows."""
    path = env.health_path
    if answer is None:
        return Found(Level.BASE, why="health_path is empty: the config says the bot has none")
    if isinstance(answer, Unreachable):
        return Found(Level.BASE, why=f"GET {path} did not answer ({answer.kind})", definite=False, answered=False)
    if isinstance(answer, NotTheContract):
        status, text = answer.http_status, str(answer)
        if status is None or text.startswith("HTTP "):
            said = f"GET {path} answered {text}"
        else:
            said = f"GET {path} answered HTTP {status}, not the health JSON: {text}"
        return Found(Level.BASE, why=said, definite=bots_word(status), http_status=status)
    if answer.contract_error:
        return Found(Level.HEALTH, answer, why=f"{path}'s contract is not the schema's: {answer.contract_error}")
    if answer.contract_level != "conversation":
        return Found(Level.HEALTH, answer, why=f"{path} claims no contract level conversation")
    if not answer.probe_path:
        return Found(Level.HEALTH, answer, why=f"{path} claims conversation but names no probe_path")
    return Found(Level.CONVERSATION, answer)


def dropped(seen: Found, floor: Level | None, commit: str) -> tuple[str, bool] | None:
    """None when ``seen`` is at ``floor`` (the live release's level, asked before the deploy) or
    above; else what dropped, naming both levels, and whether it is definite: the answer is this
    commit's own (its health answer reports it, or a 4xx where the live release answered the contract),
    so no retry can change it."""
    if floor is None or seen.level >= floor:
        return None
    ours = seen.health is None or seen.health.commit == commit
    said = f"the live release met the {floor} level, this one only {seen.level} ({seen.why})"
    return said, seen.definite and ours


def discover(env: Environment, timeout: float) -> Found:
    """One look at ``<health_path>``: the level the service's bot meets now."""
    if env.health_url is None:
        return found(env, None)
    try:
        return found(env, health_of(env.health_url, timeout))
    except (Unreachable, NotTheContract) as exc:
        return found(env, exc)


async def discover_async(http: BotSurface, env: Environment) -> Found:
    """``discover`` on the probe's own connections."""
    if env.health_url is None:
        return found(env, None)
    try:
        return found(env, await http.health(env.health_url))
    except (Unreachable, NotTheContract) as exc:
        return found(env, exc)
