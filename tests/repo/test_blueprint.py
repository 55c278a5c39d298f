"""render.yaml and [tool.ci_tools] describe the same system."""

from __future__ import annotations

import copy
import subprocess

import pytest
import yaml

from ci_tools.__main__ import main
from ci_tools.errors import ConfigError
from ci_tools.repo.blueprint import (
    BUILD_COMMAND,
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


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"buildCommand": "pip install ."}, "buildCommand is 'pip install .'"),
        ({"buildCommand": "uv sync"}, f"expected '{BUILD_COMMAND}'"),
        ({"buildCommand": "uv sync --locked --no-dev"}, f"expected '{BUILD_COMMAND}'"),
        ({"startCommand": "python -m mindmate"}, "startCommand"),
    ],
)
def test_the_build_installs_the_bot_from_the_lock(blueprint, changes, problem):
    problems = blueprint_problems(load_config(), mutate(blueprint, "mindmate-prod", **changes))
    assert any(problem in p for p in problems), problems


def test_uv_is_pinned_and_staging_declares_its_tester_allowlist(blueprint):
    data = copy.deepcopy(blueprint)
    for name in ("mindmate-prod", "mindmate-dev"):
        target = service(data, name)
        target["envVars"] = [v for v in target["envVars"] if v["key"] not in ("UV_VERSION", "TESTER_IDS")]
    problems = blueprint_problems(load_config(), data)
    assert any("mindmate-prod: UV_VERSION must pin" in p for p in problems)
    assert any("mindmate-dev: TESTER_IDS must be declared with sync: false" in p for p in problems)


def test_the_bots_locked_install_carries_none_of_the_pipelines_libraries():
    """What Render's build command installs, read from the lock: the bot's dependencies only.

    The export takes the build command's own flags, so the two cannot drift apart.
    """
    flags = BUILD_COMMAND.split()[2:]  # after "uv sync"
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
