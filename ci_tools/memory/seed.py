"""Seed: a profile the user pasted becomes their initial memory, through the same careful job."""

from __future__ import annotations

import json
from pathlib import Path

from ci_tools.context import Context
from ci_tools.errors import InputError
from ci_tools.memory.job import MemoryJob
from ci_tools.memory.model import Outcome
from ci_tools.memory.ops import Writing, url_label
from ci_tools.memory.records import Record, now_ms


def parse_profile(path: Path) -> tuple[dict[str, str], list[str]]:
    """A pasted profile: JSON ({"first_name":…, "facts":[…]}) or plain text, one fact a line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path} does not exist", hint="pass the file holding the pasted profile") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None
    fields: dict[str, str] = {}
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path.name} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
        facts = data.get("facts", [])
        if not isinstance(facts, list) or not all(isinstance(f, str) for f in facts):
            raise InputError(f'{path.name}: "facts" must be a list of strings')
        fields = {k: str(v) for k, v in data.items() if k != "facts" and isinstance(v, str | int)}
    else:
        facts = [line.strip().lstrip("-*•").strip() for line in text.splitlines()]
    facts = [f for f in facts if f]
    if not facts and not fields:
        raise InputError(f"{path.name} holds no facts", hint="one fact a line, or JSON with a facts list")
    if any(len(f) > 4000 for f in facts):
        raise InputError(f"{path.name} has a fact longer than 4000 characters; split it")
    return fields, facts


def seed_records(prefix: str, user_id: int, fields: dict[str, str], facts: list[str]) -> list[Record]:
    now = now_ms()
    # No timestamp: seeding the same profile twice is a no-op, like a second copy.
    profile = sorted({"source": "seed", **fields}.items())
    records = [
        Record(
            f"{prefix}user:{user_id}:profile".encode(),
            "hash",
            None,
            now,
            [(k.encode(), v.encode()) for k, v in profile],
        ),
    ]
    if facts:
        records.append(Record(f"{prefix}memory:{user_id}".encode(), "list", None, now, [f.encode() for f in facts]))
    return records


def seed_user(ctx: Context, user_id: int, profile: Path, writing: Writing) -> Outcome:
    """The pasted profile as ``user_id``'s first memory, written as ``writing`` says."""
    fields, facts = parse_profile(profile)
    target = writing.open_target(ctx, "the Redis to seed")
    job = MemoryJob(target, lambda key: key, writing.options(ctx, f"user{user_id}-seed-{writing.target_env.name}"))
    target_prefix = writing.target_prefix
    header = {
        "user_id": user_id,
        "env": writing.target_env.name,
        "prefix": target_prefix,
        "server": url_label(ctx, "TARGET_REDIS_URL"),
    }
    return job.run(
        seed_records(target_prefix, user_id, fields, facts),
        snapshot_header={**header, "seeded_from": profile.name},
        backup_header=header,
    )
