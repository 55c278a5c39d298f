"""GitHub's sprawling objects, complete: what its description requires, filled in plausibly.

A repository has about 75 required fields, a pull request about 40 with two more
repositories inside. The stand-in sets what the pipeline reads (names, ids, branches,
permissions, states) and this fills in the rest the way GitHub does: ``*_url`` fields under
the object's own API URL, ``node_id``s, timestamps, zero counts, ``null`` where the
description allows it. Everything comes from the vendored description, so a field GitHub
adds as required is filled in the next time the copy is vendored.
"""

from __future__ import annotations

import functools
import json
import zlib
from typing import Any

from ci_tools.contracts import SPECS
from ci_tools.contracts.openapi import resolve

CREATED = "2026-01-05T09:00:00Z"
API = "https://api.github.com"


@functools.cache
def _spec() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SPECS / "github-api.json").read_text(encoding="utf-8"))
    return data


@functools.cache
def schema(name: str) -> dict[str, Any]:
    found: dict[str, Any] = resolve(_spec(), _spec()["components"]["schemas"][name])
    return found


def complete(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """``given`` with every field the schema ``name`` requires and ``given`` lacks, filled in."""
    return _fill(schema(name), given, str(given.get("url", API)))


def _fill(node: dict[str, Any], given: dict[str, Any], base: str) -> dict[str, Any]:
    for key in ("allOf",):
        if key in node:
            merged: dict[str, Any] = dict(given)
            for part in node[key]:
                merged = _fill(part, merged, base)
            return merged
    if "anyOf" in node or "oneOf" in node:
        return _fill((node.get("anyOf") or node["oneOf"])[0], given, base)
    out = dict(given)
    properties = node.get("properties", {})
    for key, value in list(out.items()):
        sub = properties.get(key, {})
        if isinstance(value, dict) and (sub.get("properties") or sub.get("allOf")):
            out[key] = _fill(sub, value, str(value.get("url", base)))
    for key in node.get("required", []):
        if key not in out:
            out[key] = _value(key, properties.get(key, {}), base)
    return out


def _value(key: str, node: dict[str, Any], base: str) -> Any:
    if node.get("nullable"):
        return None
    kind = node.get("type")
    if "enum" in node:
        return node["enum"][0]
    if kind == "string":
        if node.get("format") == "date-time" or key.endswith("_at"):
            return CREATED
        if key.endswith("_url") or key == "url" or node.get("format") == "uri":
            return f"{base}/{key.removesuffix('_url')}" if key != "url" else base
        if key == "node_id":
            return f"N_kgDO{zlib.crc32(base.encode()):010d}"
        return ""
    if kind == "integer" or kind == "number":
        return 0
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    if kind == "object" or "properties" in node or "allOf" in node or "anyOf" in node or "oneOf" in node:
        return _fill(node, {}, base)
    return None


def user(login: str, user_id: int) -> dict[str, Any]:
    """A public user (``simple-user`` and ``public-user`` share these)."""
    return {
        "login": login,
        "id": user_id,
        "type": "User",
        "site_admin": False,
        "url": f"{API}/users/{login}",
        "html_url": f"https://github.com/{login}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id}?v=4",
        "gravatar_id": "",
        "node_id": f"U_kgDO{user_id:08d}",
    }


def repository(full_name: str, repo_id: int, owner: dict[str, Any], **fields: Any) -> dict[str, Any]:
    name = full_name.split("/")[1]
    return {
        "id": repo_id,
        "node_id": f"R_kgDO{repo_id:08d}",
        "name": name,
        "full_name": full_name,
        "owner": owner,
        "private": False,
        "url": f"{API}/repos/{full_name}",
        "html_url": f"https://github.com/{full_name}",
        "clone_url": f"https://github.com/{full_name}.git",
        "git_url": f"git://github.com/{full_name}.git",
        "ssh_url": f"git@github.com:{full_name}.git",
        "svn_url": f"https://github.com/{full_name}",
        "visibility": "public",
        "created_at": CREATED,
        "updated_at": CREATED,
        "pushed_at": CREATED,
        "has_issues": True,
        "has_projects": False,
        "has_wiki": False,
        "has_pages": False,
        "has_downloads": True,
        "has_discussions": False,
        "license": None,
        **fields,
    }
