"""What ``ci-tools adopt`` reads from a bot's repository: how it is built and started, where it
keeps a user's memory, whether it answers a health check.

Everything here only reads. Each finding carries where it was found, so the owner can check it
("start command `python -m bot` from render.yaml"): a guess that is named can be corrected, a
silent one becomes a release that probes the wrong thing. The bot's usernames cannot be read
from its code (they live in @BotFather); nothing here pretends to find them.
"""

from __future__ import annotations

import ast
import itertools
import re
import shlex
import string
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci_tools.errors import InputError
from ci_tools.settings import pattern_problem

# Where the pipeline's own files land in the bot's repository: never read as the bot's code.
NOT_THE_BOTS = ("release_kit/", ".github/")
LIBRARIES = {"site-packages", "dist-packages", "node_modules"}  # installed code, wherever it lies
# The names an expression ends in when it is a Telegram user's (or private chat's) id.
ID_NAMES = {"id", "user_id", "userid", "uid", "chat_id", "chatid", "telegram_id", "tg_id", "from_id"}
# A Redis key as bots write them: a word, then ':'-separated parts; no spaces, slashes or '?'.
KEY_SHAPE = re.compile(r"^[A-Za-z][\w.\-]*:[\w.:\-{}]*$")
HEALTH_PATH = "/healthz"  # the kit's default, and the route a bot that has one serves


@dataclass(frozen=True)
class Finding:
    """One value and where it came from (a file, ``file:line``, or a rule)."""

    value: str
    origin: str


def files(root: Path) -> list[str]:
    """The repository's own files (tracked, or new and not ignored), as git lists them."""
    listed = subprocess.run(
        ["git", "-C", str(root), "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        capture_output=True,
        check=False,
    )
    if listed.returncode != 0:
        raise InputError(f"git cannot list the files of {root}", hint="check that it is a git repository")
    names = sorted({name for name in listed.stdout.decode("utf-8", "replace").split("\0") if name})
    # a virtualenv git does not ignore (``python -m venv venv`` writes no .gitignore before 3.13)
    # holds libraries, not the bot: its folder, and any site-packages, are skipped
    venvs = tuple(name.removesuffix("pyvenv.cfg") for name in names if name.endswith("/pyvenv.cfg"))
    return [
        name
        for name in names
        if not name.startswith(NOT_THE_BOTS + venvs)
        and LIBRARIES.isdisjoint(name.split("/"))
        and (root / name).is_file()
    ]


# -- the web service -----------------------------------------------------------------------------
def web_services(blueprint: Any) -> list[Any]:
    services = blueprint.get("services") if isinstance(blueprint, dict) else None
    return [s for s in services or [] if isinstance(s, dict) and s.get("type") == "web"]


def live_service(blueprint: Any, *, given: str | None, configured: str | None) -> Finding:
    """The web service that runs the bot today: production (its name is kept, it is live)."""
    services = web_services(blueprint)
    for service in services:
        if not isinstance(service.get("name"), str):
            raise InputError(
                f"render.yaml: a web service's name must be text, not {service.get('name')!r}",
                hint="name it as Render shows it (its dashboard), then run adopt again",
            )
    names = [str(s.get("name")) for s in services]
    if given:
        if given not in names:
            raise InputError(
                f"render.yaml has no web service named {given!r}",
                hint=f"use one of: {', '.join(names) or '(none)'}",
            )
        return Finding(given, "--service")
    if configured in names:
        return Finding(str(configured), "pyproject.toml (production's render_service)")
    # A service named <other>-dev is that one's staging twin, not a second live bot; a static site
    # (runtime: static, formerly env: static) runs no process, so it is no bot either.
    static = {str(s.get("name")) for s in services if "static" in (s.get("runtime"), s.get("env"))}
    candidates = [name for name in names if name not in static and not any(name == f"{o}-dev" for o in names)]
    if not candidates:
        raise InputError(
            "render.yaml has no web service: the pipeline releases a bot Telegram reaches by webhook",
            hint="add your bot's web service to render.yaml, or move render.yaml aside to have one written",
        )
    if len(candidates) > 1:
        raise InputError(
            f"render.yaml has {len(candidates)} web services ({', '.join(candidates)}): "
            "adopt cannot tell which one is your live bot",
            hint=f"name it: ci-tools adopt PATH --service {candidates[0]}",
        )
    return Finding(candidates[0], "render.yaml (its only web service)")


def key_value_of(service: Any) -> str | None:
    """The Key Value the service's REDIS_URL comes from, if it does."""
    for var in service.get("envVars") or []:
        source = var.get("fromService") if isinstance(var, dict) else None
        if var.get("key") == "REDIS_URL" and isinstance(source, dict) and source.get("type") == "keyvalue":
            return str(source.get("name"))
    return None


# -- build and start -----------------------------------------------------------------------------
def start_command(root: Path, listed: list[str], service: Any | None) -> Finding | None:
    """render.yaml's startCommand, else the Procfile's ``web:``, else ``python -m <package>``."""
    if service is not None and str(service.get("startCommand") or "").strip():
        return Finding(str(service["startCommand"]).strip(), "render.yaml")
    procfile = root / "Procfile"
    if "Procfile" in listed:
        for line in procfile.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("web:") and line[4:].strip():
                return Finding(line[4:].strip(), "Procfile")
    packages = sorted({name.split("/")[0] for name in listed if re.fullmatch(r"[A-Za-z_]\w*/__main__\.py", name)})
    if len(packages) == 1:
        return Finding(f"python -m {packages[0]}", f"{packages[0]}/__main__.py")
    # The src layout: importable once the build installs the project, which `pip install .` and
    # `uv sync` do (a requirements.txt or `poetry install --no-root` build does not).
    under_src = sorted({name.split("/")[1] for name in listed if re.fullmatch(r"src/[A-Za-z_]\w*/__main__\.py", name)})
    manifests = [name for name, _, _ in _manifests(root, listed)]
    if not packages and len(under_src) == 1 and manifests[:1] in (["pyproject.toml"], ["uv.lock"]):
        return Finding(f"python -m {under_src[0]}", f"src/{under_src[0]}/__main__.py (the build installs it)")
    return None


def module_of(command: str) -> str | None:
    """The module a ``python -m <module>`` start command runs."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    for before, after in itertools.pairwise(words):
        if before == "-m" and all(part.isidentifier() for part in after.split(".")):
            return after
    return None


# (lock or manifest, manager, build command), in the order one wins over the other
DEPENDENCY_FILES = (
    ("uv.lock", "uv", "uv sync --locked --no-dev"),
    ("poetry.lock", "poetry", "poetry install --only main --no-root"),
    ("requirements.txt", "pip", "pip install -r requirements.txt"),
    ("pyproject.toml", "pip", "pip install ."),
)


def _manifests(root: Path, listed: list[str]) -> list[tuple[str, str, str]]:
    """The dependency files present; a pyproject.toml only with a ``[project]`` (not one that
    holds nothing but tool settings, such as the one adopt writes)."""
    found = []
    for name, manager, command in DEPENDENCY_FILES:
        if name not in listed:
            continue
        if name == "pyproject.toml":
            text = (root / name).read_text(encoding="utf-8", errors="replace")
            if not re.search(r"^\[project\]", text, flags=re.M):
                continue
        found.append((name, manager, command))
    return found


def dependencies(root: Path, listed: list[str]) -> Finding | None:
    """The dependency manager, by the lock (or list) at the root: value ``manager``, origin the file."""
    return next((Finding(manager, name) for name, manager, _ in _manifests(root, listed)), None)


def build_command(root: Path, listed: list[str], service: Any | None) -> Finding | None:
    if service is not None and str(service.get("buildCommand") or "").strip():
        return Finding(str(service["buildCommand"]).strip(), "render.yaml")
    return next((Finding(command, name) for name, _, command in _manifests(root, listed)), None)


# -- the code: memory keys and a health endpoint -----------------------------------------------------
def _is_test(name: str) -> bool:
    """A test module: what it names (a key, a ``/healthz`` it asks for) is no finding of the bot's."""
    parts = name.split("/")
    file = parts[-1]
    return (
        any(part in ("test", "tests") for part in parts[:-1])
        or file == "conftest.py"
        or file.startswith("test_")
        or file.endswith("_test.py")
    )


def _trees(root: Path, listed: list[str]) -> list[tuple[str, ast.Module]]:
    """The bot's own Python modules, parsed (its tests are not the bot)."""
    found = []
    for name in listed:
        if name.endswith(".py") and not _is_test(name):
            try:
                found.append((name, ast.parse((root / name).read_text(encoding="utf-8"), filename=name)))
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue  # not this Python's, or not Python: it holds no finding we could trust
    return found


def _id_like(node: ast.expr) -> bool:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("str", "int"):
        return len(node.args) == 1 and _id_like(node.args[0])
    name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""
    return name.lower() in ID_NAMES or name.lower().endswith("_user_id")


def _braced(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _from_fstring(node: ast.JoinedStr) -> str | None:
    parts: list[str] = []
    for value in node.values:
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            parts.append(_braced(value.value))
        elif isinstance(value, ast.FormattedValue) and _id_like(value.value) and value.format_spec is None:
            parts.append("{user_id}")
        elif isinstance(value, ast.FormattedValue) and not parts:
            continue  # a leading prefix variable (f"{PREFIX}memory:{uid}"): the key is what follows
        else:
            return None
    return "".join(parts)


def _from_format_call(node: ast.Call) -> str | None:
    """``"memory:{}".format(uid)`` or ``"memory:{uid}".format(uid=…)``."""
    func = node.func
    if not (isinstance(func, ast.Attribute) and func.attr == "format" and isinstance(func.value, ast.Constant)):
        return None
    template = func.value.value
    if not isinstance(template, str):
        return None
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError:
        return None
    given = {kw.arg: kw.value for kw in node.keywords if kw.arg}
    if len(fields) != 1:
        return None
    field = fields[0]
    value = node.args[int(field or 0)] if field in ("", "0") and node.args else given.get(field)
    if value is None or not _id_like(value):
        return None
    return re.sub(r"\{[^{}]*\}", "{user_id}", template, count=1)


def _from_percent(node: ast.BinOp) -> str | None:
    """``"memory:%s" % uid``."""
    if not (isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str)):
        return None
    right = node.right.elts[0] if isinstance(node.right, ast.Tuple) and len(node.right.elts) == 1 else node.right
    template = node.left.value
    if template.count("%") != 1 or not _id_like(right):
        return None
    return re.sub(r"%[sd]", "{user_id}", _braced(template), count=1)


def _added(node: ast.expr) -> list[ast.expr]:
    """``a + b + c`` as [a, b, c] (Python parses it as ``(a + b) + c``)."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return [*_added(node.left), *_added(node.right)]
    return [node]


def _from_concatenation(node: ast.BinOp) -> str | None:
    """``"memory:" + str(uid)``, ``"user:" + str(user.id) + ":history"``."""
    parts: list[str] = []
    for index, part in enumerate(_added(node)):
        if isinstance(part, ast.Constant) and isinstance(part.value, str):
            parts.append(_braced(part.value))
        elif _id_like(part):
            parts.append("{user_id}")
        elif index > 0:
            return None  # a leading prefix variable is skipped, as in an f-string; any other part is not a key's
    return "".join(parts)


def _from_template(node: ast.Constant) -> str | None:
    """A template kept in a constant: ``KEY = "memory:{user_id}"`` (formatted elsewhere)."""
    if not isinstance(node.value, str):
        return None
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(node.value) if name is not None]
    except ValueError:
        return None
    if len(fields) != 1 or not (fields[0].lower() in ID_NAMES or fields[0].lower().endswith("_user_id")):
        return None
    return node.value.replace("{" + fields[0] + "}", "{user_id}")


def _key_pattern(node: ast.AST) -> str | None:
    if isinstance(node, ast.JoinedStr):
        pattern = _from_fstring(node)
    elif isinstance(node, ast.Call):
        pattern = _from_format_call(node)
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        pattern = _from_concatenation(node)
    elif isinstance(node, ast.BinOp):
        pattern = _from_percent(node)
    elif isinstance(node, ast.Constant):
        pattern = _from_template(node)
    else:
        return None
    if pattern is None or not KEY_SHAPE.match(pattern) or pattern_problem(pattern):
        return None
    return pattern


def memory_patterns(root: Path, listed: list[str]) -> list[Finding]:
    """Every Redis key pattern with one user id in it, first place each is written, sorted."""
    first: dict[str, str] = {}
    for name, tree in _trees(root, listed):
        # the inner sums of a + b + c are no keys of their own ("user:" + str(uid) of the one above)
        inner = {id(n.left) for n in ast.walk(tree) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Add)}
        for node in ast.walk(tree):
            if id(node) in inner:
                continue
            pattern = _key_pattern(node)
            if pattern and pattern not in first:
                first[pattern] = f"{name}:{getattr(node, 'lineno', 0)}"
    return [Finding(pattern, first[pattern]) for pattern in sorted(first)]


def _routes_healthz(node: ast.Call) -> bool:
    """``Route("/healthz", …)``, ``@app.get("/healthz")``, ``add_route("/healthz", …)``: the path
    handed to a call (a bare string naming it is no endpoint)."""
    return any(
        isinstance(arg, ast.Constant) and arg.value == HEALTH_PATH
        for arg in [*node.args[:1], *(kw.value for kw in node.keywords if kw.arg == "path")]
    )


def health_path(root: Path, listed: list[str]) -> Finding | None:
    """The path of the bot's health JSON: the kit's ``run_webhook`` (its ``health_path``, default
    /healthz), or a ``/healthz`` route of its own; None when the code shows neither.

    What this returns becomes Render's healthCheckPath on the live service, and a path the bot
    does not serve fails its every deploy: so only the bot's own modules count (never its tests),
    and only a path handed to a call."""
    for name, tree in _trees(root, listed):
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            if isinstance(node.func, ast.Attribute) and node.func.attr == "run_webhook":
                given = {kw.arg: kw.value for kw in node.keywords}
                chosen = given.get("health_path")
                if isinstance(chosen, ast.Constant) and isinstance(chosen.value, str):
                    served = "/" + chosen.value.lstrip("/")  # the kit's reading: its leading slash optional
                    return Finding(served, f"{name}:{node.lineno} (run_webhook's health_path)")
                if isinstance(node.func.value, ast.Name) and node.func.value.id == "kit":
                    return Finding(HEALTH_PATH, f"{name}:{node.lineno} (kit.run_webhook)")
            if _routes_healthz(node):
                return Finding(HEALTH_PATH, f"{name}:{node.lineno} (a {HEALTH_PATH} route)")
    return None
