"""The safety-net items of preflight and acceptance, against the Render and GitHub stand-ins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ci_tools.pipeline import safety_net as net
from sandbox.github import FakeGitHub
from sandbox.render import FakeRender
from tests.support import context, use

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def render(monkeypatch):
    with FakeRender() as server:
        use(monkeypatch, {"RENDER_API_URL": server.url, "RENDER_API_KEY": server.api_key})
        yield server


@pytest.fixture
def github(monkeypatch):
    with FakeGitHub() as server:
        use(
            monkeypatch,
            {
                "GITHUB_API_URL": server.url,
                "GITHUB_TOKEN": server.token,
                "GITHUB_REPOSITORY": "mindmate/mindmate-release",
            },
        )
        yield server


@pytest.mark.parametrize(
    ("plan", "persistence", "ok", "fix"),
    [
        ("starter", "journal_snapshot", True, ""),
        ("starter", "snapshot", True, ""),
        ("free", "off", False, "the free plan keeps nothing across a restart"),
        ("standard", "off", False, "persistence Off keeps nothing across a restart"),
    ],
)
def test_the_key_values_plan_and_persistence(render, plan, persistence, ok, fix):
    kv = render.add_key_value("mindmate-prod-redis", "redis://127.0.0.1:1/0")
    kv.plan, kv.persistence = plan, persistence
    item = net.durability(context())
    assert item.ok is ok and fix in item.fix
    assert f"plan {plan}, persistence {persistence}" in item.detail


def test_without_an_api_key_the_durability_is_not_judged(monkeypatch):
    monkeypatch.delenv("RENDER_API_KEY", raising=False)
    assert net.durability(context()).ok is None


def stamp(delta: timedelta) -> str:
    return (NOW - delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_newest_snapshot_and_its_age(github):
    github.add_artifact("memory-nightly-2026-11-20", stamp(timedelta(days=12)))
    github.add_artifact("coverage", stamp(timedelta(hours=1)))  # not a memory snapshot
    github.add_artifact("memory-before-" + "a" * 40, stamp(timedelta(hours=5)))
    item = net.last_snapshot(context(), now=NOW)
    assert item.ok is True and not item.warning
    assert item.detail == f"memory-before-{'a' * 40}, 5 h old"


def test_a_stale_snapshot_warns_and_none_at_all_fails(github):
    assert net.last_snapshot(context(), now=NOW).ok is False
    github.add_artifact("memory-nightly-2026-11-28", stamp(timedelta(days=4)))
    github.add_artifact("memory-nightly-2026-12-01", stamp(timedelta(hours=2)), expired=True)
    item = net.last_snapshot(context(), now=NOW)
    assert item.warning and item.detail == "memory-nightly-2026-11-28, 4 days old"
    assert "60 days" in item.fix


def test_without_a_github_token_it_says_so(monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    item = net.last_snapshot(context())
    assert item.warning and "not checked" in item.detail
