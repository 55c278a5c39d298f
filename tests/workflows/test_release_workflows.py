"""staging.yml, production.yml and rollback.yml, run by act against the Render and Telegram stand-ins."""

from __future__ import annotations

from tests.workflows.conftest import assert_no_secret, environment_secrets, health, push


def test_a_push_to_develop_puts_that_commit_on_staging_and_probes_it(world, act):
    sha = world.commit("develop", "a change for staging")
    run = act.run("staging.yml", "push", secrets=environment_secrets(world, "staging"),
                  payload=push("develop", sha))  # fmt: skip
    assert run.ok, run.tail()
    seen = health(world, "staging")
    assert (seen["env"], seen["commit"]) == ("staging", sha)
    assert "probe checks failed" not in run.log and "unsigned update refused" in run.log
    assert_no_secret(run, world)
