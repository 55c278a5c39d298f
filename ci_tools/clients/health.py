"""A bot's ``GET /healthz``, read and judged against its written contract in one place.

The contract is ``health.schema.json`` beside this file: a bot that answers
something else gets one clear line naming the missing piece, not a KeyError deep
in a probe. Owners copying the pipeline to their own bot read the same file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

import httpx

SCHEMA = "health.schema.json"


class NotTheContract(ValueError):
    """The answer is not the health contract; the message names what is missing."""


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

    @classmethod
    def from_json(cls, http_status: int, body: Any) -> Health:
        problem = contract_problem(body)
        if problem:
            raise NotTheContract(problem)
        bot, redis = body["bot"], body["redis"]
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
        )

    def runs_bot(self, username: str) -> bool:
        return self.bot_username.lower() == username.lower()


@cache
def schema() -> dict[str, Any]:
    return dict(json.loads(files("ci_tools.clients").joinpath(SCHEMA).read_text()))


def contract_problem(body: Any) -> str | None:
    """None if ``body`` follows the health contract; else the first thing it lacks, in words."""
    import jsonschema  # imported when a bot is judged, not on every ci-tools start

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema()).iter_errors(body))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "the answer"
    return f"{where}: {error.message} (see {SCHEMA})"


def parse(response: httpx.Response) -> Health:
    """The typed answer; NotTheContract when it is not the health contract."""
    try:
        body = response.json()
    except ValueError:
        raise NotTheContract(f"HTTP {response.status_code} with no JSON (see {SCHEMA})") from None
    return Health.from_json(response.status_code, body)


def read_health(client: httpx.Client, url: str) -> Health:
    """GET ``url`` once; httpx errors are left to the caller's retry loop."""
    return parse(client.get(url))


async def aread_health(client: httpx.AsyncClient, url: str) -> Health:
    return parse(await client.get(url))
