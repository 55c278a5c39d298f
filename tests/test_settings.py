from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path

import pytest

from ci_tools.context import build
from ci_tools.errors import ConfigError
from ci_tools.settings import REFERENCE, load_config, reference, setting_of
from tests.support import ROOT

GOOD_ENV = """
[tool.ci_tools.environments.{name}]
branch = "{branch}"
render_service = "svc-{name}"
bot_username = "{name}_mindmate_bot"
base_url = "https://{name}.example.com"
key_prefix = "{prefix}"
memory_patterns = ["user:{{user_id}}:history"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(text)
    return path


def two_envs(**overrides: str) -> str:
    staging = {"name": "staging", "branch": "develop", "prefix": "dev:"}
    production = {"name": "production", "branch": "main", "prefix": "prod:"}
    text = GOOD_ENV.format(**staging) + GOOD_ENV.format(**production)
    for old, new in overrides.items():
        text = text.replace(old, new)
    return text


def test_project_config_loads():
    config = load_config()
    assert config.path == ROOT / "pyproject.toml"
    prod = config.env("production")
    assert (prod.branch, prod.render_service, prod.key_prefix) == ("main", "mindmate-prod", "prod:")
    assert prod.health_url == "https://mindmate-prod.onrender.com/healthz"
    assert prod.owns_webhook("https://mindmate-prod.onrender.com/telegram")
    assert prod.owns_webhook("https://mindmate-prod.onrender.com/123:token-as-path")
    assert not prod.owns_webhook("https://mindmate-prod.onrender.com.example/telegram")
    assert config.probe.turns == ("/start", "/remember probe-{nonce}", "/recall")  # mindmate's own probe
    assert config.probe.expect == "probe-{nonce}"
    assert prod.memory_keys(7) == [
        "prod:user:7:history",
        "prod:user:7:profile",
        "prod:memory:7",
        "prod:conversation:7",
    ]
    assert config.flow["main"] == ("develop", "hotfix/*")
    assert config.env_for_branch("develop").name == "staging"
    assert config.env_for_branch("feature/x") is None


def test_unknown_environment_lists_known_ones():
    with pytest.raises(ConfigError) as error:
        load_config().env("prod")
    assert "unknown environment 'prod'" in error.value.one_line()
    assert "production, staging" in error.value.one_line()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({'key_prefix = "prod:"': 'key_prefix = "dev:"'}, "share key_prefix 'dev:'"),
        ({'branch = "main"': 'branch = "develop"'}, "share branch"),
        ({'key_prefix = "prod:"': 'key_prefix = "prod"'}, "ending with ':'"),
        ({'key_prefix = "prod:"': 'key_prefix = "dev:x:"'}, "is a prefix of"),
        ({"production_mindmate_bot": "@prod"}, "not a Telegram bot username"),
        ({"https://production.example.com": "mindmate.example.com/x"}, "base_url"),
        ({'["user:{user_id}:history"]': '["user:*"]'}, "must contain {user_id} exactly once"),
        ({'branch = "main"\n': ""}, "lacks branch"),
        ({'branch = "main"': 'branch = "main"\ncolour = "blue"'}, "unknown keys: colour"),
    ],
)
def test_invalid_config_is_one_clear_error(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, two_envs(**overrides)))


def test_environments_may_share_no_prefix_each_in_its_own_key_value(tmp_path):
    """An owner's bot that never prefixed its keys: both environments read them as written, each
    from its own Key Value (config check holds render.yaml to the same key_value)."""
    config = load_config(
        write(
            tmp_path,
            two_envs(**{'key_prefix = "dev:"': 'key_prefix = ""'}).replace('key_prefix = "prod:"', 'key_prefix = ""'),
        )
    )
    assert [env.key_prefix for env in config.environments.values()] == ["", ""]
    shared = two_envs().replace('key_prefix = "dev:"', 'key_prefix = ""\nkey_value = "one-redis"')
    shared = shared.replace('key_prefix = "prod:"', 'key_prefix = ""\nkey_value = "one-redis"')
    with pytest.raises(ConfigError, match="share key_value 'one-redis'"):
        load_config(write(tmp_path, shared))


def test_the_replay_module_is_gone_with_a_fix(tmp_path):
    """Each commit's bot starts as its own render.yaml says: a leftover ``module`` is named, not ignored."""
    with pytest.raises(ConfigError, match="module is no longer read") as error:
        load_config(write(tmp_path, two_envs() + '[tool.ci_tools.replay]\nmodule = "mindmate"\n'))
    assert "remove the module line" in error.value.one_line()


def test_missing_section_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match=r"no \[tool.ci_tools\] section"):
        load_config(write(tmp_path, "[project]\nname='x'\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(write(tmp_path, "[tool.ci_tools\n"))
    with pytest.raises(ConfigError, match="must map each base branch"):
        load_config(write(tmp_path, two_envs() + "[tool.ci_tools.flow]\nmain = 'develop'\n"))


def test_config_override_and_search(tmp_path, monkeypatch):
    path = write(tmp_path, two_envs())
    assert build({"CI_TOOLS_CONFIG": str(path)}).config.path == path
    with pytest.raises(ConfigError, match="not a file"):
        _ = build({"CI_TOOLS_CONFIG": str(tmp_path / "missing.toml")}).config
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    assert load_config().path == path


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("memory:{user_id}:{kind}", "has a placeholder other than {user_id}: {kind}"),
        ("memory:{user_id}:{user_id}", "must contain {user_id} exactly once (found 2)"),
        ("memory:{user}", "has a placeholder other than {user_id}: {user}"),
        ("memory:{user_id", "has unbalanced braces"),
        ("memory:{user_id!r}", "must use {user_id} plainly, without a format spec or conversion"),
    ],
)
def test_a_malformed_memory_pattern_is_one_line_from_config_check_and_every_memory_command(
    tmp_path, monkeypatch, capsys, pattern, problem
):
    from ci_tools.__main__ import main

    text = two_envs(**{'"user:{user_id}:history"': '"' + pattern.replace("{", "{{").replace("}", "}}") + '"'})
    path = write(tmp_path, text.replace("{{", "{").replace("}}", "}"))
    monkeypatch.setenv("CI_TOOLS_CONFIG", str(path))
    monkeypatch.setenv("SOURCE_REDIS_URL", "redis://127.0.0.1:1/0")
    for argv in (["config", "check"], ["memory", "export", "--user-id", "7", "--from", "staging"]):
        assert main(argv) == 3
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"memory_patterns: pattern {pattern!r} {problem}" in err[0], err


def test_the_probe_table_defaults_to_one_turn_any_reply(tmp_path):
    probe = load_config(write(tmp_path, two_envs())).probe
    assert (probe.turns, probe.expect) == (("/start",), "")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('turns = "/start"', r"turns must be a non-empty list of messages"),
        ("turns = []", r"turns must be a non-empty list of messages"),
        ('turns = ["/start", " "]', r"turns must be a non-empty list of messages"),
        ("expect = 1", r"expect must be a string"),
        ('expect = "probe-{nonce}"', r"expect names \{nonce\} but no turn says it"),
        ('say = ["/start"]', r"takes only turns and expect"),
    ],
)
def test_a_bad_probe_table_is_one_line(tmp_path, monkeypatch, capsys, table, message):
    from ci_tools.__main__ import main

    path = write(tmp_path, two_envs() + f"\n[tool.ci_tools.probe]\n{table}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path)
    monkeypatch.setenv("CI_TOOLS_CONFIG", str(path))
    assert main(["config", "show"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[tool.ci_tools.probe]" in err[0], err


def settings_tables() -> str:
    """docs/CONFIGURATION.md's tables of settings, as ci_tools/settings.py states them:
    `uv run python -m tests.test_settings` prints them."""
    lines: list[str] = []
    for table, rows in itertools.groupby(reference(), key=lambda row: row[0]):
        lines += ["", f"`{table}`", "", "| key | takes | default | what it is |", "|---|---|---|---|"]
        lines += [f"| `{key}` | {takes} | {default} | {what} |" for _, key, takes, default, what in rows]
    return "\n".join(lines[1:])


def test_configuration_md_lists_every_setting_as_the_code_states_it():
    text = (ROOT / "docs" / "CONFIGURATION.md").read_text()
    assert settings_tables() in text, "docs/CONFIGURATION.md's settings are stale: print them anew (see this module)"


def test_each_setting_states_its_check_and_what_it_is_for():
    """A field of a settings table without ``spec`` metadata would be read by no one and documented nowhere."""
    apart = {"path", "environments", "name", "memory_backup", "watch", "replay", "move", "ci", "probe"}
    for _, cls in REFERENCE:
        for f in dataclasses.fields(cls):
            assert f.name in apart or setting_of(f), f"{cls.__name__}.{f.name} has no spec(…)"


@pytest.mark.parametrize(
    ("table", "line", "said"),
    [
        ("environments.production", 'bot_usernme = "x_bot"', "unknown keys: bot_usernme (did you mean bot_username?)"),
        ("move", "window_day = 3", "[tool.ci_tools.move] takes only window_days, old_bot_prefix and send_back_text"),
        ("move", "window_day = 3", "(did you mean window_days?)"),
        ("", "rollback_window = 7", "[tool.ci_tools] takes only flow, default_branch, rollback_window_days,"),
        ("", "rollback_window = 7", "unknown keys: rollback_window (did you mean rollback_window_days?)"),
        ("watch", "colour = 1", "[tool.ci_tools.watch] takes only interval_minutes; unknown keys: colour"),
    ],
)
def test_a_misspelt_key_is_one_line_naming_the_key_it_resembles(tmp_path, table, line, said):
    text = two_envs()
    header = f"[tool.ci_tools.{table}]" if table else "[tool.ci_tools]"
    text = text.replace(header, f"{header}\n{line}") if header in text else f"{header}\n{line}\n{text}"
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text))
    assert said in error.value.one_line() and "\n" not in error.value.one_line()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("bake_minutes = true", "bake_minutes must be a number from 0 to 120"),
        ("quiet_seconds = 3601", "quiet_seconds must be a number from 0 to 3600"),
        ('probe_user_id = "1"', "probe_user_id must be a positive Telegram user id no real person has"),
        ("probe_user_id = 0", "probe_user_id must be a positive Telegram user id no real person has"),
        ("cutover_target = 1", "cutover_target must be true or false"),
        ('reviewers = "owner"', "reviewers must be a list of strings"),
        ('health_path = "healthz"', "health_path must start with '/'"),
    ],
)
def test_an_environment_value_of_the_wrong_kind_is_one_line(tmp_path, line, message):
    """Booleans are not numbers here (TOML's true is no 1), nor numbers booleans."""
    text = two_envs(**{'branch = "main"': f'branch = "main"\n{line}'})
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(write(tmp_path, text))


def test_defaults_follow_each_environments_role(tmp_path):
    config = load_config(write(tmp_path, two_envs()))
    staging, production = config.env("staging"), config.env("production")
    assert (production.bake_minutes, production.quiet_seconds, production.cutover_target) == (10, 120, True)
    assert (staging.bake_minutes, staging.quiet_seconds, staging.testers_only) == (0, 0, True)
    assert (staging.key_value, staging.deploy_branches) == ("svc-staging-redis", ("develop",))
    assert config.memory_backup.environment == "production" and config.before_release_days == 14


if __name__ == "__main__":
    print(settings_tables())
