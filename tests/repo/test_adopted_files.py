"""What adopt copies, from one list: the pipeline's files with adopt's header, and the flow section."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import pytest

from ci_tools.errors import InputError
from ci_tools.repo import adopted_files
from ci_tools.repo.workflow_files import OURS_ONLY, PIN, adopted_set, pinned_lock
from sandbox.world import git
from tests.support import ROOT

COMMIT = "0123456789abcdef0123456789abcdef01234567"
PIN_SOURCE = f"git+https://github.com/mindmate/mindmate-release@{COMMIT}"


def test_the_copies_are_the_adopted_set_with_the_setup_action_pinned():
    copied, _ = adopted_files.copied_files(ROOT, PIN_SOURCE)
    pipeline = {name for name in copied if not name.startswith("release_kit/")}
    assert pipeline == set(adopted_set(ROOT))
    assert not {f".github/workflows/{name}" for name in OURS_ONLY} & set(copied)  # our own checks stay ours
    for relative in adopted_set(ROOT):
        if relative != PIN:
            assert copied[relative].endswith((ROOT / relative).read_bytes()), relative
    lock = copied[PIN].decode()
    assert lock.startswith("# managed by ci-tools adopt")
    assert lock.endswith(pinned_lock((ROOT / PIN).read_text(), PIN_SOURCE))
    [own] = [p for p in tomllib.loads(lock)["packages"] if "vcs" in p]
    assert own["vcs"]["commit-id"] == COMMIT and "editable" not in lock
    assert adopted_files.checkout() == ROOT


def test_the_kit_is_vendored_with_a_header_in_each_file_it_can_carry(tmp_path):
    source = tmp_path / "pipeline"
    for name, text in {
        ".github/workflows/ci.yml": "name: CI\n",
        ".github/actions/setup-ci-tools/action.yml": "name: setup\n",
        PIN: (ROOT / PIN).read_text(),
        ".github/rulesets/main.json": "{}\n",
        "release_kit/__init__.py": '"""The kit."""\n',
        "release_kit/py.typed": "",
        "release_kit/__pycache__/x.cpython-311.pyc": "",
    }.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    copied, missing = adopted_files.copied_files(source, PIN_SOURCE)
    assert missing == []
    assert sorted(copied) == [
        ".github/actions/setup-ci-tools/action.yml",
        PIN,
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
    _, missing = adopted_files.copied_files(source, PIN_SOURCE)
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


def _checkout(root: Path, origin: str | None) -> str:
    """A git repository standing in for the pipeline's checkout: one commit, ``origin`` if given."""
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "ci_tools").mkdir()
    (root / "ci_tools" / "x.py").write_text("x = 1\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "the pipeline")
    if origin:
        git(root, "remote", "add", "origin", origin)
    return git(root, "rev-parse", "HEAD")


@pytest.mark.parametrize(
    "origin",
    [
        "https://github.com/someone/release-pipeline.git",
        "https://github.com/someone/release-pipeline",
        "git@github.com:someone/release-pipeline.git",
        "ssh://git@github.com/someone/release-pipeline.git",
    ],
)
def test_the_default_pin_is_this_checkouts_github_origin_at_head(tmp_path, origin):
    head = _checkout(tmp_path / "pipeline", origin)
    pin = adopted_files.default_pin(tmp_path / "pipeline")
    assert pin.source == f"git+https://github.com/someone/release-pipeline@{head}"
    assert pin.origin == "this checkout's origin at HEAD"
    # nothing fetched from origin: the commit is on none of its branches this clone knows
    [unpushed] = pin.warnings
    assert f"ci-tools is pinned to {head[:12]}, which is on no branch of origin this checkout knows" in unpushed


def test_the_default_pin_warns_of_changes_the_commit_does_not_hold(tmp_path):
    head = _checkout(tmp_path / "pipeline", "https://github.com/someone/release-pipeline")
    git(tmp_path / "pipeline", "update-ref", "refs/remotes/origin/main", head)  # pushed
    assert adopted_files.default_pin(tmp_path / "pipeline").warnings == ()
    (tmp_path / "pipeline" / "ci_tools" / "x.py").write_text("x = 2\n")
    [changed] = adopted_files.default_pin(tmp_path / "pipeline").warnings
    assert f"this checkout has changes not in {head[:12]} (M ci_tools/x.py)" in changed
    assert changed.endswith("the pin installs the commit without them")


@pytest.mark.parametrize(
    ("origin", "said"),
    [
        (None, "this checkout has no origin remote"),
        ("https://gitlab.com/someone/release-pipeline.git", "origin is https://gitlab.com/someone/release-pipeline"),
    ],
)
def test_without_a_github_origin_the_pin_must_be_given(tmp_path, origin, said):
    _checkout(tmp_path / "pipeline", origin)
    with pytest.raises(InputError) as refused:
        adopted_files.default_pin(tmp_path / "pipeline")
    assert said in refused.value.one_line() and "give --pin git+https://github.com/" in refused.value.one_line()


def test_a_given_pin_is_one_of_the_two_forms_and_a_local_wheel_has_its_hash(tmp_path):
    assert adopted_files.given_pin(PIN_SOURCE).source == PIN_SOURCE
    wheel = tmp_path / "ci_tools-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"a wheel")
    digest = hashlib.sha256(b"a wheel").hexdigest()
    assert adopted_files.given_pin(f"{wheel}#sha256={digest}").origin == "--pin"
    assert adopted_files.given_pin(f"https://example.com/{wheel.name}#sha256={digest}").source.startswith("https")
    for value, said in (
        ("git+https://github.com/a/b@main", "--pin: cannot pin ci-tools to 'git+https://github.com/a/b@main'"),
        (f"{wheel.name}#sha256={digest}", f"--pin: {wheel.name} is a relative path"),
        (f"{tmp_path}/none.whl#sha256={digest}", f"--pin: {tmp_path}/none.whl does not exist"),
        (f"{wheel}#sha256={'0' * 64}", f"--pin: {wheel} does not have sha256 {'0' * 64}"),
    ):
        with pytest.raises(InputError) as refused:
            adopted_files.given_pin(value)
        assert refused.value.one_line().startswith(said), refused.value.one_line()
