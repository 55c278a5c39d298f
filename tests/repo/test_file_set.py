"""adopt's files land all together or not at all: a failure half-way leaves the repository as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_tools.errors import InputError
from ci_tools.repo import file_set


def everything(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_a_file_that_cannot_be_written_late_leaves_nothing_behind(tmp_path):
    """The last name is too long for its temporary twin: the filesystem refuses it after the
    first file (and its folder) were already written; both are gone again."""
    (tmp_path / "kept.txt").write_text("theirs\n")
    files = {"a/one.txt": b"1\n", "kept.txt": b"ours\n", "b/" + "x" * 250: b"2\n"}
    with pytest.raises(InputError) as raised:
        file_set.write_all(tmp_path, files)
    assert raised.value.message.startswith("cannot write b/xxx")
    assert raised.value.message.endswith(": nothing was written")
    assert everything(tmp_path) == ["kept.txt"]
    assert (tmp_path / "kept.txt").read_text() == "theirs\n"


def test_a_folder_or_a_file_in_the_way_is_named_before_anything_is_written(tmp_path):
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "actions").write_text("not a folder\n")
    (tmp_path / "rules" / "main.json").mkdir(parents=True)
    files = {"one.txt": b"1\n", ".github/actions/setup/action.yml": b"x\n", "rules/main.json": b"{}\n"}
    assert file_set.obstacles(tmp_path, list(files)) == [
        ".github/actions is a file where a folder goes (.github/actions/setup/action.yml)",
        "rules/main.json is a folder where a file goes",
    ]
    with pytest.raises(InputError, match=r"\(\+1 more\): nothing was written"):
        file_set.write_all(tmp_path, files)
    assert everything(tmp_path) == [".github", ".github/actions", "rules", "rules/main.json"]


def test_what_differs_is_written_with_its_mode_and_the_rest_left_alone(tmp_path):
    (tmp_path / "run.sh").write_text("old\n")
    (tmp_path / "run.sh").chmod(0o755)
    (tmp_path / "same.txt").write_text("same\n")
    written = file_set.write_all(tmp_path, {"same.txt": b"same\n", "run.sh": b"new\n", "d/e/new.txt": b"n\n"})
    assert written == ["run.sh", "d/e/new.txt"]
    assert (tmp_path / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "d" / "e" / "new.txt").stat().st_mode & 0o777 == 0o644
    assert everything(tmp_path) == ["d", "d/e", "d/e/new.txt", "run.sh", "same.txt"]


def test_a_file_that_is_a_link_is_written_where_it_points(tmp_path):
    """render.yaml -> deploy/render.yaml: the owner's file is merged, their link stays a link."""
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "render.yaml").write_text("old\n")
    (tmp_path / "render.yaml").symlink_to("deploy/render.yaml")
    assert file_set.write_all(tmp_path, {"render.yaml": b"new\n"}) == ["render.yaml"]
    assert (tmp_path / "render.yaml").is_symlink()
    assert (tmp_path / "deploy" / "render.yaml").read_text() == "new\n"
    assert file_set.write_all(tmp_path, {"render.yaml": b"new\n"}) == []


def test_a_link_out_of_the_repository_is_refused(tmp_path):
    root, elsewhere = tmp_path / "ava", tmp_path / "shared.yaml"
    root.mkdir()
    elsewhere.write_text("theirs\n")
    (root / "render.yaml").symlink_to(elsewhere)
    with pytest.raises(InputError, match=r"render\.yaml links outside the repository"):
        file_set.write_all(root, {"render.yaml": b"new\n"})
    assert elsewhere.read_text() == "theirs\n" and (root / "render.yaml").is_symlink()
