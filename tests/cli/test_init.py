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
from ci_tools.repo.flow import matches
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
    assert kept["PRODUCTION_MEMORY_SNAPSHOT_KEY"] != kept["STAGING_MEMORY_SNAPSHOT_KEY"]  # each its own
    assert "STAGING_SOURCE_REDIS_URL" not in kept  # staging never holds production's Redis
    assert "STAGING_RENDER_API_KEY" not in kept and "PRODUCTION_STAGING_RENDER_API_KEY" not in kept
    assert "staging has no Render power yet: set STAGING_RENDER_DEPLOY_HOOK_URL" in " ".join(out.out.split())
    assert kept["PRODUCTION_STAGING_TELEGRAM_BOT_TOKEN"] == world.bots["staging"].token  # for preflight.yml
    assert ".env" in (clone / ".gitignore").read_text().split()
    assert "mywellnesscompanion_bot until the cutover" in out.out
    for value in [*secrets_of(world, old), kept["PRODUCTION_MEMORY_SNAPSHOT_KEY"], kept["STAGING_MEMORY_SNAPSHOT_KEY"]]:
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
    assert "PRODUCTION_SOURCE_REDIS_URL" in read_dotenv(clone / ".env")  # the move's copy source, until it is done
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
    # The move is finished: production no longer reaches the old bot's Redis, and .env stops naming
    # it, so github setup does not put back the SOURCE_REDIS_URL finish-move said to delete.
    assert "PRODUCTION_SOURCE_REDIS_URL" not in read_dotenv(clone / ".env")


def test_a_readable_env_file_is_made_private(world, owner):
    clone, names, _ = owner
    (clone / ".env").write_text("GITHUB_TOKEN='kept-by-the-owner'\n")
    Path(clone / ".env").chmod(0o644)
    assert init(names) == 0
    assert stat.S_IMODE((clone / ".env").stat().st_mode) == 0o600
    assert read_dotenv(clone / ".env")["GITHUB_TOKEN"] == "kept-by-the-owner"  # the owner's own lines stay


def test_env_example_lists_exactly_what_init_writes(world, owner, monkeypatch):
    clone, names, _ = owner
    monkeypatch.setenv("STAGING_RENDER_DEPLOY_HOOK_URL", world.render.hook_url(world.services["staging"]))
    assert init(names, "--owner-chat-id", "123456789") == 0
    written = set(read_dotenv(clone / ".env"))
    example = set(read_dotenv(ROOT / ".env.example"))
    assert written == example, (sorted(written - example), sorted(example - written))


# -- no production power in code no reviewer saw ------------------------------------------------
UNREVIEWED = ("develop", "feature/new-thing")  # staging's branches: no reviewer saw their code


def production_values(kept: dict[str, str]) -> dict[str, str]:
    """Every production credential .env holds (OWNER_CHAT_ID, an id, grants nothing; a service id
    neither; PRODUCTION_SOURCE_REDIS_URL and PRODUCTION_STAGING_* are staging's values)."""
    names = ("RENDER_API_KEY", "TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "REDIS_URL", "MEMORY_SNAPSHOT_KEY")
    return {f"PRODUCTION_{name}": kept[f"PRODUCTION_{name}"] for name in names}


def admits_unreviewed(github: FakeGitHub, env: str) -> bool:
    """GitHub's gate: an environment without a deployment branch policy admits every branch."""
    if not (github.environments[env].get("deployment_branch_policy") or {}).get("custom_branch_policies"):
        return True
    return any(matches(pattern, branch) for pattern in github.branch_policies[env] for branch in UNREVIEWED)


@pytest.mark.parametrize(
    ("private", "plan"),
    [(False, "free"), (True, "pro"), (True, "free")],
    ids=["public", "private-pro", "private-free"],
)
def test_no_environment_that_admits_unreviewed_code_holds_a_production_secret(
    world, owner, monkeypatch, capsys, private, plan
):
    """init, then github setup --apply with nothing else typed, on each plan the project models: every
    value GitHub stored where develop or feature/* can read it (an environment admitting them, or a
    repository secret, which every branch reads) is compared with production's."""
    clone, names, _ = owner
    monkeypatch.setenv("STAGING_RENDER_DEPLOY_HOOK_URL", world.render.hook_url(world.services["staging"]))
    assert init(names, "--owner-chat-id", "123456789") == 0
    kept = read_dotenv(clone / ".env")
    production = production_values(kept)
    with FakeGitHub(private=private, plan=plan) as github:
        github.users["ada"] = 5002
        use(monkeypatch, {"GITHUB_API_URL": github.url, "GITHUB_TOKEN": github.token})
        assert main(["github", "setup", "--apply"]) == 0
        readable = {f"repository secret {n}": v for n, v in github.repo_secret_values.items()}
        for env, stored in github.secrets.items():
            if admits_unreviewed(github, env):
                readable |= {f"environment {env}: {n}": v for n, v in stored.items()}
        leaked = [where for where, value in readable.items() if value in production.values()]
        assert not leaked, leaked
        assert readable, "nothing readable by staging's branches was stored: the test compared nothing"
        if github.environments_available:  # production's own environments hold them, and admit main alone
            assert github.secrets["production"]["MEMORY_SNAPSHOT_KEY"] == production["PRODUCTION_MEMORY_SNAPSHOT_KEY"]
            assert github.secrets["production-scheduled"]["REDIS_URL"] == production["PRODUCTION_REDIS_URL"]
            assert not admits_unreviewed(github, "production") and not admits_unreviewed(github, "production-scheduled")
            staging = github.secrets["staging"]
            assert staging["RENDER_DEPLOY_HOOK_URL"] == world.render.hook_url(world.services["staging"])
            assert "RENDER_API_KEY" not in staging and "SOURCE_REDIS_URL" not in staging


def test_an_older_env_is_repaired_staging_loses_what_was_productions(world, owner, monkeypatch):
    """What init wrote before: one snapshot key for both, production's Redis as staging's copy
    source, the account-wide key as staging's."""
    clone, names, _ = owner
    assert init(names) == 0
    kept = read_dotenv(clone / ".env")
    shared = kept["PRODUCTION_MEMORY_SNAPSHOT_KEY"]
    old = {
        **kept,
        "STAGING_MEMORY_SNAPSHOT_KEY": shared,
        "STAGING_SOURCE_REDIS_URL": kept["PRODUCTION_REDIS_URL"],
        "STAGING_RENDER_API_KEY": world.render.api_key,
        "PRODUCTION_STAGING_RENDER_API_KEY": world.render.api_key,
    }
    (clone / ".env").write_text("".join(f"{k}='{v}'\n" for k, v in old.items()))
    assert init(names) == 0
    repaired = read_dotenv(clone / ".env")
    assert repaired["PRODUCTION_MEMORY_SNAPSHOT_KEY"] == shared  # production's snapshots stay readable
    assert repaired["STAGING_MEMORY_SNAPSHOT_KEY"] not in ("", shared)
    for name in ("STAGING_SOURCE_REDIS_URL", "STAGING_RENDER_API_KEY", "PRODUCTION_STAGING_RENDER_API_KEY"):
        assert name not in repaired, name


def test_a_key_scoped_to_staging_is_kept_and_one_that_reaches_production_is_refused(world, owner, monkeypatch, capsys):
    clone, names, _ = owner
    staging, production = world.services["staging"], world.services["production"]
    monkeypatch.setenv("STAGING_RENDER_API_KEY", world.render.api_key)  # the account-wide key again
    assert init(names) == 3
    assert "STAGING_RENDER_API_KEY is the account-wide key" in capsys.readouterr().err
    reaching = world.render.scoped_key({staging.id: "write", production.id: "read"})
    monkeypatch.setenv("STAGING_RENDER_API_KEY", reaching)
    assert init(names) == 3
    err = capsys.readouterr().err
    assert "STAGING_RENDER_API_KEY reads ada-companion" in err and reaching not in err
    assert not (clone / ".env").exists()
    monkeypatch.setenv("STAGING_RENDER_API_KEY", world.render.scoped_key({"srv-elsewhere": "write"}))  # not staging
    assert init(names) == 3
    assert "STAGING_RENDER_API_KEY cannot read ada-companion-dev" in capsys.readouterr().err
    scoped = world.render.scoped_key({staging.id: "write", world.key_values["staging"].id: "write"})
    monkeypatch.setenv("STAGING_RENDER_API_KEY", scoped)
    monkeypatch.setenv("STAGING_RENDER_DEPLOY_HOOK_URL", world.render.hook_url(production))
    assert init(names) == 3
    assert "STAGING_RENDER_DEPLOY_HOOK_URL is not ada-companion-dev's deploy hook" in capsys.readouterr().err
    monkeypatch.delenv("STAGING_RENDER_DEPLOY_HOOK_URL")
    assert init(names) == 0
    assert "staging's Render power: its own scoped key" in " ".join(capsys.readouterr().out.split())
    kept = read_dotenv(clone / ".env")
    assert kept["STAGING_RENDER_API_KEY"] == kept["PRODUCTION_STAGING_RENDER_API_KEY"] == scoped


@pytest.mark.parametrize("name", ["RENDER_API_KEY", "PRODUCTION_TELEGRAM_BOT_TOKEN"])
def test_a_secret_that_is_not_ascii_is_a_configuration_error_naming_it(world, owner, monkeypatch, capsys, name):
    """What a paste from a chat or a document brings along: a curly quote, a non-breaking space."""
    _, names, _ = owner
    value = f"\u201c{world.render.api_key}\u00a0"
    monkeypatch.setenv(name, value)
    assert init(names) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"ci-tools: configuration: {name} holds a character that is not ASCII")
    assert err.count("\n") == 1 and "Traceback" not in err and world.render.api_key not in err
