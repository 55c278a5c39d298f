"""The bot's own HTTP surface: ``GET /healthz`` judged against its written contract, and the
webhook and probe endpoints the probe talks to. The phases reach the bot only through here.

The contract is ``health.schema.json`` beside this file: a bot that answers
something else gets one clear line naming the missing piece, not a KeyError deep
in a probe. Owners copying the pipeline to their own bot read the same file. A bot that
does not answer at all is ``Unreachable`` (its transport error named), never an httpx error.
"""

from __future__ import annotations

import email.utils
import json
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

import httpx
import jsonschema

SCHEMA = "health.schema.json"


class NotTheContract(ValueError):
    """The answer is not the health contract; the message names what is missing. ``http_status``:
    the answer's status when there was one (a 404 is the bot saying it has no such endpoint)."""

    def __init__(self, problem: str, http_status: int | None = None) -> None:
        super().__init__(problem)
        self.http_status = http_status


class Unreachable(Exception):
    """The bot's service did not answer (refused, timed out, reset): ``kind`` names how."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(type(exc).__name__)
        self.kind = type(exc).__name__


@dataclass(frozen=True)
class Updates:
    """What the instance counted since it started (the contract's ``updates``)."""

    handled: int
    failed: int
    last_error: str | None = None  # the last failure's exception type
    last_kind: str | None = None  # … and the kind of update it failed on
    # When the last update (not the probe's) was handled, unix seconds; None: none since it started.
    # ``reports_last_handled`` is False for a bot whose contract predates the field.
    last_handled_at: float | None = None
    reports_last_handled: bool = False
    # When the instance started, unix seconds; None: it does not say (a bot without the field). With
    # nothing handled yet, a start moments ago may have cut a conversation short (the quiet moment).
    started_at: float | None = None

    def last(self) -> str:
        return f"{self.last_error} on a {self.last_kind}" if self.last_error else "no failure yet"


@dataclass(frozen=True)
class Health:
    http_status: int
    env: str
    commit: str | None
    bot_id: int | None
    bot_username: str
    redis_ok: bool
    env_marker: str | None
    key_prefix: str
    moved_to: str | None
    updates: Updates | None = None  # None: a bot that does not count them
    served_at: float | None = None  # the answer's HTTP Date: the bot's clock when it answered
    # The optional ``reports.oops``: when a user said something is off (/oops), and the commit live then.
    oops: tuple[tuple[float, str | None], ...] = ()
    # The optional ``contract``: the level it claims past health, and where the probe's replies are read.
    contract_level: str | None = None
    probe_path: str | None = None
    # The ``contract`` object was there but not the schema's (a level without its probe_path, a
    # path without its slash): what is wrong with it. The rest is the health JSON all the same, so
    # the bot is at the health level, not below it: a malformed claim to more is not less.
    contract_error: str | None = None

    @classmethod
    def from_json(cls, http_status: int, body: Any, served_at: float | None = None) -> Health:
        problem = contract_problem(body)
        contract_error = None
        if problem and isinstance(body, dict) and "contract" in body:
            without = {key: value for key, value in body.items() if key != "contract"}
            if contract_problem(without) is None:  # only the claim is wrong: judged without it
                body, contract_error = without, problem
                problem = None
        if problem:
            raise NotTheContract(problem, http_status)
        bot, redis = body["bot"], body["redis"]
        counted = body.get("updates")
        last = (counted or {}).get("last_failure") or {}
        updates = (
            Updates(
                counted["handled"],
                counted["failed"],
                last.get("error"),
                last.get("kind"),
                counted.get("last_handled_at"),
                "last_handled_at" in counted,
                counted.get("started_at"),
            )
            if counted
            else None
        )
        return cls(
            http_status=http_status,
            env=body["env"],
            commit=body["commit"],
            bot_id=bot["id"],
            bot_username=str(bot["username"] or ""),
            redis_ok=redis["ok"],
            env_marker=redis["env_marker"],
            key_prefix=body["key_prefix"],
            moved_to=body.get("moved_to"),
            updates=updates,
            served_at=served_at,
            oops=tuple((float(r["at"]), r["commit"]) for r in (body.get("reports") or {}).get("oops") or ()),
            contract_level=(body.get("contract") or {}).get("level"),
            probe_path=(body.get("contract") or {}).get("probe_path"),
            contract_error=contract_error,
        )

    def runs_bot(self, username: str) -> bool:
        return self.bot_username.lower() == username.lower()


@cache
def schema() -> dict[str, Any]:
    return dict(json.loads(files("ci_tools.clients").joinpath(SCHEMA).read_text()))


def contract_problem(body: Any) -> str | None:
    """None if ``body`` follows the health contract; else the first thing it lacks, in words."""
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema()).iter_errors(body))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "the answer"
    return f"{where}: {error.message} (see {SCHEMA})"


def parse(response: httpx.Response) -> Health:
    """The typed answer; NotTheContract when it is not the health contract. A redirect is not
    followed: the health path is where the bot answers (Render's own check takes a 3xx as healthy
    and follows nothing either), so it is named with where it points, for the config to say that."""
    if response.is_redirect:
        where = response.headers.get("location", "nowhere")
        raise NotTheContract(
            f"HTTP {response.status_code}, a redirect to {where}: not the health JSON (set health_path to where "
            "the bot answers it)",
            response.status_code,
        )
    try:
        body = response.json()
    except ValueError:
        raise NotTheContract(f"HTTP {response.status_code} with no JSON (see {SCHEMA})", response.status_code) from None
    return Health.from_json(response.status_code, body, http_date(response.headers.get("date")))


def http_date(value: str | None) -> float | None:
    """An HTTP ``Date`` header as unix seconds; None when absent or not a date."""
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def health_of(url: str, timeout: float) -> Health:
    """GET ``url`` once; Unreachable or NotTheContract are left to the caller's retry loop."""
    try:
        with httpx.Client(timeout=timeout) as client:
            return parse(client.get(url))
    except httpx.HTTPError as exc:
        raise Unreachable(exc) from None


class BotSurface:
    """One async connection pool to a bot's service: health, webhook posts, the probe's replies."""

    def __init__(self, *, timeout: float) -> None:
        self._client = httpx.AsyncClient(timeout=timeout)

    @property
    def pool(self) -> httpx.AsyncClient:
        """The connections, for the Bot API client the probe runs beside (one pool for both)."""
        return self._client

    async def __aenter__(self) -> BotSurface:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def health(self, url: str) -> Health:
        try:
            return parse(await self._client.get(url))
        except httpx.HTTPError as exc:
            raise Unreachable(exc) from None

    async def post(self, url: str, update: dict[str, Any], headers: dict[str, str] | None = None) -> int:
        """POST an update to the webhook; its HTTP status."""
        try:
            return (await self._client.post(url, json=update, headers=headers)).status_code
        except httpx.HTTPError as exc:
            raise Unreachable(exc) from None

    async def look(self, url: str, headers: dict[str, str]) -> tuple[int, Any]:
        """GET ``url`` (the probe's replies, left in place): its status and JSON (None if not JSON)."""
        return await self._json("GET", url, headers)

    async def take(self, url: str, headers: dict[str, str]) -> tuple[int, Any]:
        """DELETE ``url`` (the probe's replies, taken and cleaned up): its status and JSON (None if not JSON)."""
        return await self._json("DELETE", url, headers)

    async def _json(self, method: str, url: str, headers: dict[str, str]) -> tuple[int, Any]:
        try:
            response = await self._client.request(method, url, headers=headers)
        except httpx.HTTPError as exc:
            raise Unreachable(exc) from None
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, None


def answers(url: str, timeout: float) -> bool:
    """Whether anything answers HTTP at ``url`` (any status): a bot's port is up and serving.
    Render's readiness for a health check path is stricter (2xx or 3xx); this is "started"."""
    try:
        with httpx.Client(timeout=timeout) as client:
            client.get(url)
    except httpx.HTTPError:
        return False
    return True


async def health_json(surface: BotSurface, url: str) -> tuple[int, Any]:
    """GET ``url`` as the health check reads it: its status and JSON body, unjudged (the caller
    judges it: ``Health.from_json``, and the optional fields the typed answer leaves out)."""
    try:
        response = await surface.pool.get(url)
    except httpx.HTTPError as exc:
        raise Unreachable(exc) from None
    try:
        return response.status_code, response.json()
    except ValueError:
        raise NotTheContract(f"HTTP {response.status_code} with no JSON (see {SCHEMA})") from None
