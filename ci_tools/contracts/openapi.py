"""Reading OpenAPI descriptions: one operation with its ``$ref``s inlined, and a subset cut.

GitHub's full description is 13 MB; the project vendors only the operations it calls plus
every component they reach, which is what ``subset`` cuts (``ci-tools contracts cut``).
Examples are dropped there: they are prose for people, and half the size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ci_tools.errors import InputError

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
DROPPED = frozenset({"example", "examples"})


def load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no file {path}", hint="name an API description that exists") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not JSON ({exc})", hint="give the description as JSON") from None
    if not isinstance(data, dict):
        raise InputError(f"{path} is not an API description", hint="give a JSON object")
    return data


def split(operation: str) -> tuple[str, str]:
    method, _, path = operation.partition(" ")
    return method.lower(), path


def operation(spec: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The operation ``"GET /path"`` with its path-level parameters folded in; None if absent."""
    method, path = split(name)
    item = spec.get("paths", {}).get(path)
    if not isinstance(item, dict) or method not in item:
        return None
    found = dict(item[method])
    if item.get("parameters"):
        found["parameters"] = [*item["parameters"], *found.get("parameters", [])]
    return found


def _target(spec: dict[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise InputError(f"external $ref {ref!r}", hint="only local references are supported")
    node: Any = spec
    for part in ref[2:].split("/"):
        key = unquote(part).replace("~1", "/").replace("~0", "~")
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


def resolve(spec: dict[str, Any], node: Any, _stack: tuple[str, ...] = ()) -> Any:
    """``node`` with every ``$ref`` inlined; a reference back into itself stays a ``$ref``."""
    if isinstance(node, list):
        return [resolve(spec, item, _stack) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        if ref in _stack:
            return {"$ref": ref}
        return resolve(spec, _target(spec, ref), (*_stack, ref))
    return {k: resolve(spec, v, _stack) for k, v in node.items() if k not in DROPPED}


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref)
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for item in node:
            _refs(item, found)


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k not in DROPPED}
    if isinstance(node, list):
        return [_strip(item) for item in node]
    return node


def subset(spec: dict[str, Any], operations: tuple[str, ...]) -> dict[str, Any]:
    """The description cut to ``operations`` and the components they reach, examples dropped."""
    paths: dict[str, dict[str, Any]] = {}
    for name in operations:
        method, path = split(name)
        item = spec.get("paths", {}).get(path, {})
        if method not in item:
            raise InputError(f"{name} is not in the description", hint="check the operation")
        kept = paths.setdefault(path, {k: v for k, v in item.items() if k not in METHODS})
        kept[method] = item[method]
    paths = _strip(paths)
    components: dict[str, dict[str, Any]] = {}
    pending: set[str] = set()
    _refs(paths, pending)
    seen: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        _, section, name = ref[2:].split("/", 2)  # "#/components/<section>/<name>"
        value = _strip(_target(spec, ref))
        components.setdefault(section, {})[name] = value
        _refs(value, pending)
    return {
        "openapi": spec.get("openapi"),
        "info": spec.get("info"),
        "servers": spec.get("servers"),
        "paths": paths,
        "components": {s: dict(sorted(v.items())) for s, v in sorted(components.items())},
    }
