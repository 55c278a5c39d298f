"""``ci-tools adopt PATH``: put the release pipeline into an existing bot's repository.

The bot is the owner's and stays as it is: adopt reads its code (never writes it), takes its
live Render service as production, adds a staging twin built and started the same way, and
writes the pipeline's files beside the bot — the workflows, the kit, ``[tool.ci_tools]``, the
flow section of CONTRIBUTING.md. Every value is detected, kept from what the owner set, given,
asked or a default, and each is named with where it came from. Nothing is written until
every detection has succeeded and the result passes what ``ci-tools config check`` checks;
each file is replaced atomically and only when it differs, so a second run changes nothing.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_tools.errors import ConfigError, FatalError, InputError
from ci_tools.repo import adopted_files, bot_detection
from ci_tools.repo.adopted_config import Commands, EnvironmentPlan, load_round_trip, merge_blueprint, merge_config
from ci_tools.repo.blueprint import blueprint_problems, load_blueprint
from ci_tools.repo.bot_detection import Finding
from ci_tools.repo.owner_files import PLACEHOLDER_REVIEWERS, write_if_changed
from ci_tools.settings import BOT_USERNAME, load_config

# (question, default, the flag that gives it) -> the answer; raises when nobody can be asked
Ask = Callable[[str, str, str], str]
PROBE_TURNS = ("/start",)
DEFAULT_PATTERN = "user:{user_id}"  # when the code shows none: named as a default to correct


@dataclass(frozen=True)
class AdoptRequest:
    path: Path
    service: str | None = None  # the live web service, when render.yaml has several
    given: Mapping[str, str] = field(default_factory=dict)  # production_bot, staging_url, start, build, …
    ask: Ask | None = None  # None: ask nothing (--yes), every value a detection or a named default


@dataclass
class AdoptResult:
    said: list[tuple[str, str]] = field(default_factory=list)  # (detected|kept|given|asked|default, what)
    written: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)  # what changed in the owner's own services
    warnings: list[str] = field(default_factory=list)
    module: str | None = None
    health_path: str = ""
    kit_vendored: bool = False


@dataclass
class _Resolver:
    """Each value from the first source that has it, and a line saying which."""

    request: AdoptRequest
    said: list[tuple[str, str]]

    def value(self, what: str, *, kept: Any = None, given: str = "", found: Finding | None = None, **ask: str) -> str:
        if kept is not None:
            self.said.append(("kept", f"{what} {_shown(kept)} (pyproject.toml)"))
            return str(kept)
        if self.request.given.get(given):
            self.said.append(("given", f"{what} {_shown(self.request.given[given])} (--{given.replace('_', '-')})"))
            return self.request.given[given]
        if found is not None:
            self.said.append(("detected", f"{what} {_shown(found.value)} from {found.origin}"))
            return found.value
        default, why = ask["default"], ask.get("why", "")
        if self.request.ask is not None and ask.get("question"):
            answer = self.request.ask(ask["question"], default, f"--{given.replace('_', '-')}").strip()
            if answer:
                self.said.append(("asked", f"{what} {_shown(answer)}"))
                return answer
        self.said.append(("default", f"{what} {_shown(default)}" + (f" ({why})" if why else "")))
        return default


def _shown(value: Any) -> str:
    return f"`{value}`" if value != "" else '""'


def _git_root(path: Path) -> Path:
    if not path.is_dir():
        raise InputError(f"{path} is not a directory", hint="give the path of your bot's repository")
    found = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=False
    )
    if found.returncode != 0:
        raise InputError(
            f"{path} is not a git repository",
            hint="run `git init` there first: adopt writes files you review with `git diff`",
        )
    root = Path(found.stdout.strip()).resolve()
    if root != path.resolve():
        raise InputError(f"{path} is inside the git repository {root}", hint=f"give its root: ci-tools adopt {root}")
    return root


def _existing_config(path: Path) -> tuple[str | None, dict[str, Any]]:
    """pyproject.toml's text (None: none) and its ``[tool.ci_tools.environments]`` tables."""
    if not path.is_file():
        return None, {}
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"pyproject.toml is not valid TOML ({exc})", hint="fix it, then run adopt again") from None
    tables = data.get("tool", {}).get("ci_tools", {}).get("environments", {})
    return text, tables if isinstance(tables, dict) else {}


def _bot_username(service: str, suffix: str) -> str:
    base = re.sub(r"[^A-Za-z0-9_]", "_", service).strip("_")
    base = re.sub(r"(?i)_?bot$", "", base) or "my"
    if not base[0].isalpha():
        base = f"tg_{base}"
    base = base.ljust(3, "x")[: 32 - len(suffix)]
    name = f"{base}{suffix}"
    return name if BOT_USERNAME.match(name) else f"my{suffix}"


def _refuse_secrets_and_outside_redis(service: Any, name: str) -> None:
    for var in service.get("envVars") or []:
        if isinstance(var, dict) and var.get("key") == "TELEGRAM_BOT_TOKEN" and "value" in var:
            raise InputError(
                f"render.yaml holds {name}'s TELEGRAM_BOT_TOKEN value: a secret in git",
                hint="revoke it (@BotFather → /revoke), set the new one in Render's dashboard, "
                "declare it with sync: false, then run adopt again",
            )
    if bot_detection.key_value_of(service) is None:
        raise InputError(
            f"{name} gets no REDIS_URL from a Render Key Value in render.yaml: "
            "the pipeline keeps a user's memory safe in one",
            hint="add your Key Value to render.yaml and REDIS_URL fromService (type keyvalue, property "
            "connectionString), then run adopt again",
        )


@dataclass
class _Composed:
    files: dict[str, bytes]
    changes: list[str]
    plans: tuple[EnvironmentPlan, EnvironmentPlan]


def _compose(request: AdoptRequest, root: Path, source: Path, result: AdoptResult) -> _Composed:
    resolve = _Resolver(request, result.said)
    listed = bot_detection.files(root)
    blueprint_path = root / "render.yaml"
    current_blueprint = blueprint_path.read_text(encoding="utf-8") if blueprint_path.is_file() else None
    blueprint = load_round_trip(current_blueprint) if current_blueprint is not None else None
    config_text, tables = _existing_config(root / "pyproject.toml")
    kept_prod, kept_staging = tables.get("production", {}), tables.get("staging", {})

    service: Any = None
    if blueprint is not None:
        live = bot_detection.live_service(blueprint, given=request.service, configured=kept_prod.get("render_service"))
        service = next(s for s in bot_detection.web_services(blueprint) if s.get("name") == live.value)
        _refuse_secrets_and_outside_redis(service, live.value)
        result.said.append(("detected", f"live web service `{live.value}` from {live.origin}: production, name kept"))
        production_service = live.value
    else:
        production_service = resolve.value(
            "production service",
            given="service",
            default=re.sub(r"[^a-z0-9-]+", "-", root.name.lower()).strip("-") or "bot",
            why="no render.yaml: the folder's name; it must be your Render service's",
            question="your bot's Render service name",
        )

    start = resolve.value(
        "start command",
        given="start",
        found=bot_detection.start_command(root, listed, service),
        default="",
        question="the command that starts your bot (e.g. python -m bot)",
    )
    build = resolve.value(
        "build command",
        given="build",
        found=bot_detection.build_command(root, listed, service),
        default="",
        question="the command that installs your bot (e.g. pip install -r requirements.txt)",
    )
    for what, value, flag in (("start", start, "--start"), ("build", build, "--build")):
        if not value:
            raise InputError(
                f"no {what} command found (render.yaml, Procfile, a package with __main__.py, a lock file)",
                hint=f"give it: ci-tools adopt PATH {flag} '…'",
            )
        if service is not None and request.given.get(what) and request.given[what] != value:
            raise InputError(
                f"render.yaml already {what}s {production_service} as {value!r}; adopt keeps the live service's",
                hint=f"change {what}Command in render.yaml yourself, or drop {flag}",
            )
    manager = bot_detection.dependencies(root, listed)
    if manager is not None:
        result.said.append(("detected", f"dependencies by {manager.value} ({manager.origin})"))
    result.module = bot_detection.module_of(start)
    if result.module:
        result.said.append(("detected", f"module `{result.module}` (the start command runs it)"))

    patterns_found = bot_detection.memory_patterns(root, listed)
    for found in patterns_found:
        result.said.append(("detected", f"memory key `{found.value}` at {found.origin}"))
    if "memory_patterns" in kept_prod:
        patterns = tuple(str(p) for p in kept_prod["memory_patterns"])
        result.said.append(("kept", f"memory_patterns {list(patterns)} (pyproject.toml)"))
    elif patterns_found:
        patterns = tuple(f.value for f in patterns_found)
    else:
        answer = ""
        if request.ask is not None:
            answer = request.ask("your bot's Redis keys for one user, comma-separated", DEFAULT_PATTERN, "--yes")
        patterns = tuple(p.strip() for p in (answer or DEFAULT_PATTERN).split(",") if p.strip())
        result.said.append(("asked" if answer else "default", f"memory_patterns {list(patterns)}"))
        if not answer:
            result.warnings.append(
                f"no Redis key with a user id found in the code: memory_patterns is {list(patterns)}; "
                "set yours in pyproject.toml, or the memory safety net keeps nothing of a user"
            )

    detected_health = bot_detection.health_path(root, listed)
    kept_health = kept_prod.get("health_path")
    if isinstance(kept_health, str) and kept_health:
        health = resolve.value("health_path", kept=kept_health, default="")
    elif detected_health is not None:
        health = resolve.value("health_path", found=detected_health, default="")
    else:
        health = ""
        result.said.append(("detected", 'no health endpoint (no kit.run_webhook, no /healthz route): health_path ""'))
    result.health_path = health

    prod_branch = str(kept_prod.get("branch") or (service or {}).get("branch") or "main")
    staging_branch = str(kept_staging.get("branch") or "develop")
    if prod_branch == staging_branch:
        raise InputError(
            f"the live service deploys {prod_branch}, the branch staging would deploy",
            hint="deploy production from main (Render → the service → Settings → Branch, and render.yaml)",
        )
    result.said.append(("detected" if service else "default", f"production branch `{prod_branch}`"))
    live_kv = bot_detection.key_value_of(service) if service is not None else None
    prod_kv = live_kv or str(kept_prod.get("key_value") or f"{production_service}-redis")
    if live_kv:
        result.said.append(("detected", f"Key Value `{live_kv}` (REDIS_URL of {production_service})"))
    staging_service = resolve.value(
        "staging service",
        kept=kept_staging.get("render_service"),
        default=f"{production_service}-dev",
        why=f"added, branch {staging_branch}",
    )
    staging_kv = resolve.value(
        "staging Key Value", kept=kept_staging.get("key_value"), default=f"{prod_kv}-dev", why="added"
    )
    default_deploy = {"production": [prod_branch], "staging": [staging_branch, "feature/*"]}
    default_reviewers = {"production": PLACEHOLDER_REVIEWERS, "staging": ()}
    plans = []
    for name, kept, service_name, kv, branch, suffix in (
        ("production", kept_prod, production_service, prod_kv, prod_branch, "_bot"),
        ("staging", kept_staging, staging_service, staging_kv, staging_branch, "_dev_bot"),
    ):
        bot = resolve.value(
            f"{name} bot",
            kept=kept.get("bot_username"),
            given=f"{name}_bot",
            default=_bot_username(production_service, suffix),
            why="not in the code: `ci-tools init` reads the real one from the token",
            question=f"the {name} bot's username (without @)",
        )
        url = resolve.value(
            f"{name} address",
            kept=kept.get("base_url"),
            given=f"{name}_url",
            default=f"https://{service_name}.onrender.com",
            why="Render's default; `ci-tools init` reads the real one",
            question=f"the {name} service's address",
        )
        prefix = resolve.value(
            f"{name} key prefix",
            kept=kept.get("key_prefix"),
            default="",
            why="none: the keys as the bot writes them, in its environment's own Key Value",
        )
        plans.append(
            EnvironmentPlan(
                name=name,
                branch=branch,
                render_service=service_name,
                key_value=kv,
                bot_username=bot.lstrip("@"),
                base_url=url.rstrip("/"),
                key_prefix=prefix,
                memory_patterns=patterns,
                health_path=health,
                deploy_branches=tuple(kept.get("deploy_branches") or default_deploy[name]),
                testers_only=name == "staging" and kept.get("testers_only", True) is True,
                reviewers=tuple(kept.get("reviewers") or default_reviewers[name]),
            )
        )
    production, staging = plans
    if "reviewers" not in kept_prod:
        result.said.append(
            (
                "default",
                f"production reviewers {list(PLACEHOLDER_REVIEWERS)} (`ci-tools init --repo OWNER/NAME` "
                "puts the repository's owner there)",
            )
        )
    result.said.append(("default", f"probe turns {list(PROBE_TURNS)}, any reply passes"))

    flow = {
        staging_branch: ["feature/*", "fix/*", prod_branch, "dependabot/**"],
        prod_branch: [staging_branch, "hotfix/*"],
    }
    merged = merge_blueprint(current_blueprint, production, staging, Commands(build=build, start=start))
    config = merge_config(config_text, [staging, production], flow, PROBE_TURNS)
    files = {"render.yaml": merged.text.encode(), "pyproject.toml": config.encode()}
    copied, missing = adopted_files.copied_files(source)
    result.warnings += missing
    result.kit_vendored = any(name.startswith("release_kit/") for name in copied)
    files |= copied
    clashes = adopted_files.clashes(root, copied)
    if clashes:
        more = f" (+{len(clashes) - 1} more)" if len(clashes) > 1 else ""
        raise InputError(
            f"{clashes[0]}{more} exists and was not written by ci-tools adopt",
            hint="rename yours (adopt writes the pipeline's file there), then run adopt again",
        )
    ours = _our_service_names(source)
    theirs = {"staging": staging_service, "production": production_service}
    section = adopted_files.flow_section(source, {ours[env]: theirs[env] for env in theirs if ours.get(env)})
    contributing = root / "CONTRIBUTING.md"
    current = contributing.read_text(encoding="utf-8") if contributing.is_file() else None
    files["CONTRIBUTING.md"] = adopted_files.with_flow_section(current, section).encode()
    return _Composed(files, merged.changes, (staging, production))


def _our_service_names(source: Path) -> dict[str, str]:
    """This checkout's own service names, which the copied flow section names in place of theirs."""
    try:
        config = load_config(source / "pyproject.toml")
    except FatalError:
        return {}
    return {name: env.render_service for name, env in config.environments.items()}


def _agrees(files: Mapping[str, bytes]) -> None:
    """What ``ci-tools config check`` would say of the composed files, before any is written."""
    with tempfile.TemporaryDirectory(prefix="ci-tools-adopt-") as folder:
        for name in ("pyproject.toml", "render.yaml"):
            (Path(folder) / name).write_bytes(files[name])
        try:
            config = load_config(Path(folder) / "pyproject.toml")
            problems = blueprint_problems(config, load_blueprint(Path(folder) / "render.yaml"))
        except FatalError as exc:
            problems = [exc.message]
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(
            f"adopt would leave `ci-tools config check` failing: {problems[0]}{more}",
            hint="fix that in your pyproject.toml or render.yaml (adopt keeps what you set), then run adopt again",
        )


def adopt(request: AdoptRequest) -> AdoptResult:
    """Detect, compose every file, check the result, then write what differs."""
    source = adopted_files.checkout()
    path = request.path.expanduser()
    if not path.exists():
        raise InputError(f"{path} does not exist", hint="give the path of your bot's repository")
    root = _git_root(path)
    if root == source.resolve():
        raise InputError(
            f"{root} is the release pipeline's own repository: it has the pipeline already",
            hint="give the path of your bot's repository",
        )
    result = AdoptResult()
    composed = _compose(request, root, source, result)
    result.changes = composed.changes
    _agrees(composed.files)
    for relative, data in composed.files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if write_if_changed(target, data):
            result.written.append(relative)
    return result
