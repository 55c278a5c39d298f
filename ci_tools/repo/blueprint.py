"""render.yaml must describe the same services, branches and prefixes as ``[tool.ci_tools]``.

Two files describe one system; if they drift, a deploy hook of one service ends
up deploying the other environment's branch. This check keeps them in step.

How the bot is built and started (``buildCommand``, ``startCommand``, the runtime) is the
owner's, never the pipeline's: any bot on Render may be released. What the pipeline holds
it to is that staging and production build and start it the same way (staging proves what
production will run), that Render checks the health endpoint the pipeline reads, that the
pipeline is the only deployer, and that each environment has its own Key Value that never
drops memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ci_tools.errors import ConfigError
from ci_tools.settings import Config, Environment

SECRET_VARS = ("TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET")
SERVICE_TYPES = {"web", "pserv", "worker", "cron", "keyvalue", "redis"}
# What makes two services run the same program: Render builds and starts each from these (the
# pre-deploy command runs the new commit before each start: a migration staging never ran is unproven).
BUILT_THE_SAME = (
    "runtime",
    "rootDir",
    "dockerfilePath",
    "dockerContext",
    "buildCommand",
    "preDeployCommand",
    "startCommand",
)
RUNS_THE_BOT = ("buildCommand", "startCommand")  # the pipeline builds and starts the bot by these


def load_blueprint(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} not found", hint="render.yaml belongs at the repository root") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path.name} is not valid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(data, dict) or not isinstance(data.get("services"), list):
        raise ConfigError(f"{path.name} has no services list")
    return data


def _env_vars(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(var.get("key")): var for var in service.get("envVars", []) if isinstance(var, dict)}


def _toolchain(service: dict[str, Any]) -> dict[str, Any]:
    """The versions Render builds with (PYTHON_VERSION, UV_VERSION, POETRY_VERSION, …)."""
    return {key: var.get("value") for key, var in _env_vars(service).items() if key.endswith("_VERSION")}


def blueprint_problems(config: Config, blueprint: dict[str, Any]) -> list[str]:
    """Every way render.yaml disagrees with the config or the pipeline's rules; empty when fine."""
    problems: list[str] = []
    services = {s.get("name"): s for s in blueprint["services"] if isinstance(s, dict)}
    for name, service in services.items():
        if service.get("type") not in SERVICE_TYPES:
            problems.append(f"service {name!r} has unknown type {service.get('type')!r}")
    found: dict[str, dict[str, Any]] = {}
    for env in config.environments.values():
        if env.render_service not in services:
            problems.append(f"no service named {env.render_service!r} (environment {env.name})")
            continue
        found[env.name] = services[env.render_service]
        problems += _service_problems(env, found[env.name], services)
    problems += _same_way_problems(config, found)
    redis_names = [
        (_env_vars(services[e.render_service]).get("REDIS_URL", {}).get("fromService") or {}).get("name")
        for e in config.environments.values()
        if e.render_service in services
    ]
    if len(set(redis_names)) != len(redis_names):
        problems.append("two environments share one Key Value instance; each needs its own")
    return problems


def _service_problems(env: Environment, service: dict[str, Any], services: dict[Any, Any]) -> list[str]:
    problems: list[str] = []
    where = f"service {env.render_service}"
    expected = {"type": "web", "branch": env.branch, "autoDeployTrigger": "off"}
    for key, value in expected.items():
        if service.get(key) != value:
            problems.append(f"{where}: {key} is {service.get(key)!r}, expected {value!r}")
    if "autoDeploy" in service:
        problems.append(f"{where}: use autoDeployTrigger: 'off', not the legacy autoDeploy")
    for key in RUNS_THE_BOT:
        if not (isinstance(service.get(key), str) and service[key].strip()):
            problems.append(f"{where}: {key} is missing (the pipeline builds and starts the bot as Render does)")
    health = service.get("healthCheckPath")
    if env.health_path and health != env.health_path:
        problems.append(
            f"{where}: healthCheckPath is {health!r}, expected {env.health_path!r} "
            f"(the health_path of {env.name}: Render calls a deploy live when the pipeline's endpoint answers)"
        )
    variables = _env_vars(service)
    if env.testers_only:
        for allowlist in ("TESTER_IDS", "PRODUCTION_BOT"):
            var = variables.get(allowlist)
            if var is None or var.get("sync") is not False:
                problems.append(f"{where}: {allowlist} must be declared with sync: false (the tester allowlist)")
    if variables.get("ENV", {}).get("value") != env.name:
        problems.append(f"{where}: ENV must be {env.name!r}")
    if variables.get("KEY_PREFIX", {}).get("value") != env.key_prefix_variable:
        problems.append(f"{where}: KEY_PREFIX must be {env.key_prefix_variable!r}")
    for secret in SECRET_VARS:
        var = variables.get(secret)
        if var is None or var.get("sync") is not False or "value" in var:
            problems.append(f"{where}: {secret} must be declared with sync: false and no value")
    source = variables.get("REDIS_URL", {}).get("fromService") or {}
    redis_name = source.get("name")
    if source.get("type") != "keyvalue" or source.get("property") != "connectionString":
        problems.append(f"{where}: REDIS_URL must come fromService type keyvalue, property connectionString")
    if redis_name != env.key_value:
        problems.append(f"{where}: REDIS_URL comes from {redis_name!r}, but key_value is {env.key_value!r}")
    kv = services.get(redis_name)
    if kv is None or kv.get("type") != "keyvalue":
        problems.append(f"{where}: REDIS_URL names {redis_name!r}, which is not a keyvalue service")
        return problems
    if kv.get("maxmemoryPolicy") != "noeviction":
        problems.append(f"keyvalue {redis_name}: maxmemoryPolicy must be noeviction")
    if kv.get("ipAllowList") != []:
        problems.append(f"keyvalue {redis_name}: ipAllowList must be [] (no outside access)")
    return problems


def _same_way_problems(config: Config, found: dict[str, dict[str, Any]]) -> list[str]:
    """Staging proves what production will run only when both build and start it the same way."""
    if len(found) < 2:
        return []
    first_name, first = next(iter(found.items()))
    first_service = config.environments[first_name].render_service
    problems: list[str] = []
    for name, service in list(found.items())[1:]:
        other = config.environments[name].render_service
        for key in (*BUILT_THE_SAME, "healthCheckPath"):
            if service.get(key) != first.get(key):
                problems.append(
                    f"services {first_service} and {other} differ in {key} "
                    f"({first.get(key)!r} and {service.get(key)!r}): staging must run what production runs"
                )
        if _toolchain(service) != _toolchain(first):
            problems.append(
                f"services {first_service} and {other} build with different versions "
                f"({_toolchain(first)} and {_toolchain(service)}): staging must run what production runs"
            )
    return problems


def check_blueprint(config: Config, path: Path | None = None) -> Path:
    path = path or config.path.with_name("render.yaml")
    problems = blueprint_problems(config, load_blueprint(path))
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(
            f"{path.name} disagrees with {config.path.name}: {problems[0]}{more}",
            hint="run `ci-tools config check` for the full list",
        )
    return path
