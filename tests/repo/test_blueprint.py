"""render.yaml and [tool.ci_tools] describe the same system."""

from __future__ import annotations

import copy
import subprocess

import pytest
import yaml

from ci_tools.__main__ import main
from ci_tools.errors import ConfigError
from ci_tools.repo.blueprint import (
    blueprint_problems,
    check_blueprint,
    load_blueprint,
)
from ci_tools.settings import load_config
from sandbox.tools import find_tool
from tests.support import ROOT


@pytest.fixture
def blueprint():
    return load_blueprint(ROOT / "render.yaml")


def service(data, name):
    return next(s for s in data["services"] if s["name"] == name)


def test_render_yaml_agrees_with_config(blueprint):
    config = load_config()
    assert blueprint_problems(config, blueprint) == []
    names = {s["name"]: s for s in blueprint["services"]}
    for env in config.environments.values():
        assert names[env.render_service]["branch"] == env.branch
    assert check_blueprint(config) == ROOT / "render.yaml"


def mutate(blueprint, service_name, **changes):
    data = copy.deepcopy(blueprint)
    target = service(data, service_name)
    for key, value in changes.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return data


@pytest.mark.parametrize(
    ("name", "changes", "problem"),
    [
        ("mindmate-prod", {"branch": "develop"}, "branch is 'develop', expected 'main'"),
        ("mindmate-dev", {"autoDeployTrigger": "commit"}, "autoDeployTrigger"),
        ("mindmate-dev", {"autoDeploy": True}, "legacy autoDeploy"),
        ("mindmate-dev", {"healthCheckPath": None}, "healthCheckPath"),
        ("mindmate-prod-redis", {"maxmemoryPolicy": "allkeys-lru"}, "noeviction"),
        ("mindmate-prod-redis", {"ipAllowList": [{"source": "0.0.0.0/0"}]}, "ipAllowList"),
        ("mindmate-dev", {"type": "static"}, "unknown type"),
        ("mindmate-prod", {"name": "mindmate-production"}, "no service named 'mindmate-prod'"),
    ],
)
def test_each_disagreement_is_found(blueprint, name, changes, problem):
    problems = blueprint_problems(load_config(), mutate(blueprint, name, **changes))
    assert any(problem in p for p in problems), problems


def test_env_var_rules(blueprint):
    data = copy.deepcopy(blueprint)
    prod_vars = service(data, "mindmate-prod")["envVars"]
    for var in prod_vars:
        if var["key"] == "TELEGRAM_BOT_TOKEN":
            var.pop("sync")
            var["value"] = "123:committed-token"
        if var["key"] == "KEY_PREFIX":
            var["value"] = "dev:"
        if var["key"] == "REDIS_URL":
            var["fromService"]["name"] = "mindmate-dev-redis"
    problems = blueprint_problems(load_config(), data)
    assert any("TELEGRAM_BOT_TOKEN must be declared with sync: false" in p for p in problems)
    assert any("KEY_PREFIX must be 'prod:'" in p for p in problems)
    assert any("share one Key Value instance" in p for p in problems)


def test_config_check_command(tmp_path, blueprint, capsys):
    assert main(["config", "check"]) == 0
    bad = tmp_path / "render.yaml"
    bad.write_text(yaml.safe_dump(mutate(blueprint, "mindmate-prod", branch="develop")))
    assert main(["config", "check", "--blueprint", str(bad)]) == 3
    err = capsys.readouterr().err
    assert "branch is 'develop', expected 'main'" in err
    assert "disagrees with pyproject.toml in 1 place(s)" in err
    bad.write_text("services: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_blueprint(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_blueprint(tmp_path / "nope.yaml")


def both(blueprint, **changes):
    data = blueprint
    for name in ("mindmate-dev", "mindmate-prod"):
        data = mutate(data, name, **changes)
    return data


def test_any_build_and_start_the_owner_chooses_is_theirs(blueprint):
    """render.yaml's commands are the owner's: pip, poetry or uv, any module, any start."""
    owners = both(blueprint, buildCommand="pip install -r requirements.txt", startCommand="python -m bot")
    assert blueprint_problems(load_config(), owners) == []
    owners = both(blueprint, buildCommand="poetry install --only main", startCommand="gunicorn app:app")
    assert blueprint_problems(load_config(), owners) == []


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"buildCommand": "pip install ."}, "differ in buildCommand ('uv sync --locked --no-default-groups' and"),
        ({"startCommand": "python -m mindmate"}, "differ in startCommand"),
        ({"runtime": "node"}, "differ in runtime"),
        ({"healthCheckPath": "/health"}, "differ in healthCheckPath"),
        ({"preDeployCommand": "python -m bot.migrate"}, "differ in preDeployCommand"),  # runs before each start
        ({"startCommand": None}, "startCommand is missing"),
    ],
)
def test_staging_builds_and_starts_what_production_runs(blueprint, changes, problem):
    problems = blueprint_problems(load_config(), mutate(blueprint, "mindmate-prod", **changes))
    assert any(problem in p for p in problems), problems


def test_staging_builds_with_the_versions_production_does(blueprint):
    data = copy.deepcopy(blueprint)
    for var in service(data, "mindmate-prod")["envVars"]:
        if var["key"] == "PYTHON_VERSION":
            var["value"] = "3.12.4"
    problems = blueprint_problems(load_config(), data)
    assert any("build with different versions" in p and "3.12.4" in p for p in problems), problems


def test_a_bot_without_a_health_endpoint_leaves_renders_check_its_own(tmp_path, blueprint):
    """health_path "" (no health JSON): Render may check any path, or none; with a health_path set,
    Render must check that one (a deploy is live only when the pipeline's endpoint answers)."""
    text = (ROOT / "pyproject.toml").read_text()
    without = tmp_path / "pyproject.toml"
    without.write_text(
        text.replace("bake_minutes = 10\n", 'bake_minutes = 10\nhealth_path = ""\n').replace(
            'key_prefix = ""  #', 'health_path = ""\nkey_prefix = ""  #'
        )
    )
    config = load_config(without)
    assert {env.health_path for env in config.environments.values()} == {""}
    assert blueprint_problems(config, both(blueprint, healthCheckPath=None)) == []
    assert blueprint_problems(config, both(blueprint, healthCheckPath="/")) == []
    problems = blueprint_problems(load_config(), both(blueprint, healthCheckPath="/"))
    assert any(p.startswith("service mindmate-prod: healthCheckPath is '/', expected '/healthz'") for p in problems)


def test_staging_declares_its_tester_allowlist(blueprint):
    data = copy.deepcopy(blueprint)
    for name in ("mindmate-prod", "mindmate-dev"):
        target = service(data, name)
        target["envVars"] = [v for v in target["envVars"] if v["key"] != "TESTER_IDS"]
    problems = blueprint_problems(load_config(), data)
    assert any("mindmate-dev: TESTER_IDS must be declared with sync: false" in p for p in problems)
    assert not any("mindmate-prod: TESTER_IDS" in p for p in problems)


def test_the_bots_locked_install_carries_none_of_the_pipelines_libraries(blueprint):
    """What Render's build command installs, read from the lock: the bot's dependencies only.

    The export takes the build command's own flags, so the two cannot drift apart.
    """
    build = {service(blueprint, name)["buildCommand"] for name in ("mindmate-dev", "mindmate-prod")}
    assert len(build) == 1 and build.pop().startswith("uv sync ")
    flags = service(blueprint, "mindmate-prod")["buildCommand"].split()[2:]  # after "uv sync"
    assert "--no-default-groups" in flags
    exported = subprocess.run(
        [find_tool("uv"), "export", *flags, "--no-hashes", "--no-emit-project", "--offline"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = {line.split("==")[0].strip() for line in exported.splitlines() if "==" in line}
    assert {"python-telegram-bot", "redis", "starlette", "uvicorn"} <= names
    assert not names & {
        "rich",
        "cryptography",
        "tenacity",
        "orjson",
        "pyyaml",
        "jsonschema",
        "pytest",
        "openapi-core",
    }


def test_staging_keeps_the_legacy_unprefixed_keys_until_the_daily_user_has_moved(blueprint):
    """The daily user talks to mindmate-dev, their memory under unprefixed keys: a "dev:" there
    before the move would hide it from the bot they use every day."""
    assert load_config().env("staging").key_prefix == ""
    data = copy.deepcopy(blueprint)
    for var in service(data, "mindmate-dev")["envVars"]:
        if var["key"] == "KEY_PREFIX":
            assert var["value"] == "none"
            var["value"] = "dev:"
    problems = blueprint_problems(load_config(), data)
    assert "service mindmate-dev: KEY_PREFIX must be 'none'" in problems
