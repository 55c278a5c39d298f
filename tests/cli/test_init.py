"""``ci-tools init`` against the Render and Telegram stand-ins, from the repository as cloned:
three values typed, the rest discovered; then ``github setup --apply`` with nothing else typed."""

from __future__ import annotations

import shutil
import stat
import tomllib
from pathlib import Path

import pytest
import yaml

from ci_tools.__main__ import main
from ci_tools.repo.owner_files import read_dotenv
from sandbox.github import FakeGitHub
from tests.support import ROOT, use

DAILY_USER = 424242001


@pytest.fixture
def owner(world, tmp_path, monkeypatch):
    """A clone of this repository, and an owner's Render account whose names are not ours."""
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("pyproject.toml", "render.yaml"):
        shutil.copy2(ROOT / name, clone / name)
    shutil.copytree(ROOT / ".github", clone / ".github")
    names = {"staging": "ada-companion-dev", "production": "ada-companion"}
    for env, name in names.items():
        world.services[env].name = name
        world.key_values[env].name = f"{name}-redis"
    old = world.telegram.add_bot("mywellnesscompanion_bot")  # what the production service runs today
    world.services["production"].env["TELEGRAM_BOT_TOKEN"] = old.token
    monkeypatch.chdir(clone)
    use(
        monkeypatch,
        {
            "RENDER_API_URL": world.render.url,
            "TELEGRAM_API_URL": world.telegram.url,
            "RENDER_API_KEY": world.render.api_key,
            "PRODUCTION_TELEGRAM_BOT_TOKEN": world.bots["production"].token,
            "DAILY_USER_ID": str(DAILY_USER),
        },
    )
    return clone, names, old


def init(names, *extra):
    return main(
        [
            "init",
            "--staging-service",
            names["staging"],
            "--production-service",
            names["production"],
            "--repo",
            "ada/companion",
            *extra,
        ]
    )


def secrets_of(world, old) -> list[str]:
    values = [world.render.api_key, old.token, *(b.token for b in world.bots.values())]
    return values + [s.env.get("TELEGRAM_WEBHOOK_SECRET", "") for s in world.services.values()]


def test_init_discovers_writes_and_checks_then_github_setup_needs_nothing_else(world, owner, capsys, monkeypatch):
    clone, names, old = owner
    assert init(names) == 0
    out = capsys.readouterr()
    config = tomllib.loads((clone / "pyproject.toml").read_text())["tool"]["ci_tools"]
    staging, production = config["environments"]["staging"], config["environments"]["production"]
    assert staging["render_service"] == "ada-companion-dev" and production["render_service"] == "ada-companion"
    assert staging["bot_username"] == "mindmate_dev_bot" and production["bot_username"] == "mindmate_companion_bot"
    assert production["base_url"] == world.services["production"].router.url
    assert staging["key_prefix"] == ""  # the daily user's bot keeps the legacy keys until the move
    assert DAILY_USER in config["memory_backup"]["protected_users"]
    blueprint = yaml.safe_load((clone / "render.yaml").read_text())
    services = {s["name"]: s for s in blueprint["services"]}
    assert {"ada-companion-dev", "ada-companion", "ada-companion-dev-redis", "ada-companion-redis"} <= set(services)
    prefix = next(v for v in services["ada-companion-dev"]["envVars"] if v["key"] == "KEY_PREFIX")
    assert prefix["value"] == "none"
    assert "# The daily user talks to this bot" in (clone / "render.yaml").read_text()  # comments kept

    dotenv = clone / ".env"
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600
    kept = read_dotenv(dotenv)
    assert kept["PRODUCTION_TELEGRAM_BOT_TOKEN"] == world.bots["production"].token
    assert kept["STAGING_TELEGRAM_BOT_TOKEN"] == world.bots["staging"].token  # read from the service
    assert kept["STAGING_TELEGRAM_WEBHOOK_SECRET"] == world.services["staging"].env["TELEGRAM_WEBHOOK_SECRET"]
    assert kept["STAGING_RENDER_SERVICE_ID"] == world.services["staging"].id
    assert kept["PRODUCTION_REDIS_URL"] == world.external_redis_url("production")
    assert kept["PRODUCTION_SOURCE_REDIS_URL"] == world.external_redis_url("staging")
    assert kept["PRODUCTION_MEMORY_SNAPSHOT_KEY"] == kept["STAGING_MEMORY_SNAPSHOT_KEY"]
    assert kept["PRODUCTION_STAGING_TELEGRAM_BOT_TOKEN"] == world.bots["staging"].token  # for preflight.yml
    assert ".env" in (clone / ".gitignore").read_text().split()
    assert "mywellnesscompanion_bot until the cutover" in out.out
    for value in [*secrets_of(world, old), kept["PRODUCTION_MEMORY_SNAPSHOT_KEY"]]:
        assert value not in out.out + out.err

    assert main(["config", "check"]) == 0
    before = {p.name: p.read_bytes() for p in (clone / "pyproject.toml", clone / "render.yaml", dotenv)}
    capsys.readouterr()
    assert init(names) == 0  # again: nothing changes, nothing regenerated
    assert "nothing to change" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in (clone / "pyproject.toml", clone / "render.yaml", dotenv)} == before

    assert production["reviewers"] == ["ada"]  # the placeholder gave way to the repository's owner
    with FakeGitHub() as github:
        github.users["ada"] = 5002
        use(monkeypatch, {"GITHUB_API_URL": github.url, "GITHUB_TOKEN": github.token})
        assert main(["github", "setup", "--apply"]) == 0  # the repository and the secrets from .env
        out = capsys.readouterr()
        assert github.secrets["production"]["TELEGRAM_BOT_TOKEN"] == world.bots["production"].token
        assert github.secrets["production"]["RENDER_SERVICE_ID"] == world.services["production"].id
        assert github.secrets["staging"]["REDIS_URL"] == world.external_redis_url("staging")
        writes = github.writes
        assert main(["github", "setup", "--apply"]) == 0
        assert github.writes == writes  # nothing left to change
    for value in secrets_of(world, old):
        assert value not in out.out + out.err


def test_without_a_terminal_the_missing_values_are_named_and_nothing_is_written(world, owner, capsys, monkeypatch):
    clone, names, _ = owner
    monkeypatch.delenv("PRODUCTION_TELEGRAM_BOT_TOKEN")
    before = (clone / "pyproject.toml").read_bytes()
    assert init(names) == 3
    err = capsys.readouterr().err
    assert "PRODUCTION_TELEGRAM_BOT_TOKEN is not set" in err and "Traceback" not in err
    assert (clone / "pyproject.toml").read_bytes() == before and not (clone / ".env").exists()


def test_a_service_that_is_not_there_is_named(world, owner, capsys):
    clone, names, _ = owner
    assert init({**names, "production": "ada-companion-prod"}) == 3
    assert "no service named 'ada-companion-prod'" in capsys.readouterr().err
    assert not (clone / ".env").exists()


def test_testers_before_the_move_are_refused(world, owner, capsys):
    """TESTER_IDS would send the daily user away from the bot that holds their memory."""
    _, names, _ = owner
    assert init(names, "--tester-ids", "5550001") == 3
    assert "before the move would send the daily user away" in capsys.readouterr().err
    assert "TESTER_IDS" not in world.services["staging"].env


def test_after_the_move_staging_gets_its_prefix_and_its_testers(world, owner, capsys):
    clone, names, _ = owner
    assert init(names) == 0
    assert init(names, "--staging-prefix", "dev:", "--tester-ids", "5550001") == 0
    config = tomllib.loads((clone / "pyproject.toml").read_text())["tool"]["ci_tools"]
    assert config["environments"]["staging"]["key_prefix"] == "dev:"
    assert 'value: "dev:"' in (clone / "render.yaml").read_text()
    env = world.services["staging"].env
    assert (env["TESTER_IDS"], env["PRODUCTION_BOT"], env["KEY_PREFIX"]) == (
        "5550001",
        "mindmate_companion_bot",
        "dev:",
    )
    assert main(["config", "check"]) == 0


def test_a_readable_env_file_is_made_private(world, owner):
    clone, names, _ = owner
    (clone / ".env").write_text("GITHUB_TOKEN='kept-by-the-owner'\n")
    Path(clone / ".env").chmod(0o644)
    assert init(names) == 0
    assert stat.S_IMODE((clone / ".env").stat().st_mode) == 0o600
    assert read_dotenv(clone / ".env")["GITHUB_TOKEN"] == "kept-by-the-owner"  # the owner's own lines stay


def test_env_example_lists_exactly_what_init_writes(world, owner):
    clone, names, _ = owner
    assert init(names, "--owner-chat-id", "123456789") == 0
    written = set(read_dotenv(clone / ".env"))
    example = set(read_dotenv(ROOT / ".env.example"))
    assert written == example, (sorted(written - example), sorted(example - written))
