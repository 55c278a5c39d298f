"""The whole outside world on one machine: what tests and ``ci-tools rehearse`` deploy into.

Two Redis servers (dev and prod), the Telegram and Render stand-ins, the two
services with their routers, a ``pyproject.toml`` whose environments point at
those routers, and a git repository with ``main`` and ``develop``.

With ``source`` (a checkout of this project) the repository is a copy of that
project whose committed ``pyproject.toml`` points at the routers: the workflow
tests run the project's own workflow files in it, as GitHub would run them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import tomlkit

from ci_tools.settings import NO_PREFIX, load_config
from sandbox.redis import RedisServer
from sandbox.render import FakeRender, FakeService
from sandbox.telegram import FakeBot, FakeTelegram

DAILY_USER = 424242001  # the sandbox's daily user: protected, as `ci-tools init` protects the owner's
PROTECTED = re.compile(r"^protected_users = \[[^\]]*\]", re.M)
PATTERNS = '["user:{user_id}:history", "user:{user_id}:profile", "memory:{user_id}"]'
# 1.8 s, a look every 0.4 s; and no wait for a quiet moment (a test of it sets its own quiet_seconds)
BAKE = {"bake_minutes": 0.03, "bake_interval_seconds": 0.4, "quiet_seconds": 0}
# What a commit holds for Render to build and start the reference bot (render.yaml's services),
# besides the packages its build backend names (bot_project()).
BOT_PROJECT = ("render.yaml", "pyproject.toml", "uv.lock", "README.md")
SECRETS = {"staging": "whsec-staging-0123456789", "production": "whsec-production-0123456789"}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=sandbox", "-c", "user.email=sandbox@example.invalid", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def bot_project(source: Path) -> tuple[str, ...]:
    """BOT_PROJECT and every package ``[tool.uv.build-backend] module-name`` names: ``uv sync``
    builds the project, and its backend fails on a named package the commit lacks."""
    backend = tomllib.loads((source / "pyproject.toml").read_text())["tool"]["uv"]["build-backend"]
    named = backend.get("module-name", [])
    return (*BOT_PROJECT, *([named] if isinstance(named, str) else named))


class World:
    def __init__(
        self,
        root: Path,
        *,
        process: bool = False,
        latency: float = 0.0,
        step: float = 0.1,
        source: Path | None = None,
        legacy_staging: bool = False,
    ) -> None:
        self.root = root
        # Staging as the seed starts it: the daily user's bot, with unprefixed keys (KEY_PREFIX=none).
        self.legacy_staging = legacy_staging
        self.source = source
        self.process = process
        self.latency = latency
        self.step = step
        self.redis: dict[str, RedisServer] = {}
        self.bots: dict[str, FakeBot] = {}
        self.services: dict[str, FakeService] = {}

    def _names(self) -> dict[str, tuple[str, str, str, str]]:
        """Each environment's Render service, Key Value, bot and branch: as the copied project's
        config names them (an adopted repository's ``ava-bot-dev``), else the sandbox's own."""
        if self.source:
            config = load_config(self.source / "pyproject.toml")
            return {
                name: (env.render_service, env.key_value, env.bot_username, env.branch)
                for name, env in config.environments.items()
            }
        return {
            "staging": ("mindmate-dev", "mindmate-dev-redis", "mindmate_dev_bot", "develop"),
            "production": ("mindmate-prod", "mindmate-prod-redis", "mindmate_companion_bot", "main"),
        }

    def start(self) -> World:
        self.root.mkdir(parents=True, exist_ok=True)
        names = self._names()
        self.redis = {"staging": RedisServer().start(), "production": RedisServer().start()}
        self.telegram = FakeTelegram(latency=self.latency).start()
        self.bots = {env: self.telegram.add_bot(names[env][2]) for env in ("staging", "production")}
        self.render = FakeRender(step=self.step, process=self.process).start()
        self.render.log_dir = self.root
        # Each Redis is a Key Value instance: the bots use the internal URL (inside Render),
        # anything outside reaches it only through the allow-listed external URL.
        self.key_values = {
            env: self.render.add_key_value(names[env][1], self.redis[env].url) for env in ("staging", "production")
        }
        prefixes = self._prefixes()
        for env in ("staging", "production"):
            service, _, _, branch = names[env]
            self.services[env] = self.render.add_service(
                service,
                branch,
                {
                    "ENV": env,
                    "KEY_PREFIX": prefixes[env],
                    "REDIS_URL": self.redis[env].url,
                    "TELEGRAM_BOT_TOKEN": self.bots[env].token,
                    "TELEGRAM_WEBHOOK_SECRET": SECRETS[env],
                    "TELEGRAM_API_URL": self.telegram.url,
                },
                latency=self.latency,
            )
        # Each environment's own scoped Render key (render.com/docs/api-keys): staging's reaches only
        # staging's service and Key Value, so feature-branch code there cannot change production;
        # production's also admits its runs to staging's Key Value (a copy's source, the watch's sweep).
        staging, production = self.services["staging"], self.services["production"]
        kv = self.key_values
        self.render_keys = {
            "staging": self.render.scoped_key({staging.id: "write", kv["staging"].id: "write"}),
            "production": self.render.scoped_key(
                {production.id: "write", kv["production"].id: "write", kv["staging"].id: "write"}
            ),
        }
        self.repo = self.root / "repo"
        self.repo.mkdir(exist_ok=True)
        git(self.repo, "init", "-q", "-b", "main")
        if self.source:
            self._copy_project(self.source)
            self.config = self.repo / "pyproject.toml"
            git(self.repo, "add", "-A")
        else:
            self.config = self.root / "pyproject.toml"
            self.config.write_text(self._config_text())
        git(self.repo, "commit", "-q", "--allow-empty", "-m", "initial")
        git(self.repo, "branch", names["staging"][3])
        self.render.repo = self.repo  # what the deploy hooks deploy: each branch's head
        return self

    def _prefixes(self) -> dict[str, str]:
        """Each service's KEY_PREFIX: as the copied project's config says, else the sandbox's own."""
        if self.source:
            config = load_config(self.source / "pyproject.toml")
            return {name: env.key_prefix_variable for name, env in config.environments.items()}
        return {"staging": NO_PREFIX if self.legacy_staging else "dev:", "production": "prod:"}

    def _copy_project(self, source: Path) -> None:
        """The files git would commit from ``source``, with each base_url pointing at a router."""
        listed = git(source, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
        for name in filter(None, listed.split("\0")):
            origin = source / name
            if origin.is_file():
                (self.repo / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, self.repo / name)
        config = self.repo / "pyproject.toml"
        document: Any = tomlkit.parse(config.read_text())
        tables = document["tool"]["ci_tools"]
        for env, service in self.services.items():
            if "base_url" not in tables["environments"].get(env, {}):
                raise RuntimeError(f"{config}: no base_url for {env} to point at the stand-in")
            tables["environments"][env]["base_url"] = service.router.url
        # The daily user protected, as init leaves an owner's config: a production release's
        # replay gate fails when it would check nothing (no protected user).
        tables.setdefault("memory_backup", tomlkit.table())["protected_users"] = [DAILY_USER]
        # The bake window, scaled down as the stand-ins' clocks are: minutes to seconds.
        tables["environments"]["production"].update(BAKE)
        config.write_text(tomlkit.dumps(document))

    def _config_text(self) -> str:
        text = [
            '[tool.ci_tools.flow]\ndevelop = ["feature/*", "fix/*", "main"]\nmain = ["develop", "hotfix/*"]\n',
            # The probe's conversation as mindmate's pyproject has it: a fact stored and read back.
            '[tool.ci_tools.probe]\nturns = ["/start", "/remember probe-{nonce}", "/recall"]\n'
            'expect = "probe-{nonce}"\n',
        ]
        for env, bot in (("staging", "mindmate_dev_bot"), ("production", "mindmate_companion_bot")):
            service = self.services[env]
            text.append(
                f"[tool.ci_tools.environments.{env}]\n"
                f'branch = "{service.branch}"\nrender_service = "{service.name}"\n'
                f'bot_username = "{bot}"\nbase_url = "{service.router.url}"\n'
                f'key_prefix = "{service.env["KEY_PREFIX"].replace(NO_PREFIX, "")}"\nmemory_patterns = {PATTERNS}\n'
                "bake_minutes = 0\n"  # the pipeline tests release at once; a bake test sets its own window
                "quiet_seconds = 0\n"  # nor wait for a quiet moment; a test of it sets its own
            )
        return "\n".join(text)

    def protect(self, *users: int) -> None:
        """``protected_users`` in the repository's config (not committed: the caller commits)."""
        text = self.config.read_text()
        self.config.write_text(PROTECTED.sub(f"protected_users = [{', '.join(map(str, users))}]", text, count=1))

    def commit(self, branch: str, message: str) -> str:
        """A new commit on ``branch`` (created from main if new); its full SHA."""
        current = git(self.repo, "branch", "--list", branch)
        git(self.repo, "checkout", "-q", branch) if current else git(self.repo, "checkout", "-q", "-b", branch, "main")
        git(self.repo, "commit", "-q", "--allow-empty", "-m", message)
        return git(self.repo, "rev-parse", "HEAD")

    def add_bot_project(self, source: Path, message: str) -> str:
        """A commit on main holding the reference bot's project from ``source``: what its render.yaml
        services build and start (``uv sync --locked`` needs the project's metadata and all of its
        packages, ``.venv/bin/python -m mindmate`` the bot). Its full SHA."""
        git(self.repo, "checkout", "-q", "main")
        names = bot_project(source)
        for name in names:
            origin, target = source / name, self.repo / name
            if origin.is_dir():
                shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
            else:
                shutil.copy2(origin, target)
        git(self.repo, "add", *names)
        git(self.repo, "commit", "-q", "-m", message)
        return git(self.repo, "rev-parse", "HEAD")

    def secrets(self, env: str) -> dict[str, str]:
        """What a GitHub environment would hold for ``env``, plus the stand-ins' addresses."""
        service = self.services[env]
        return {
            "CI_TOOLS_CONFIG": str(self.config),
            "RENDER_API_URL": self.render.url,
            "TELEGRAM_API_URL": self.telegram.url,
            "RENDER_DEPLOY_HOOK_URL": self.render.hook_url(service),
            "RENDER_API_KEY": self.render_keys[env],
            "RENDER_SERVICE_ID": service.id,
            "TELEGRAM_BOT_TOKEN": self.bots[env].token,
            "TELEGRAM_WEBHOOK_SECRET": SECRETS[env],
            "REDIS_URL": self.redis[env].url,
        }

    def external_redis_url(self, env: str) -> str:
        """The Key Value's external connection string: refused unless its allow list admits us."""
        return self.key_values[env].external_url

    def stop(self) -> None:
        for part in ("render", "telegram"):
            if hasattr(self, part):
                getattr(self, part).stop()
        for server in self.redis.values():
            server.close()

    def __enter__(self) -> World:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
