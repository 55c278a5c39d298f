"""What adopt copies, from one list: the pipeline's files with adopt's header, and the flow section."""

from __future__ import annotations

import pytest

from ci_tools.errors import InputError
from ci_tools.repo import adopted_files
from tests.support import ROOT


def test_the_copies_are_this_checkouts_workflows_actions_and_rules():
    copied, _ = adopted_files.copied_files(ROOT)
    for folder, pattern in (
        (".github/workflows", "*.yml"),
        (".github/actions", "**/*.yml"),
        (".github/rulesets", "*.json"),
    ):
        for path in (ROOT / folder).glob(pattern):
            relative = path.relative_to(ROOT).as_posix()
            assert relative in copied, relative
            assert copied[relative].endswith(path.read_bytes())
    assert adopted_files.checkout() == ROOT


def test_the_kit_is_vendored_with_a_header_in_each_file_it_can_carry(tmp_path):
    source = tmp_path / "pipeline"
    for name, text in {
        ".github/workflows/ci.yml": "name: CI\n",
        ".github/actions/setup/action.yml": "name: setup\n",
        ".github/rulesets/main.json": "{}\n",
        "release_kit/__init__.py": '"""The kit."""\n',
        "release_kit/py.typed": "",
        "release_kit/__pycache__/x.cpython-311.pyc": "",
    }.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    copied, missing = adopted_files.copied_files(source)
    assert missing == []
    assert sorted(copied) == [
        ".github/actions/setup/action.yml",
        ".github/rulesets/main.json",
        ".github/workflows/ci.yml",
        "release_kit/__init__.py",
        "release_kit/py.typed",
    ]
    assert copied["release_kit/__init__.py"].startswith(b"# managed by ci-tools adopt")
    assert copied["release_kit/__init__.py"].endswith(b'"""The kit."""\n')
    assert copied[".github/rulesets/main.json"] == b"{}\n" and copied["release_kit/py.typed"] == b""
    (source / "release_kit" / "__init__.py").unlink()
    (source / "release_kit" / "py.typed").unlink()
    (source / "release_kit" / "__pycache__" / "x.cpython-311.pyc").unlink()
    (source / "release_kit" / "__pycache__").rmdir()
    (source / "release_kit").rmdir()
    _, missing = adopted_files.copied_files(source)
    assert missing == [
        "release_kit/ is not in this checkout of the pipeline: the bot kit (vendored: your bot imports it "
        "from its own tree) not copied"
    ]


def test_a_file_the_owner_wrote_is_never_overwritten(tmp_path):
    wanted = {".github/workflows/ci.yml": b"# managed by ci-tools adopt: ...\nname: CI\n"}
    assert adopted_files.clashes(tmp_path, wanted) == []
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "ci.yml").write_text("name: my own CI\n")
    assert adopted_files.clashes(tmp_path, wanted) == [".github/workflows/ci.yml"]
    (tmp_path / ".github" / "workflows" / "ci.yml").write_text("# managed by ci-tools adopt: ...\nname: older\n")
    assert adopted_files.clashes(tmp_path, wanted) == []  # adopt's own, from an older pipeline: replaced


def test_a_file_that_cannot_carry_the_header_is_never_overwritten_before_adopt_ran(tmp_path):
    """A ruleset is JSON (no comment, and GitHub takes the file whole): before adopt ran, one of
    the owner's under the same name is theirs; once adopt's headed files are there, it is adopt's."""
    wanted = {
        ".github/workflows/ci.yml": b"# managed by ci-tools adopt: ...\nname: CI\n",
        ".github/rulesets/main.json": b'{"name": "main"}\n',
    }
    (tmp_path / ".github" / "rulesets").mkdir(parents=True)
    (tmp_path / ".github" / "rulesets" / "main.json").write_text('{"name": "my own rules"}\n')
    assert adopted_files.clashes(tmp_path, wanted) == [".github/rulesets/main.json"]
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "ci.yml").write_text("# managed by ci-tools adopt: ...\nname: older\n")
    assert adopted_files.clashes(tmp_path, wanted) == []  # adopt's, from an older pipeline: replaced


def test_the_flow_section_names_their_services_in_the_diagrams_columns():
    section = adopted_files.flow_section(ROOT, {"mindmate-dev": "ava-bot-dev", "mindmate-prod": "ava-bot"})
    assert "mindmate" not in section
    ours = adopted_files.flow_section(ROOT, {})
    columns = next(line for line in ours.splitlines() if "(mindmate-dev)" in line).index("(mindmate-prod)")
    theirs = next(line for line in section.splitlines() if "(ava-bot-dev)" in line)
    assert theirs.index("(ava-bot)") == columns


def test_the_flow_section_is_created_appended_or_replaced_between_its_markers():
    created = adopted_files.with_flow_section(None, "## The flow\nv1\n")
    assert created.startswith("# Contributing\n\n<!-- ci-tools adopt: flow")
    theirs = "# Contributing to Ava\n\nBe kind.\n"
    appended = adopted_files.with_flow_section(theirs, "## The flow\nv1\n")
    assert appended.startswith(theirs) and appended.endswith("v1\n<!-- ci-tools adopt: end of flow -->\n")
    edited = appended + "\n## Their own section\n"
    replaced = adopted_files.with_flow_section(edited, "## The flow\nv2\n")
    assert replaced == edited.replace("v1", "v2")
    assert adopted_files.with_flow_section(replaced, "## The flow\nv2\n") == replaced
    with pytest.raises(InputError, match="no end marker"):
        adopted_files.with_flow_section(theirs + adopted_files.FLOW_MARKER + "\n", "x\n")


def test_the_list_of_what_adopt_copies_lives_in_one_place():
    """The CLI's report groups by the same folders: a folder added to COPIED is reported too."""
    from ci_tools.cli.adopt import _grouped

    names = [f"{entry.folder}/x" for entry in adopted_files.COPIED]
    assert _grouped(["render.yaml", *names]) == [
        "render.yaml",
        *(f"{e.folder}/ (1 file)" for e in adopted_files.COPIED),
    ]
