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


class _Adoption:
    """One adopt's reading of the repository, then the values, then the files; nothing written."""

    def __init__(self, request: AdoptRequest, root: Path, result: AdoptResult) -> None:
        self.request, self.root, self.result = request, root, result
        self.resolve = _Resolver(request, result.said)
        self.listed = bot_detection.files(root)
        path = root / "render.yaml"
        self.blueprint_text = path.read_text(encoding="utf-8") if path.is_file() else None
        self.blueprint = load_round_trip(self.blueprint_text) if self.blueprint_text is not None else None
        self.config_text, tables = _existing_config(root / "pyproject.toml")
        self.kept_prod: dict[str, Any] = tables.get("production", {})
        self.kept_staging: dict[str, Any] = tables.get("staging", {})
        self.service: Any = None  # the live web service in render.yaml, when there is one

    def said(self, kind: str, text: str) -> None:
        self.result.said.append((kind, text))

    def live_service(self) -> str:
        if self.blueprint is None:
            return self.resolve.value(
                "production service",
                given="service",
                default=re.sub(r"[^a-z0-9-]+", "-", self.root.name.lower()).strip("-") or "bot",
                why="no render.yaml: the folder's name; it must be your Render service's",
                question="your bot's Render service name",
            )
        configured = self.kept_prod.get("render_service")
        live = bot_detection.live_service(self.blueprint, given=self.request.service, configured=configured)
        self.service = next(s for s in bot_detection.web_services(self.blueprint) if s.get("name") == live.value)
        _refuse_secrets_and_outside_redis(self.service, live.value)
        self.said("detected", f"live web service `{live.value}` from {live.origin}: production, name kept")
        return live.value

    def commands(self, live: str) -> Commands:
        found = {
            "start": bot_detection.start_command(self.root, self.listed, self.service),
            "build": bot_detection.build_command(self.root, self.listed, self.service),
        }
        examples = {"start": "python -m bot", "build": "pip install -r requirements.txt"}
        chosen = {}
        for what in ("start", "build"):
            live_says, given = found[what], self.request.given.get(what)
            if live_says is not None and live_says.origin == "render.yaml" and given not in (None, live_says.value):
                raise InputError(
                    f"render.yaml already {what}s {live} as {live_says.value!r}; adopt keeps the live service's",
                    hint=f"change {what}Command in render.yaml yourself, or drop --{what}",
                )
            value = self.resolve.value(
                f"{what} command",
                given=what,
                found=found[what],
                default="",
                question=f"the command that {what}s your bot (e.g. {examples[what]})",
            )
            if not value:
                raise InputError(
                    f"no {what} command found (render.yaml, Procfile, a package with __main__.py, a lock file)",
                    hint=f"give it: ci-tools adopt PATH --{what} '{examples[what]}'",
                )
            chosen[what] = value
        manager = bot_detection.dependencies(self.root, self.listed)
        if manager is not None:
            self.said("detected", f"dependencies by {manager.value} ({manager.origin})")
        self.result.module = bot_detection.module_of(chosen["start"])
        if self.result.module:
            self.said("detected", f"module `{self.result.module}` (the start command runs it)")
        return Commands(build=chosen["build"], start=chosen["start"])

    def patterns(self) -> tuple[str, ...]:
        found = bot_detection.memory_patterns(self.root, self.listed)
        for finding in found:
            self.said("detected", f"memory key `{finding.value}` at {finding.origin}")
        if "memory_patterns" in self.kept_prod:
            kept = tuple(str(p) for p in self.kept_prod["memory_patterns"])
            self.said("kept", f"memory_patterns {list(kept)} (pyproject.toml)")
            return kept
        if found:
            return tuple(f.value for f in found)
        answer = ""
        if self.request.ask is not None:
            answer = self.request.ask("your bot's Redis keys for one user, comma-separated", DEFAULT_PATTERN, "--yes")
        patterns = tuple(p.strip() for p in (answer or DEFAULT_PATTERN).split(",") if p.strip())
        self.said("asked" if answer else "default", f"memory_patterns {list(patterns)}")
        if not answer:
            self.result.warnings.append(
                f"no Redis key with a user id found in the code: memory_patterns is {list(patterns)}; "
                "set yours in pyproject.toml, or the memory safety net keeps nothing of a user"
            )
        return patterns

    def health(self) -> str:
        """A health path the owner set is kept; none set ("" included) yields to the code's: adding
        the kit lines and running adopt again turns the health check on."""
        kept = self.kept_prod.get("health_path")
        if isinstance(kept, str) and kept:
            return self.resolve.value("health_path", kept=kept, default="")
        detected = bot_detection.health_path(self.root, self.listed)
        if detected is not None:
            return self.resolve.value("health_path", found=detected, default="")
        self.said("detected", 'no health endpoint (no kit.run_webhook, no /healthz route): health_path ""')
        return ""

    def environments(self, live: str, patterns: tuple[str, ...], health: str) -> tuple[EnvironmentPlan, ...]:
        prod_branch = str(self.kept_prod.get("branch") or (self.service or {}).get("branch") or "main")
        staging_branch = str(self.kept_staging.get("branch") or "develop")
        if prod_branch == staging_branch:
            raise InputError(
                f"the live service deploys {prod_branch}, the branch staging would deploy",
                hint="deploy production from main (Render → the service → Settings → Branch, and render.yaml)",
            )
        self.said("detected" if self.service else "default", f"production branch `{prod_branch}`")
        live_kv = bot_detection.key_value_of(self.service) if self.service is not None else None
        if live_kv:
            self.said("detected", f"Key Value `{live_kv}` (REDIS_URL of {live})")
        prod_kv = live_kv or str(self.kept_prod.get("key_value") or f"{live}-redis")
        staging_service = self.resolve.value(
            "staging service",
            kept=self.kept_staging.get("render_service"),
            default=f"{live}-dev",
            why=f"added, branch {staging_branch}",
        )
        staging_kv = self.resolve.value(
            "staging Key Value", kept=self.kept_staging.get("key_value"), default=f"{prod_kv}-dev", why="added"
        )
        production = _environment(
            self.resolve,
            _Role("production", "_bot", False, PLACEHOLDER_REVIEWERS),
            self.kept_prod,
            _Common(live, live, prod_kv, prod_branch, patterns, health),
        )
        staging = _environment(
            self.resolve,
            _Role("staging", "_dev_bot", True, (), ("feature/*",)),
            self.kept_staging,
            _Common(live, staging_service, staging_kv, staging_branch, patterns, health),
        )
        if "reviewers" not in self.kept_prod:
            self.said(
                "default",
                f"production reviewers {list(PLACEHOLDER_REVIEWERS)} (`ci-tools init --repo OWNER/NAME` "
                "puts the repository's owner there)",
            )
        self.said("default", f"probe turns {list(PROBE_TURNS)}, any reply passes")
        return production, staging

    def compose(self, source: Path) -> _Composed:
        live = self.live_service()
        commands = self.commands(live)
        patterns = self.patterns()
        self.result.health_path = health = self.health()
        production, staging = self.environments(live, patterns, health)
        flow = {
            staging.branch: ["feature/*", "fix/*", production.branch, "dependabot/**"],
            production.branch: [staging.branch, "hotfix/*"],
        }
        merged = merge_blueprint(self.blueprint_text, production, staging, commands)
        config = merge_config(self.config_text, [staging, production], flow, PROBE_TURNS)
        files = {"render.yaml": merged.text.encode(), "pyproject.toml": config.encode()}
        files |= self.copied(source)
        theirs = {env.name: env.render_service for env in (staging, production)}
        ours = _our_service_names(source)
        section = adopted_files.flow_section(source, {ours[env]: theirs[env] for env in theirs if ours.get(env)})
        contributing = self.root / "CONTRIBUTING.md"
        current = contributing.read_text(encoding="utf-8") if contributing.is_file() else None
        files["CONTRIBUTING.md"] = adopted_files.with_flow_section(current, section).encode()
        return _Composed(files, merged.changes)

    def copied(self, source: Path) -> dict[str, bytes]:
        copied, missing = adopted_files.copied_files(source)
        self.result.warnings += missing
        self.result.kit_vendored = any(name.startswith("release_kit/") for name in copied)
        clashes = adopted_files.clashes(self.root, copied)
        if clashes:
            more = f" (+{len(clashes) - 1} more)" if len(clashes) > 1 else ""
            raise InputError(
                f"{clashes[0]}{more} exists and was not written by ci-tools adopt",
                hint="rename yours (adopt writes the pipeline's file there), then run adopt again",
            )
        return copied


@dataclass(frozen=True)
class _Role:
    """What differs between the two environments adopt writes, by role rather than by name."""

    name: str
    bot_suffix: str  # the default username's: ava_bot, ava_dev_bot
    testers_only: bool
    reviewers: tuple[str, ...]
    more_branches: tuple[str, ...] = ()  # deployable besides its own branch (a feature, on staging)


@dataclass(frozen=True)
class _Common:
    live_service: str
    service: str
    key_value: str
    branch: str
    patterns: tuple[str, ...]
    health: str


def _environment(resolve: _Resolver, role: _Role, kept: Mapping[str, Any], common: _Common) -> EnvironmentPlan:
    bot = resolve.value(
        f"{role.name} bot",
        kept=kept.get("bot_username"),
        given=f"{role.name}_bot",
        default=_bot_username(common.live_service, role.bot_suffix),
        why="not in the code: `ci-tools init` reads the real one from the token",
        question=f"the {role.name} bot's username (without @)",
    )
    url = resolve.value(
        f"{role.name} address",
        kept=kept.get("base_url"),
        given=f"{role.name}_url",
        default=f"https://{common.service}.onrender.com",
        why="Render's default; `ci-tools init` reads the real one",
        question=f"the {role.name} service's address",
    )
    prefix = resolve.value(
        f"{role.name} key prefix",
        kept=kept.get("key_prefix"),
        default="",
        why="none: the keys as the bot writes them, in its environment's own Key Value",
    )
    return EnvironmentPlan(
        name=role.name,
        branch=common.branch,
        render_service=common.service,
        key_value=common.key_value,
        bot_username=bot.lstrip("@"),
        base_url=url.rstrip("/"),
        key_prefix=prefix,
        memory_patterns=common.patterns,
        health_path=common.health,
        deploy_branches=tuple(kept.get("deploy_branches") or (common.branch, *role.more_branches)),
        testers_only=role.testers_only and kept.get("testers_only", True) is True,
        reviewers=tuple(kept.get("reviewers") or role.reviewers),
    )


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
    composed = _Adoption(request, root, result).compose(source)
    result.changes = composed.changes
    _agrees(composed.files)
    for relative, data in composed.files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if write_if_changed(target, data):
            result.written.append(relative)
    return result
