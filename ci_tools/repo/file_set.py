"""Write a set of files into a repository all at once, or none of them.

``ci-tools adopt`` composes some twenty files and writes them in one go. A failure half-way (a
folder where a file goes, a full disk, Ctrl-C) must not leave the owner's repository with half
a pipeline in it: they would commit it, or run adopt again over files neither wrote. So every
file is first written beside its target under a temporary name, then all are renamed into
place with SIGINT and SIGTERM held off; a failure before the renames removes what was written,
the folders it made included, and says so in one line.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType

from ci_tools.errors import InputError


def obstacles(root: Path, names: list[str]) -> list[str]:
    """Where a file stands in place of a folder the set needs, a folder in place of a file, or a
    link points out of the repository (adopt writes the repository, nothing beside it)."""
    found: list[str] = []
    for name in names:
        if (root / name).is_symlink() and not (root / name).resolve().is_relative_to(root.resolve()):
            found.append(f"{name} links outside the repository ({(root / name).resolve()})")
            continue
        target = root / name
        for parent in reversed(target.relative_to(root).parents[:-1]):
            if (root / parent).exists() and not (root / parent).is_dir():
                found.append(f"{parent.as_posix()} is a file where a folder goes ({name})")
                break
        else:
            if target.exists() and not target.is_file():
                found.append(f"{name} is a folder where a file goes")
    return list(dict.fromkeys(found))


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block ends, then interrupt as they would have."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        arrived.append(signum)

    before = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    if arrived:
        raise KeyboardInterrupt


def _through_links(path: Path) -> Path:
    """The file a link points at (render.yaml -> deploy/render.yaml): written there, the link kept."""
    return path.resolve() if path.is_symlink() else path


def _unchanged(path: Path, data: bytes) -> bool:
    return path.is_file() and path.read_bytes() == data


def write_all(root: Path, files: Mapping[str, bytes]) -> list[str]:
    """Write each of ``files`` (relative name → bytes) that differs, all of them or none; the
    names written, in the order given. A file keeps its mode; a new one is 0644."""
    changed = {name: data for name, data in files.items() if not _unchanged(root / name, data)}
    blocked = obstacles(root, list(changed))
    if blocked:
        more = f" (+{len(blocked) - 1} more)" if len(blocked) > 1 else ""
        raise InputError(
            f"{blocked[0]}{more}: nothing was written",
            hint="move it aside (adopt writes the pipeline's file there), then run adopt again",
        )
    made: list[Path] = []
    staged: list[tuple[Path, Path]] = []
    current = ""
    try:
        for current, data in changed.items():
            target = _through_links(root / current)
            missing = [p for p in reversed(target.parents) if p.is_relative_to(root) and not p.exists()]
            for folder in missing:
                folder.mkdir()
                made.append(folder)
            mode = target.stat().st_mode & 0o777 if target.is_file() else 0o644
            fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
            staged.append((Path(name), target))
            with os.fdopen(fd, "wb") as out:
                os.fchmod(out.fileno(), mode)
                out.write(data)
    except BaseException as exc:
        for staged_temp, _ in staged:
            staged_temp.unlink(missing_ok=True)
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(exc, OSError):
            raise InputError(
                f"cannot write {current} ({exc.strerror or exc}): nothing was written",
                hint="make room or fix the permissions there, then run adopt again",
            ) from None
        raise
    with _signals_held():  # renames in one folder: they do not fail for want of room or rights
        for staged_temp, target in staged:
            os.replace(staged_temp, target)
    return list(changed)
