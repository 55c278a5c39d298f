"""``ci-tools adopt PATH``: put the release pipeline into an existing bot's repository.

The bot is the owner's and stays as it is: adopt reads its code (never writes it), takes its
live Render service as production, adds a staging twin built and started the same way, and
writes the pipeline's files beside the bot — the workflows, the kit, ``[tool.ci_tools]``, the
flow section of CONTRIBUTING.md. Every value is detected, kept from what the owner set, given,
asked or a default, and each is named with where it came from. Nothing is written until
every detection has succeeded and the result passes what ``ci-tools config check`` checks;
then the files that differ are written all together or not at all (``repo/file_set``), so a
failure half-way leaves the repository as it was and a second run changes nothing.
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
from ci_tools.repo import adopted_files, bot_detection, file_set
from ci_tools.repo.adopted_config import Commands, EnvironmentPlan, load_round_trip, merge_blueprint, merge_config
from ci_tools.repo.blueprint import blueprint_problems, load_blueprint
from ci_tools.repo.bot_detection import Finding
from ci_tools.repo.owner_files import PLACEHOLDER_REVIEWERS
from ci_tools.settings import BASE_URL, BOT_USERNAME, load_config, pattern_problem

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
    pin: str = ""  # what the setup action installs ci-tools from (--pin); "" this checkout's origin at HEAD


@dataclass
class AdoptResult:
    said: list[tuple[str, str]] = field(default_factory=list)  # (detected|kept|given|asked|default, what)
    written: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)  # what changed in the owner's own services
    warnings: list[str] = field(default_factory=list)
    module: str | None = None
    health_path: str = ""
    kit_vendored: bool = False


# A value's problem ("'x' is not a Telegram bot username (…)"), or None when it is fine.
Check = Callable[[str], str | None]
ASKED_AT_MOST = 3  # then the owner is told which flag gives it, rather than asked forever


def bot_problem(value: str) -> str | None:
    name = value.lstrip("@")
    if BOT_USERNAME.match(name):
        return None
    return f"{name!r} is not a Telegram bot username (5-32 letters, digits or underscores, ending in 'bot')"


def address_problem(value: str) -> str | None:
    if BASE_URL.match(value.rstrip("/")):
        return None
    return f"{value!r} is not an address (a scheme and host, e.g. https://ava-bot.onrender.com)"


def patterns_problem(value: str) -> str | None:
    for pattern in (p.strip() for p in value.split(",") if p.strip()):
        if problem := pattern_problem(pattern):
            return f"{pattern!r} {problem}"
    return None


@dataclass
class _Resolver:
    """Each value from the first source that has it, and a line saying which."""

    request: AdoptRequest
    said: list[tuple[str, str]]

    def asked(self, question: str, default: str, flag: str, check: Check | None) -> str:
        """The owner's answer, asked again (with what is wrong) while ``check`` finds a problem."""
        assert self.request.ask is not None
        shown = question
        for _ in range(ASKED_AT_MOST):
            answer = self.request.ask(shown, default, flag).strip()
            problem = check(answer) if check is not None and answer else None
            if problem is None:
                return answer
            shown = f"{problem}; {question}"
        raise InputError(f"{problem}, answered {ASKED_AT_MOST} times", hint=f"give {flag} instead")

    def value(
        self,
        what: str,
        *,
        kept: Any = None,
        given: str = "",
        found: Finding | None = None,
        check: Check | None = None,
        **ask: str,
    ) -> str:
        flag = f"--{given.replace('_', '-')}"
        if kept is not None:
            self.said.append(("kept", f"{what} {_shown(kept)} (pyproject.toml)"))
            return str(kept)
        if self.request.given.get(given):
            value = self.request.given[given]
            if check is not None and (problem := check(value)):
                raise InputError(f"{flag} {problem}", hint=f"correct it, e.g. {flag} {ask['default']}")
            self.said.append(("given", f"{what} {_shown(value)} ({flag})"))
            return value
        if found is not None:
            self.said.append(("detected", f"{what} {_shown(found.value)} from {found.origin}"))
            return found.value
        default, why = ask["default"], ask.get("why", "")
        if self.request.ask is not None and ask.get("question"):
            answer = self.asked(ask["question"], default, flag, check)
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


def read_text(path: Path) -> str | None:
    """A file of the owner's that adopt merges into (None: there is none), as UTF-8 text."""
    if not path.is_file():
        return None
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path.name} is not UTF-8 text (byte {data[exc.start]:#x} at {exc.start})",
            hint=f"save {path.name} as UTF-8 (adopt merges into it), then run adopt again",
        ) from None


def _existing_config(text: str | None) -> dict[str, Any]:
    """pyproject.toml's ``[tool.ci_tools.environments]`` tables (none: no pyproject.toml)."""
    if text is None:
        return {}
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"pyproject.toml is not valid TOML ({exc})", hint="fix it, then run adopt again") from None
    tables = data.get("tool", {}).get("ci_tools", {}).get("environments", {})
    tables = tables if isinstance(tables, dict) else {}
    for name, table in tables.items():
        _refuse_kept_of_the_wrong_kind(name, table)
    return tables


# What adopt keeps of [tool.ci_tools.environments.*], by the kind each must be: a value of another
# kind is refused, never turned into one (``"main"`` read as a list is ["m", "a", "i", "n"]).
KEPT_STRINGS = ("branch", "render_service", "key_value", "bot_username", "base_url", "key_prefix", "health_path")
KEPT_LISTS = ("deploy_branches", "reviewers", "memory_patterns")


def _refuse_kept_of_the_wrong_kind(name: str, table: Any) -> None:
    where = f"pyproject.toml: [tool.ci_tools.environments.{name}]"
    fix = "correct it (adopt keeps what you set there), then run adopt again"
    if not isinstance(table, dict):
        raise InputError(f"{where} must be a table", hint=fix)
    for key in KEPT_STRINGS:
        if key in table and not isinstance(table[key], str):
            raise InputError(f"{where} {key} must be a string, not {table[key]!r}", hint=fix)
    for key in KEPT_LISTS:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise InputError(f"{where} {key} must be a list of strings, not {value!r}", hint=fix)
    if not isinstance(table.get("testers_only", True), bool):
        raise InputError(f"{where} testers_only must be true or false", hint=fix)


def _bot_username(service: str, suffix: str) -> str:
    base = re.sub(r"[^A-Za-z0-9_]", "_", service).strip("_")
    base = re.sub(r"(?i)_?bot$", "", base) or "my"
    if not base[0].isalpha():
        base = f"tg_{base}"
    base = base.ljust(3, "x")[: 32 - len(suffix)]
    name = f"{base}{suffix}"
    return name if BOT_USERNAME.match(name) else f"my{suffix}"


def _refuse_a_malformed_service(service: Any, name: str) -> None:
    """What adopt reads and merges of the live service, each of the kind Render takes: one line
    naming the field, never a reshaped value (``str(['python', '-m', 'bot'])`` as its command)."""
    fix = "correct render.yaml (Render's Blueprint reference: render.com/docs/blueprint-spec), then run adopt again"
    for key in ("branch", "buildCommand", "startCommand", "healthCheckPath"):
        if service.get(key) is not None and not isinstance(service[key], str):
            raise InputError(f"render.yaml: {name}'s {key} must be text, not {service[key]!r}", hint=fix)
    variables = service.get("envVars")
    # an item is a variable (key: …) or an environment group's (fromGroup: …), as Render takes both
    if variables is not None and (
        not isinstance(variables, list)
        or not all(isinstance(var, dict) and ("key" in var or "fromGroup" in var) for var in variables)
    ):
        raise InputError(
            f"render.yaml: {name}'s envVars must be a list of variables (key: …), not {variables!r}", hint=fix
        )


def _refuse_secrets_and_outside_redis(service: Any, name: str) -> None:
    _refuse_a_malformed_service(service, name)
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
        self.crlf: set[str] = set()  # the owner's files saved with CRLF: written back with CRLF
        self.blueprint_text = self.read("render.yaml")
        self.blueprint = load_round_trip(self.blueprint_text) if self.blueprint_text is not None else None
        self.config_text = self.read("pyproject.toml")
        tables = _existing_config(self.config_text)
        self.kept_prod: dict[str, Any] = tables.get("production", {})
        self.kept_staging: dict[str, Any] = tables.get("staging", {})
        self.service: Any = None  # the live web service in render.yaml, when there is one

    def read(self, name: str) -> str | None:
        """One of the owner's files adopt merges into, with ``\n`` line endings whatever it was saved with."""
        text = read_text(self.root / name)
        if text is not None and "\r\n" in text:
            self.crlf.add(name)
            text = text.replace("\r\n", "\n")
        return text

    def encoded(self, name: str, text: str) -> bytes:
        """``text`` as the owner's file ``name`` was saved: a merge never turns every line of it over."""
        return (text.replace("\n", "\r\n") if name in self.crlf else text).encode()

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
            question = "your bot's Redis keys for one user, comma-separated"
            where = "memory_patterns in pyproject.toml ([tool.ci_tools.environments.production])"
            answer = self.resolve.asked(question, DEFAULT_PATTERN, where, patterns_problem)
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

    def twin(self, live: str) -> tuple[Any, Finding | None, Finding | None]:
        """The staging twin the owner runs already (render.yaml's ``<live>-dev``): the service, and its
        Key Value and branch as findings (a Key Value shared with production, or production's branch,
        is not staging's)."""
        name = f"{live}-dev"
        twin = next((s for s in bot_detection.web_services(self.blueprint) if s.get("name") == name), None)
        if twin is None:
            return None, None, None
        _refuse_a_malformed_service(twin, name)
        kv, branch = bot_detection.key_value_of(twin), twin.get("branch")
        live_kv = bot_detection.key_value_of(self.service) if self.service is not None else None
        live_branch = (self.service or {}).get("branch") or "main"
        return (
            twin,
            Finding(kv, f"render.yaml (REDIS_URL of {name})") if kv and kv != live_kv else None,
            Finding(branch, f"render.yaml ({name}'s)") if branch and branch != live_branch else None,
        )

    def environments(self, live: str, patterns: tuple[str, ...], health: str) -> tuple[EnvironmentPlan, ...]:
        prod_branch = str(self.kept_prod.get("branch") or (self.service or {}).get("branch") or "main")
        twin, twin_kv, twin_branch = self.twin(live) if self.blueprint is not None else (None, None, None)
        if "branch" in self.kept_staging or twin_branch is None:
            staging_branch = str(self.kept_staging.get("branch") or "develop")
        else:
            staging_branch = self.resolve.value("staging branch", found=twin_branch, default="develop")
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
            found=Finding(f"{live}-dev", "render.yaml (the live service's twin)") if twin is not None else None,
            default=f"{live}-dev",
            why=f"added, branch {staging_branch}",
        )
        staging_kv = self.resolve.value(
            "staging Key Value",
            kept=self.kept_staging.get("key_value"),
            found=twin_kv,
            default=f"{prod_kv}-dev",
            why="added",
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
        self.result.warnings += self.deploying_themselves((production.render_service, staging.render_service))
        merged = merge_blueprint(self.blueprint_text, production, staging, commands)
        config = merge_config(self.config_text, [staging, production], flow, PROBE_TURNS, staging.branch)
        files = {
            "render.yaml": self.encoded("render.yaml", merged.text),
            "pyproject.toml": self.encoded("pyproject.toml", config),
        }
        files |= self.copied(source)
        theirs = {env.name: env.render_service for env in (staging, production)}
        ours = _our_service_names(source)
        section = adopted_files.flow_section(source, {ours[env]: theirs[env] for env in theirs if ours.get(env)})
        current = self.read("CONTRIBUTING.md")
        files["CONTRIBUTING.md"] = self.encoded("CONTRIBUTING.md", adopted_files.with_flow_section(current, section))
        return _Composed(files, merged.changes)

    def deploying_themselves(self, released: tuple[str, ...]) -> list[str]:
        """The other services render.yaml builds from this repository that Render still deploys on
        each push (a worker running the bot's code): named, since the pipeline does not release them."""
        if self.blueprint is None:
            return []
        found = []
        for service in self.blueprint.get("services") or []:
            if not isinstance(service, dict) or service.get("name") in released or {"repo", "image"} & set(service):
                continue
            if service.get("type") not in ("web", "worker", "pserv", "cron"):
                continue
            if str(service.get("autoDeployTrigger", "commit")) == "off" or service.get("autoDeploy") is False:
                continue
            found.append(
                f"{service.get('name')} ({service.get('type')}) deploys itself from this repository on each push: "
                f"the pipeline releases {released[0]} only (set its autoDeployTrigger yourself if it runs the "
                "bot's code)"
            )
        return found

    def pin(self, source: Path) -> str:
        """The pin, from --pin or this checkout, named with where it came from (never asked: the
        default is the pipeline these files were copied from)."""
        if self.request.pin:
            pin = adopted_files.given_pin(self.request.pin.strip())
            self.said("given", f"ci-tools installed from `{pin.source}` (--pin)")
        else:
            pin = adopted_files.default_pin(source)
            self.said("default", f"ci-tools installed from `{pin.source}` ({pin.origin}; another: --pin)")
        self.result.warnings += pin.warnings
        return pin.source

    def copied(self, source: Path) -> dict[str, bytes]:
        copied, missing = adopted_files.copied_files(source, self.pin(source))
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
        check=bot_problem,
    )
    url = resolve.value(
        f"{role.name} address",
        kept=kept.get("base_url"),
        given=f"{role.name}_url",
        default=f"https://{common.service}.onrender.com",
        why="Render's default; `ci-tools init` reads the real one",
        question=f"the {role.name} service's address",
        check=address_problem,
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
        # what the owner set on this environment alone is theirs (the resolver named production's)
        memory_patterns=tuple(kept["memory_patterns"]) if "memory_patterns" in kept else common.patterns,
        health_path=str(kept.get("health_path") or common.health),
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
    result.written = file_set.write_all(root, composed.files)
    return result
