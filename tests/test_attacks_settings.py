"""Attacks on ``[tool.ci_tools]`` as one generic reader reads it (ci_tools/settings.py): every key
the pipeline itself writes or documents is one the reader takes, and every bad value an owner can
write in TOML (a bool for a number, ``nan``, ``inf``, a huge number, a blank name, a table where a
string belongs) is one line naming the key, exit 3, no traceback, before anything runs."""

from __future__ import annotations

import copy
import subprocess
import sys
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tomlkit

from ci_tools.errors import ConfigError
from ci_tools.repo.adopted_config import EnvironmentPlan, merge_config
from ci_tools.settings import TABLES, load_config, reference
from tests.support import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# Where each table of reference() lives in a parsed pyproject.toml.
WHERE: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "[tool.ci_tools]": lambda d: d["tool"]["ci_tools"],
    "[tool.ci_tools.environments.<name>]": lambda d: d["tool"]["ci_tools"]["environments"]["production"],
    **{
        f"[tool.ci_tools.{name}]": (lambda n: lambda d: d["tool"]["ci_tools"].setdefault(n, {}))(name)
        for name in TABLES
    },
}
# Values of the wrong kind for every setting: whatever a setting takes, none of these is it.
WRONG_FOR_ALL = {
    "a table": {"a": 1},
    "a list of lists": [["a"]],
    "nan": float("nan"),
    "-inf": float("-inf"),
}


def written(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(tomlkit.dumps(document))  # tomlkit writes nan and inf as TOML does
    return path


def ci_tools(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ci_tools", *argv], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(("table", "key"), [(t, k) for t, k, *_ in reference()])
@pytest.mark.parametrize("label", WRONG_FOR_ALL)
def test_a_value_of_the_wrong_kind_is_one_line_naming_the_key(tmp_path, table, key, label):
    document = copy.deepcopy(PROJECT)
    WHERE[table](document)[key] = WRONG_FOR_ALL[label]
    with pytest.raises(ConfigError) as refused:
        load_config(written(tmp_path, document))
    line = refused.value.one_line()
    assert key in line and "\n" not in line, line


@pytest.mark.parametrize(
    ("table", "key", "value"),
    [
        ("[tool.ci_tools.replay]", "start_timeout", float("inf")),  # the replay would wait for a bot forever
        ("[tool.ci_tools.environments.<name>]", "bake_interval_seconds", float("inf")),
        ("[tool.ci_tools]", "rollback_window_days", 10**9),  # cutover --back: the window's end is no date
        ("[tool.ci_tools.environments.<name>]", "branch", "   "),  # no branch is called that
        ("[tool.ci_tools.environments.<name>]", "render_service", "svc\0x"),
        ("[tool.ci_tools]", "default_branch", " "),
    ],
    ids=["inf-timeout", "inf-interval", "billion-days", "blank-branch", "nul-service", "blank-default-branch"],
)
def test_a_value_toml_allows_but_no_run_could_use_is_refused(tmp_path, table, key, value):
    document = copy.deepcopy(PROJECT)
    WHERE[table](document)[key] = value
    with pytest.raises(ConfigError) as refused:
        load_config(written(tmp_path, document))
    assert key in refused.value.one_line()


def test_the_longest_rollback_window_is_still_a_date_cutover_can_name():
    (bound,) = [takes for t, key, takes, *_ in reference() if key == "rollback_window_days"]
    longest = int(bound.rsplit(" ", 1)[-1])
    assert datetime.now(UTC) + timedelta(days=longest) > datetime.now(UTC)
    with pytest.raises(OverflowError):  # what the bound keeps out of cutover.py
        datetime.now(UTC) + timedelta(days=10**9)


def test_an_item_of_a_list_names_its_key_too(tmp_path):
    document = copy.deepcopy(PROJECT)
    document["tool"]["ci_tools"]["replay"]["ignore"] = ["("]
    with pytest.raises(ConfigError, match=r"\[tool\.ci_tools\.replay\]: ignore: pattern '\(' is not a regular"):
        load_config(written(tmp_path, document))


@pytest.mark.parametrize("text", ["tool = 1\n", "[tool]\nci_tools = 1\n", "[tool]\nci_tools = [1]\n"])
def test_a_tool_key_that_is_no_table_is_a_configuration_error_not_a_bug(tmp_path, text):
    (tmp_path / "pyproject.toml").write_text(text)
    done = ci_tools("config", "check", cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert done.stderr.count("\n") == 1 and "[tool.ci_tools]" in done.stderr and "bug" not in done.stderr


def test_a_bad_value_from_the_command_line_is_one_line_exit_3_no_traceback(tmp_path):
    document = copy.deepcopy(PROJECT)
    document["tool"]["ci_tools"]["replay"]["start_timeout"] = float("inf")
    written(tmp_path, document)
    done = ci_tools("config", "show", cwd=tmp_path)
    assert done.returncode == 3 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [done.stderr.strip()] and "start_timeout" in done.stderr


def test_an_unknown_key_directly_under_the_section_is_refused_with_the_one_it_resembles(tmp_path):
    document = copy.deepcopy(PROJECT)
    document["tool"]["ci_tools"]["rollback_window_day"] = 30  # read by no one before: a silent 14
    with pytest.raises(ConfigError, match=r"unknown keys: rollback_window_day \(did you mean rollback_window_days\?\)"):
        load_config(written(tmp_path, document))


def test_the_retired_replay_module_is_one_line_with_its_fix_and_adopt_says_it_before_writing(tmp_path):
    """An owner upgrading with the old ``module`` line: ci.yml's required check (``ci run``) and
    adopt (the upgrade itself) both say it in one line; so production.yml never meets it."""
    document = copy.deepcopy(PROJECT)
    document["tool"]["ci_tools"]["replay"]["module"] = "mindmate"
    written(tmp_path, document)
    done = ci_tools("ci", "run", cwd=tmp_path)
    assert done.returncode == 3 and "Traceback" not in done.stderr
    assert "module is no longer read" in done.stderr and "remove the module line" in done.stderr


def test_every_key_adopt_writes_is_one_the_reader_takes(tmp_path):
    """merge_config with every value an adopted plan can carry, read back by the one reader."""
    plans = [
        EnvironmentPlan(
            name=name,
            branch=branch,
            deploy_branches=(branch,),
            render_service=f"ava-{name}",
            key_value=f"ava-{name}-kv",
            bot_username=f"ava_{name}_bot",
            base_url=f"https://ava-{name}.onrender.com",
            key_prefix=prefix,
            memory_patterns=("memory:{user_id}",),
            health_path="/healthz",
            reviewers=("ava",) if name == "production" else (),
        )
        for name, branch, prefix in (("staging", "develop", "dev:"), ("production", "main", "prod:"))
    ]
    text = merge_config(None, plans, {"develop": ["feature/*", "main"], "main": ["develop"]}, ["/start"], "develop")
    path = tmp_path / "pyproject.toml"
    path.write_text(text)
    config = load_config(path)
    assert config.env("production").reviewers == ("ava",) and config.probe.turns == ("/start",)


def test_without_an_environment_for_the_real_users_the_line_says_so(tmp_path):
    """Production's table forgotten: the line names the missing role, not an ``environment ''``
    nobody wrote."""
    document = copy.deepcopy(PROJECT)
    del document["tool"]["ci_tools"]["environments"]["production"]
    done = ci_tools("config", "check", cwd=written(tmp_path, document).parent)
    assert done.returncode == 3 and "Traceback" not in done.stderr
    assert "no environment is the real users' (cutover_target)" in done.stderr, done.stderr
    assert "environment ''" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("written_as", "meant"), [("prodution", "production"), ("stagging", "staging")])
def test_a_misspelled_roles_environment_is_named_with_did_you_mean(tmp_path, written_as, meant):
    """[tool.ci_tools.environments.stagging]: before, render.yaml was blamed ("ENV must be
    'stagging'") or the safety net had no environment; the roles' defaults follow the name."""
    document = copy.deepcopy(PROJECT)
    environments = document["tool"]["ci_tools"]["environments"]
    environments[written_as] = environments.pop(meant)
    done = ci_tools("config", "check", cwd=written(tmp_path, document).parent)
    assert done.returncode == 3 and "Traceback" not in done.stderr
    assert f"environments.{written_as}] is no environment the roles know (did you mean {meant}?)" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
