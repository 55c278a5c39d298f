"""The three files an owner's setup lives in, edited in place: ``[tool.ci_tools]``, ``render.yaml``, ``.env``.

``ci-tools init`` writes what it discovered into them. Each edit keeps the file's comments,
order and quoting (tomlkit, ruamel.yaml), changes only the values it owns, and writes
nothing when nothing differs, so a second ``init`` is a no-op. ``.env`` holds the
secrets ``github setup`` uploads: it is created mode 0600 and never printed.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from dotenv import dotenv_values
from ruamel.yaml import YAML

from ci_tools.errors import ConfigError
from ci_tools.settings import NO_PREFIX

PLACEHOLDER_REVIEWERS = ("mindmate-owner",)  # what the repository ships: nobody's login


@dataclass(frozen=True)
class EnvironmentFacts:
    """What init found for one environment: the names and addresses the config and Blueprint hold."""

    name: str
    render_service: str
    bot_username: str
    base_url: str
    key_prefix: str
    key_value: str
    region: str
    service_plan: str
    key_value_plan: str
    reviewers: tuple[str, ...] = ()  # replaces the shipped placeholder only (who approves production)


def write_if_changed(path: Path, text: str | bytes, *, mode: int | None = None) -> bool:
    """Replace ``path`` atomically when ``text`` differs; ``mode`` is set before any byte is written
    (default: the file's own, or 0644 for a new one: a temporary file is made 0600)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    if path.is_file() and path.read_bytes() == data:
        return False
    if mode is None:
        mode = path.stat().st_mode & 0o777 if path.is_file() else 0o644
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return True


# -- pyproject.toml ----------------------------------------------------------------------------
def edit_config(path: Path, facts: Mapping[str, EnvironmentFacts], protected_user: int | None) -> bool:
    """Each environment's service, bot, address, prefix and Key Value; the daily user protected."""
    document = tomlkit.parse(path.read_text(encoding="utf-8"))
    section: Any = document.setdefault("tool", tomlkit.table()).setdefault("ci_tools", tomlkit.table())
    environments: Any = section.setdefault("environments", tomlkit.table(is_super_table=True))
    for env, found in facts.items():
        table = environments.setdefault(env, tomlkit.table())
        wanted = {
            "render_service": found.render_service,
            "bot_username": found.bot_username,
            "base_url": found.base_url,
            "key_prefix": found.key_prefix,
        }
        if found.key_value != f"{found.render_service}-redis" or "key_value" in table:
            wanted["key_value"] = found.key_value
        for key, value in wanted.items():
            if table.get(key) != value:
                table[key] = value
        current = list(table.get("reviewers", []))
        if found.reviewers and current in ([], list(PLACEHOLDER_REVIEWERS)) and current != list(found.reviewers):
            table["reviewers"] = list(found.reviewers)
    if protected_user is not None:
        backup: Any = section.setdefault("memory_backup", tomlkit.table())
        users = backup.setdefault("protected_users", tomlkit.array())
        if protected_user not in users:
            users.append(protected_user)
    return write_if_changed(path, tomlkit.dumps(document))


# -- render.yaml -------------------------------------------------------------------------------
def round_trip_yaml() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096  # never fold a long line the file wrote on one
    return yaml


def _set(mapping: Any, key: str, value: Any) -> None:
    if mapping.get(key) != value:
        mapping[key] = value


def edit_blueprint(path: Path, facts: Mapping[str, EnvironmentFacts], previous: Mapping[str, tuple[str, str]]) -> bool:
    """Rename the services and Key Values to this owner's, with their region, plan and KEY_PREFIX.

    ``previous`` maps each environment to the (service, Key Value) names the Blueprint has now.
    """
    yaml = round_trip_yaml()
    data = yaml.load(path.read_text(encoding="utf-8"))
    services = {str(entry.get("name")): entry for entry in data.get("services", [])}
    for env, found in facts.items():
        old_service, old_kv = previous[env]
        service = services.get(old_service) or services.get(found.render_service)
        kv = services.get(old_kv) or services.get(found.key_value)
        if service is None or kv is None:
            raise ConfigError(
                f"{path.name} has no service {old_service!r} or Key Value {old_kv!r} for {env}",
                hint="restore render.yaml from the repository, then run ci-tools init again",
            )
        _set(service, "name", found.render_service)
        _set(service, "region", found.region)
        _set(service, "plan", found.service_plan)
        for var in service.get("envVars", []):
            if var.get("key") == "KEY_PREFIX":
                _set(var, "value", found.key_prefix or NO_PREFIX)
            if var.get("key") == "REDIS_URL" and isinstance(var.get("fromService"), dict):
                _set(var["fromService"], "name", found.key_value)
        _set(kv, "name", found.key_value)
        _set(kv, "region", found.region)
        _set(kv, "plan", found.key_value_plan)
    out = io.StringIO()
    yaml.dump(data, out)
    return write_if_changed(path, out.getvalue())


# -- .env --------------------------------------------------------------------------------------
def read_dotenv(path: Path) -> dict[str, str]:
    """What a .env holds (python-dotenv's reading: quotes, ``export``, comments), unset names dropped."""
    if not path.is_file():
        return {}
    return {name: value for name, value in dotenv_values(path).items() if value}


def _quoted(value: str) -> str:
    if "'" in value or "\n" in value:
        raise ConfigError("a value for .env holds a quote or a line break", hint="check the value you gave")
    return f"'{value}'"


HEADER = (
    "# Written by `ci-tools init` (mode 0600, git-ignored): the secrets `ci-tools github setup --apply`\n"
    "# puts into each GitHub environment. Never commit it. Re-running init keeps every value here.\n"
)


def write_dotenv(path: Path, values: Mapping[str, str]) -> bool:
    """``values`` sorted into ``NAME='value'`` lines, mode 0600 from the first byte."""
    lines = [HEADER, *(f"{name}={_quoted(value)}\n" for name, value in sorted(values.items()))]
    changed = write_if_changed(path, "".join(lines), mode=0o600)
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)  # a .env made by hand, group- or world-readable
        return True
    return changed


def ensure_ignored(root: Path, name: str = ".env") -> bool:
    """``name`` in the repository's .gitignore, so that ``git add -A`` never takes the secrets."""
    ignore = root / ".gitignore"
    lines = ignore.read_text(encoding="utf-8").splitlines() if ignore.exists() else []
    if name in (line.strip() for line in lines) or f"/{name}" in lines:
        return False
    return write_if_changed(ignore, "\n".join([*lines, name]) + "\n")
