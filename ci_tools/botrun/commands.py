"""What a bot is built and started with: its own render.yaml service, else what its tree shows.

The owner's bot is not ours: nothing here assumes a module name, uv or a webhook path. Render
runs a Python web service's ``buildCommand`` and ``startCommand`` from the repository root (or
the service's ``rootDir``) and health-checks ``healthCheckPath`` when it is set
(render.com/docs/blueprint-spec); so do we. A tree without render.yaml is read as a platform
reads a bare Python repository: a ``Procfile`` ``web:`` line, else the one package with a
``__main__.py``; the build follows the lock file it ships (uv.lock, poetry.lock) or
``requirements.txt``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ci_tools.errors import ConfigError

BLUEPRINT = "render.yaml"
# What each dependency file builds with when the tree names no build command of its own.
LOCK_BUILDS = (
    ("uv.lock", "uv sync --locked --no-default-groups"),
    ("poetry.lock", "poetry install --only main"),
    ("requirements.txt", "pip install -r requirements.txt"),
)
_PROCFILE_WEB = re.compile(r"^web:\s*(?P<command>\S.*)$", re.M)


@dataclass(frozen=True)
class BotCommands:
    """How one service is built and started, as its owner wrote it."""

    build: str  # "" builds nothing
    start: str
    health_path: str = ""  # "" : Render checks only that the port accepts connections
    root: str = ""  # the service's rootDir: where both commands run, relative to the tree
    env: Mapping[str, str] = field(default_factory=dict)  # the service's literal envVars (value:)
    service: str = ""  # the render.yaml service's name; "" when detected from the tree
    generated: tuple[str, ...] = ()  # envVars with generateValue: true (Render makes a random value)
    asked: Mapping[str, str] = field(default_factory=dict)  # envVars set elsewhere: key -> how (sync: false, ...)


def commands_of(tree: Path, service: str | None = None) -> BotCommands:
    """The commands of ``service`` in ``tree``'s render.yaml (the single web service when not
    named); without a render.yaml, detected from the tree. ConfigError names what is missing."""
    blueprint = tree / BLUEPRINT
    if blueprint.is_file():
        return from_blueprint(blueprint.read_text(encoding="utf-8", errors="replace"), service)
    if service:
        raise ConfigError(
            f"{tree.name} has no {BLUEPRINT}, so no service {service!r}",
            hint=f"add {BLUEPRINT} with that service, or leave --service out to detect the commands",
        )
    return detected(tree)


def from_blueprint(text: str, service: str | None = None) -> BotCommands:
    """The named (or single) web service of a render.yaml's text."""
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{BLUEPRINT} is not YAML ({type(exc).__name__})", hint="fix its syntax") from None
    declared = document.get("services") if isinstance(document, dict) else None
    webs = [s for s in declared or [] if isinstance(s, dict) and s.get("type") == "web"]
    names = [str(s.get("name", "")) for s in webs]
    if service:
        chosen = [s for s in webs if s.get("name") == service]
        if not chosen:
            raise ConfigError(
                f"{BLUEPRINT} has no web service {service!r} (it has: {', '.join(names) or 'none'})",
                hint="name one of its web services, or add that service to it",
            )
    elif not webs:
        raise ConfigError(
            f"{BLUEPRINT} has no web service (a bot is a service of type: web)",
            hint="add the bot's web service (type: web, buildCommand, startCommand) to it",
        )
    elif len(webs) != 1:
        raise ConfigError(
            f"{BLUEPRINT} has {len(webs)} web services ({', '.join(names) or 'none'}): which one is the bot?",
            hint="name it with --service NAME",
        )
    else:
        chosen = webs
    return _service(chosen[0])


def _service(spec: dict[str, Any]) -> BotCommands:
    name = _text(spec, "name", "")
    runtime = _text(spec, "runtime", name) or _text(spec, "env", name) or "python"
    if runtime != "python":
        raise ConfigError(
            f"service {name!r} runs on Render's {runtime!r} runtime; only Python services are run here",
            hint="run a Python web service (runtime: python)",
        )
    start = _text(spec, "startCommand", name).strip()
    if not start:
        raise ConfigError(f"service {name!r} has no startCommand", hint="set startCommand in render.yaml")
    health = _text(spec, "healthCheckPath", name)
    if health and not health.startswith("/"):
        raise ConfigError(f"service {name!r}: healthCheckPath {health!r} does not start with '/'", hint="fix it")
    env_vars = spec.get("envVars") or []
    if not isinstance(env_vars, list):
        raise ConfigError(
            f"service {name!r}: envVars is not a list (it is {type(env_vars).__name__})",
            hint="write envVars as a list of '- key: NAME' items",
        )
    literal = {
        str(item["key"]): str(item["value"])
        for item in env_vars
        if isinstance(item, dict) and "key" in item and "value" in item
    }
    declared = [item for item in env_vars if isinstance(item, dict) and "key" in item and "value" not in item]
    return BotCommands(
        build=_text(spec, "buildCommand", name).strip(),
        start=start,
        health_path=health,
        root=_root(_text(spec, "rootDir", name), name),
        env=literal,
        service=name,
        generated=tuple(str(item["key"]) for item in declared if item.get("generateValue")),
        asked={str(item["key"]): _how(item) for item in declared if not item.get("generateValue")},
    )


def _how(item: dict[str, Any]) -> str:
    """How a variable without a literal value gets one on Render: what check-bot cannot do."""
    if item.get("sync") is False:
        return "sync: false"
    return next((key for key in ("fromService", "fromDatabase", "fromGroup") if key in item), "no value")


def _text(spec: dict[str, Any], key: str, service: str) -> str:
    """A scalar field of a service as text ("" when absent); a list or a mapping is ConfigError."""
    value = spec.get(key)
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise ConfigError(
            f"service {service!r}: {key} is a {type(value).__name__}, not a string",
            hint=f"write {key} as one line of text",
        )
    return str(value)


def _root(root: str, service: str) -> str:
    """The rootDir, relative to the repository; one that climbs out of it is ConfigError (Render
    runs the commands in a folder of the repository: files outside it are not even there)."""
    parts = [part for part in root.strip().split("/") if part not in ("", ".")]
    depth = 0
    for part in parts:
        depth += -1 if part == ".." else 1
        if depth < 0:
            raise ConfigError(
                f"service {service!r}: rootDir {root!r} leaves the repository",
                hint="set rootDir to a folder inside the repository (or leave it out for the root)",
            )
    return "/".join(parts)


def detected(tree: Path) -> BotCommands:
    """A tree without render.yaml, read as a platform reads a bare Python repository."""
    build = next((command for name, command in LOCK_BUILDS if (tree / name).is_file()), "")
    procfile = tree / "Procfile"
    if procfile.is_file() and (found := _PROCFILE_WEB.search(procfile.read_text(errors="replace"))):
        return BotCommands(build=build, start=found["command"].strip())
    packages = sorted(p.parent.name for p in tree.glob("*/__main__.py") if (p.parent / "__init__.py").is_file())
    if len(packages) != 1:
        what = (
            f"{len(packages)} packages with a __main__.py ({', '.join(packages)})" if packages else "no start command"
        )
        raise ConfigError(
            f"{tree.name} has no {BLUEPRINT} and {what}",
            hint=f"add {BLUEPRINT} with the bot's web service (buildCommand, startCommand), or a Procfile web: line",
        )
    return BotCommands(build=build, start=f"python -m {packages[0]}")
