"""The pipeline's facts: environments and branch flow from ``[tool.ci_tools]`` (secrets: ``context``).

Non-secret facts live in pyproject.toml so a reviewer can see in one diff which
branch deploys where and which bot belongs to which service. Secrets never live in
files: they come from environment variables (GitHub *environment* secrets in
Actions, with the same names in both environments).

Each setting is stated once, as a field of the dataclass its table becomes: its name, type,
default and, in the field's metadata, its check and what it is for (``spec``). ``read_table``
reads any such table, naming a misspelt key with the one it most resembles; docs/CONFIGURATION.md's
table of settings is ``reference()`` (tests/test_settings.py keeps them equal). What relates two
settings (a default branch the flow must know, prefixes that must not overlap) is checked after.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import re
import string
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ci_tools.errors import ConfigError

T = TypeVar("T")

DEFAULT_FLOW = {
    "develop": ("feature/*", "fix/*", "main", "dependabot/**"),
    "main": ("develop", "hotfix/*"),
}
# What an environment is for, by role rather than by name: renaming "production" must not
# silently turn off its rollback. The defaults keep today's behaviour for the two names.
ROLES = {
    "rollback_on_failed_probe": "production",  # a release whose probe fails is rolled back
    "cutover_target": "production",  # the real users' bot: cutover, acceptance, the safety net
    "accepts_feature_branches": "staging",  # a feature/* branch may be released to it
    "testers_only": "staging",  # its bot serves TESTER_IDS only (preflight, render.yaml)
}
# The reserved probe user: Telegram user ids fit in 52 bits and are handed out far below
# this one, so no real person has it. The bot's PROBE_USER_ID defaults to the same value.
DEFAULT_PROBE_USER_ID = 2**52 - 1
BOT_USERNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,30}[Bb][Oo][Tt]$")
BASE_URL = re.compile(r"^https?://[^/\s]+$")  # a service's address: scheme and host, nothing after
NIGHTLY_AT = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
# GitHub runs schedules at most every 5 minutes; each of these divides an hour or a day evenly.
WATCH_INTERVALS = (5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 720)

NO_PREFIX = "none"  # the bot's KEY_PREFIX for unprefixed keys (mindmate/settings.py says the same)


# -- how a setting is stated and checked ------------------------------------------------------


class Invalid(Exception):
    """A value a check refused: what is wrong, said after the key (or after ``subject``, when one
    item of a list is at fault), and the fix."""

    def __init__(self, problem: str, hint: str | None = None, subject: str | None = None) -> None:
        super().__init__(problem)
        self.problem, self.hint, self.subject = problem, hint, subject


@dataclass(frozen=True)
class Check:
    """What a setting takes, in the docs' words, and how a value becomes what the pipeline keeps."""

    takes: str
    read: Callable[[Any], Any]  # the value as kept, or Invalid


@dataclass(frozen=True)
class Setting:
    check: Check
    what: str  # one line for docs/CONFIGURATION.md
    says: str | None = None  # the problem in this setting's own words ({value!r}: the value read)
    hint: str | None = None
    # A default that follows from the table's other values, and the docs' words for it.
    derive: Callable[[dict[str, Any]], Any] | None = None
    derived: str = ""


def spec(check: Check, what: str, **more: Any) -> dict[str, Setting]:
    """A dataclass field's metadata: the setting's check and purpose (its default is the field's)."""
    return {"setting": Setting(check, what, **more)}


def setting(default: T, check: Check, what: str, **more: Any) -> T:
    """A field of a settings table: its default, its check, what it is for (``Setting``'s others)."""
    return field(default=default, metadata=spec(check, what, **more))


def required(check: Check, what: str, **more: Any) -> Any:
    """A field of a settings table that has no default: a table without it is refused."""
    return field(metadata=spec(check, what, **more))


def role(flag: str, what: str) -> bool:
    """One of ROLES: true by default for the environment named in ROLES."""
    return setting(
        False, boolean(), what, derive=lambda got: got["name"] == ROLES[flag], derived=f"true for {ROLES[flag]}"
    )


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _numeric(value: Any) -> bool:
    """A number TOML can write that is one: not a bool, nor ``nan`` or ``inf`` (a wait without end)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def whole(low: int, high: int | None = None, unit: str = "", among: tuple[int, ...] = ()) -> Check:
    """A whole number from ``low`` to ``high`` (without it: at least ``low``), one of ``among`` if given."""
    span = f"from {low} to {high}" if high else f"≥ {low}"
    words = f"one of {', '.join(map(str, among))}" if among else f"a whole number{f' of {unit}' if unit else ''} {span}"

    def read(value: Any) -> int:
        if not _whole(value) or value < low or (high is not None and value > high) or (among and value not in among):
            raise Invalid(f"must be {words}")
        return int(value)

    return Check(words.removeprefix("a "), read)


def number(low: float, high: float | None = None, unit: str = "") -> Check:
    """A number from ``low`` to ``high``; without ``high``, above ``low``."""
    span = f"from {low:g} to {high:g}" if high is not None else f"above {low:g}"
    words = f"a number{f' of {unit}' if unit else ''} {span}"

    def read(value: Any) -> float:
        inside = high is not None and low <= value <= high if _numeric(value) else False
        if not _numeric(value) or not (inside if high is not None else value > low):
            raise Invalid(f"must be {words}")
        return float(value)

    return Check(words.removeprefix("a "), read)


def boolean() -> Check:
    def read(value: Any) -> bool:
        if not isinstance(value, bool):
            raise Invalid("must be true or false")
        return value

    return Check("true or false", read)


def _named(value: str) -> bool:
    """A name (a branch, a service): not blank, no NUL (git, Render and GitHub take neither)."""
    return bool(value.strip()) and "\0" not in value


def text(
    rule: Callable[[str], object] = _named, takes: str = "non-empty string", keep: Callable[[str], str] = str
) -> Check:
    """A string that ``rule`` accepts (default: a name, see ``_named``), kept as ``keep`` makes it (stripped)."""

    def read(value: Any) -> str:
        kept = keep(value) if isinstance(value, str) else value
        if not isinstance(kept, str) or not rule(kept):
            raise Invalid(f"must be a {takes}")
        return kept

    return Check(takes, read)


def strings(item: Callable[[str], bool] = bool, takes: str = "list of strings", *, filled: bool = False) -> Check:
    """A list of strings that ``item`` accepts (non-empty ones), kept stripped as a tuple."""

    def read(value: Any) -> tuple[str, ...]:
        good = isinstance(value, list | tuple) and all(isinstance(v, str) and item(v.strip()) for v in value)
        if not good or (filled and not value):
            raise Invalid(f"must be a {takes}")
        return tuple(v.strip() for v in value)

    return Check(takes, read)


def listed(each: Callable[[Any], None], takes: str, kind: type = str, *, filled: bool = False) -> Check:
    """A list of ``kind`` values (at least one with ``filled``), each also held to ``each`` (which raises Invalid)."""

    def read(value: Any) -> tuple[Any, ...]:
        if (
            not isinstance(value, list | tuple)
            or not all(isinstance(v, kind) and not isinstance(v, bool) for v in value)
            or (filled and not value)
        ):
            raise Invalid(f"must be a {takes}")
        for item in value:
            each(item)
        return tuple(value)

    return Check(takes, read)


def setting_of(f: dataclasses.Field[Any]) -> Setting | None:
    found = f.metadata.get("setting")
    return found if isinstance(found, Setting) else None


def _names(keys: list[str]) -> str:
    return keys[0] if len(keys) == 1 else f"{', '.join(keys[:-1])} and {keys[-1]}"


def read_table(
    cls: type[T],
    raw: Any,
    where: str,
    *,
    retired: dict[str, str] | None = None,
    also: tuple[str, ...] = (),
    hint: str | None = None,
    **given: Any,
) -> T:
    """``raw`` (a TOML table) as ``cls``: each setting checked by its field's ``spec``, a missing one
    taking its default; an unknown key is one line naming the keys the table takes (and the one it
    most resembles; ``hint`` adds an example). ``given`` are the fields that are no settings (an
    environment's name, the tables read apart), ``also`` the keys of ``raw`` read apart,
    ``retired`` the keys no longer read, each with why."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    for key, why in (retired or {}).items():
        if key in raw:
            raise ConfigError(f"{where}: {key} is no longer read: {why}", hint=f"remove the {key} line")
    settings = {f.name: (f, s) for f in dataclasses.fields(cls) if (s := setting_of(f)) is not None}  # type: ignore[arg-type]
    known = [*settings, *also]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        close = [m for key in unknown for m in difflib.get_close_matches(key, known, n=1)]
        guess = f" (did you mean {_names(close)}?)" if close else ""
        raise ConfigError(f"{where} takes only {_names(known)}; unknown keys: {', '.join(unknown)}{guess}", hint=hint)
    lacking = [name for name, (f, _) in settings.items() if name not in raw and _required(f)]
    if lacking:
        raise ConfigError(f"{where} lacks {', '.join(lacking)}", hint="docs/CONFIGURATION.md says what each holds")
    values: dict[str, Any] = dict(given)
    for name, (_, s) in settings.items():
        if name in raw:
            try:
                values[name] = s.check.read(raw[name])
            except Invalid as bad:  # one item of a list says its own problem; the whole, the setting's words
                problem = (
                    f"{name}: {bad.subject} {bad.problem}"
                    if bad.subject
                    else f"{name} {s.says.format(value=raw[name]) if s.says else bad.problem}"
                )
                raise ConfigError(f"{where}: {problem}", hint=bad.hint or s.hint) from None
        elif s.derive is not None:
            values[name] = s.derive(values)
    return cls(**values)


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


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


def _memory_pattern(pattern: str) -> None:
    if problem := pattern_problem(pattern):
        raise Invalid(
            problem,
            hint='use {user_id} exactly once and no other {…}, e.g. "memory:{user_id}"',
            subject=f"pattern {pattern!r}",
        )


def _regular_expression(pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise Invalid(f"is not a regular expression ({exc})", subject=f"pattern {pattern!r}") from None


def _telegram_user(user: int) -> None:
    if user <= 0:
        raise Invalid("must be a list of Telegram user ids")


def _flow() -> Check:
    def read(value: Any) -> dict[str, tuple[str, ...]]:
        if not isinstance(value, dict) or not all(
            isinstance(heads, list | tuple) and all(isinstance(h, str) and h for h in heads) for heads in value.values()
        ):
            raise Invalid(
                "must map each base branch to a list of head patterns", hint='e.g. develop = ["feature/*", "fix/*"]'
            )
        return {base: tuple(heads) for base, heads in value.items()}

    return Check("table: base branch = [head patterns]", read)


# -- the tables -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Environment:
    """One deploy target: a Render service, its bot, its Redis key prefix."""

    name: str  # its table's name: [tool.ci_tools.environments.<name>]
    branch: str = required(text(), "the branch whose pushes release here")
    render_service: str = required(text(), "its Render web service's name")
    bot_username: str = required(
        text(BOT_USERNAME.match, "Telegram bot username, without '@'"),
        "the bot its token must belong to",
        says="{value!r} is not a Telegram bot username",
        hint="5-32 letters, digits or underscores, ending in 'bot', without '@'",
    )
    base_url: str = required(
        text(BASE_URL.match, "scheme and host", keep=lambda url: url.rstrip("/")),
        "the service's address",
        says="must be a scheme and host, e.g. https://mindmate-prod.onrender.com",
    )
    key_prefix: str = required(
        text(lambda p: p == "" or p.endswith(":"), "key prefix ending with ':', or \"\""),
        'its Redis keys\' prefix; "" for a legacy bot that never prefixed its keys',
        says="must be a string ending with ':' (e.g. 'dev:'), or \"\" for a bot whose keys carry no prefix",
    )
    memory_patterns: tuple[str, ...] = required(
        listed(_memory_pattern, "non-empty list of strings containing {user_id}", filled=True),
        "a user's memory keys, after the prefix",
        hint='e.g. ["user:{user_id}:history", "memory:{user_id}"]',
    )
    health_path: str = setting(
        "/healthz",
        text(lambda p: p == "" or p.startswith("/"), "path starting with '/', or \"\""),
        'the bot\'s health endpoint; "" when it has none (checks skip it)',
        says="must start with '/' (e.g. '/healthz'), or be \"\" to skip the health check",
    )
    probe_user_id: int = setting(
        DEFAULT_PROBE_USER_ID,
        whole(1, 2**53 - 1),
        "the reserved probe user the conversation probe talks as",
        says="must be a positive Telegram user id no real person has",
        hint=f"leave it out for the default {DEFAULT_PROBE_USER_ID}",
    )
    key_value: str = setting(
        "",
        text(),
        "its Render Key Value instance",
        derive=lambda got: f"{got['render_service']}-redis",
        derived="<render_service>-redis",
    )
    reviewers: tuple[str, ...] = setting(
        (), strings(), "GitHub users who approve a deploy", hint='e.g. ["mindmate-owner"]'
    )
    deploy_branches: tuple[str, ...] = setting(
        (),
        strings(),
        "branch patterns its GitHub environment accepts",
        hint='e.g. ["main"]',
        derive=lambda got: (got["branch"],),
        derived="[branch]",
    )
    rollback_on_failed_probe: bool = role("rollback_on_failed_probe", "a release whose probe fails is rolled back")
    cutover_target: bool = role("cutover_target", "the real users' bot: cutover, acceptance, the safety net")
    accepts_feature_branches: bool = role("accepts_feature_branches", "a feature/* branch may be released to it")
    testers_only: bool = role("testers_only", "its bot serves TESTER_IDS only (preflight, render.yaml)")
    # After a release's probe passes, the new commit is watched this long (its own failure counts,
    # Telegram's delivery, the conversation probe) and rolled back on a failure of its own.
    bake_minutes: float = setting(
        0.0,
        number(0, 120),
        "how long a release is watched after its probe",
        derive=lambda got: 10.0 if got["rollback_on_failed_probe"] else 0.0,
        derived="10 where rollback_on_failed_probe, else 0",
    )
    bake_interval_seconds: float = setting(30.0, number(0.1, 600), "how often the bake looks")
    # Before the deploy, wait while the bot handled an update less than quiet_seconds ago (the
    # daily user is mid-conversation), at most quiet_wait_minutes (ci_tools/pipeline/quiet.py).
    quiet_seconds: float = setting(
        0.0,
        number(0, 3600),
        "a deploy waits while the bot handled an update less than this ago",
        derive=lambda got: 120.0 if got["cutover_target"] else 0.0,
        derived="120 where cutover_target, else 0",
    )
    quiet_wait_minutes: float = setting(15.0, number(0, 120), "the longest a deploy waits for that quiet")

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


ARTIFACT_DAYS = "GitHub keeps artifacts at most 90 days"


@dataclass(frozen=True)
class MemoryBackup:
    """The memory safety net: whose memory is snapshotted, how often, how long it is kept."""

    environment: str = setting("", text(), "whose memory is snapshotted", derived="the environment with cutover_target")
    before_release_days: int | None = setting(
        None,
        whole(1, 90, "days"),
        "how long memory-before-<sha> is kept",
        hint=ARTIFACT_DAYS,
        derived="rollback_window_days",
    )
    nightly_days: int = setting(30, whole(1, 90, "days"), "how long memory-nightly-<date> is kept", hint=ARTIFACT_DAYS)
    nightly_at: str = setting(
        "03:17",
        text(lambda at: bool(NIGHTLY_AT.fullmatch(at)), "HH:MM"),
        "UTC; scheduler.yml's cron says the same (tests/repo/test_workflow_files.py)",
        says='must be HH:MM in UTC, e.g. "03:17"',
    )
    max_mb: int = setting(100, whole(1, unit="megabytes"), "above this, only the protected users' keys are snapshotted")
    protected_users: tuple[int, ...] = setting(
        (),
        listed(_telegram_user, "list of Telegram user ids", kind=int),
        "Telegram user ids whose memory is always snapshotted, and whose conversation is replayed",
        hint="e.g. [123456789]",
    )

    def cron(self) -> str:
        hour, minute = self.nightly_at.split(":")
        return f"{int(minute)} {int(hour)} * * *"


@dataclass(frozen=True)
class Watch:
    """The scheduled watch of production between releases (watch.yml)."""

    interval_minutes: int = setting(
        30,
        whole(5, 720, among=WATCH_INTERVALS),
        "watch.yml probes production this often; scheduler.yml's cron says the same (a test checks)",
        says="must divide an hour or a day evenly, from 5 to 720",
        hint="GitHub runs schedules at most every 5 minutes; e.g. 30",
    )

    def cron(self) -> str:
        every = self.interval_minutes
        return f"*/{every} * * * *" if every < 60 else f"0 */{every // 60} * * *"


@dataclass(frozen=True)
class Replay:
    """The replay stage before a production release: the protected users' conversation, replayed
    on a private copy of their memory by the live commit and the candidate (production.yml).
    Each commit's bot is started as its own render.yaml says (``startCommand``), not as here."""

    enabled: bool = setting(True, boolean(), "replay before each production release")
    turns: tuple[str, ...] = setting(
        ("/start", "/recall"),
        strings(takes="list of messages"),
        "what each protected user says, in order",
        hint='e.g. ["/start", "/recall"]',
    )
    ignore: tuple[str, ...] = setting(
        (),
        listed(_regular_expression, "list of regular expressions"),
        "regular expressions masked on both sides (timestamps, ids)",
        hint=r'e.g. ["\\d{2}:\\d{2}"]',
    )
    start_timeout: float = setting(30.0, number(0, unit="seconds"), "seconds a bot may take to answer its health check")


@dataclass(frozen=True)
class Move:
    """The daily user's move from the old bot (staging's, legacy keys) to the new one (README runbook).

    ``finish-move`` (runbook step 9) makes the old bot the testers' staging bot no earlier than
    ``window_days`` after the daily user's first message to the new bot; until then ``send-back``
    can put them back on the old bot, which tells them so in ``send_back_text``."""

    window_days: float = setting(3.0, number(0, 90, "days"), "the window finish-move waits out", hint="e.g. 3")
    old_bot_prefix: str = setting(
        "dev:",
        text(lambda p: p.endswith(":"), "key prefix ending with ':'"),
        "the old bot's own key prefix once it serves testers only",
        hint='e.g. "dev:"',
    )
    send_back_text: str = setting(
        "Let's continue here for now.",
        text(lambda t: 0 < len(t) <= 4096, "message of 1 to 4096 characters", keep=str.strip),
        "send-back's one message to the daily user",
    )


@dataclass(frozen=True)
class CI:
    """The bot's own tests, which ci.yml runs on every push and pull request (``ci-tools ci run``).

    The pipeline knows nothing of how a bot is tested: the owner names one shell command, run in
    the repository's root (``bash -c``). None (the default) is a choice too: the job says that no
    tests are configured and passes, so an owner without tests is not blocked by a red check."""

    test_command: str | None = setting(
        None,
        text(lambda c: bool(c) and "\0" not in c, "shell command", keep=str.strip),
        "the bot's tests, run with bash in the repository's root (left out: no tests)",
        says="must be a shell command as one string, or left out for no tests",
        hint='e.g. test_command = "pip install -r requirements.txt pytest && python -m pytest"',
    )


@dataclass(frozen=True)
class ProbeTalk:
    """What the probe says as the reserved probe user at the conversation level ([tool.ci_tools.probe]).

    ``{nonce}`` in a turn or in ``expect`` is the probe's fresh nonce, so an answer can only come
    from this probe's own turns: ``expect`` is what the last turn's reply must contain ("" = any
    reply). The default asks only that the bot answers ``/start``; mindmate's pyproject stores a
    fact and reads it back, so its probe proves memory too."""

    turns: tuple[str, ...] = setting(
        ("/start",),
        strings(takes="non-empty list of messages", filled=True),
        "what the probe user says, in order",
        hint='e.g. ["/start"]',
    )
    expect: str = setting(
        "",
        text(lambda _: True, "string"),
        "what the last turn's reply must contain",
        hint='e.g. "probe-{nonce}", or "" for any reply',
    )


# Each [tool.ci_tools.<name>] table, and what read_table needs besides it.
TABLES: dict[str, tuple[type[Any], dict[str, Any]]] = {
    "memory_backup": (MemoryBackup, {}),
    "watch": (Watch, {}),
    "replay": (Replay, {"retired": {"module": "each commit's bot starts as its render.yaml's startCommand says"}}),
    "move": (Move, {}),
    "ci": (CI, {"hint": 'e.g. test_command = "python -m pytest"'}),
    "probe": (ProbeTalk, {}),
}


@dataclass(frozen=True)
class Config:
    path: Path
    environments: dict[str, Environment]
    flow: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(DEFAULT_FLOW),
        metadata=spec(
            _flow(), "each base branch, and the heads that may open a PR into it ('*' one path segment, '**' any)"
        ),
    )
    default_branch: str = setting("develop", text(), "GitHub's default branch: where dependabot's security PRs go")
    # Bounded: the window's end is a date (cutover --back), and ten years from now is one; a billion days is not.
    rollback_window_days: int = setting(14, whole(1, 3650, "days"), "how long the old bot is kept after the cutover")
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
    tool = data.get("tool")
    section = tool.get("ci_tools") if isinstance(tool, dict) else None
    if not isinstance(section, dict):
        raise ConfigError(
            f"{path} has no [tool.ci_tools] section", hint="add the environments table (see docs/CONFIGURATION.md)"
        )
    environments = _read_environments(section.get("environments"), path)
    _check_consistency(environments, path)
    tables: dict[str, Any] = {
        name: read_table(cls, section.get(name, {}), f"{path.name}: [tool.ci_tools.{name}]", **options)
        for name, (cls, options) in TABLES.items()
    }
    config = read_table(
        Config,
        {k: v for k, v in section.items() if k not in TABLES and k != "environments"},
        f"{path.name}: [tool.ci_tools]",
        also=("environments", *TABLES),
        path=path,
        environments=environments,
        **tables,
    )
    if config.default_branch not in config.flow:
        raise ConfigError(
            f"{path.name}: [tool.ci_tools] default_branch {config.default_branch!r} is not a base branch of the flow",
            hint="dependabot's security updates open PRs into it, so it must accept dependabot/**: use develop",
        )
    _refuse_an_unsaid_nonce(config.probe, path)
    return dataclasses.replace(config, memory_backup=_whose_memory(config.memory_backup, environments, path))


def _read_environments(raw: Any, path: Path) -> dict[str, Environment]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(
            f"{path.name}: [tool.ci_tools.environments] is missing or empty",
            hint="define at least staging and production",
        )
    where = f"{path.name}: [tool.ci_tools.environments"
    for name in raw:  # a role's environment misspelled would silently lose the role's defaults
        close = difflib.get_close_matches(name, sorted(set(ROLES.values()) - set(raw)), n=1, cutoff=0.8)
        if close:
            raise ConfigError(
                f"{where}.{name}] is no environment the roles know (did you mean {close[0]}?)",
                hint=f"rename it [tool.ci_tools.environments.{close[0]}]: its roles' defaults follow the name",
            )
    return {name: read_table(Environment, table, f"{where}.{name}]", name=name) for name, table in raw.items()}


def _whose_memory(backup: MemoryBackup, environments: dict[str, Environment], path: Path) -> MemoryBackup:
    targets = [e.name for e in environments.values() if e.cutover_target]
    if not backup.environment and not targets:
        raise ConfigError(
            f"{path.name}: no environment is the real users' (cutover_target): the memory safety net has none",
            hint="define [tool.ci_tools.environments.production], or set cutover_target = true on the real users' one",
        )
    env = backup.environment or targets[0]
    if env not in environments:
        raise ConfigError(
            f"{path.name}: [tool.ci_tools.memory_backup]: environment {env!r} is not an environment",
            hint=f"use one of: {', '.join(environments)}",
        )
    return dataclasses.replace(backup, environment=env)


def _refuse_an_unsaid_nonce(probe: ProbeTalk, path: Path) -> None:
    if "{nonce}" in probe.expect and not any("{nonce}" in t for t in probe.turns):
        raise ConfigError(
            f"{path.name}: [tool.ci_tools.probe]: expect names {{nonce}} but no turn says it, "
            "so no reply could contain it",
            hint='e.g. turns = ["/start", "/remember probe-{nonce}", "/recall"]',
        )


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


# -- the docs' table of settings --------------------------------------------------------------

REFERENCE = (
    ("[tool.ci_tools]", Config),
    ("[tool.ci_tools.environments.<name>]", Environment),
    *((f"[tool.ci_tools.{name}]", cls) for name, (cls, _) in TABLES.items()),
)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "; ".join(f"{k} = {_toml(v)}" for k, v in value.items())
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "left out" if value is None else str(value)


def reference() -> Iterator[tuple[str, str, str, str, str]]:
    """Each setting: its table, key, what it takes, its default and what it is for."""
    for table, cls in REFERENCE:
        for f in dataclasses.fields(cls):
            if (s := setting_of(f)) is None:
                continue
            if _required(f):
                default = "required"
            elif s.derived:
                default = s.derived
            else:
                default = _toml(f.default if f.default_factory is dataclasses.MISSING else f.default_factory())
            yield table, f.name, s.check.takes, default, s.what
