"""The pipeline's facts: environments and branch flow from ``[tool.ci_tools]`` (secrets: ``context``).

Non-secret facts live in pyproject.toml so a reviewer can see in one diff which
branch deploys where and which bot belongs to which service. Secrets never live in
files: they come from environment variables (GitHub *environment* secrets in
Actions, with the same names in both environments).
"""

from __future__ import annotations

import itertools
import re
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_tools.errors import ConfigError

DEFAULT_FLOW = {
    "develop": ("feature/*", "fix/*", "main", "dependabot/**"),
    "main": ("develop", "hotfix/*"),
}

_ENV_FIELDS = ("branch", "render_service", "bot_username", "base_url")
# What an environment is for, by role rather than by name: renaming "production" must not
# silently turn off its rollback. The defaults keep today's behaviour for the two names.
ROLES = {
    "rollback_on_failed_probe": "production",  # a release whose probe fails is rolled back
    "cutover_target": "production",  # the real users' bot: cutover, acceptance, the safety net
    "accepts_feature_branches": "staging",  # a feature/* branch may be released to it
    "testers_only": "staging",  # its bot serves TESTER_IDS only (preflight, render.yaml)
}
_OPTIONAL_FIELDS = (
    "key_prefix",
    "memory_patterns",
    "health_path",
    "probe_user_id",
    "key_value",
    "reviewers",
    "deploy_branches",
    "bake_minutes",
    "bake_interval_seconds",
    "quiet_seconds",
    "quiet_wait_minutes",
    *ROLES,
)
# The reserved probe user: Telegram user ids fit in 52 bits and are handed out far below
# this one, so no real person has it. The bot's PROBE_USER_ID defaults to the same value.
DEFAULT_PROBE_USER_ID = 2**52 - 1
BOT_USERNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,30}[Bb][Oo][Tt]$")
BASE_URL = re.compile(r"^https?://[^/\s]+$")  # a service's address: scheme and host, nothing after


NO_PREFIX = "none"  # the bot's KEY_PREFIX for unprefixed keys (mindmate/settings.py says the same)


@dataclass(frozen=True)
class Environment:
    """One deploy target: a Render service, its bot, its Redis key prefix."""

    name: str
    branch: str
    render_service: str
    bot_username: str
    base_url: str
    key_prefix: str  # "" for a legacy bot that never prefixed its keys
    memory_patterns: tuple[str, ...]
    health_path: str = "/healthz"  # "" when the bot has no health endpoint (checks skip it)
    probe_user_id: int = DEFAULT_PROBE_USER_ID
    key_value: str = ""  # its Render Key Value instance (default: "<render_service>-redis")
    reviewers: tuple[str, ...] = ()  # GitHub users who approve a deploy (production)
    deploy_branches: tuple[str, ...] = ()  # branch patterns its GitHub environment accepts
    rollback_on_failed_probe: bool = False
    cutover_target: bool = False
    accepts_feature_branches: bool = False
    testers_only: bool = False
    # After a release's probe passes, the new commit is watched this long (its own failure counts,
    # Telegram's delivery, the conversation probe) and rolled back on a failure of its own.
    bake_minutes: float = 0.0  # default: 10 where a failed probe rolls back (production), else 0
    bake_interval_seconds: float = 30.0
    # Before the deploy, wait while the bot handled an update less than quiet_seconds ago (the
    # daily user is mid-conversation), at most quiet_wait_minutes (ci_tools/pipeline/quiet.py).
    quiet_seconds: float = 0.0  # default: 120 where the real users are (production), else 0
    quiet_wait_minutes: float = 15.0

    @property
    def key_prefix_variable(self) -> str:
        """KEY_PREFIX as the bot reads it on Render: ``none`` spells the legacy empty prefix
        (an empty variable would mean "the environment's default")."""
        return self.key_prefix or NO_PREFIX

    @property
    def health_url(self) -> str | None:
        return f"{self.base_url}{self.health_path}" if self.health_path else None

    def owns_webhook(self, url: str) -> bool:
        """Is ``url`` (getWebhookInfo's) on this service? Any path: the webhook's path is the bot's
        own choice (mindmate's ``/telegram``, python-telegram-bot's token), its host is not."""
        return url == self.base_url or url.startswith(f"{self.base_url}/")

    def memory_keys(self, user_id: int, prefix: str | None = None) -> list[str]:
        """The user's key patterns with the id filled in, under ``prefix`` (default: ours)."""
        prefix = self.key_prefix if prefix is None else prefix
        return [prefix + pattern.format(user_id=user_id) for pattern in self.memory_patterns]


@dataclass(frozen=True)
class MemoryBackup:
    """The memory safety net: whose memory is snapshotted, how often, how long it is kept."""

    environment: str = ""  # "" = the environment with cutover_target (production)
    before_release_days: int | None = None  # memory-before-<sha>; None: the rollback window
    nightly_days: int = 30  # memory-nightly-<date>
    nightly_at: str = "03:17"  # UTC; scheduler.yml's cron says the same (tests/repo/test_workflow_files.py)
    max_mb: int = 100  # over this, only the protected users' keys are snapshotted
    protected_users: tuple[int, ...] = ()

    def cron(self) -> str:
        hour, minute = self.nightly_at.split(":")
        return f"{int(minute)} {int(hour)} * * *"


@dataclass(frozen=True)
class Watch:
    """The scheduled watch of production between releases (watch.yml)."""

    interval_minutes: int = 30  # scheduler.yml's cron says the same (tests/repo/test_workflow_files.py)

    def cron(self) -> str:
        every = self.interval_minutes
        return f"*/{every} * * * *" if every < 60 else f"0 */{every // 60} * * *"


@dataclass(frozen=True)
class Replay:
    """The replay stage before a production release: the protected users' conversation, replayed
    on a private copy of their memory by the live commit and the candidate (production.yml).
    Each commit's bot is started as its own render.yaml says (``startCommand``), not as here."""

    enabled: bool = True
    turns: tuple[str, ...] = ("/start", "/recall")  # what each protected user says, in order
    ignore: tuple[str, ...] = ()  # regular expressions masked on both sides (timestamps, ids)
    start_timeout: float = 30.0  # seconds a bot may take to answer /healthz


@dataclass(frozen=True)
class Move:
    """The daily user's move from the old bot (staging's, legacy keys) to the new one (README runbook).

    ``finish-move`` (runbook step 9) makes the old bot the testers' staging bot no earlier than
    ``window_days`` after the daily user's first message to the new bot; until then ``send-back``
    can put them back on the old bot, which tells them so in ``send_back_text``."""

    window_days: float = 3.0
    old_bot_prefix: str = "dev:"  # the old bot's own key prefix once it serves testers only
    send_back_text: str = "Let's continue here for now."


@dataclass(frozen=True)
class CI:
    """The bot's own tests, which ci.yml runs on every push and pull request (``ci-tools ci run``).

    The pipeline knows nothing of how a bot is tested: the owner names one shell command, run in
    the repository's root (``bash -c``). None (the default) is a choice too: the job says that no
    tests are configured and passes, so an owner without tests is not blocked by a red check."""

    test_command: str | None = None


@dataclass(frozen=True)
class ProbeTalk:
    """What the probe says as the reserved probe user at the conversation level ([tool.ci_tools.probe]).

    ``{nonce}`` in a turn or in ``expect`` is the probe's fresh nonce, so an answer can only come
    from this probe's own turns: ``expect`` is what the last turn's reply must contain ("" = any
    reply). The default asks only that the bot answers ``/start``; mindmate's pyproject stores a
    fact and reads it back, so its probe proves memory too."""

    turns: tuple[str, ...] = ("/start",)
    expect: str = ""


@dataclass(frozen=True)
class Config:
    path: Path
    environments: dict[str, Environment]
    flow: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_FLOW))
    default_branch: str = "develop"  # GitHub's default branch: where dependabot's security PRs go
    rollback_window_days: int = 14  # how long the old bot is kept after the cutover (plan: 1 to 2 weeks)
    memory_backup: MemoryBackup = field(default_factory=MemoryBackup)
    watch: Watch = field(default_factory=Watch)
    replay: Replay = field(default_factory=Replay)
    move: Move = field(default_factory=Move)
    ci: CI = field(default_factory=CI)
    probe: ProbeTalk = field(default_factory=ProbeTalk)

    @property
    def before_release_days(self) -> int:
        """How long the snapshot taken before a release is kept (default: the rollback window)."""
        return self.memory_backup.before_release_days or self.rollback_window_days

    def env(self, name: str) -> Environment:
        """The environment called ``name``; an unknown one is an error that lists the known ones."""
        try:
            return self.environments[name]
        except KeyError:
            known = ", ".join(sorted(self.environments))
            raise ConfigError(
                f"unknown environment {name!r}",
                hint=f"use one of: {known} (defined under [tool.ci_tools.environments] in {self.path.name})",
            ) from None

    def role(self, flag: str) -> Environment:
        """The environment whose ``flag`` (a key of ROLES) is set; one must be."""
        found = [e for e in self.environments.values() if getattr(e, flag)]
        if len(found) != 1:
            raise ConfigError(
                f"{self.path.name}: {len(found)} environments have {flag} = true; exactly one must",
                hint=f"set {flag} = true under the one [tool.ci_tools.environments.<name>] it is",
            )
        return found[0]

    def env_for_branch(self, branch: str) -> Environment | None:
        return next((e for e in self.environments.values() if e.branch == branch), None)


def find_pyproject(start: Path | None = None, *, override: Path | None = None) -> Path:
    """``override`` (``CI_TOOLS_CONFIG``) if given, else the nearest pyproject.toml at or above ``start``."""
    if override:
        path = Path(override)
        if not path.is_file():
            raise ConfigError(
                f"CI_TOOLS_CONFIG points to {override}, which is not a file",
                hint="unset it or point it at the project's pyproject.toml",
            )
        return path
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"no pyproject.toml found at or above {here}",
        hint="run ci-tools from the repository, or set CI_TOOLS_CONFIG",
    )


def load_config(path: Path | None = None) -> Config:
    path = path or find_pyproject()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", hint="fix the file's TOML syntax") from None
    section = data.get("tool", {}).get("ci_tools")
    if not isinstance(section, dict):
        raise ConfigError(
            f"{path} has no [tool.ci_tools] section", hint="add the environments table (see docs/CONFIGURATION.md)"
        )
    environments = _parse_environments(section.get("environments"), path)
    flow = _parse_flow(section.get("flow", DEFAULT_FLOW), path)
    _check_consistency(environments, path)
    window = section.get("rollback_window_days", 14)
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ConfigError(f"{path.name}: [tool.ci_tools] rollback_window_days must be a whole number of days ≥ 1")
    default_branch = section.get("default_branch", "develop")
    if not isinstance(default_branch, str) or default_branch not in flow:
        raise ConfigError(
            f"{path.name}: [tool.ci_tools] default_branch {default_branch!r} is not a base branch of the flow",
            hint="dependabot's security updates open PRs into it, so it must accept dependabot/**: use develop",
        )
    backup = _parse_memory_backup(section.get("memory_backup", {}), environments, path)
    return Config(
        path=path,
        environments=environments,
        flow=flow,
        rollback_window_days=window,
        default_branch=default_branch,
        memory_backup=backup,
        watch=_parse_watch(section.get("watch", {}), path),
        replay=_parse_replay(section.get("replay", {}), path),
        move=_parse_move(section.get("move", {}), path),
        ci=_parse_ci(section.get("ci", {}), path),
        probe=_parse_probe(section.get("probe", {}), path),
    )


def _parse_move(raw: Any, path: Path) -> Move:
    where = f"{path.name}: [tool.ci_tools.move]"
    known = set(Move.__dataclass_fields__)
    if not isinstance(raw, dict) or set(raw) - known:
        raise ConfigError(f"{where} takes only {', '.join(sorted(known))}")
    defaults = Move()
    days = raw.get("window_days", defaults.window_days)
    prefix = raw.get("old_bot_prefix", defaults.old_bot_prefix)
    text = raw.get("send_back_text", defaults.send_back_text)
    if not isinstance(days, int | float) or isinstance(days, bool) or not 0 <= days <= 90:
        raise ConfigError(f"{where}: window_days must be a number of days from 0 to 90", hint="e.g. 3")
    if not isinstance(prefix, str) or not prefix.endswith(":"):
        raise ConfigError(f"{where}: old_bot_prefix must be a key prefix ending with ':'", hint='e.g. "dev:"')
    if not isinstance(text, str) or not text.strip() or len(text) > 4096:
        raise ConfigError(f"{where}: send_back_text must be a message of 1 to 4096 characters")
    return Move(float(days), prefix, text.strip())


def _parse_ci(raw: Any, path: Path) -> CI:
    where = f"{path.name}: [tool.ci_tools.ci]"
    if not isinstance(raw, dict) or set(raw) - {"test_command"}:
        raise ConfigError(f"{where} takes only test_command", hint='e.g. test_command = "python -m pytest"')
    command = raw.get("test_command")
    if command is None:
        return CI()
    if not isinstance(command, str) or not command.strip() or "\0" in command:
        raise ConfigError(
            f"{where}: test_command must be a shell command as one string, or left out for no tests",
            hint='e.g. test_command = "pip install -r requirements.txt pytest && python -m pytest"',
        )
    return CI(command.strip())


def _parse_probe(raw: Any, path: Path) -> ProbeTalk:
    where = f"{path.name}: [tool.ci_tools.probe]"
    if not isinstance(raw, dict) or set(raw) - {"turns", "expect"}:
        raise ConfigError(f"{where} takes only turns and expect")
    turns = raw.get("turns", list(ProbeTalk.turns))
    expect = raw.get("expect", ProbeTalk.expect)
    if not isinstance(turns, list) or not turns or not all(isinstance(t, str) and t.strip() for t in turns):
        raise ConfigError(f"{where}: turns must be a non-empty list of messages", hint='e.g. ["/start"]')
    if not isinstance(expect, str):
        raise ConfigError(f"{where}: expect must be a string", hint='e.g. "probe-{nonce}", or "" for any reply')
    if "{nonce}" in expect and not any("{nonce}" in t for t in turns):
        raise ConfigError(
            f"{where}: expect names {{nonce}} but no turn says it, so no reply could contain it",
            hint='e.g. turns = ["/start", "/remember probe-{nonce}", "/recall"]',
        )
    return ProbeTalk(tuple(t.strip() for t in turns), expect)


def _parse_replay(raw: Any, path: Path) -> Replay:
    where = f"{path.name}: [tool.ci_tools.replay]"
    known = {"enabled", "turns", "ignore", "start_timeout"}
    if isinstance(raw, dict) and "module" in raw:
        raise ConfigError(
            f"{where}: module is no longer read: each commit's bot starts as its render.yaml's startCommand says",
            hint="remove the module line",
        )
    if not isinstance(raw, dict) or set(raw) - known:
        raise ConfigError(f"{where} takes only {', '.join(sorted(known))}")
    defaults = Replay()
    enabled = raw.get("enabled", defaults.enabled)
    turns = raw.get("turns", list(defaults.turns))
    ignore = raw.get("ignore", [])
    timeout = raw.get("start_timeout", defaults.start_timeout)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}: enabled must be true or false")
    if not isinstance(turns, list) or not all(isinstance(t, str) and t.strip() for t in turns):
        raise ConfigError(f"{where}: turns must be a list of messages", hint='e.g. ["/start", "/recall"]')
    if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
        raise ConfigError(f"{where}: ignore must be a list of regular expressions", hint=r'e.g. ["\\d{2}:\\d{2}"]')
    for pattern in ignore:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{where}: ignore pattern {pattern!r} is not a regular expression ({exc})") from None
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        raise ConfigError(f"{where}: start_timeout must be a number of seconds")
    return Replay(enabled, tuple(t.strip() for t in turns), tuple(ignore), float(timeout))


def _parse_watch(raw: Any, path: Path) -> Watch:
    where = f"{path.name}: [tool.ci_tools.watch]"
    if not isinstance(raw, dict) or set(raw) - {"interval_minutes"}:
        raise ConfigError(f"{where} takes only interval_minutes")
    every = raw.get("interval_minutes", Watch.interval_minutes)
    if (
        not isinstance(every, int)
        or isinstance(every, bool)
        or every not in (5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 720)
    ):
        raise ConfigError(
            f"{where}: interval_minutes must divide an hour or a day evenly, from 5 to 720",
            hint="GitHub runs schedules at most every 5 minutes; e.g. 30",
        )
    return Watch(every)


def _parse_memory_backup(raw: Any, environments: dict[str, Environment], path: Path) -> MemoryBackup:
    where = f"{path.name}: [tool.ci_tools.memory_backup]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(raw) - set(MemoryBackup.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
    defaults = MemoryBackup()
    targets = [e.name for e in environments.values() if e.cutover_target]
    env = raw.get("environment") or (targets[0] if targets else "")
    if env not in environments:
        raise ConfigError(
            f"{where}: environment {env!r} is not an environment",
            hint=f"use one of: {', '.join(environments)}",
        )

    def days(name: str, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 90:
            raise ConfigError(
                f"{where}: {name} must be a whole number of days from 1 to 90",
                hint="GitHub keeps artifacts at most 90 days",
            )
        return value

    before = raw.get("before_release_days")
    at = raw.get("nightly_at", defaults.nightly_at)
    if not isinstance(at, str) or not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", at):
        raise ConfigError(f'{where}: nightly_at must be HH:MM in UTC, e.g. "03:17"')
    max_mb = raw.get("max_mb", defaults.max_mb)
    if not isinstance(max_mb, int) or isinstance(max_mb, bool) or max_mb < 1:
        raise ConfigError(f"{where}: max_mb must be a whole number of megabytes ≥ 1")
    users = raw.get("protected_users", [])
    if not isinstance(users, list) or not all(isinstance(u, int) and not isinstance(u, bool) and u > 0 for u in users):
        raise ConfigError(f"{where}: protected_users must be a list of Telegram user ids", hint="e.g. [123456789]")
    return MemoryBackup(
        environment=env,
        before_release_days=None if before is None else days("before_release_days", before),
        nightly_days=days("nightly_days", raw.get("nightly_days", defaults.nightly_days)),
        nightly_at=at,
        max_mb=max_mb,
        protected_users=tuple(users),
    )


def _parse_environments(raw: Any, path: Path) -> dict[str, Environment]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(
            f"{path.name}: [tool.ci_tools.environments] is missing or empty",
            hint="define at least staging and production",
        )
    environments = {}
    for name, table in raw.items():
        where = f"{path.name}: [tool.ci_tools.environments.{name}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table")
        missing = [key for key in _ENV_FIELDS if not isinstance(table.get(key), str) or not table[key]]
        if missing:
            raise ConfigError(f"{where} lacks {', '.join(missing)}", hint="add them as strings")
        unknown = set(table) - {*_ENV_FIELDS, *_OPTIONAL_FIELDS}
        if unknown:
            raise ConfigError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
        patterns = table.get("memory_patterns")
        if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) for p in patterns):
            raise ConfigError(
                f"{where}: memory_patterns must be a non-empty list of strings containing {{user_id}}",
                hint='e.g. ["user:{user_id}:history", "memory:{user_id}"]',
            )
        for pattern in patterns:
            if problem := pattern_problem(pattern):
                raise ConfigError(
                    f"{where}: memory pattern {pattern!r} {problem}",
                    hint='use {user_id} exactly once and no other {…}, e.g. "memory:{user_id}"',
                )
        prefix = table.get("key_prefix")
        if not isinstance(prefix, str) or (prefix and not prefix.endswith(":")):
            raise ConfigError(
                f"{where}: key_prefix must be a string ending with ':' (e.g. 'dev:'), "
                'or "" for a bot whose keys carry no prefix'
            )
        health_path = table.get("health_path", "/healthz")
        if not isinstance(health_path, str) or (health_path and not health_path.startswith("/")):
            raise ConfigError(
                f"{where}: health_path must start with '/' (e.g. '/healthz'), or be \"\" to skip the health check"
            )
        if not BASE_URL.match(table["base_url"].rstrip("/")):
            raise ConfigError(f"{where}: base_url must be a scheme and host, e.g. https://mindmate-prod.onrender.com")
        if not BOT_USERNAME.match(table["bot_username"]):
            raise ConfigError(
                f"{where}: bot_username {table['bot_username']!r} is not a Telegram bot username",
                hint="5-32 letters, digits or underscores, ending in 'bot', without '@'",
            )
        environments[name] = Environment(
            name=name,
            branch=table["branch"],
            render_service=table["render_service"],
            bot_username=table["bot_username"],
            base_url=table["base_url"].rstrip("/"),
            key_prefix=prefix,
            memory_patterns=tuple(patterns),
            health_path=health_path,
            probe_user_id=_probe_user_id(table.get("probe_user_id", DEFAULT_PROBE_USER_ID), where),
            key_value=str(table.get("key_value") or f"{table['render_service']}-redis"),
            reviewers=_strings(table.get("reviewers", []), f"{where}: reviewers"),
            deploy_branches=_strings(table.get("deploy_branches", [table["branch"]]), f"{where}: deploy_branches"),
            **(
                roles := {
                    flag: _flag(table.get(flag, name == default), f"{where}: {flag}") for flag, default in ROLES.items()
                }
            ),
            bake_minutes=_number(
                table.get("bake_minutes", 10 if roles["rollback_on_failed_probe"] else 0),
                f"{where}: bake_minutes",
                0,
                120,
            ),
            bake_interval_seconds=_number(
                table.get("bake_interval_seconds", 30), f"{where}: bake_interval_seconds", 0.1, 600
            ),
            quiet_seconds=_number(
                table.get("quiet_seconds", 120 if roles["cutover_target"] else 0), f"{where}: quiet_seconds", 0, 3600
            ),
            quiet_wait_minutes=_number(table.get("quiet_wait_minutes", 15), f"{where}: quiet_wait_minutes", 0, 120),
        )
    return environments


def _number(value: Any, where: str, low: float, high: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{where} must be a number from {low:g} to {high:g}")
    return float(value)


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is no memory key pattern, or None: ``{user_id}`` exactly once, nothing else in braces.

    Checked where patterns are read, so a pattern such as ``memory:{user_id}:{kind}`` is one
    line at start-up, never a KeyError in the middle of an export.
    """
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(pattern) if name is not None]
    except ValueError as exc:
        return f"has unbalanced braces ({exc})"
    other = sorted({f"{{{name}}}" for name, _, _ in fields if name != "user_id"})
    if other:
        return f"has a placeholder other than {{user_id}}: {', '.join(other)}"
    if len(fields) != 1:
        return "must contain {user_id} exactly once" + (f" (found {len(fields)})" if fields else "")
    if fields[0][1] or fields[0][2]:
        return "must use {user_id} plainly, without a format spec or conversion"
    return None


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where} must be a list of strings", hint='e.g. ["mindmate-owner"]')
    return tuple(value)


def _probe_user_id(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**53:
        raise ConfigError(
            f"{where}: probe_user_id must be a positive Telegram user id no real person has",
            hint=f"leave it out for the default {DEFAULT_PROBE_USER_ID}",
        )
    return value


def _parse_flow(raw: Any, path: Path) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict) or not all(
        isinstance(heads, list | tuple) and all(isinstance(h, str) and h for h in heads) for heads in raw.values()
    ):
        raise ConfigError(
            f"{path.name}: [tool.ci_tools.flow] must map each base branch to a list of head patterns",
            hint='e.g. develop = ["feature/*", "fix/*"]',
        )
    return {base: tuple(heads) for base, heads in raw.items()}


def _check_consistency(environments: dict[str, Environment], path: Path) -> None:
    for attr in ("branch", "render_service", "key_prefix", "key_value", "bot_username", "base_url"):
        seen: dict[str, str] = {}
        for env in environments.values():
            value = getattr(env, attr)
            if attr == "key_prefix" and not value:
                continue  # no prefix: the bots' keys as they wrote them, each in its own Key Value (key_value)
            if value in seen:
                raise ConfigError(
                    f"{path.name}: environments {seen[value]!r} and {env.name!r} share {attr} {value!r}",
                    hint="each environment needs its own, or one deploy would overwrite the other",
                )
            seen[value] = env.name
    # A prefix that is a prefix of another lets one environment's keys match the other's.
    # An empty prefix (a legacy bot, or an owner's bot that never prefixed its keys) is a prefix
    # of all, even of another empty one: it is allowed because the environments never share a
    # Redis (key_value differs, checked above; the bot's env marker and the memory copy refuse it).
    prefixes = sorted(e.key_prefix for e in environments.values() if e.key_prefix)
    for a, b in itertools.pairwise(prefixes):
        if b.startswith(a):
            raise ConfigError(f"{path.name}: key prefix {a!r} is a prefix of {b!r}; make them disjoint")
