"""The Render stand-in builds and starts each deployed commit with that commit's own render.yaml
service (ci_tools/botrun), never our bot in its place: an owner's bot that is not ours runs as
its owner wrote it, and a commit with no service for it, or a build that fails, ends build_failed."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from sandbox.redis import RedisServer
from sandbox.render import FakeRender, FakeService
from sandbox.telegram import FakeBot, FakeTelegram
from sandbox.world import git
from tests.release_kit.owner import owner_repo
from tests.support import ROOT, wait_until

KEY = {"Authorization": "Bearer rnd_sandboxApiKey0123456789"}
FINAL = ("live", "build_failed", "update_failed", "canceled")


def commit(repo: Path, path: str, text: str, message: str) -> str:
    (repo / path).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def deploy(render: FakeRender, service: FakeService, sha: str) -> dict:
    with httpx.Client(base_url=render.url, headers=KEY) as client:
        created = client.post(f"/v1/services/{service.id}/deploys", json={"commitId": sha}).json()
        wait_until(
            lambda: client.get(f"/v1/services/{service.id}/deploys/{created['id']}").json()["status"] in FINAL,
            "the deploy to end",
        )
        return dict(client.get(f"/v1/services/{service.id}/deploys/{created['id']}").json())


@pytest.fixture
def ava(tmp_path):
    """A Render with the owner's service (ava-bot), its Redis, and the Telegram stand-in."""

    def make(process: bool) -> tuple[FakeRender, FakeService, FakeTelegram, FakeBot, RedisServer]:
        repo = owner_repo(tmp_path)
        redis_server = RedisServer().start()
        telegram = FakeTelegram().start()
        bot = telegram.add_bot("ava_owner_bot")
        render = FakeRender(step=0.02, process=process).start()
        render.repo, render.log_dir, render.health_timeout = repo, tmp_path, 20.0
        env = {"TELEGRAM_BOT_TOKEN": bot.token, "REDIS_URL": redis_server.url, "TELEGRAM_API_URL": telegram.url}
        service = render.add_service("ava-bot", "main", env)
        started.append((render, telegram, redis_server))
        return render, service, telegram, bot, redis_server

    started: list[tuple[FakeRender, FakeTelegram, RedisServer]] = []
    yield make
    for render, telegram, redis_server in started:
        render.stop()
        telegram.stop()
        redis_server.close()


@pytest.mark.parametrize("process", [True, False], ids=["processes", "threads"])
def test_the_owners_bot_is_built_and_run_as_its_render_yaml_says(ava, process):
    """Even in thread mode: its service does not start our bot, so it runs as a process of its own.
    Its webhook is PTB's own (the token as path) at the service's public URL, and it answers."""
    render, service, telegram, bot, redis_server = ava(process)
    sha = git(render.repo, "rev-parse", "HEAD")
    assert deploy(render, service, sha)["status"] == "live"
    assert (render.build_root / sha / ".venv" / "bin" / "python").exists()
    wait_until(lambda: bot.webhook_url == f"{service.router.url}/{bot.token}", "the owner bot's own webhook")
    telegram.send_user_message(bot, 4242, "hello Ava")
    wait_until(lambda: telegram.replies_to(bot, 4242), "Ava's answer")
    assert redis_server.client().exists("user:4242:history")
    assert f"{sha[:7]}" in " ".join(p.name for p in render.log_dir.glob("ava-bot-*.log"))


def test_a_commit_whose_render_yaml_has_no_service_for_it_ends_build_failed(ava):
    render, service, *_ = ava(False)
    renamed = (render.repo / "render.yaml").read_text().replace("name: ava-bot", "name: ava-web")
    sha = commit(render.repo, "render.yaml", renamed, "rename the service")
    ended = deploy(render, service, sha)
    assert ended["status"] == "build_failed"
    assert not (render.build_root or Path("/nonexistent")).joinpath(sha).exists()  # nothing was built


def test_a_commit_whose_build_fails_ends_build_failed_and_the_live_one_keeps_serving(ava):
    render, service, *_ = ava(True)
    good = git(render.repo, "rev-parse", "HEAD")
    assert deploy(render, service, good)["status"] == "live"
    bad = commit(render.repo, "requirements.txt", "no-such-package-for-ci-tools-tests==1.0\n", "a typo")
    assert deploy(render, service, bad)["status"] == "build_failed"
    log = (render.log_dir / f"ava-bot-{bad[:7]}.log").read_text()
    assert "no-such-package-for-ci-tools-tests" in log
    assert service.built is not None and service.built.commit == good


def test_an_instance_that_exits_at_start_fails_the_deploy_as_renders_does(ava):
    render, service, *_ = ava(True)
    render.health_timeout = 3.0
    spec = (render.repo / "render.yaml").read_text().replace("python -m bot", "python -m bot.missing")
    sha = commit(render.repo, "render.yaml", spec, "a start command that exits")
    ended = deploy(render, service, sha)
    assert ended["status"] == "update_failed"
    kinds = [e["type"] for e in service.events]
    assert "server_failed" in kinds


def test_the_rehearsals_bot_project_commit_builds_and_goes_live(tmp_path):
    """`ci-tools rehearse` (processes) commits the bot's project into the sandbox's repository and
    from then on Render builds it with render.yaml's `uv sync --locked`: every package the
    project's build backend names must be in that commit (release_kit was not: build_failed)."""
    from sandbox.world import World

    with World(tmp_path / "world", process=True, step=0.02) as world:
        world.render.health_timeout = 30.0
        sha = world.add_bot_project(ROOT, "the bot's code in the repository")
        ended = deploy(world.render, world.services["production"], sha)
        assert ended["status"] == "live", ended


def test_a_service_with_a_root_dir_is_built_from_that_folder_alone(ava):
    """render.com/docs/monorepo-support: files outside the root directory are not available at
    build time or at runtime; the stand-in's build saw the whole repository."""
    render, service, *_ = ava(True)
    (render.repo / "svc").mkdir()
    (render.repo / "svc" / "keep").write_text("")
    spec = (
        "services:\n  - type: web\n    name: ava-bot\n    runtime: python\n    rootDir: svc\n"
        "    buildCommand: test ! -e ../render.yaml\n"
        "    startCommand: exec python -m http.server $PORT --bind 127.0.0.1\n"
    )
    sha = commit(render.repo, "render.yaml", spec, "the bot moves into svc/")
    assert deploy(render, service, sha)["status"] == "live"
