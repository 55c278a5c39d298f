"""In GitHub Actions every memory command that writes a snapshot or backup file keeps it as the
run's artifact: so only encrypted. Without MEMORY_SNAPSHOT_KEY (unset, empty, or only blanks, as an
unset secret reaches a step) each is refused in one line before it reads, and nothing is written;
on a laptop the same commands still write plain files (allowed by design)."""

from __future__ import annotations

import pytest

from ci_tools.__main__ import main
from ci_tools.memory.files import RecordFile
from tests.memory.helpers import ROUTE, USER, state


def _argv(name: str, out: str, snapshot: str, backup: str, profile: str) -> list[str]:
    return {
        "export": ["memory", "export", "--user-id", str(USER), "--from", "staging", "--out", out],
        "copy --apply": ["memory", "copy", *ROUTE, "--apply", "--out", out],
        "copy --apply --stage plan": ["memory", "copy", *ROUTE, "--apply", "--stage", "plan", "--out", out],
        "restore --apply": ["memory", "restore", snapshot, "--to", "production", "--apply", "--out", out],
        "seed --apply": [
            *("memory", "seed", "--user-id", str(USER), "--to", "production", "--profile-file", profile),
            *("--apply", "--out", out),
        ],
        "undo --apply": ["memory", "undo", backup, "--apply", "--out", out],
        "snapshot": ["memory", "snapshot", "staging", "--out", out],
    }[name]


COMMANDS = [
    "export",
    "copy --apply",
    "copy --apply --stage plan",
    "restore --apply",
    "seed --apply",
    "undo --apply",
    "snapshot",
]


@pytest.mark.parametrize("key", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_in_actions_no_memory_file_is_written_without_the_snapshot_key(memory_envs, tmp_path, monkeypatch, capsys, key):
    dev, prod = memory_envs
    profile = tmp_path / "profile.txt"
    profile.write_text("likes tea\n")
    # On a laptop, without the key: plain files, as designed (the export and the copy's backup).
    assert main(["memory", "export", "--user-id", str(USER), "--from", "staging", "--out", str(tmp_path / "e")]) == 0
    (snapshot,) = (tmp_path / "e").iterdir()
    assert RecordFile(snapshot, None).header["encrypted"] is False
    assert main(["memory", "copy", *ROUTE, "--apply", "--out", str(tmp_path / "c")]) == 0
    (backup,) = (tmp_path / "c").glob("*-backup-*.jsonl")
    capsys.readouterr()
    before = (state(dev.client()), state(prod.client()))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    if key is not None:
        monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", key)
    refused = {}
    for name in COMMANDS:
        out = tmp_path / f"out-{COMMANDS.index(name)}"
        code = main(_argv(name, str(out), str(snapshot), str(backup), str(profile)))
        said = capsys.readouterr()
        refused[name] = (code, out.exists(), said.err.strip().count("\n") <= 1, "Traceback" in said.err)
        if code == 3:
            assert "MEMORY_SNAPSHOT_KEY" in said.err and "ci-tools init makes one" in said.err
            assert dev.url not in said.err + said.out and prod.url not in said.err + said.out
    assert refused == dict.fromkeys(COMMANDS, (3, False, True, False))
    assert (state(dev.client()), state(prod.client())) == before
