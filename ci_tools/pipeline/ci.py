"""The bot's own tests, as ci.yml runs them: the owner's one command, nothing of the pipeline's.

What a bot is tested with is the owner's business (pytest, unittest, a Makefile, nothing), so
the pipeline asks for one shell command, ``[tool.ci_tools.ci] test_command``, and runs it with
bash in the repository's root, the way the owner runs it on a laptop. It inherits what a
process the pipeline starts inherits (``Context.child``: PATH, HOME, the locale, proxies and
the package indexes, never a secret; the job holds none anyway), plus ``CI=true`` as every CI
service sets it. Its output is the owner's and goes straight to the log.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from ci_tools.errors import ConfigError
from ci_tools.settings import CI


def run_tests(ci: CI, root: Path, environ: Mapping[str, str]) -> int | None:
    """The test command's exit status, or None when no test command is configured."""
    if ci.test_command is None:
        return None
    bash = shutil.which("bash", path=environ.get("PATH"))
    if bash is None:
        raise ConfigError("bash is not on PATH, so test_command cannot run", hint="run on a runner that has bash")
    done = subprocess.run(
        [bash, "-c", ci.test_command],
        cwd=root,
        env={**environ, "CI": "true"},
        check=False,
    )
    return done.returncode
