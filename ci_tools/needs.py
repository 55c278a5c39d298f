"""The secrets each command reads: declared once, beside its parser, and resolved at the entry.

A command that reads a secret its workflow never provides fails only where it runs,
part-way through its work (the cutover once changed Render and only then looked for
a token). So each command declares its secrets with ``set_defaults(needs=Needs(…))``;
``main()`` resolves them into the command's ``Context`` before it does anything, failing
with every missing name at once, and ``tests/repo/test_workflow_files.py`` checks that each workflow step calling
the command provides every declared name through ``env:``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from ci_tools.errors import ConfigError


@dataclass(frozen=True)
class Needs:
    """Secrets a command reads: ``required`` ones must be set; ``optional`` ones change behaviour."""

    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    # Read only where a person runs it (several environments' secrets at once, under prefixed
    # names): a workflow step passes the plain ones and need not pass these.
    local: tuple[str, ...] = ()
    # Every ``<ENV>_<NAME>`` variable (``github setup`` reads each environment's secrets by the
    # names its workflows use, which only the workflow files know).
    prefixed: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return self.required + self.optional + self.local

    @property
    def in_workflows(self) -> tuple[str, ...]:
        """What every workflow step calling the command must pass (tests/repo/test_workflow_files.py)."""
        return self.required + self.optional


NOTHING = Needs()
PREFIXED = re.compile(r"^[A-Z][A-Z0-9]*_[A-Z0-9_]+$")


class UndeclaredSecret(RuntimeError):
    """A command read a secret it does not declare: its workflow steps may not provide it."""


class Secrets(Mapping[str, str]):
    """The resolved values of one command's declared secrets (read-only; unset ones absent).

    Asking for a name outside ``declared`` raises ``UndeclaredSecret``: every test that runs
    a command through ``main()`` catches a read its workflow steps would not provide.
    ``declared=None`` (a Context built for the rehearsal or a test) allows every name.
    """

    def __init__(
        self, values: Mapping[str, str], *, declared: Iterable[str] | None = None, prefixed: bool = False
    ) -> None:
        self._values = {name: value.strip() for name, value in values.items() if value and value.strip()}
        self._declared = None if declared is None else frozenset(declared)
        self._prefixed = prefixed

    def _check(self, name: str) -> None:
        if self._prefixed and PREFIXED.match(name):
            return
        if self._declared is not None and name not in self._declared:
            raise UndeclaredSecret(
                f"ci-tools reads {name} but the running command does not declare it: add it to the command's Needs"
            )

    def __getitem__(self, name: str) -> str:
        self._check(name)
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self._check(name)
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:  # never the values
        return f"Secrets({sorted(self._values)})"


def resolve(needs: Needs, environ: Mapping[str, str]) -> Secrets:
    """Read every declared secret now; a missing required one names itself before any work."""
    values = {name: environ.get(name, "").strip() for name in needs.names}
    if needs.prefixed:
        values |= {name: value for name, value in environ.items() if PREFIXED.match(name)}
    missing = [name for name in needs.required if not values[name]]
    if missing:
        names = ", ".join(missing)
        raise ConfigError(
            f"missing secret{'s' if len(missing) > 1 else ''} {names}",
            hint=f"set {names} as GitHub environment secret{'s' if len(missing) > 1 else ''} "
            "and pass each through the step's env:, or export it for a local run",
        )
    return Secrets(values, declared=needs.names, prefixed=needs.prefixed)


# Where each value comes from, for ``--help`` (an <ENV>_ prefix is looked past).
ORIGINS = {
    "RENDER_API_KEY": "Render → Account Settings → API Keys",
    "RENDER_SERVICE_ID": "srv-… in the service's dashboard URL; ci-tools init finds it",
    "RENDER_DEPLOY_HOOK_URL": "the service's Settings → Deploy Hook (only without RENDER_API_KEY)",
    "TELEGRAM_BOT_TOKEN": "@BotFather → /mybots → API Token",
    "NEW_TELEGRAM_BOT_TOKEN": "the new bot's token (default in cutover.yml: the environment's TELEGRAM_BOT_TOKEN)",
    "PREVIOUS_TELEGRAM_BOT_TOKEN": "kept on the Render service by the cutover itself",
    "TELEGRAM_WEBHOOK_SECRET": "the service's own; ci-tools init reads or makes it",
    "REDIS_URL": "the Key Value's external connection string; ci-tools init finds it",
    "SOURCE_REDIS_URL": "the source Key Value's external connection string",
    "TARGET_REDIS_URL": "the target Key Value's external connection string",
    "MEMORY_SNAPSHOT_KEY": "a Fernet key; ci-tools init makes one",
    "OWNER_CHAT_ID": "your own Telegram user id (the owner): ci-tools init asks for it; @userinfobot tells it",
    "GITHUB_TOKEN": "a GitHub token with admin rights on the repository (or GH_TOKEN)",
    "GH_TOKEN": "the same as GITHUB_TOKEN (what gh uses)",
    "DAILY_USER_ID": "the daily user's Telegram id",
}


def _origin(name: str) -> str:
    if name in ORIGINS:
        return ORIGINS[name]
    head, _, rest = name.partition("_")
    return ORIGINS.get(rest, "") and f"{head.lower()}'s: {ORIGINS[rest]}"


def describe(needs: Needs) -> str:
    """The variables a command reads, for its ``--help``: which must be set, where each comes from."""
    lines = []
    for kind, names in (("required", needs.required), ("optional", needs.optional), ("local runs", needs.local)):
        for name in names:
            origin = _origin(name)
            lines.append(f"  {name:<32} {kind}{f' — {origin}' if origin else ''}")
    if needs.prefixed:
        lines.append("  <ENV>_<NAME>                     every environment's secrets by the names its workflows use")
    if not lines:
        return ""
    return (
        "environment variables it reads (in GitHub Actions: the environment's secrets, through the step's env:;\n"
        "on your machine: exported, or the .env that `ci-tools init` writes, for github setup):\n" + "\n".join(lines)
    )
