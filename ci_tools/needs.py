"""The secrets each command reads: declared once, beside its parser, and resolved at the entry.

A command that reads a secret its workflow never provides fails only where it runs,
part-way through its work (the cutover once changed Render and only then looked for
a token). So each command declares its secrets with ``set_defaults(needs=Needs(…))``;
``main()`` resolves them before the command does anything, failing with every missing
name at once, and ``tests/repo/test_workflow_files.py`` checks that each workflow step calling
the command provides every declared name through ``env:``.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator, Mapping
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

    @property
    def names(self) -> tuple[str, ...]:
        return self.required + self.optional + self.local

    @property
    def in_workflows(self) -> tuple[str, ...]:
        """What every workflow step calling the command must pass (tests/repo/test_workflow_files.py)."""
        return self.required + self.optional


NOTHING = Needs()
# The running command's declaration: a read of any other secret is a bug in ci-tools, caught
# by every test that runs a command through main(). None outside a command (library use).
_running: contextvars.ContextVar[Needs | None] = contextvars.ContextVar("needs", default=None)


class UndeclaredSecret(RuntimeError):
    """A command read a secret it does not declare: its workflow steps may not provide it."""


def check_declared(name: str) -> None:
    declared = _running.get()
    if declared is not None and name not in declared.names:
        raise UndeclaredSecret(
            f"ci-tools reads {name} but the running command does not declare it: add it to the command's Needs"
        )


@contextlib.contextmanager
def running(needs: Needs | None) -> Iterator[None]:
    """While a command runs, its reads are checked against ``needs`` (None: not checked)."""
    token = _running.set(needs)
    try:
        yield
    finally:
        _running.reset(token)


def undeclared_allowed() -> contextlib.AbstractContextManager[None]:
    """For the rehearsal, which plays every command against the sandbox with its own secrets."""
    return running(None)


class Secrets(Mapping[str, str]):
    """The resolved values of one command's declared secrets (read-only; unset ones absent)."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:  # never the values
        return f"Secrets({sorted(self._values)})"


def resolve(needs: Needs, environ: Mapping[str, str] | None = None) -> Secrets:
    """Read every declared secret now; a missing required one names itself before any work."""
    environ = os.environ if environ is None else environ
    values = {name: environ.get(name, "").strip() for name in needs.names}
    missing = [name for name in needs.required if not values[name]]
    if missing:
        names = ", ".join(missing)
        raise ConfigError(
            f"missing secret{'s' if len(missing) > 1 else ''} {names}",
            hint=f"set {names} as GitHub environment secret{'s' if len(missing) > 1 else ''} "
            "and pass each through the step's env:, or export it for a local run",
        )
    return Secrets({name: value for name, value in values.items() if value})
