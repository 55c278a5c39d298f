"""What changed between two copies of a provider's description, in the operations we use.

Each operation is read with its ``$ref``s inlined (Telegram: each method with the types its
fields and result reach) and flattened into ``field path → value``; the two flat maps are
compared. Prose (descriptions, summaries, examples) is left out: a reworded sentence is not
a change a client notices. A changed field reads ``operation: field: before → after``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ci_tools.contracts import openapi
from ci_tools.contracts.used import TELEGRAM_TYPES, USED

PROSE = frozenset({"description", "summary", "example", "examples", "externalDocs", "href", "x-github"})
ABSENT = "(absent)"


@dataclass(frozen=True)
class Change:
    operation: str
    field: str
    before: str
    after: str

    def line(self) -> str:
        return f"{self.operation}: {self.field}: {self.before} → {self.after}"


def _key(item: Any, index: int) -> str:
    """A list item's stable name: parameters by ``in``/``name``, the rest by position."""
    if isinstance(item, dict) and "name" in item:
        return f"{item.get('in', '')}:{item['name']}".lstrip(":")
    return str(index)


def flatten(node: Any, prefix: str = "", out: dict[str, str] | None = None) -> dict[str, str]:
    out = {} if out is None else out
    if isinstance(node, dict):
        for key, value in node.items():
            if key not in PROSE:
                flatten(value, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(node, list) and all(not isinstance(i, dict | list) for i in node):
        out[prefix] = json.dumps(sorted(node, key=str))  # enums, required: order is not meaning
    elif isinstance(node, list):
        for index, item in enumerate(node):
            flatten(item, f"{prefix}[{_key(item, index)}]", out)
    else:
        out[prefix] = json.dumps(node)
    return out


def _compare(operation: str, old: dict[str, str], new: dict[str, str]) -> list[Change]:
    return [
        Change(operation, field, old.get(field, ABSENT), new.get(field, ABSENT))
        for field in sorted(old.keys() | new.keys())
        if old.get(field) != new.get(field)
    ]


def openapi_changes(old: dict[str, Any], new: dict[str, Any], operations: tuple[str, ...]) -> list[Change]:
    changes: list[Change] = []
    for name in operations:
        before, after = openapi.operation(old, name), openapi.operation(new, name)
        if before is None and after is None:
            continue
        if before is None or after is None:
            gone = "present" if before is not None else ABSENT
            changes.append(Change(name, "(operation)", gone, "present" if after else ABSENT))
            continue
        changes += _compare(
            name,
            flatten(openapi.resolve(old, before)),
            flatten(openapi.resolve(new, after)),
        )
    return changes


_ARRAY = re.compile(r"^(?:Array of )+")


def _telegram_types(spec: dict[str, Any], names: list[str]) -> set[str]:
    """Every type reachable from ``names`` through fields and subtypes."""
    found: set[str] = set()
    pending = [_ARRAY.sub("", n) for n in names]
    while pending:
        name = pending.pop()
        kind = spec.get("types", {}).get(name)
        if name in found or kind is None:
            continue
        found.add(name)
        pending += kind.get("subtypes", [])
        for field in kind.get("fields", []):
            pending += [_ARRAY.sub("", t) for t in field.get("types", [])]
    return found


def _telegram_flat(entry: dict[str, Any] | None) -> dict[str, str]:
    if entry is None:
        return {}
    fields = {f["name"]: {k: v for k, v in f.items() if k != "name"} for f in entry.get("fields", [])}
    rest = {k: v for k, v in entry.items() if k not in ("fields", "name")}
    return flatten({**rest, "fields": fields})


def telegram_changes(old: dict[str, Any], new: dict[str, Any], methods: tuple[str, ...]) -> list[Change]:
    changes: list[Change] = []
    reached = _telegram_types(old, list(TELEGRAM_TYPES)) | _telegram_types(new, list(TELEGRAM_TYPES))
    for name in methods:
        before, after = old.get("methods", {}).get(name), new.get("methods", {}).get(name)
        changes += _compare(name, _telegram_flat(before), _telegram_flat(after))
        for spec, method in ((old, before), (new, after)):
            if method:
                types = [t for f in method.get("fields", []) for t in f.get("types", [])]
                reached |= _telegram_types(spec, [*method.get("returns", []), *types])
    for name in sorted(reached):
        before, after = old.get("types", {}).get(name), new.get("types", {}).get(name)
        changes += _compare(f"type {name}", _telegram_flat(before), _telegram_flat(after))
    return changes


def changes(provider: str, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """The changes in the operations ``provider``'s clients and stand-ins use."""
    if provider == "telegram":
        return telegram_changes(old, new, USED["telegram"])
    return openapi_changes(old, new, USED[provider])
