"""Render's Blueprint auto-sync, as the stand-in plays it: a push that changes render.yaml is
redeployed by Render itself and its settings re-applied (ipAllowList: [] included). A release
of such a commit neither races that deploy nor is rolled back onto it, and a memory job's Key
Value is not shut mid-job."""

from __future__ import annotations

import json
import shutil
import time

from ci_tools.__main__ import main
from sandbox.world import git
from tests.support import ROOT, use

FAST = ("--timeout", "30", "--poll", "0.05")


def commit_render_yaml(world, message: str, extra: str = "") -> str:
    """A commit on main that adds (or changes) render.yaml: the project's own, which names the
    stand-in's services and Key Values."""
    git(world.repo, "checkout", "-q", "main")
    target = world.repo / "render.yaml"
    shutil.copy(ROOT / "render.yaml", target)
    if extra:
        target.write_text(target.read_text() + extra)
    git(world.repo, "add", "render.yaml")
    git(world.repo, "commit", "-q", "-m", message)
    return git(world.repo, "rev-parse", "HEAD")


def test_a_release_that_changes_render_yaml_waits_for_the_sync_and_keeps_the_real_rollback_target(
    world, monkeypatch, capsys
):
    use(monkeypatch, world.secrets("production"))
    first = world.commit("main", "release one")
    assert main(["deploy", "production", "--commit", first, *FAST]) == 0
    before = world.services["production"].deploys[0]["id"]
    world.render.sync_until_looked_at = True  # the sync runs until the release has met it running
    world.render.link_blueprint("main")
    sha = commit_render_yaml(world, "render.yaml: a setting changes")
    assert main(["deploy", "production", "--commit", sha, *FAST]) == 0
    out = capsys.readouterr().out
    assert "Blueprint mindmate auto-syncs main: waiting for" in out
    assert "applied render.yaml of " + sha[:12] in out
    assert f"Render's Blueprint sync put {sha[:12]} live unprobed" in out
    deploys = world.services["production"].deploys
    triggers = [d["trigger"] for d in deploys if d["commit"]["id"] == sha]
    assert sorted(triggers) == ["api", "blueprint_sync"]  # Render's, then ours: neither cancelled the other
    assert not [d for d in deploys if d["status"] == "canceled"]
    assert deploys[0]["status"] == "live" and deploys[0]["trigger"] == "api"
    assert f"if its probe fails it goes back to {before}" in out


def test_the_rollback_target_after_a_sync_deploy_is_the_release_before_it(world, monkeypatch, tmp_path):
    use(monkeypatch, world.secrets("production"))
    output = tmp_path / "out"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary"))
    first = world.commit("main", "release one")
    assert main(["deploy", "production", "--commit", first, *FAST]) == 0
    before = world.services["production"].deploys[0]["id"]
    world.render.link_blueprint("main")
    sha = commit_render_yaml(world, "render.yaml: a setting changes")
    output.write_text("")
    assert main(["deploy", "production", "--commit", sha, *FAST]) == 0
    synced = next(d["id"] for d in world.services["production"].deploys if d["trigger"] == "blueprint_sync")
    written = output.read_text()
    assert f"\n{before}\n" in written and synced not in written  # previous_deploy_id: before the sync


def test_without_a_change_to_render_yaml_nothing_waits(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("production"))
    world.render.link_blueprint("main")
    sha = world.commit("main", "code only")
    assert main(["deploy", "production", "--commit", sha, *FAST]) == 0
    assert "auto-syncs" not in capsys.readouterr().out
    assert [d["trigger"] for d in world.services["production"].deploys] == ["api"]


def test_keyvalue_open_waits_for_the_sync_so_it_is_not_shut_out_mid_job(world, monkeypatch, capsys, tmp_path):
    use(monkeypatch, world.secrets("production"))
    kv = world.key_values["production"]
    world.render.sync_until_looked_at = True  # the sync runs until the job has met it running
    world.render.link_blueprint("main")
    sha = commit_render_yaml(world, "render.yaml changes")
    state = tmp_path / "allow.json"
    args = ["keyvalue", "open", "--env", "production", "--ip", "203.0.113.9", "--state", str(state), "--commit", sha]
    assert main(args) == 0
    assert "Blueprint mindmate auto-syncs main: waiting for" in capsys.readouterr().out
    blueprint = next(iter(world.render.blueprints.values()))
    assert blueprint.synced == sha  # the sync ran before the entry was added …
    assert [e["cidrBlock"] for e in kv.ip_allow_list] == ["203.0.113.9/32"]  # … so the entry is still there
    assert json.loads(state.read_text())


def test_the_stand_ins_sync_closes_an_open_key_value_as_render_would(world):
    """What the wait is for: a sync re-applies render.yaml's ipAllowList: [] to a Key Value a job opened."""
    kv = world.key_values["production"]
    kv.ip_allow_list = [{"cidrBlock": "203.0.113.9/32", "description": "ci-tools run 7"}]
    blueprint = world.render.link_blueprint("main")
    sha = commit_render_yaml(world, "render.yaml changes")
    deadline = time.monotonic() + 10
    while blueprint.synced != sha and time.monotonic() < deadline:
        time.sleep(0.05)
    assert blueprint.synced == sha and kv.ip_allow_list == []
    assert blueprint.syncs[0]["state"] == "success"


def test_status_and_preflight_say_whether_auto_sync_is_on(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("production"))
    assert main(["status", "production"]) in (0, 5)
    assert "no Blueprint is linked to main" in capsys.readouterr().out
    world.render.link_blueprint("main")
    assert main(["status", "production"]) in (0, 5)
    assert "Blueprint mindmate auto-syncs main" in capsys.readouterr().out
