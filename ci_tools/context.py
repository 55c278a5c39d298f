"""What a command knows about its surroundings, read once: ``main()`` hands ``os.environ`` to
``build()`` here, and nothing below them reads the environment again.

``main()`` builds a frozen ``Context`` from the environment and the running command's
declared secrets, before the command does anything; every phase and client below it takes
what it needs from there as parameters. So a test, the rehearsal or a benchmark runs any
phase against the stand-ins by building a ``Context`` from a plain dict, with no
environment rewritten around it, and a setting cannot be read differently in two places.

A secret the command did not declare is a bug in ci-tools (its workflow steps may not pass
it): asking the Context for one raises ``UndeclaredSecret``. A Context built without a
declaration (the rehearsal, tests) allows every name it holds.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ci_tools import redact
from ci_tools.actions import Runner
from ci_tools.errors import ConfigError
from ci_tools.needs import Needs, Secrets, resolve
from ci_tools.settings import Config, Environment, find_pyproject, load_config

if TYPE_CHECKING:  # the clients load httpx: only the commands that talk to a service pay for it
    from cryptography.fernet import Fernet

    from ci_tools.clients.github_rest import GitHubAPI
    from ci_tools.clients.render import RenderAPI
    from ci_tools.clients.telegram import BotInfo, Telegram

DEFAULT_TELEGRAM_API_URL = "https://api.telegram.org"
DEFAULT_RENDER_API_URL = "https://api.render.com"
DEFAULT_GITHUB_API_URL = "https://api.github.com"
DEFAULT_IP_ECHO_URL = "https://api.ipify.org"  # what keyvalue open asks for the runner's address
SPEC_VARIABLES = {"render": "RENDER_SPEC_URL", "npm_registry": "NPM_REGISTRY_URL", "telegram": "TELEGRAM_SPEC_URL"}


def fernet_for(key: str | None) -> Fernet | None:
    """The Fernet of ``MEMORY_SNAPSHOT_KEY``'s value; None (files in the clear) without one."""
    raw = (key or "").strip()
    if not raw:
        return None
    from cryptography.fernet import Fernet  # weight: main() imports context, even for --help

    try:
        return Fernet(raw.encode())
    except (ValueError, TypeError):
        raise ConfigError(
            "MEMORY_SNAPSHOT_KEY is not a Fernet key",
            hint='make one with: python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())"',
        ) from None


@dataclass(frozen=True)
class Services:
    """Where the outside services are: the real ones, or the stand-ins in tests and the rehearsal."""

    telegram: str = DEFAULT_TELEGRAM_API_URL  # TELEGRAM_API_URL
    render: str = DEFAULT_RENDER_API_URL  # RENDER_API_URL (the API's paths add /v1)
    github: str = DEFAULT_GITHUB_API_URL  # GITHUB_API_URL (Actions sets it; GHES differs)
    ip_echo: str = DEFAULT_IP_ECHO_URL  # IP_ECHO_URL
    # Where contracts fetch reads the published descriptions when not the providers' own
    # (RENDER_SPEC_URL, NPM_REGISTRY_URL, TELEGRAM_SPEC_URL): the drift workflow's act tests.
    specs: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Services:
        def url(name: str, default: str) -> str:
            return (environ.get(name, "").strip() or default).rstrip("/")

        return cls(
            telegram=url("TELEGRAM_API_URL", DEFAULT_TELEGRAM_API_URL),
            render=url("RENDER_API_URL", DEFAULT_RENDER_API_URL),
            github=url("GITHUB_API_URL", DEFAULT_GITHUB_API_URL),
            ip_echo=url("IP_ECHO_URL", DEFAULT_IP_ECHO_URL),
            specs={key: environ[name].strip() for key, name in SPEC_VARIABLES.items() if environ.get(name, "").strip()},
        )


# What a child process the pipeline starts (the replay's bots, their ``uv sync``, the bot's tests)
# inherits of this one's environment: where programs and caches are, the locale, the proxies, the
# package indexes. Never a secret.
CHILD_VARIABLES = (
    "CI",
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "XDG_CACHE_HOME",
    "UV_CACHE_DIR",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_OFFLINE",  # a runner without network (the workflow tests in act)
    "UV_PYTHON",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "REDIS_SERVER_BIN",
)


@dataclass(frozen=True)
class Context:
    """The resolved settings, secrets, service URLs and timeouts one command runs with."""

    secrets: Secrets = field(default_factory=lambda: Secrets({}))
    services: Services = field(default_factory=Services)
    runner: Runner = field(default_factory=Runner)  # GitHub Actions, or not
    timeout: float | None = None  # CI_TOOLS_TIMEOUT: every request's, else each caller's default
    poll: float | None = None  # CI_TOOLS_POLL: between two looks at Render, else each caller's default
    config_file: Path | None = None  # CI_TOOLS_CONFIG, else the nearest pyproject.toml
    preset: Config | None = field(default=None, repr=False)  # a Config given whole (with_config)
    child: Mapping[str, str] = field(default_factory=dict)  # CHILD_VARIABLES, for the processes it starts

    @functools.cached_property
    def config(self) -> Config:
        """``[tool.ci_tools]``, loaded when first asked for (``contracts diff`` never needs it)."""
        return self.preset or load_config(find_pyproject(override=self.config_file))

    def with_config(self, config: Config) -> Context:
        """The same Context judging against ``config`` (the cutover probes a renamed bot)."""
        return dataclasses.replace(self, preset=config)

    # -- secrets ---------------------------------------------------------------------------
    def secret(self, name: str, *, purpose: str = "") -> str:
        """Secret ``name``; a missing one is an error that names it (never prints it)."""
        value = self.secrets.get(name)
        if not value:
            why = f" ({purpose})" if purpose else ""
            raise ConfigError(
                f"missing secret {name}{why}",
                hint=f"set {name} as a GitHub environment secret, or export it for a local run",
            )
        return value

    def optional(self, name: str) -> str | None:
        return self.secrets.get(name) or None

    def snapshot_fernet(self) -> Fernet | None:
        """``MEMORY_SNAPSHOT_KEY``'s Fernet: snapshots and backups are encrypted with it."""
        return fernet_for(self.optional("MEMORY_SNAPSHOT_KEY"))

    def require_snapshot_key(self, why: str) -> None:
        """In Actions a memory write's snapshot and backup are kept as the run's artifact, so only
        encrypted ones: every write (memory, send-back, finish-move) is refused here before it reads."""
        if self.runner.active and not self.optional("MEMORY_SNAPSHOT_KEY"):
            make = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
            hint = f"store the environment's MEMORY_SNAPSHOT_KEY secret (ci-tools init makes one, or {make})"
            raise ConfigError(f"in GitHub Actions {why}", hint=hint)

    def github_token(self) -> str | None:
        """``GITHUB_TOKEN``, or ``GH_TOKEN`` (the GitHub CLI's name) on a laptop."""
        return self.optional("GITHUB_TOKEN") or self.optional("GH_TOKEN")

    def env_secret(self, env: Environment, name: str) -> str | None:
        """``<ENV>_<NAME>``: a person's local run holds both environments' secrets at once."""
        return self.optional(f"{env.name.upper()}_{name}")

    # -- timeouts and clients --------------------------------------------------------------
    def request_timeout(self, default: float) -> float:
        """Seconds one request may take: ``CI_TOOLS_TIMEOUT`` if set, else ``default``."""
        return self.timeout if self.timeout is not None else default

    def poll_seconds(self, default: float) -> float:
        """Seconds between two looks at Render (a deploy's status, an allow list settling, the live
        release's level): ``CI_TOOLS_POLL`` if set, else ``default``. The workflow tests set it
        short: their Render stand-in answers in milliseconds, and a look every 2 s there is only waiting."""
        return self.poll if self.poll is not None else default

    def render(self, api_key: str, service_id: str = "", *, deadline: float, timeout: float | None = None) -> RenderAPI:
        from ci_tools.clients.render import RenderAPI  # weight (httpx): main() imports context for --help

        return RenderAPI(
            api_key,
            service_id,
            deadline=deadline,
            base_url=self.services.render,
            timeout=timeout if timeout is not None else self.request_timeout(30),
        )

    def telegram(self, token: str, *, budget: float | None = None) -> Telegram:
        from ci_tools.clients.telegram import Telegram  # weight (httpx): main() imports context for --help

        return Telegram(token, base_url=self.services.telegram, timeout=self.request_timeout(10), budget=budget)

    def bot_info(self, token: str, *, budget: float | None = None) -> BotInfo:
        """getMe, for the commands that only need to know whose token this is."""
        with self.telegram(token, budget=budget) as telegram:
            return telegram.get_me()

    def github(self, token: str, repo: str, *, budget: float | None = None) -> GitHubAPI:
        from ci_tools.clients.github_rest import GitHubAPI  # weight (httpx): main() imports context for --help

        return GitHubAPI(token, repo, base_url=self.services.github, timeout=self.request_timeout(20), budget=budget)


# Secrets that travel in an HTTP header or a URL (httpx encodes headers as ASCII; Telegram's token is
# part of every method's path), or are a Redis URL (redis-py sends the password in AUTH as ASCII and
# the host to the resolver, so a pasted curly quote or non-breaking space reads as an outage a retry
# never fixes): a name ending so, with or without an <ENV>_ prefix.
HEADER_OR_URL = (
    "REDIS_URL",  # REDIS_URL, SOURCE_REDIS_URL, TARGET_REDIS_URL and their <ENV>_ forms
    "RENDER_API_KEY",
    "RENDER_DEPLOY_HOOK_URL",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_WEBHOOK_SECRET",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "GITHUB_ADMIN_TOKEN",
    "BACKMERGE_TOKEN",
)


def check_ascii(name: str, value: str) -> None:
    """A header or URL secret that is not ASCII (a pasted curly quote, a non-breaking space) cannot
    be sent at all: said as a configuration error naming the variable, never the value."""
    if name.endswith(HEADER_OR_URL) and not value.isascii():
        raise ConfigError(
            f"{name} holds a character that is not ASCII, so it cannot go into an HTTP header, URL or Redis AUTH",
            hint=f"copy {name} again from where it was made (no quotes, spaces or other characters around it)",
        )


def _seconds(name: str, raw: str | None) -> float | None:
    if not raw or not raw.strip():
        return None
    try:
        seconds = float(raw)
    except ValueError:
        raise ConfigError(f"{name} is not a number of seconds", hint="unset it or set e.g. 10") from None
    if not math.isfinite(seconds) or seconds <= 0:  # inf would wait for ever; nan compares false everywhere
        raise ConfigError(f"{name} must be a finite number of seconds above 0", hint="unset it or set e.g. 10")
    return seconds


def build(environ: Mapping[str, str], needs: Needs | None = None) -> Context:
    """The Context for one command, from ``environ`` (``os.environ`` in ``main()``, a dict elsewhere).

    With ``needs``, only the declared secrets are read, and a missing required one fails
    here, naming itself, before any work. Without (the rehearsal, tests), every value in
    ``environ`` may be asked for.
    """
    secrets = resolve(needs, environ) if needs is not None else Secrets(environ, declared=None)
    for name in secrets:
        check_ascii(name, secrets[name])
    redact.add_secrets_from(environ)  # a dict's secrets are redacted like the process's own
    config_file = environ.get("CI_TOOLS_CONFIG", "").strip()
    return Context(
        secrets=secrets,
        services=Services.from_environ(environ),
        runner=Runner.from_environ(environ),
        timeout=_seconds("CI_TOOLS_TIMEOUT", environ.get("CI_TOOLS_TIMEOUT")),
        poll=_seconds("CI_TOOLS_POLL", environ.get("CI_TOOLS_POLL")),
        config_file=Path(config_file) if config_file else None,
        child={name: environ[name] for name in CHILD_VARIABLES if environ.get(name)},
    )
