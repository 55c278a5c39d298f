"""staging.yml, production.yml and rollback.yml, run by act against the Render and Telegram stand-ins."""

from __future__ import annotations

import threading
import time

import pytest

from sandbox.breaks import commit_breaking
from sandbox.world import git
from tests.workflows.scenarios import (
    assert_no_secret,
    dispatch,
    environment_secrets,
    health,
    live_on_production,
    production_secrets,
    push,
    start_live,
)


def test_a_push_to_develop_puts_that_commit_on_staging_and_probes_it(world, act):
    sha = world.commit("develop", "a change for staging")
    run = act.run("staging.yml", "push", secrets=environment_secrets(world, "staging"), payload=push("develop", sha))
    assert run.ok, run.tail()
    seen = health(world, "staging")
    assert (seen["env"], seen["commit"]) == ("staging", sha)
    assert "probe checks failed" not in run.log and "unsigned update refused" in run.log
    assert_no_secret(run, world)


def release_main(world, act, message: str):
    sha = world.commit("main", message)
    run = act.run("production.yml", "push", secrets=production_secrets(world), payload=push("main", sha))
    return sha, run


def test_a_push_to_main_releases_and_rollback_yml_puts_the_previous_commit_back(world, act):
    """The release under test goes out over a live commit. A first release, with nothing deployed
    yet, is test_memory_safety_workflows' test_a_release_keeps_every_production_key_… (memory
    present) and test_bake_workflow's stranger release (no memory, as this one's was)."""
    first = live_on_production(world, "release one")
    second, run = release_main(world, act, "release two")
    assert run.ok, run.tail()
    assert health(world, "production")["commit"] == second

    run = act.run(
        "rollback.yml",
        "workflow_dispatch",
        secrets=environment_secrets(world, "production"),
        payload=dispatch("main", environment="production", deploy_id=""),
    )
    assert run.ok, run.tail()
    seen = health(world, "production")
    assert (seen["env"], seen["commit"]) == ("production", first)
    assert "Probe of production after rollback" in run.log
    assert_no_secret(run, world)


def test_rollback_yml_to_a_deploy_past_render_build_retention_redeploys_it_and_probes(world, act):
    """A free web service keeps its 2 previous builds (render.com/docs/rollbacks); three releases
    later Render refuses a rollback to the first, and the run deploys that commit again instead."""
    service = world.services["production"]
    service.plan = "free"
    first = world.commit("main", "the oldest release")
    start_live(world, "production", first)
    oldest = next(d["id"] for d in service.deploys if d["commit"]["id"] == first)
    for n in range(3):
        start_live(world, "production", world.commit("main", f"release {n}"))

    run = act.run(
        "rollback.yml",
        "workflow_dispatch",
        secrets=environment_secrets(world, "production"),
        payload=dispatch("main", environment="production", deploy_id=oldest),
    )
    assert run.ok, run.tail()
    seen = health(world, "production")
    assert (seen["env"], seen["commit"]) == ("production", first)
    live = next(d for d in service.deploys if d["status"] == "live")
    assert live["trigger"] == "api" and live["commit"]["id"] == first
    assert f"build no longer kept: redeployed {first[:12]} ({live['id']})" in run.log
    assert "Probe of production after rollback" in run.log
    assert_no_secret(run, world)


@pytest.mark.built  # rejected_release builds and runs each deployed commit
def test_a_bad_release_on_main_is_rolled_back_and_the_run_fails(rejected_release):
    world, good, bad, run = rejected_release.world, rejected_release.good, rejected_release.bad, rejected_release.run
    assert not run.ok
    assert f"{bad[:12]} failed its probe on production and was rolled back to {good[:12]}" in run.log
    assert "the rollback probe passed" in run.log
    assert health(world, "production")["commit"] == good
    # No fault switch: what ran was the commit's own tree, built as Render builds it.
    assert (
        "return True  # a refactor that forgot the secret"
        in (world.render.build_root / bad / "release_kit/server.py").read_text()
    )
    assert_no_secret(run, world)


@pytest.mark.built
def test_a_release_that_crashes_at_start_never_goes_live_and_the_previous_commit_serves_throughout(world, act):
    """Render starts the new instance beside the old one; it exits at start, is restarted, and
    never passes its health check, so the public URL never switches. Render fails the deploy
    after its health timeout (15 minutes there, seconds here); the run names the exit."""
    good = live_on_production(world, "a good release")
    world.render.health_timeout = 4.0
    bad = commit_breaking(world, "crash at start", "release: a start that crashes")
    served: list[str] = []
    watching = threading.Event()

    def watch() -> None:
        while not watching.is_set():
            served.append(health(world, "production")["commit"])
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run = act.run("production.yml", "push", secrets=production_secrets(world), payload=push("main", bad))
    finally:
        watching.set()
        watcher.join(5)
    assert not run.ok
    assert "the new instance exits with status 1 (server_failed)" in run.log
    assert f"of {bad[:12]} ended update_failed" in run.log
    assert served and set(served) == {good}  # the old instance answered every look
    deploys = world.services["production"].deploys
    assert not any(d["commit"]["id"] == bad and d["status"] in ("live", "deactivated") for d in deploys)
    assert_no_secret(run, world)


def test_staging_yml_dispatched_with_a_feature_branch_puts_it_on_staging(world, act):
    feature = world.commit("feature/try-me", "a change to try on staging")
    world.commit("develop", "develop moves on")  # the dispatch runs from develop
    run = act.run(
        "staging.yml",
        "workflow_dispatch",
        secrets=environment_secrets(world, "staging"),
        payload=dispatch("develop", ref="feature/try-me"),
    )
    assert run.ok, run.tail()
    assert health(world, "staging")["commit"] == feature
    assert_no_secret(run, world)


def test_production_refuses_a_commit_that_is_not_on_main(world, act):
    stray = world.commit("feature/not-released", "never merged")
    run = act.run("production.yml", "push", secrets=production_secrets(world), payload=push("main", stray))
    assert not run.ok
    assert f"commit {stray[:12]} is not on main" in run.log
    assert not world.services["production"].deploys


def test_an_action_without_an_offline_stand_in_is_named(tmp_path):
    from tests.workflows.act import NoStandIn, local_repository_flags

    (tmp_path / ".github/workflows").mkdir(parents=True)
    (tmp_path / ".github/workflows/x.yml").write_text(
        "jobs:\n  a:\n    steps:\n      - uses: docker/login-action@0123456789abcdef0123456789abcdef01234567\n"
    )
    with pytest.raises(NoStandIn, match="docker/login-action@0123456789ab"):
        local_repository_flags(tmp_path)


@pytest.mark.built  # rejected_release builds and runs each deployed commit
def test_rollback_yml_with_its_defaults_never_brings_back_the_release_just_rejected(rejected_release):
    world, act, good, bad = rejected_release.world, rejected_release.act, rejected_release.good, rejected_release.bad
    assert not rejected_release.run.ok and health(world, "production")["commit"] == good
    rejected = next(d["id"] for d in world.services["production"].deploys if d["commit"]["id"] == bad)
    created = len(world.render.created)

    run = act.run(
        "rollback.yml",
        "workflow_dispatch",
        secrets=environment_secrets(world, "production"),
        payload=dispatch("main", environment="production", deploy_id=""),
    )
    assert not run.ok
    assert f"no deploy to roll back to: {rejected} ({bad[:12]}) was rolled back from by" in run.log
    assert len(world.render.created) == created
    assert health(world, "production")["commit"] == good
    assert_no_secret(run, world)


def test_a_re_run_of_an_old_production_run_is_refused_before_any_deploy(world, act):
    old = live_on_production(world, "release one")
    new = live_on_production(world, "release two")
    created = len(world.render.created)
    git(world.repo, "checkout", "-q", "--detach", old)  # a re-run runs on its own, older commit
    run = act.run("production.yml", "push", secrets=production_secrets(world), payload=push("main", old))
    assert not run.ok
    assert f"{old[:12]} does not descend from {new[:12]}, the commit live on production" in run.log
    assert len(world.render.created) == created
    assert health(world, "production")["commit"] == new


def test_a_release_that_changes_render_yaml_waits_for_renders_blueprint_sync(world, act):
    """render.yaml linked as a Blueprint with auto-sync: Render redeploys and re-applies
    ipAllowList: [] itself. The run waits for that sync before it opens the Key Value for its
    snapshot and before it deploys, so neither is undone under it."""
    live_on_production(world, "a release before the Blueprint")
    world.render.sync_until_looked_at = True  # the sync runs until the run has met it running
    world.render.link_blueprint("main")
    blueprint = (world.repo / "render.yaml").read_text()
    (world.repo / "render.yaml").write_text(blueprint.replace("plan: starter", "plan: standard", 1))
    git(world.repo, "commit", "-qam", "render.yaml: a bigger plan for staging")
    sha = git(world.repo, "rev-parse", "HEAD")
    run = act.run("production.yml", "push", secrets=production_secrets(world), payload=push("main", sha))
    assert run.ok, run.tail()
    assert "Blueprint mindmate auto-syncs main: waiting for" in run.log
    assert f"Render's Blueprint sync put {sha[:12]} live unprobed" in run.log
    deploys = world.services["production"].deploys
    assert not [d for d in deploys if d["status"] == "canceled"]  # neither deploy cancelled the other
    assert health(world, "production")["commit"] == sha
    assert world.key_values["production"].ip_allow_list == []  # closed by the run and by the sync alike
    assert_no_secret(run, world)
