"""Hold production's releases: one repository variable the owner sets from their phone.

The owner is rarely at a laptop when something goes wrong, but GitHub's app can dispatch a
workflow: ``hold.yml`` runs ``ci-tools hold --on`` and production's release refuses to start
until ``--off``. The hold is the repository variable ``CI_TOOLS_RELEASES_HELD`` (REST
"Create/Update/Delete a repository variable"), because production.yml reads it as
``vars.CI_TOOLS_RELEASES_HELD`` without any token, and the owner sees it under Settings →
Variables. Writing it needs the fine-grained "Variables" permission, which ``GITHUB_TOKEN``
does not have (its ``permissions:`` keys list no variables scope: docs.github.com, "Controlling
permissions for GITHUB_TOKEN"), so hold.yml writes it with the owner's ``GITHUB_ADMIN_TOKEN``,
a secret of the production environment that only main's reviewed workflows reach.

The value says who held releases, since when and why, as a small JSON object. A value that
is not one (a person typed something in the settings page) still holds: a hold fails closed.
A rollback is never held — it is the way back.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ci_tools.errors import ConfigError

if TYPE_CHECKING:  # httpx stays unloaded until a command talks to GitHub: `hold --check` never does
    from ci_tools.clients.github_rest import GitHubAPI

HELD_VARIABLE = "CI_TOOLS_RELEASES_HELD"
LIFT = "dispatch hold.yml with hold off"


@dataclass(frozen=True)
class Hold:
    """Who held production's releases, since when (UTC, ISO 8601), and why."""

    by: str
    since: str
    reason: str

    @classmethod
    def new(cls, by: str, reason: str, now: datetime) -> Hold:
        return cls(by.strip() or "someone", now.strftime("%Y-%m-%dT%H:%M:%SZ"), reason.strip() or "no reason given")

    def encode(self) -> str:
        return json.dumps({"by": self.by, "since": self.since, "reason": self.reason}, sort_keys=True)

    @classmethod
    def decode(cls, value: str | None) -> Hold | None:
        """The hold a variable's value describes; None when it is unset or empty."""
        if value is None or not value.strip():
            return None
        try:
            data = json.loads(value)
        except ValueError:
            data = None
        if not isinstance(data, dict):  # set by hand: it still holds (fails closed)
            return cls("someone", "an unknown time", f"{HELD_VARIABLE} = {value.strip()[:80]!r}")
        return cls(
            str(data.get("by") or "someone"),
            str(data.get("since") or "an unknown time"),
            str(data.get("reason") or "no reason given"),
        )

    def line(self) -> str:
        return f"releases held since {self.since} by {self.by} ({self.reason})"


def _held_value(api: GitHubAPI) -> str | None:
    """The variable's value; None only when the repository answers and the variable is not there.
    GitHub answers 404 both for a variable that is unset and for a repository the token may not see
    (a fine-grained token given other repositories: 404, not 403, so as not to confirm it exists), so
    an unset variable is believed only once the repository itself answers: a token that cannot see
    it must not read as "not held" (the hold fails closed)."""
    value = api.variable(HELD_VARIABLE)
    if value is None:
        try:
            api.repository()
        except ConfigError as exc:
            if "GitHub answered 404" not in exc.message:
                raise
            raise ConfigError(
                f"GitHub answered 404 for {api.repo} itself: the token cannot see the repository, so "
                f"{HELD_VARIABLE} could not be read",
                hint=f"give the token (GITHUB_ADMIN_TOKEN) access to {api.repo}: a fine-grained token's "
                "Repository access must name it",
            ) from None
    return value


def hold_on(api: GitHubAPI, hold: Hold) -> Hold | None:
    """Set the hold (replacing an older one); the hold it replaced, if any."""
    with _variables_permission():
        before = Hold.decode(_held_value(api))
        api.set_variable(HELD_VARIABLE, hold.encode())
    return before


def read_hold(api: GitHubAPI) -> str | None:
    """The variable's value as GitHub has it now (None: unset); a token that may not read it is
    told as that."""
    with _variables_permission():
        return _held_value(api)


def hold_off(api: GitHubAPI) -> Hold | None:
    """Lift the hold; the hold that was lifted, or None when releases were not held."""
    with _variables_permission():
        value = _held_value(api)
        if value is not None:
            api.delete_variable(HELD_VARIABLE)
    return Hold.decode(value)


@contextlib.contextmanager
def _variables_permission() -> Iterator[None]:
    """A 403 here is a token without the Variables permission (a workflow's GITHUB_TOKEN has none):
    said as that, not as the admin rights the client's general hint asks for."""
    try:
        yield
    except ConfigError as exc:
        if "GitHub answered 403" not in exc.message:
            raise
        raise ConfigError(
            exc.message,
            hint="the token needs the Variables permission (read and write), which GITHUB_TOKEN never has: "
            "hold.yml and production.yml's check before the deploy pass production's GITHUB_ADMIN_TOKEN",
        ) from None


def refuse_if_held(value: str | None) -> None:
    """Before a production release changes anything: a held release ends here, in one line."""
    hold = Hold.decode(value)
    if hold is not None:
        raise ConfigError(f"{hold.line()}: {LIFT}")
