"""Build a bot as Render's Python runtime does: its build command, in a virtualenv of its own.

Render's native Python runtime builds and runs in a virtualenv at the project's ``.venv``
(``/opt/render/project/src/.venv``: its build logs run ``pip`` as ``.venv/bin/python -m pip``,
and a start command's ``gunicorn`` resolves to ``.venv/bin/gunicorn``), on PATH for both the
build and the start command; uv is added when the tree has a ``uv.lock``
(render.com/docs/uv-version), and ``uv sync`` syncs that same ``.venv``. So ``pip install -r
requirements.txt``, ``uv sync --locked`` and ``.venv/bin/python -m bot`` all work as written.

Tests deploy hundreds of times, so a build is made cheap without changing what it means:

- the virtualenv sees this interpreter's site-packages (a ``.pth`` line, after its own), so
  ``pip install -r requirements.txt`` of what is installed here already is a no-op, offline;
  uv installs from its cache (the caller passes ``UV_OFFLINE=1`` where nothing may be fetched);
- builds are cached by the build command and the content of the dependency files (Render keeps
  a build cache too): an unchanged dependency set is copied (hard links) and relocated to the
  new tree instead of being built again. A build that wrote into the tree outside ``.venv``
  (collectstatic, a generated file) is never cached: a copy of its ``.venv`` would lack that.
  Nor is one that installed the tree's own code as a copy (``pip install .``): the dependency
  files stay the same from commit to commit, that code does not. The dependency files are the
  known names, the files the build command names, and the files they include (``-r``, ``-c``).
- one build of a folder at a time (a lock on the folder): two deploys of one commit share it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from ci_tools import cancel
from ci_tools.botrun.commands import BotCommands
from ci_tools.botrun.logs import last_lines
from ci_tools.botrun.sessions import die_with_parent, stop_session
from ci_tools.errors import BuildFailed

VENV = ".venv"
BUILT = ".ci-tools-build"  # inside .venv: the key it was built for, and from which folder
SHARED = "_ci_tools_shared_site.pth"  # this interpreter's site-packages, after the venv's own
DEPENDENCY_FILES = (
    "requirements.txt",
    "requirements.in",
    "constraints.txt",
    "uv.lock",
    "poetry.lock",
    "Pipfile",
    "Pipfile.lock",
    "setup.py",
    "setup.cfg",
    ".python-version",
)
# The pyproject.toml tables that decide what a build installs ([tool.ci_tools] does not).
PYPROJECT_TABLES = ("project", "build-system", "dependency-groups")
PYPROJECT_TOOLS = ("uv", "poetry", "pdm", "setuptools", "hatch")
BUILD_TIMEOUT = 900.0  # Render's own build limit is longer; a test's build takes well under a second
# Bumped when what a key covers changes: entries stored under the old rule are not reused.
KEY_VERSION = "2"  # 2: requirement files' includes; no entry holds the tree's own code
MAX_INCLUDES = 200  # requirement files followed per key: a cycle or a huge tree ends here
_INCLUDE = re.compile(r"^\s*(?:-r|-c|--requirement|--constraint)(?:\s*=\s*|\s+|(?=[^\s-]))(?P<path>\S+)", re.M)
CACHE_DAYS = 2.0  # entries unused this long are removed when a new one is stored
# pip as the virtualenv's own command: without it, ``pip`` on PATH would be another Python's
# (a pyenv shim), and the build would install into that Python instead.
PIP_WRAPPER = '#!/bin/sh\nexec "$(dirname "$0")/python" -m pip "$@"\n'


def default_cache() -> Path:
    """Where builds are kept between deploys (and between test workers): per user, temporary."""
    return Path(tempfile.gettempdir()) / f"ci-tools-builds-{os.getuid()}"


def build(
    tree: Path,
    commands: BotCommands,
    env: Mapping[str, str],
    *,
    cache: Path | None = None,
    log: Path | None = None,
    timeout: float = BUILD_TIMEOUT,
) -> None:
    """Run ``commands.build`` with ``bash -c`` in ``tree`` (its ``rootDir``), in ``.venv``.

    ``env`` is the build's whole environment (PATH included: the caller's, never read here);
    the virtualenv goes first on its PATH. With ``cache`` an unchanged dependency set is not
    built again. BuildFailed carries the log's last lines."""
    workdir = tree / commands.root if commands.root else tree
    if not workdir.is_dir() or not workdir.resolve().is_relative_to(tree.resolve()):
        raise BuildFailed(f"the service's rootDir {commands.root!r} is not in the tree", hint="fix rootDir")
    with _building(workdir):  # one build of a folder at a time: another one's rmtree would pull .venv away
        _build(workdir, commands, env, cache, log, timeout)


def _build(
    workdir: Path, commands: BotCommands, env: Mapping[str, str], cache: Path | None, log: Path | None, timeout: float
) -> None:
    venv = workdir / VENV
    key = build_key(workdir, commands)
    if _built_for(venv) == key:
        return  # this tree was built for this dependency set already (a redeploy of the same commit)
    if venv.exists() or venv.is_symlink():
        shutil.rmtree(venv, ignore_errors=True)
    entry = cache / key if cache is not None and _private(cache) else None
    if entry is not None and (entry / VENV).is_dir():
        if _restore(entry, workdir):
            return
        shutil.rmtree(entry, ignore_errors=True)  # damaged (half pruned, a full disk): built afresh
        shutil.rmtree(venv, ignore_errors=True)
    make_venv(venv)
    before = _tree_state(workdir)
    if commands.build:
        _run(commands.build, workdir, build_environ(venv, env), log, timeout)
    _mark(venv, key, workdir)
    if entry is not None and _tree_state(workdir) == before and not _holds_own_code(venv, workdir):
        _store(entry, workdir)


@contextlib.contextmanager
def _building(workdir: Path) -> Iterator[None]:
    """An exclusive lock on the folder itself (flock(2) on its descriptor: nothing is written
    into the tree), held by one build at a time, across threads and processes."""
    descriptor = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # the lock goes with its descriptor


def _holds_own_code(venv: Path, workdir: Path) -> bool:
    """Whether the build installed code of the tree itself, not as an editable link
    (``pip install .``, ``uv sync --no-editable``, ``./libs/x`` in requirements.txt): its copy in
    .venv is this commit's code, which the dependency files do not describe."""
    root = workdir.resolve()
    for record in site_packages(venv).glob("*.dist-info/direct_url.json"):
        try:
            origin = json.loads(record.read_text())
        except (OSError, ValueError):
            return True  # unreadable: not known to be safe to reuse
        if not isinstance(origin, dict):
            continue
        url = str(origin.get("url", ""))
        dir_info = origin.get("dir_info")
        editable = isinstance(dir_info, dict) and dir_info.get("editable") is True
        if url.startswith("file://") and not editable:
            path = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
            if path.resolve().is_relative_to(root):
                return True
    return False


def build_environ(venv: Path, env: Mapping[str, str]) -> dict[str, str]:
    """The build's (and the start's) environment: ``env`` with the virtualenv active and first on
    PATH, then this interpreter's own bin/ (where uv and poetry are when installed with it)."""
    path = [str(venv / "bin"), str(Path(sys.executable).parent), env.get("PATH", os.defpath)]
    done = {k: v for k, v in env.items() if k not in ("UV_PROJECT_ENVIRONMENT", "PYTHONHOME", "CONDA_PREFIX")}
    done.update(VIRTUAL_ENV=str(venv), PATH=os.pathsep.join(path), PIP_DISABLE_PIP_VERSION_CHECK="1")
    return done


def make_venv(venv: Path) -> None:
    """A virtualenv of this interpreter that sees this interpreter's packages (after its own):
    ``venv`` without pip (50 ms instead of 6 s), its ``pip`` the one those packages carry."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
        check=True,
        capture_output=True,
    )
    shared = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (site_packages(venv) / SHARED).write_text("".join(f"{p}\n" for p in shared))
    for name in ("pip", "pip3"):
        wrapper = venv / "bin" / name
        wrapper.write_text(PIP_WRAPPER)
        wrapper.chmod(0o755)


def site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def build_key(workdir: Path, commands: BotCommands) -> str:
    """What decides the build's result: the command, this interpreter, the dependency files."""
    digest = hashlib.sha256()
    for part in (KEY_VERSION, commands.build, sys.executable, sys.version):
        digest.update(part.encode() + b"\0")
    named = {token for token in _tokens(commands.build) if "/" in token or "." in token}
    for name, data in _dependency_files(workdir, sorted(set(DEPENDENCY_FILES) | named)):
        digest.update(name.encode() + b"\0" + data + b"\0")
    digest.update(_pyproject_part(workdir / "pyproject.toml"))
    return digest.hexdigest()[:32]


def _dependency_files(workdir: Path, names: list[str]) -> list[tuple[str, bytes]]:
    """``names`` that are files of the tree, with the files they include (``-r``/``-c`` of a
    requirements file, relative to it, nested): what pip reads."""
    root = workdir.resolve()
    found: dict[str, bytes] = {}
    pending = list(names)
    while pending and len(found) < MAX_INCLUDES:
        name = pending.pop(0)
        path = (workdir / name).resolve()
        key = path.relative_to(root).as_posix() if path.is_relative_to(root) else ""
        if not key or key in found or not path.is_file():
            continue
        found[key] = path.read_bytes()
        base = path.parent.relative_to(root)
        pending += [(base / include).as_posix() for include in _includes(found[key])]
    return sorted(found.items())


def _includes(data: bytes) -> list[str]:
    """The files a requirements file includes: ``-r X``, ``--requirement X``, ``-c X``, ``--constraint=X``."""
    text = data.decode(errors="replace")
    return [match["path"] for match in _INCLUDE.finditer(text)]


def _tokens(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def _pyproject_part(path: Path) -> bytes:
    """The tables of pyproject.toml that a build installs from, canonical (comments and the
    pipeline's own [tool.ci_tools] do not change a build)."""
    if not path.is_file():
        return b""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return path.read_bytes()
    tools = document.get("tool", {})
    kept = {name: document.get(name) for name in PYPROJECT_TABLES}
    kept["tool"] = {name: tools.get(name) for name in PYPROJECT_TOOLS} if isinstance(tools, dict) else tools
    return json.dumps(kept, sort_keys=True, default=str).encode()


def _run(command: str, workdir: Path, environ: dict[str, str], log: Path | None, timeout: float) -> None:
    with _log_file(log) as (path, handle):
        handle.write(f"==> Running build command '{command}'...\n".encode())
        handle.flush()

        # Its own session, dying with us: pip (bash's child) ends with the build however it ends,
        # with what it left running in the background, on Ctrl-C or SIGTERM too.
        def spawn() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                ["bash", "-c", command],
                cwd=workdir,
                env=environ,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,  # only prctl(2), before exec: safe with threads
            )

        with cancel.owned(spawn, lambda process: stop_session(process, grace=2.0)) as process:
            try:
                returncode = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise BuildFailed(
                    f"the build command ran past {timeout:.0f} s: {command}",
                    hint="make the build finish (a prompt waiting for input?)",
                    log_tail=last_lines(path),
                ) from None
        tail = last_lines(path)
    if returncode != 0:
        last = tail[-1] if tail else "it printed nothing"
        raise BuildFailed(
            f"the build command exited with {returncode}: {command} ({last})",
            hint="run the build command in a fresh clone to see the whole log, and fix it",
            log_tail=tail,
        )


@contextlib.contextmanager
def _log_file(log: Path | None) -> Iterator[tuple[Path, BinaryIO]]:
    if log is not None:
        with log.open("ab") as handle:
            yield log, handle
        return
    with tempfile.TemporaryDirectory(prefix="ci-tools-build-") as folder:
        path = Path(folder) / "build.log"
        with path.open("ab") as handle:
            yield path, handle


def _tree_state(workdir: Path) -> dict[str, tuple[int, int]]:
    """Every file outside .venv with its size and modification time: what a build may change."""
    state = {}
    for folder, dirs, files in os.walk(workdir):
        if folder == str(workdir):
            dirs[:] = [d for d in dirs if d != VENV]
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            with contextlib.suppress(OSError):
                info = os.lstat(os.path.join(folder, name))
                state[os.path.join(folder, name)] = (info.st_size, info.st_mtime_ns)
    return state


def _mark(venv: Path, key: str, workdir: Path) -> None:
    """Written anew, never in place: a restored .venv shares its files with the cache."""
    fresh = venv / f"{BUILT}.new"
    fresh.write_text(json.dumps({"key": key, "origin": str(workdir)}))
    fresh.replace(venv / BUILT)


def _built_for(venv: Path) -> str | None:
    try:
        return str(json.loads((venv / BUILT).read_text())["key"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _store(entry: Path, workdir: Path) -> None:
    """Keep the built .venv under ``entry`` (hard links: no second copy on disk)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        subprocess.run(["cp", "-al", str(workdir / VENV), str(staging / VENV)], check=True, capture_output=True)
        staging.rename(entry)
    except (OSError, subprocess.CalledProcessError):
        shutil.rmtree(staging, ignore_errors=True)  # another build stored the same key first
    _prune(entry.parent)


def _private(cache: Path) -> bool:
    """Whether ``cache`` is ours alone (made now if missing): a folder of the shared /tmp that
    another user made, or may write to, could hold a planted .venv, which the bot would run."""
    with contextlib.suppress(OSError):
        cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        found = os.lstat(cache)
    except OSError:
        return False
    return stat.S_ISDIR(found.st_mode) and found.st_uid == os.getuid() and not found.st_mode & 0o022


def _restore(entry: Path, workdir: Path) -> bool:
    """A cached .venv, copied into ``workdir`` and relocated from the folder it was built in;
    False when the entry cannot be (the cache is a shared temporary folder)."""
    venv = workdir / VENV
    try:
        subprocess.run(["cp", "-al", str(entry / VENV), str(venv)], check=True, capture_output=True)
        origin = str(json.loads((venv / BUILT).read_text())["origin"])
        key = _built_for(venv) or ""
        relocate(venv, origin, str(workdir))
    except (OSError, ValueError, KeyError, TypeError, subprocess.CalledProcessError):
        return False
    with contextlib.suppress(OSError):
        os.utime(entry)  # used: kept by the pruning
    _mark(venv, key, workdir)
    return True


def relocate(venv: Path, old: str, new: str) -> None:
    """Rewrite the paths a virtualenv holds of the folder it was built in: scripts' ``#!`` lines
    and activate scripts (bin/), editable installs (``.pth``) and their ``direct_url.json``. Each
    file is written anew, so the hard-linked cache keeps its own."""
    if old == new:
        return
    site = site_packages(venv)
    candidates = [p for p in (venv / "bin").iterdir() if p.is_file() and not p.is_symlink()]
    candidates += list(site.glob("*.pth")) + list(site.glob("*.dist-info/direct_url.json"))
    candidates.append(venv / "pyvenv.cfg")
    for path in candidates:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if old.encode() not in data or b"\0" in data[:1024]:
            continue
        fresh = path.with_name(f".{path.name}.relocated")
        fresh.write_bytes(data.replace(old.encode(), new.encode()))
        fresh.chmod(path.stat().st_mode)
        fresh.replace(path)


def _prune(root: Path) -> None:
    cutoff = time.time() - CACHE_DAYS * 86400
    for entry in root.iterdir():
        with contextlib.suppress(OSError):
            if entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
