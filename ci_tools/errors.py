"""One error hierarchy, one exit code per kind of failure.

Workflows and people both act on the exit code: a configuration error needs a
settings change, bad input needs a different command line, a remote error may pass
if retried later, and a verification error means something is wrong with data or a
deploy and a person must look. Every message is one line that names the problem
and the fix; ``main()`` prints it without a stack trace.
"""

from __future__ import annotations


class FatalError(Exception):
    """Base of every error that ends a ``ci-tools`` command on purpose."""

    exit_code = 1
    kind = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = self.message if not self.hint else f"{self.message} — {self.hint}"
        return " ".join(text.split())

    def __str__(self) -> str:
        return self.one_line()


class InputError(FatalError):
    """The command line or an input file is wrong; nothing was changed."""

    exit_code = 2
    kind = "bad input"


class ConfigError(FatalError):
    """pyproject.toml, render.yaml or a required secret is missing or inconsistent."""

    exit_code = 3
    kind = "configuration"


class RemoteError(FatalError):
    """Render, Telegram or Redis refused or did not answer in time."""

    exit_code = 4
    kind = "remote service"


class VerificationError(FatalError):
    """A check failed: the deploy, the bot or the copied data is not what it must be."""

    exit_code = 5
    kind = "verification"
