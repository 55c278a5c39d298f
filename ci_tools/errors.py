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


class BotRunError(VerificationError):
    """A bot did not build or start from its own commands (``ci_tools/botrun``): its log's last
    lines are kept in ``log_tail`` for whoever shows them (they are the bot's words: redact them)."""

    def __init__(self, message: str, *, hint: str | None = None, log_tail: tuple[str, ...] = ()) -> None:
        super().__init__(message, hint=hint)
        self.log_tail = log_tail


class BuildFailed(BotRunError):
    """The service's build command exited non-zero (or the tree has nothing to build from)."""


class StartFailed(BotRunError):
    """The start command exited before the bot answered, or it never answered in time."""


OWN_PACKAGES = {"ci_tools", "mindmate"}


def from_unexpected(exc: BaseException) -> FatalError:
    """Turn an exception no layer below translated into the one line ``main()`` prints.

    Outside services failing in transport (connection refused, timeout, a Redis that went
    away) are a ``RemoteError``: exit 4, naming the service
    and the fix. Anything else is a defect in ci-tools: exit 1, and ``-vv`` shows the
    traceback. Imports stay lazy: a module only raised it if it was already imported.
    """
    module = type(exc).__module__.split(".")[0]
    name = type(exc).__name__
    if module == "httpx":
        request = getattr(exc, "_request", None)
        where = f"{request.url.scheme}://{request.url.host}" if request is not None else "a service"
        return RemoteError(
            f"cannot reach {where} ({name})",
            hint="check the service's URL and that it is up, then run the command again",
        )
    if module == "redis":
        return RemoteError(
            f"Redis did not answer ({name}: {exc})",
            hint="check the Redis URL secret and that the server is up and reachable from here",
        )
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] == "sandbox":
        return ConfigError(
            "the stand-ins (sandbox/) are not installed: they ship with a checkout of the repository, not the wheel",
            hint="run it from a clone: git clone …, then uv run ci-tools rehearse",
        )
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] not in OWN_PACKAGES:
        # A library of the `tools` extra or the `sandbox` group is not installed: the install,
        # not ci-tools, is what needs changing (`uv sync --no-default-groups` brings the bot alone).
        return ConfigError(
            f"the Python package {exc.name!r} is not installed here",
            hint="install the pipeline's libraries with `uv sync --locked` (or `uv run ci-tools …`)",
        )
    if isinstance(exc, ImportError) and exc.name and exc.name.split(".")[0] not in OWN_PACKAGES:
        # Installed, but not the version ci-tools was built against (`cannot import name …`).
        return ConfigError(
            f"the Python package {exc.name!r} installed here is not the version ci-tools needs ({exc})",
            hint="install the pipeline's libraries as locked with `uv sync --locked` (or `uv run ci-tools …`)",
        )
    if isinstance(exc, ConnectionError | TimeoutError):
        return RemoteError(f"a service did not answer ({name}: {exc})", hint="run again later")
    return FatalError(
        f"unexpected {name}: {exc}",
        hint="this is a bug in ci-tools: run again with -vv for the traceback and report it",
    )
