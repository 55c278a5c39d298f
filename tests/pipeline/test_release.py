"""Deploy → wait → probe → roll back, against the Render and Telegram stand-ins."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from ci_tools.__main__ import main
from ci_tools.clients.render import check_hook_url
from ci_tools.errors import ConfigError
from sandbox.world import SECRETS
from tests.support import context, conversations, use, wait_until


def cli(*args: str) -> int:
    return main(list(args))


HOOK_ONLY = ("RENDER_API_KEY", "RENDER_SERVICE_ID")  # deploys through the hook alone
FAST = ("--timeout", "20", "--poll", "0.05")


def deploy(env, sha, *extra):
    return cli("deploy", env, "--commit", sha, *FAST, *extra)


def probe(env, sha, deadline="3"):
    return cli("probe", env, "--commit", sha, "--deadline", deadline)


def released(world, message: str, env: str = "production", *, unsigned: bool = False) -> str:
    """A new commit released to ``env`` (the world's staging service, or its production one under
    any other name): its sha. ``unsigned``: its bot accepts unsigned updates, which the probe
    fails at once, and the release exits 5."""
    service = "staging" if env == "staging" else "production"
    sha = world.commit("develop" if service == "staging" else "main", message)
    if unsigned:
        world.render.fault(world.services[service], sha, open_webhook=True)
        assert cli("release", env, "--commit", sha, *FAST, "--deadline", "1") == 5
    else:
        assert cli("release", env, "--commit", sha, *FAST, "--deadline", "3") == 0
    return sha


def test_success_deploy_then_probe(world, monkeypatch, capsys, tmp_path):
    use(monkeypatch, world.secrets("production"))
    output = tmp_path / "out"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary"))
    first = world.commit("main", "release 1")
    assert deploy("production", first) == 0
    second = world.commit("main", "release 2")
    assert deploy("production", second) == 0
    assert probe("production", second) == 0
    out = capsys.readouterr().out
    assert "Render accepted" in out and ": live" in out
    assert "is live on production" in out
    assert "@mindmate_companion_bot" in out
    outputs = output.read_text()
    deploys = world.services["production"].deploys
    assert f"\n{deploys[0]['id']}\n" in outputs  # deploy_id of release 2
    assert f"\n{deploys[1]['id']}\n" in outputs  # previous_deploy_id: release 1's
    assert deploys[1]["status"] == "deactivated"


def test_with_the_api_the_exact_commit_is_deployed_and_the_hook_is_not_called(world, monkeypatch):
    use(monkeypatch, world.secrets("production"))
    sha = world.commit("main", "release")
    world.commit("main", "a newer head that must not go live")
    assert deploy("production", sha) == 0
    assert [c["body"] for c in world.render.created] == [{"commitId": sha, "clearCache": "do_not_clear"}]
    assert not any(path.startswith("/deploy/") for _, path in world.render.requests)
    assert world.services["production"].deploys[0]["commit"]["id"] == sha


def test_a_short_sha_is_resolved_to_the_full_one(world, monkeypatch):
    use(monkeypatch, world.secrets("production"))
    sha = world.commit("main", "release")
    assert deploy("production", sha[:10]) == 0
    assert world.render.created[-1]["body"]["commitId"] == sha


def test_hook_mode_fails_clearly_when_the_branch_moved_past_the_commit(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("production"), drop=HOOK_ONLY)
    sha = world.commit("main", "the release")
    head = world.commit("main", "merged a moment later")
    assert deploy("production", sha) == 5
    err = capsys.readouterr().err
    assert f"main moved past {sha[:12]}: the hook deployed its head {head[:12]}" in err
    assert "RENDER_API_KEY" in err


def test_a_feature_branch_on_staging_needs_the_api(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("staging"), drop=HOOK_ONLY)
    sha = world.commit("feature/x", "try me")
    assert deploy("staging", sha, "--allow-other-branch") == 3
    assert "a feature branch on staging needs RENDER_API_KEY" in capsys.readouterr().err
    assert not world.render.created


@pytest.mark.parametrize("fault", ["502", "hang"])
def test_a_deploy_whose_answer_is_lost_is_created_exactly_once(world, monkeypatch, fault):
    use(monkeypatch, world.secrets("production"))
    world.render.after_create = [fault]
    world.render.hang_seconds = 2.5
    monkeypatch.setenv("CI_TOOLS_TIMEOUT", "1")
    sha = world.commit("main", "release")
    assert deploy("production", sha) == 0
    assert len(world.render.created) == 1
    assert [d["commit"]["id"] for d in world.services["production"].deploys] == [sha]


@pytest.mark.parametrize("fault", ["502", "hang"])
def test_a_rollback_whose_answer_is_lost_is_created_exactly_once(world, monkeypatch, fault):
    use(monkeypatch, world.secrets("production"))
    monkeypatch.setenv("CI_TOOLS_TIMEOUT", "1")
    first = world.commit("main", "one")
    assert deploy("production", first) == 0
    assert deploy("production", world.commit("main", "two")) == 0
    world.render.after_create = [fault]
    world.render.hang_seconds = 2.5
    assert cli("rollback", "production", "--previous", *FAST, "--deadline", "5") == 0
    rollbacks = [d for d in world.services["production"].deploys if d["trigger"] == "rollback"]
    assert len(rollbacks) == 1 and rollbacks[0]["commit"]["id"] == first


def test_a_redeployed_commit_is_followed_by_its_new_deploy(world, monkeypatch, tmp_path):
    """No deploy id from the hook, and list-deploys lags: an older deploy of the same commit must not count."""
    use(monkeypatch, world.secrets("staging"))  # staging may go back to an older commit
    first = world.commit("develop", "first")
    assert deploy("staging", first) == 0
    assert deploy("staging", world.commit("develop", "second")) == 0  # first is now deactivated
    service = world.services["staging"]
    world.render.queue_creates = True  # 202 with no body: the deploy must be found by listing
    world.render.list_delay = 0.4
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "output"))
    assert deploy("staging", first) == 0
    newest = service.deploys[0]
    assert newest["commit"]["id"] == first
    assert newest["status"] == "live"
    assert "deploy_id<<" in (tmp_path / "output").read_text()
    assert f"\n{newest['id']}\n" in (tmp_path / "output").read_text()


def test_without_api_key_health_is_polled(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("staging"), drop=HOOK_ONLY)
    sha = world.commit("develop", "feature merged")
    assert deploy("staging", sha) == 0
    assert "/healthz" in capsys.readouterr().out


def test_build_failed_names_status_and_dashboard(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("production"))
    sha = world.commit("main", "broken build")
    world.render.fault(world.services["production"], sha, build_failed=True)
    assert deploy("production", sha) == 5
    err = capsys.readouterr().err
    assert "ended build_failed" in err
    assert "https://dashboard.render.com/web/srv-" in err


def test_canceled_by_a_newer_commit(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("production"))
    older = world.commit("main", "older")
    newer = world.commit("main", "newer")
    service = world.services["production"]
    world.render.fault(service, older, slow=1.0)

    def push_newer() -> None:
        while not service.deploys:  # once the older one is on its way
            time.sleep(0.02)
        time.sleep(0.1)
        httpx.post(world.render.hook_url(service))  # the hook deploys main's head: newer

    thread = threading.Thread(target=push_newer)
    thread.start()
    assert deploy("production", older) == 5
    thread.join()
    err = capsys.readouterr().err
    assert "was canceled: a newer commit" in err
    assert newer[:12] in err


NO_REDIS = "redis://127.0.0.1:1/0"  # nothing listens there: the bot serves, /healthz answers 503


def live_commit(world, env):
    return httpx.get(world.services[env].router.url + "/healthz", timeout=5).json()["commit"]


def test_a_deploy_that_never_gets_healthy_is_named_then_cancelled_and_the_old_one_serves(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("production"))
    old = world.commit("main", "old")
    assert deploy("production", old) == 0
    service = world.services["production"]
    service.env["REDIS_URL"] = NO_REDIS
    new = world.commit("main", "a release with an unreachable Redis")
    seen: list[str] = []
    done = threading.Event()

    def watch() -> None:  # the public URL, every 0.1 s, while the deploy runs
        while not done.is_set():
            seen.append(live_commit(world, "production"))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        assert cli("deploy", "production", "--commit", new, "--timeout", "4", "--poll", "0.05") == 5
    finally:
        done.set()
        watcher.join(5)
    seen.append(live_commit(world, "production"))  # and after the cancel
    # the old instance served throughout: every look, however few a busy runner allows (7 in 4 s
    # under load 18), saw it — the samples' count is not the claim
    assert len(seen) >= 2 and set(seen) == {old}
    captured = capsys.readouterr()
    assert "the new instance fails its health check: GET /healthz answered 503 (server_failed)" in captured.out
    assert "did not get healthy before the deadline (the new instance fails its health check" in captured.err
    assert "it was cancelled, and the previous deploy still serves" in captured.err
    assert service.deploys[0]["status"] == "canceled"
    assert live_commit(world, "production") == old  # Render never switched
    assert any(r for r in world.render.requests if r[1].endswith("/cancel"))


def test_a_rollback_that_never_gets_healthy_is_cancelled_too(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("production"))
    first = world.commit("main", "first")
    assert deploy("production", first) == 0
    second = world.commit("main", "second")
    assert deploy("production", second) == 0
    world.services["production"].env["REDIS_URL"] = NO_REDIS
    assert cli("rollback", "production", "--previous", "--timeout", "4", "--poll", "0.05") == 5
    err = capsys.readouterr().err
    assert "GET /healthz answered 503 (server_failed)" in err and "it was cancelled" in err
    assert live_commit(world, "production") == second


def test_without_the_api_a_never_healthy_deploy_leaves_the_old_commit_live(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("production"))
    old = world.commit("main", "old")
    assert deploy("production", old) == 0
    new = world.commit("main", "new")
    world.services["production"].env["REDIS_URL"] = NO_REDIS
    monkeypatch.delenv("RENDER_API_KEY")
    assert cli("deploy", "production", "--commit", new, "--timeout", "1.5", "--poll", "0.05") == 5
    assert f"did not report {new[:12]}" in capsys.readouterr().err
    assert probe("production", new, deadline="1") == 5
    assert "still runs another commit" in capsys.readouterr().err


def test_production_refuses_an_older_commit_before_anything_is_created(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("production"))
    older = world.commit("main", "older")
    assert deploy("production", older) == 0
    newer = world.commit("main", "newer")
    assert deploy("production", newer) == 0
    created = len(world.render.created)
    assert deploy("production", older) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{older[:12]} does not descend from {newer[:12]}" in err[0]
    assert "ci-tools rollback production" in err[0]
    assert len(world.render.created) == created  # nothing was created on Render
    assert live_commit(world, "production") == newer


def test_staging_keeps_its_freedom_to_go_back(world, monkeypatch):
    use(monkeypatch, world.secrets("staging"))
    older = world.commit("develop", "older")
    assert deploy("staging", older) == 0
    assert deploy("staging", world.commit("develop", "newer")) == 0
    assert deploy("staging", older) == 0


def test_a_commit_nobody_knows_is_one_line(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("production"))
    assert deploy("production", "0123456789abcdef0123456789abcdef01234567") == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "git does not know commit 0123456789ab" in err[0]
    assert not world.render.created


def test_rate_limits_and_server_errors_are_retried(world, monkeypatch):
    use(monkeypatch, world.secrets("production"))
    sha = world.commit("main", "release")
    world.render.rate_limit(1, retry_after=1)
    started = time.monotonic()
    assert deploy("production", sha) == 0
    assert time.monotonic() - started >= 1.0  # Retry-After was honoured, not hammered through
    world.render.server_errors(2)
    assert deploy("production", world.commit("main", "again")) == 0


def test_the_wrong_token_on_the_service_is_named(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("production"))
    world.services["production"].env["TELEGRAM_BOT_TOKEN"] = world.bots["staging"].token
    sha = world.commit("main", "release")
    assert deploy("production", sha) == 0  # it starts: the token is valid, just the wrong bot's
    assert probe("production", sha, deadline="1") == 5
    err = capsys.readouterr().err
    assert "the production service runs the staging bot's token" in err


def test_an_unsigned_webhook_post_accepted_fails_the_probe(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("production"))
    sha = world.commit("main", "open webhook")
    world.render.fault(world.services["production"], sha, open_webhook=True)
    assert deploy("production", sha) == 0
    assert probe("production", sha, deadline="1") == 5
    assert "ignores the secret-token header" in capsys.readouterr().err


def test_production_probe_failure_rolls_back_probes_and_exits_non_zero(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("production"))
    good = released(world, "good")
    released(world, "bad", unsigned=True)
    captured = capsys.readouterr()
    assert f"rolled back to {good[:12]}" in captured.err
    assert "the rollback probe passed" in captured.err
    live = [d for d in world.services["production"].deploys if d["status"] == "live"]
    assert live[0]["commit"]["id"] == good
    assert live[0]["trigger"] == "rollback"


def test_staging_probe_failure_does_not_roll_back(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("staging"))
    released(world, "bad", "staging", unsigned=True)
    assert "rolled back" not in capsys.readouterr().err


def test_rollback_command_previous_then_probe(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("production"))
    first = world.commit("main", "first")
    assert deploy("production", first) == 0
    assert deploy("production", world.commit("main", "second")) == 0
    assert cli("rollback", "production", "--previous", "--poll", "0.05", "--deadline", "3") == 0
    assert f"is back on {first[:12]}" in capsys.readouterr().out
    assert cli("rollback", "production", "--to", "nonsense") == 2
    assert cli("rollback", "production", "--to", "dep-doesnotexist") == 2  # one line, bad input


def releases_past_retention(world, service, count: int) -> tuple[str, dict]:
    """A first release, then ``count`` more: on a free service (Render keeps 2 previous builds)
    three are enough to push the first one's build out."""
    first = world.commit("main", "the oldest release")
    assert deploy("production", first) == 0
    oldest = next(d for d in service.deploys if d["commit"]["id"] == first)
    for n in range(count):
        assert deploy("production", world.commit("main", f"release {n}")) == 0
    return first, oldest


def test_a_rollback_past_render_build_retention_redeploys_that_commit_and_probes_it(world, monkeypatch, capsys):
    """Render reuses the target's build and keeps only the plan's most recent ones (a free web
    service: 2); past that it refuses, and the rollback deploys the old commit again instead. The
    commit is older than the live one: as a rollback, "only the live commit or a descendant" does
    not hold it back."""
    use(monkeypatch, world.secrets("production"))
    service = world.services["production"]
    service.plan = "free"
    first, oldest = releases_past_retention(world, service, 3)
    rejected = service.deploys[0]
    capsys.readouterr()
    assert cli("rollback", "production", "--to", oldest["id"], *FAST, "--deadline", "5") == 0
    out = capsys.readouterr().out
    live = next(d for d in service.deploys if d["status"] == "live")
    assert live["commit"]["id"] == first and live["trigger"] == "api" and live["id"] != oldest["id"]
    assert world.render.created[-1]["body"]["commitId"] == first
    assert f"Render no longer keeps the build of {oldest['id']}" in out
    assert f"build no longer kept: redeployed {first[:12]} ({live['id']})" in out
    assert "Probe of production after rollback" in out  # exit 0: it passed, /healthz reporting `first`
    # The rebuild went back, so what it replaced is rejected: --previous never brings it back.
    capsys.readouterr()
    assert cli("rollback", "production", "--previous", *FAST, "--deadline", "5") == 0
    now = next(d for d in service.deploys if d["status"] == "live")
    assert now["commit"]["id"] == service.deploys[3]["commit"]["id"] != rejected["commit"]["id"]


def test_a_rebuild_past_retention_that_fails_to_build_is_one_line_and_the_live_deploy_serves_on(
    world, monkeypatch, capsys
):
    """The old commit no longer builds (a dependency gone, say): the rebuild fails like a deploy,
    in one line naming it, and Render keeps the live deploy serving."""
    use(monkeypatch, world.secrets("production"))
    service = world.services["production"]
    service.plan = "free"
    first, oldest = releases_past_retention(world, service, 3)
    live = service.deploys[0]
    world.render.fault(service, first, build_failed=True)  # deploys of `first` from now on
    capsys.readouterr()
    assert cli("rollback", "production", "--to", oldest["id"], *FAST, "--deadline", "5") == 5
    err = capsys.readouterr().err
    assert f"of {first[:12]} ended build_failed" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert next(d for d in service.deploys if d["status"] == "live")["id"] == live["id"]


def test_render_keeps_builds_by_plan(world, monkeypatch):
    """Hobby keeps 5 previous builds, a free web service 2: the same history is a rollback on one
    and a rebuild on the other."""
    use(monkeypatch, world.secrets("production"))
    service = world.services["production"]
    _, oldest = releases_past_retention(world, service, 3)
    assert cli("rollback", "production", "--to", oldest["id"], *FAST, "--deadline", "5") == 0
    assert service.deploys[0]["trigger"] == "rollback"
    service.plan = "free"
    assert deploy("production", world.commit("main", "a release after it")) == 0
    assert cli("rollback", "production", "--to", oldest["id"], *FAST, "--deadline", "5") == 0
    assert service.deploys[0]["trigger"] == "api"


def test_branch_rules(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("production"))
    feature = world.commit("feature/shiny", "wip")
    assert deploy("production", feature) == 2
    assert "is not on main" in capsys.readouterr().err
    assert deploy("production", feature, "--allow-other-branch") == 2
    assert "may run a commit from another branch" in capsys.readouterr().err
    use(monkeypatch, world.secrets("staging"))
    assert deploy("staging", feature) == 2
    assert "--allow-other-branch" in capsys.readouterr().err
    assert deploy("staging", feature, "--allow-other-branch") == 0
    assert cli("deploy", "staging", "--commit", "not-a-sha") == 2
    assert cli("deploy", "staging", "--commit", "a" * 40) == 3  # unknown to git


def test_hook_url_must_look_like_a_render_hook(world):
    base = world.render.url
    with pytest.raises(ConfigError, match="does not look like a Render deploy hook"):
        check_hook_url("https://example.com/deploy/srv-abc?key=x", base)
    with pytest.raises(ConfigError):
        check_hook_url(world.render.url + "/deploy/srv-abc", base)  # no key
    url = world.render.hook_url(world.services["production"])
    assert check_hook_url(url, base) == url


def test_no_secret_in_any_output(world, monkeypatch, capsys, caplog, tmp_path):
    use(monkeypatch, world.secrets("production"))
    summary = tmp_path / "summary"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "output"))
    good = world.commit("main", "good")
    bad = world.commit("main", "bad")
    world.render.fault(world.services["production"], bad, open_webhook=True)
    cli("-vv", "release", "production", "--commit", good, *FAST, "--deadline", "2")
    cli("-vv", "release", "production", "--commit", bad, *FAST, "--deadline", "1")
    cli("-vv", "probe", "production", "--commit", bad, "--deadline", "0.5", "--json")
    cli("-vv", "rollback", "production", "--previous", "--poll", "0.05", "--deadline", "1", "--json")
    monkeypatch.setenv("RENDER_API_KEY", "rnd_wrongKey0123456789")
    cli("-vv", "deploy", "production", "--commit", good, *FAST)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456789:AAwrongTokenValue0123456789abcdefghi")
    cli("-vv", "probe", "production", "--commit", good, "--deadline", "0.5")
    out, err = capsys.readouterr()
    everything = out + err + caplog.text + summary.read_text() + (tmp_path / "output").read_text()
    secrets = world.secrets("production")
    for value in (
        secrets["RENDER_API_KEY"],
        world.services["production"].hook_key,
        secrets["TELEGRAM_BOT_TOKEN"],
        SECRETS["production"],
        "rnd_wrongKey0123456789",
        "AAwrongTokenValue0123456789abcdefghi",
    ):
        assert value not in everything
    assert "HTTP Request" in caplog.text  # -vv really logged the requests


def test_a_definite_failure_is_rolled_back_within_seconds_not_at_the_deadline(world, monkeypatch):
    use(monkeypatch, world.secrets("production"))
    assert deploy("production", world.commit("main", "good")) == 0
    bad = world.commit("main", "accepts unsigned updates")
    world.render.fault(world.services["production"], bad, open_webhook=True)
    assert cli("release", "production", "--commit", bad, *FAST, "--deadline", "90") == 5
    deploys = world.services["production"].deploys
    went_live = next(d for d in deploys if d["commit"]["id"] == bad)["_live_at"]
    rollback = next(d for d in deploys if d["trigger"] == "rollback")
    assert rollback["_created"] - went_live < 10


def test_a_transient_failure_still_passes(world, monkeypatch):
    """The public URL serves the old commit for 3 s after 'live': retried, then passes."""
    use(monkeypatch, world.secrets("production"))
    assert deploy("production", world.commit("main", "one")) == 0
    sha = world.commit("main", "two")
    world.render.fault(world.services["production"], sha, late_switch=3.0)
    started = time.monotonic()
    assert cli("release", "production", "--commit", sha, *FAST, "--deadline", "20") == 0
    assert time.monotonic() - started >= 3
    assert not [d for d in world.services["production"].deploys if d["trigger"] == "rollback"]


def test_telegrams_flood_wait_is_waited_once_not_hammered(world, monkeypatch):
    from ci_tools.pipeline.probe import Probe, run_probe

    use(monkeypatch, world.secrets("production"))
    sha = world.commit("main", "release")
    assert deploy("production", sha) == 0
    bot = world.bots["production"]
    world.telegram.rate_limit(bot, calls=1, retry_after=3)
    ctx = context()
    started = time.monotonic()
    probe = Probe(ctx, ctx.config.env("production"), sha, bot.token, deadline=20, webhook_secret=SECRETS["production"])
    checks = run_probe(probe)
    assert all(c.ok for c in checks), checks
    assert time.monotonic() - started >= 3
    assert sorted(c.attempts for c in checks) == [1, 1, 1, 1, 1, 2]  # the 429'd check: one retry


def probe_json(sha, *extra):
    return cli("probe", "production", "--commit", sha, "--deadline", "3", "--json", *extra)


def test_the_conversation_probe_passes_on_a_healthy_release_and_leaves_nothing(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("production"))
    sha = world.commit("main", "release")
    assert deploy("production", sha) == 0
    capsys.readouterr()
    before = world.redis["production"].client().dbsize()
    assert probe_json(sha) == 0
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["level"]["ok"] and checks["level"]["detail"] == "conversation"
    assert checks["conversation"]["ok"] and "the last reply holds 'probe-{nonce}'" in checks["conversation"]["detail"]
    assert world.bots["production"].sent == []  # nothing reached Telegram
    assert world.redis["production"].client().dbsize() == before  # the probe user's keys are gone


def test_the_conversation_probe_fails_clearly_when_remember_does_not_persist(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("production"))
    sha = world.commit("main", "release")
    assert deploy("production", sha) == 0
    world.redis["production"].client().config_set("min-replicas-to-write", 1)  # writes refused
    capsys.readouterr()
    assert probe_json(sha) == 5
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["conversation"]["ok"] is False
    assert "could not write to its Redis" in checks["conversation"]["cause"]
    assert world.bots["production"].sent == []


def released_with_health_path(world, monkeypatch, capsys, path: str) -> str:
    """Production live at a new commit, then configured with another ``health_path``."""
    use(monkeypatch, world.secrets("production"))
    sha = world.commit("main", "release")
    assert deploy("production", sha) == 0
    text = world.config.read_text().replace('key_prefix = "prod:"', f'key_prefix = "prod:"\nhealth_path = "{path}"')
    world.config.write_text(text)
    capsys.readouterr()
    return sha


def test_a_bot_whose_health_path_answers_404_is_probed_at_the_base_level_saying_so(world, monkeypatch, capsys):
    """No health answer at the configured path: the base level, its Telegram checks run, and the
    level row says what that leaves unverified (a release that drops to it fails: test_levels.py)."""
    sha = released_with_health_path(world, monkeypatch, capsys, "/health")
    assert probe_json(sha) == 0
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert list(checks) == ["level", "token", "webhook"]
    assert checks["level"]["warning"] and checks["level"]["detail"].startswith(
        "base — not verified: health (GET /health answered HTTP 404"
    )
    assert "conversation (needs health)" in checks["level"]["detail"]
    assert checks["token"]["ok"] and checks["webhook"]["ok"]


def test_with_an_empty_health_path_the_telegram_checks_run_and_health_is_said_unchecked(world, monkeypatch, capsys):
    sha = released_with_health_path(world, monkeypatch, capsys, "")
    requests = len(world.services["production"].router.requests)
    assert cli("probe", "production", "--commit", sha, "--deadline", "3") == 0
    out = capsys.readouterr().out
    assert "health_path is empty" in out and "@mindmate_companion_bot" in out
    assert len(world.services["production"].router.requests) == requests  # not asked: the owner said so


def test_a_renamed_production_still_rolls_back_because_the_role_says_so(world, monkeypatch, capsys):
    """Roles, not names: the environment called "prod" that declares the role is rolled back."""
    text = world.config.read_text().replace(
        "[tool.ci_tools.environments.production]",
        "[tool.ci_tools.environments.prod]\nrollback_on_failed_probe = true\ncutover_target = true",
    )
    world.config.write_text(text)
    world.services["production"].env["ENV"] = "prod"  # the bot reports the environment's name
    use(monkeypatch, world.secrets("production"))
    good = released(world, "good", "prod")
    released(world, "bad", "prod", unsigned=True)
    assert f"failed its probe on prod and was rolled back to {good[:12]}" in capsys.readouterr().err
    live = [d for d in world.services["production"].deploys if d["status"] == "live"]
    assert live[0]["commit"]["id"] == good and live[0]["trigger"] == "rollback"
    # …and without the role, a name alone does nothing: "prod" is not rolled back.
    world.config.write_text(text.replace("rollback_on_failed_probe = true\n", ""))
    released(world, "worse", "prod", unsigned=True)
    assert "rolled back" not in capsys.readouterr().err


def test_rollback_previous_never_brings_back_the_release_its_probe_rejected(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("production"))
    good = released(world, "good")
    bad = released(world, "bad", unsigned=True)
    rejected = next(d for d in world.services["production"].deploys if d["commit"]["id"] == bad)
    capsys.readouterr()
    created = len(world.render.created)
    assert cli("rollback", "production", "--previous", *FAST, "--deadline", "3") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no deploy to roll back to" in err[0]
    assert f"{rejected['id']} ({bad[:12]}) was rolled back from by" in err[0]
    assert len(world.render.created) == created and live_commit(world, "production") == good
    # named on purpose, the rejected release may come back, with a warning
    assert cli("rollback", "production", "--to", rejected["id"], *FAST, "--deadline", "1") == 5  # its probe fails
    captured = capsys.readouterr()
    assert f"⚠ {rejected['id']} ({bad[:12]}) was rolled back from by" in captured.out


def test_a_rollback_whose_target_is_live_already_does_nothing(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("production"))
    first = world.commit("main", "first")
    assert deploy("production", first) == 0
    target = world.services["production"].deploys[0]["id"]
    assert deploy("production", world.commit("main", "second")) == 0
    assert cli("rollback", "production", "--to", target, *FAST, "--deadline", "3") == 0
    created = len(world.render.created)
    capsys.readouterr()
    assert cli("rollback", "production", "--to", target, *FAST, "--deadline", "3") == 0  # a second dispatch
    assert "nothing was rolled back" in capsys.readouterr().out
    assert len(world.render.created) == created


def test_a_release_waits_for_a_deploy_still_in_progress_then_judges_against_it(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("production"))
    first = world.commit("main", "first")
    assert deploy("production", first) == 0
    second = world.commit("main", "second")
    world.render.fault(world.services["production"], second, slow=1.5)
    other = threading.Thread(target=deploy, args=("production", second))  # another job's release
    other.start()
    deadline = time.monotonic() + 20
    while not any(d["commit"]["id"] == second for d in world.services["production"].deploys):
        assert time.monotonic() < deadline, "the other release never reached Render"
        time.sleep(0.02)  # once Render is working on it
    assert deploy("production", first) == 2  # once second is live, first is older: refused
    other.join()
    out = capsys.readouterr().out
    assert "waiting for it first" in out
    assert live_commit(world, "production") == second


# -- from when the new commit answers for Telegram's errors (pipeline/serving.py) ------------------
def baking(world, minutes: float = 0.1, interval: float = 0.3) -> None:
    """Releases bake ``minutes``, a look every ``interval`` seconds (the sandbox's config bakes 0)."""
    window = f"bake_minutes = {minutes}\nbake_interval_seconds = {interval}\n"
    world.config.write_text(world.config.read_text().replace("bake_minutes = 0\n", window))


def while_the_old_instance_serves(world, commit: str, message: str) -> threading.Event:
    """Telegram records a failed delivery as ``commit``'s deploy enters update_in_progress: the new
    instance is not started yet, the old one serves (Render's zero-downtime overlap)."""
    recorded = threading.Event()

    def hook(deploy: dict, status: str) -> None:
        if deploy["commit"]["id"] == commit and status == "update_in_progress":
            assert live_commit(world, "production") != commit  # the old instance answers
            world.telegram.delivery_failed(world.bots["production"], message)
            recorded.set()

    world.services["production"].on_status = hook
    return recorded


def test_a_delivery_error_while_the_old_instance_serves_neither_fails_the_probe_nor_the_bake(
    world, monkeypatch, capsys
):
    use(monkeypatch, world.secrets("production"))
    baking(world)
    good = world.commit("main", "good")
    assert deploy("production", good) == 0
    new = world.commit("main", "new, and fine")
    recorded = while_the_old_instance_serves(world, new, "Wrong response from the webhook: 502 Bad Gateway")
    assert cli("release", "production", "--commit", new, *FAST, "--deadline", "5") == 0, capsys.readouterr().err
    assert recorded.is_set()
    assert world.bots["production"].last_error_date  # Telegram still reports it: it is history
    assert "✓ baked" in capsys.readouterr().out
    assert not [d for d in world.services["production"].deploys if d["trigger"] == "rollback"]
    assert live_commit(world, "production") == new


def test_a_delivery_error_after_the_new_commit_serves_still_rolls_it_back_in_its_bake(world, monkeypatch, capsys):
    """The overlap's error is history; one recorded once the new commit served and the bake looked is its own."""
    use(monkeypatch, world.secrets("production"))
    baking(world, minutes=0.2)
    good = world.commit("main", "good")
    assert deploy("production", good) == 0
    new = world.commit("main", "refuses its updates later")
    while_the_old_instance_serves(world, new, "Connection refused")

    router, taken = world.services["production"].router, conversations(world.services["production"].router)

    def after_it_serves() -> None:  # once the probe's conversation and the bake's first look were taken
        wait_until(lambda: conversations(router) >= taken + 2, "the bake's first look")
        seen = time.time()
        while time.time() < int(seen) + 1:  # Telegram's date is whole seconds: one past what was seen
            time.sleep(0.01)
        world.telegram.delivery_failed(world.bots["production"], "Wrong response from the webhook: 500")

    later = threading.Thread(target=after_it_serves, daemon=True)
    later.start()
    assert cli("release", "production", "--commit", new, *FAST, "--deadline", "5") == 5
    later.join(5)
    err = capsys.readouterr().err
    assert f"{new[:12]} failed its bake on production and was rolled back to {good[:12]}" in err
    assert "Telegram's delivery to it failed after the deploy: Wrong response from the webhook: 500" in err
    assert live_commit(world, "production") == good


def test_an_error_after_live_while_the_url_still_routes_to_the_old_instance_is_not_counted(world, monkeypatch):
    """Render says live, but the public URL serves the old instance 3 s longer: an error recorded
    after the run saw live, while the old instance still answers, is not the new commit's. since
    is the moment /healthz reports the new commit, not the moment the run saw live: the bake, which
    looks after the error is recorded, does not count it."""
    use(monkeypatch, world.secrets("production"))
    baking(world, minutes=0.05)
    good = world.commit("main", "good")
    assert deploy("production", good) == 0
    new = world.commit("main", "goes live, the URL lags")
    world.render.fault(world.services["production"], new, late_switch=3.0)
    recorded = threading.Event()

    def once_the_run_saw_live(deploy: dict) -> None:
        seen = len(world.render.requests)
        path = f"/v1/services/{world.services['production'].id}/deploys/{deploy['id']}"
        wait_until(lambda: ("GET", path) in world.render.requests[seen:], "the run's look at the live deploy")
        moment = time.time()
        while time.time() < int(moment) + 1:  # Telegram's dates are whole seconds: past the run's "live"
            time.sleep(0.01)
        if live_commit(world, "production") == good:  # the old instance still answers the URL
            world.telegram.delivery_failed(world.bots["production"], "Wrong response from the webhook: 500")
            recorded.set()

    def at_live(deploy: dict, status: str) -> None:
        if deploy["commit"]["id"] == new and status == "live":
            threading.Thread(target=once_the_run_saw_live, args=(deploy,), daemon=True).start()

    world.services["production"].on_status = at_live
    assert cli("release", "production", "--commit", new, *FAST, "--deadline", "10") == 0
    assert recorded.is_set(), "the error was not recorded while the old instance served after live"
    assert live_commit(world, "production") == new
