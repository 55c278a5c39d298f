"""Attacks on "no production power in code no reviewer saw": what init and github setup let
staging (develop, feature/*: unreviewed code) hold. Each test fails while the hole is open.

Real processes: the Render and Telegram stand-ins of the world fixture, the GitHub stand-in, the
real CLI (``ci_tools.__main__.main``)."""

from __future__ import annotations

import json

import pytest

from ci_tools.__main__ import main
from ci_tools.clients.render import RenderAPI, monotonic_deadline
from ci_tools.repo.owner_files import read_dotenv
from sandbox.github import FakeGitHub
from tests.cli.test_init import (
    init,
    owner,  # noqa: F401 - the fixture, used by name
    production_values,
)
from tests.support import use


def _staging_leaks(github: FakeGitHub, production: dict[str, str]) -> list[str]:
    """Every value GitHub's staging environment holds that is a production credential."""
    return sorted(
        f"staging: {name} = {which}"
        for name, value in github.secrets.get("staging", {}).items()
        for which, secret in production.items()
        if value == secret
    )


def test_setup_after_an_older_init_leaves_productions_power_in_staging(world, owner, monkeypatch, capsys):  # noqa: F811
    """An owner who set up with the older init (one snapshot key, production's Redis as staging's
    SOURCE_REDIS_URL, the account-wide key as staging's RENDER_API_KEY) upgrades, runs init again
    (which repairs .env) and github setup --apply, even with --update-secrets. GitHub's staging
    environment still holds all three: setup never deletes a secret, and rewrites only names .env
    still has. github check calls it all ✓."""
    clone, names, _ = owner
    assert init(names) == 0
    kept = read_dotenv(clone / ".env")
    older = {
        **kept,
        "STAGING_MEMORY_SNAPSHOT_KEY": kept["PRODUCTION_MEMORY_SNAPSHOT_KEY"],
        "STAGING_SOURCE_REDIS_URL": kept["PRODUCTION_REDIS_URL"],
        "STAGING_RENDER_API_KEY": world.render.api_key,
        "PRODUCTION_STAGING_RENDER_API_KEY": world.render.api_key,
    }
    production = production_values(kept)
    with FakeGitHub() as github:
        github.users["ada"] = 5002
        use(monkeypatch, {"GITHUB_API_URL": github.url, "GITHUB_TOKEN": github.token})
        # What the older pipeline left in GitHub. Today's setup refuses to upload these values
        # (test_setup_uploads_a_staging_value_that_is_a_production_secret), so the older setup's
        # result is put into the stand-in as it stored it: the same secrets, the older values.
        assert main(["github", "setup", "--apply"]) == 0
        github.secrets["staging"].update(
            {
                "MEMORY_SNAPSHOT_KEY": older["STAGING_MEMORY_SNAPSHOT_KEY"],
                "SOURCE_REDIS_URL": older["STAGING_SOURCE_REDIS_URL"],
                "RENDER_API_KEY": older["STAGING_RENDER_API_KEY"],
            }
        )
        github.secrets["production"]["STAGING_RENDER_API_KEY"] = older["PRODUCTION_STAGING_RENDER_API_KEY"]
        github.variables.pop("CI_TOOLS_SECRETS_STAGING", None)  # the older setup kept no digest of what it stored
        (clone / ".env").write_text("".join(f"{k}='{v}'\n" for k, v in older.items()))  # and the older .env
        assert _staging_leaks(github, production)  # the starting point: staging held production's power

        assert init(names) == 0  # the upgrade: .env is repaired ...
        repaired = read_dotenv(clone / ".env")
        assert "STAGING_SOURCE_REDIS_URL" not in repaired and "STAGING_RENDER_API_KEY" not in repaired
        assert main(["github", "setup", "--apply"]) == 0  # ... and pushed to GitHub, as the README says
        after_setup = _staging_leaks(github, production)
        assert main(["github", "setup", "--apply", "--update-secrets"]) == 0  # even rewriting every secret
        after_update = _staging_leaks(github, production)
        capsys.readouterr()
        assert main(["github", "check"]) == 0
        assert "✗" not in capsys.readouterr().out  # check sees nothing wrong either way
        assert (after_setup, after_update) == ([], [])


def test_setup_uploads_a_staging_value_that_is_a_production_secret(world, owner, monkeypatch):  # noqa: F811
    """init refuses the account-wide key as staging's and never gives staging production's Redis;
    github setup, which is what actually writes GitHub, checks neither. A STAGING_<NAME> from the
    shell (secret_values reads os.environ for every name .env does not hold) goes to staging as is."""
    clone, names, _ = owner
    assert init(names) == 0
    kept = read_dotenv(clone / ".env")
    production = production_values(kept)
    with FakeGitHub() as github:
        github.users["ada"] = 5002
        use(
            monkeypatch,
            {
                "GITHUB_API_URL": github.url,
                "GITHUB_TOKEN": github.token,
                "STAGING_RENDER_API_KEY": world.render.api_key,  # e.g. left over from the older README
                "STAGING_SOURCE_REDIS_URL": kept["PRODUCTION_REDIS_URL"],
            },
        )
        code = main(["github", "setup", "--apply"])
        leaks = _staging_leaks(github, production)
        assert code == 3 or not leaks, leaks  # refused, naming the value's name; or at least not stored
        assert leaks == []


def test_a_staging_key_that_reaches_productions_key_value_is_accepted(world, owner, monkeypatch, capsys):  # noqa: F811
    """init refuses a staging key that can read production's *service*, but asks nothing about
    production's Key Value. A key scoped to staging's service and Key Value plus production's Key
    Value passes init (and preflight, which asks the same question): from staging's jobs
    (feature/*), GET /v1/key-value/<production's>/connection-info is production's Redis URL with
    its password, and a PATCH of its ipAllowList opens it to any address."""
    clone, names, _ = owner
    staging = world.services["staging"]
    key = world.render.scoped_key(
        {
            staging.id: "write",
            world.key_values["staging"].id: "write",
            world.key_values["production"].id: "write",
        }
    )
    monkeypatch.setenv("STAGING_RENDER_API_KEY", key)
    code = init(names)
    kept = read_dotenv(clone / ".env") if (clone / ".env").exists() else {}
    with RenderAPI(key, "", deadline=monotonic_deadline(30), base_url=world.render.url, timeout=10) as api:
        production_url = str(api.connection_info(world.key_values["production"].id)["externalConnectionString"])
    assert production_url == world.external_redis_url("production")  # what this key gives staging's jobs
    assert kept.get("STAGING_RENDER_API_KEY") != key, "init gave staging a key that reads production's Redis URL"
    assert code == 3
    assert "STAGING_RENDER_API_KEY" in capsys.readouterr().err


@pytest.mark.parametrize(
    "url",
    [
        "redis://default:pw-attack-7f3e9@127.0.0.1\u00a0:1/0",  # a non-breaking space pasted after the host
        "redis://default:pw-attack-7f3e9\u201d@127.0.0.1:1/0",  # a curly quote pasted into the password
    ],
    ids=["nbsp-after-host", "curly-quote-in-password"],
)
def test_a_redis_url_that_is_not_ascii_is_a_configuration_error(url, monkeypatch, capsys, tmp_path):
    """context.check_ascii covers header and URL secrets, but not the Redis URLs (REDIS_URL,
    SOURCE_REDIS_URL, TARGET_REDIS_URL): a pasted non-ASCII character there is reported as an outage
    (exit 4, "cannot reach the source Redis"), which a retry will never fix."""
    monkeypatch.setenv("SOURCE_REDIS_URL", url)
    monkeypatch.setenv("CI_TOOLS_TIMEOUT", "2")
    code = main(["memory", "snapshot", "production", "--out", str(tmp_path / "memory")])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "pw-attack-7f3e9" not in err
    assert err.count("\n") == 1, err
    assert code == 3, err
    assert "SOURCE_REDIS_URL" in err and "not ASCII" in err, err


def test_on_private_free_setup_says_withheld_while_an_older_setups_production_secrets_stay(
    world,
    owner,  # noqa: F811
    monkeypatch,
    capsys,
):
    """Private repository on GitHub Free: the older setup stored every PRODUCTION_<NAME> as a
    repository secret (no flag needed then), which every pushed branch's workflow reads. After the
    upgrade, github setup --apply prints "production's secrets are withheld" and changes nothing:
    they stay readable by feature/*, and nothing but a ⚠ in github check mentions them."""
    clone, names, _ = owner
    assert init(names) == 0
    production = production_values(read_dotenv(clone / ".env"))
    with FakeGitHub(private=True, plan="free") as github:
        use(monkeypatch, {"GITHUB_API_URL": github.url, "GITHUB_TOKEN": github.token})
        # what the older setup did by default on this plan (the flag now names that choice)
        assert main(["github", "setup", "--apply", "--production-secrets-in-repository"]) == 0
        assert set(production.values()) & set(github.repo_secret_values.values())
        capsys.readouterr()
        assert main(["github", "setup", "--apply"]) == 0  # the upgrade: production's now withheld, it says
        said = " ".join(capsys.readouterr().out.split())
        readable = sorted(n for n, v in github.repo_secret_values.items() if v in production.values())
        assert not ("withheld" in said and readable), f"setup says withheld; every branch still reads {readable}"
        assert readable == []


def test_after_an_upgrade_to_pro_productions_repository_secrets_stay_and_check_says_all_is_well(
    world,
    owner,  # noqa: F811
    monkeypatch,
    capsys,
):
    """Private Free, where the owner accepted --production-secrets-in-repository (or an older setup
    stored them by default), then upgrades to Pro to close the gap, as the README advises. setup
    now creates environments and fills them, but leaves every PRODUCTION_<NAME> repository secret
    in place, which any workflow of any pushed branch reads as secrets.PRODUCTION_<NAME>; github check
    on an environments plan looks at no repository secret but BACKMERGE_TOKEN: no item names them."""
    clone, names, _ = owner
    assert init(names) == 0
    production = production_values(read_dotenv(clone / ".env"))
    with FakeGitHub(private=True, plan="free") as github:
        github.users["ada"] = 5002
        use(monkeypatch, {"GITHUB_API_URL": github.url, "GITHUB_TOKEN": github.token})
        assert main(["github", "setup", "--apply", "--production-secrets-in-repository"]) == 0
        github.plan = "pro"  # the upgrade
        assert main(["github", "setup", "--apply"]) == 0
        capsys.readouterr()
        main(["github", "check", "--json"])
        items = json.loads(capsys.readouterr().out)["items"]
        named = [i for i in items if "repository secret" in (i["name"] + i["detail"]) and not i["ok"]]
        readable = sorted(n for n, v in github.repo_secret_values.items() if v in production.values())
        failing = [(i["name"], i["detail"]) for i in items if i["ok"] is False]
        assert not readable or named, f"check names none of {readable} (it fails only: {failing})"
        assert readable == []


def test_check_asks_for_a_staging_render_key_when_staging_deploys_by_its_hook_alone(
    world,
    owner,  # noqa: F811
    monkeypatch,
    capsys,
):
    """The default init gives staging its deploy hook alone (no RENDER_API_KEY, by design). github
    check then fails "environment staging: every secret its workflows use — missing
    ['RENDER_API_KEY']" (and production's STAGING_RENDER_API_KEY), with the fix "set
    STAGING_RENDER_API_KEY and run ci-tools github setup --apply". The one Render key the owner has
    is the account-wide one, and setup uploads whatever STAGING_RENDER_API_KEY says (see
    test_setup_uploads_a_staging_value_that_is_a_production_secret): check's fix leads straight there."""
    _, names, _ = owner
    monkeypatch.setenv("STAGING_RENDER_DEPLOY_HOOK_URL", world.render.hook_url(world.services["staging"]))
    assert init(names) == 0
    with FakeGitHub() as github:
        github.users["ada"] = 5002
        use(monkeypatch, {"GITHUB_API_URL": github.url, "GITHUB_TOKEN": github.token})
        assert main(["github", "setup", "--apply"]) == 0
        capsys.readouterr()
        main(["github", "check", "--json"])
        items = json.loads(capsys.readouterr().out)["items"]
        asking = [
            (i["name"], i["detail"], i["fix"]) for i in items if "RENDER_API_KEY" in i["fix"] and i["ok"] is False
        ]
        assert asking == []


def test_init_with_productions_service_named_as_stagings_gives_staging_productions_power(
    world,
    owner,  # noqa: F811
    capsys,
):
    """--staging-service names production's service (a typo: ada-companion for ada-companion-dev).
    init discovers it as staging's, writes pyproject.toml, render.yaml and .env, and only then
    refuses (exit 3, "share render_service"): .env is left holding production's Redis URL, service
    id and webhook secret as STAGING_<NAME>, the values github setup puts into the environment that
    admits feature/* once the config is mended by hand. Nothing is compared before anything is written."""
    clone, names, _ = owner
    code = init({"staging": names["production"], "production": names["production"]})
    kept = read_dotenv(clone / ".env") if (clone / ".env").exists() else {}
    shared = sorted(
        name.removeprefix("STAGING_")
        for name, value in kept.items()
        if name.startswith("STAGING_") and kept.get("PRODUCTION_" + name.removeprefix("STAGING_")) == value
    )
    err = capsys.readouterr().err
    assert shared == [] and code == 3, (code, shared, err)


def test_on_private_free_setup_takes_productions_power_back_from_stagings_repository_secrets(
    world,
    owner,  # noqa: F811
    monkeypatch,
):
    """The older-init case on private Free, where staging's secrets are repository secrets
    STAGING_<NAME> (every pushed branch reads them): production's snapshot key, Redis and account-wide
    key there from the older init go, after init and setup --apply, as they do from staging's environment."""
    clone, names, _ = owner
    assert init(names) == 0
    kept = read_dotenv(clone / ".env")
    production = production_values(kept)
    with FakeGitHub(private=True, plan="free") as github:
        use(monkeypatch, {"GITHUB_API_URL": github.url, "GITHUB_TOKEN": github.token})
        assert main(["github", "setup", "--apply"]) == 0
        older = {
            "STAGING_MEMORY_SNAPSHOT_KEY": kept["PRODUCTION_MEMORY_SNAPSHOT_KEY"],
            "STAGING_SOURCE_REDIS_URL": kept["PRODUCTION_REDIS_URL"],
            "STAGING_RENDER_API_KEY": world.render.api_key,
        }
        github.repo_secrets |= set(older)
        github.repo_secret_values |= older
        github.variables.pop("CI_TOOLS_SECRETS_STAGING", None)  # the older setup kept no digest
        assert main(["github", "setup", "--apply"]) == 0
        readable = sorted(n for n, v in github.repo_secret_values.items() if v in production.values())
        assert readable == []
        assert "STAGING_SOURCE_REDIS_URL" not in github.repo_secrets
        assert github.repo_secret_values["STAGING_MEMORY_SNAPSHOT_KEY"] == kept["STAGING_MEMORY_SNAPSHOT_KEY"]
        writes = github.writes
        assert main(["github", "setup", "--apply"]) == 0 and github.writes == writes  # then nothing to change
