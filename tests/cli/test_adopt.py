"""``ci-tools adopt``, run as the owner runs it, on a bot that is not ours (tests/fixtures/owner_bot).

Each test copies the fixture into a temporary git repository and runs ``ci-tools`` as a process
in it; ``ci-tools config check`` then judges what adopt wrote, as it would in the owner's clone.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ci_tools.settings import load_config
from tests.support import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "owner_bot"
BOTS_OWN = ("README.md", "bot/__init__.py", "bot/__main__.py", "requirements.txt")


def ci_tools(*args: str, cwd: Path, stdin: int | None = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CI_TOOLS_", "GITHUB_", "RUNNER_"))}
    return subprocess.run(
        [sys.executable, "-m", "ci_tools", *args],
        cwd=cwd,
        env=environ,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file but git's own: its bytes and its mode."""
    return {
        path.relative_to(root).as_posix(): (path.read_bytes(), path.stat().st_mode)
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(root).parts[:1]
    }


@pytest.fixture
def bot(tmp_path: Path) -> Path:
    target = tmp_path / "ava"
    shutil.copytree(FIXTURE, target)
    subprocess.run(["git", "init", "-q", str(target)], check=True)
    return target


def adopted(bot: Path, *more: str) -> str:
    done = ci_tools("adopt", str(bot), "--yes", *more, cwd=bot.parent)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def test_adopt_yes_leaves_config_check_green_and_names_where_each_value_came_from(bot):
    said = adopted(bot)
    for line in (
        "detected: live web service `ava-bot` from render.yaml (its only web service): production, name kept",
        "detected: start command `python -m bot` from render.yaml",
        "detected: build command `pip install -r requirements.txt` from render.yaml",
        "detected: dependencies by pip (requirements.txt)",
        "detected: module `bot` (the start command runs it)",
        "detected: memory key `memory:{user_id}` at bot/__main__.py:29",
        "detected: memory key `user:{user_id}:history` at bot/__main__.py:33",
        'detected: no health endpoint (no kit.run_webhook, no /healthz route): health_path ""',
        "default: staging service `ava-bot-dev` (added, branch develop)",
        "default: production bot `ava_bot` (not in the code",
        "default: staging bot `ava_dev_bot` (not in the code",
    ):
        assert f"  {line}" in said, said
    check = ci_tools("config", "check", cwd=bot)
    assert check.returncode == 0, check.stderr
    assert "✓ render.yaml agrees with [tool.ci_tools] in pyproject.toml" in check.stdout

    config = load_config(bot / "pyproject.toml")
    production, staging = config.env("production"), config.env("staging")
    assert (production.render_service, production.branch, production.key_value) == ("ava-bot", "main", "ava-redis")
    assert (staging.render_service, staging.branch, staging.key_value) == ("ava-bot-dev", "develop", "ava-redis-dev")
    for env in (production, staging):
        assert env.memory_patterns == ("memory:{user_id}", "user:{user_id}:history")
        assert (env.health_path, env.key_prefix) == ("", "")
    services = {s["name"]: s for s in yaml.safe_load((bot / "render.yaml").read_text())["services"]}
    assert set(services) == {"ava-bot", "ava-bot-dev", "ava-redis", "ava-redis-dev"}
    for name in ("ava-bot", "ava-bot-dev"):
        assert services[name]["buildCommand"] == "pip install -r requirements.txt"
        assert services[name]["startCommand"] == "python -m bot"
        assert services[name]["autoDeployTrigger"] == "off" and "healthCheckPath" not in services[name]


def test_a_second_adopt_changes_nothing_and_says_so(bot):
    first = adopted(bot)
    assert "written: render.yaml, pyproject.toml, CONTRIBUTING.md, .github/workflows/" in first
    before = tree(bot)
    second = adopted(bot)
    assert tree(bot) == before
    assert "nothing to change: the repository already has the pipeline as adopt writes it" in second
    assert "written:" not in second


def test_the_bots_own_files_and_its_render_yaml_comments_survive(bot):
    own = {name: (bot / name).read_bytes() for name in BOTS_OWN}
    theirs = (bot / "render.yaml").read_text().splitlines()
    adopted(bot)
    assert {name: (bot / name).read_bytes() for name in BOTS_OWN} == own
    merged = iter((bot / "render.yaml").read_text().splitlines())
    missing = [line for line in theirs if not any(line == new for new in merged)]
    assert missing == [], "render.yaml lost the owner's lines (or their order)"
    assert (bot / "render.yaml").read_text().startswith("# Ava on Render: one web service, one Key Value.")
    workflows = sorted(p.name for p in (bot / ".github" / "workflows").glob("*.yml"))
    assert workflows == sorted(p.name for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    assert (bot / ".github" / "workflows" / "ci.yml").read_text().startswith("# managed by ci-tools adopt")
    contributing = (bot / "CONTRIBUTING.md").read_text()
    assert "(ava-bot-dev)" in contributing and "(ava-bot)" in contributing and "mindmate" not in contributing


def test_values_the_owner_set_since_are_kept(bot):
    """init writes the real usernames and addresses; a later adopt keeps them."""
    adopted(bot)
    config = bot / "pyproject.toml"
    config.write_text(config.read_text().replace('bot_username = "ava_bot"', 'bot_username = "ava_companion_bot"'))
    before = tree(bot)
    said = adopted(bot)
    assert tree(bot) == before
    assert "kept: production bot `ava_companion_bot` (pyproject.toml)" in said


def test_after_the_kit_lines_a_second_adopt_turns_the_health_check_on(bot):
    adopted(bot)
    main = bot / "bot" / "__main__.py"
    main.write_text(
        main.read_text() + "\n\ndef serve(kit, application):\n    kit.run_webhook(application, url_path=TOKEN)\n"
    )
    said = adopted(bot)
    assert "detected: health_path `/healthz` from bot/__main__.py:" in said
    assert "changed in your render.yaml: ava-bot: healthCheckPath '/healthz' added" in said
    services = {s["name"]: s for s in yaml.safe_load((bot / "render.yaml").read_text())["services"]}
    assert services["ava-bot"]["healthCheckPath"] == services["ava-bot-dev"]["healthCheckPath"] == "/healthz"
    assert {env.health_path for env in load_config(bot / "pyproject.toml").environments.values()} == {"/healthz"}
    assert ci_tools("config", "check", cwd=bot).returncode == 0


def test_a_bot_without_render_yaml_gets_one_from_what_its_tree_shows(bot):
    (bot / "render.yaml").unlink()
    said = adopted(bot)
    assert "default: production service `ava` (no render.yaml" in said
    assert "detected: start command `python -m bot` from bot/__main__.py" in said
    assert "detected: build command `pip install -r requirements.txt` from requirements.txt" in said
    assert ci_tools("config", "check", cwd=bot).returncode == 0
    names = [s["name"] for s in yaml.safe_load((bot / "render.yaml").read_text())["services"]]
    assert names == ["ava", "ava-redis", "ava-dev", "ava-redis-dev"]


def test_without_a_terminal_or_yes_adopt_names_the_flag_for_what_it_would_ask(bot):
    before = tree(bot)
    done = ci_tools("adopt", str(bot), cwd=bot.parent)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "ci-tools: bad input: adopt has a question and no terminal to ask it in: the production bot's username "
        "(without @) — give --production-bot, or --yes to take the defaults (each named in the report)"
    )
    assert tree(bot) == before
    given = ("--production-bot", "ava_companion_bot", "--staging-bot", "ava_tryout_bot")
    urls = ("--production-url", "https://ava.example.com", "--staging-url", "https://ava-dev.example.com")
    done = ci_tools("adopt", str(bot), *given, *urls, cwd=bot.parent)
    assert done.returncode == 0, done.stderr
    assert "given: production bot `ava_companion_bot` (--production-bot)" in done.stdout
    assert load_config(bot / "pyproject.toml").env("staging").base_url == "https://ava-dev.example.com"


def _two_web_services(bot: Path) -> None:
    text = (bot / "render.yaml").read_text()
    second = "  - type: web\n    name: ava-admin\n    runtime: python\n    startCommand: python -m admin\n\n"
    (bot / "render.yaml").write_text(text.replace("  - type: keyvalue", second + "  - type: keyvalue"))


def _token_committed(bot: Path) -> None:
    text = (bot / "render.yaml").read_text()
    token = "      - key: TELEGRAM_BOT_TOKEN\n        sync: false\n"
    (bot / "render.yaml").write_text(
        text.replace(token, "      - key: TELEGRAM_BOT_TOKEN\n        value: 123:AAsecret\n")
    )


def _owners_own_workflow(bot: Path) -> None:
    (bot / ".github" / "workflows").mkdir(parents=True)
    (bot / ".github" / "workflows" / "ci.yml").write_text("name: mine\n")


@pytest.mark.parametrize(
    ("spoil", "said"),
    [
        (lambda bot: shutil.rmtree(bot), "does not exist — give the path of your bot's repository"),
        (lambda bot: shutil.rmtree(bot / ".git"), "is not a git repository — run `git init` there first"),
        (lambda bot: (bot / "render.yaml").write_text("services: [\n"), "render.yaml is not valid YAML (line 2)"),
        (lambda bot: (bot / "pyproject.toml").write_text("[tool.ci_tools\n"), "pyproject.toml is not valid TOML"),
        (_two_web_services, "render.yaml has 2 web services (ava-bot, ava-admin): adopt cannot tell which one is"),
        (_token_committed, "render.yaml holds ava-bot's TELEGRAM_BOT_TOKEN value: a secret in git"),
        (_owners_own_workflow, ".github/workflows/ci.yml exists and was not written by ci-tools adopt"),
    ],
    ids=["missing", "not-git", "bad-yaml", "bad-toml", "two-services", "token-in-git", "owners-workflow"],
)
def test_bad_input_is_one_line_with_its_fix_and_nothing_is_written(bot, spoil, said):
    spoil(bot)
    before = tree(bot) if bot.exists() else {}
    done = ci_tools("adopt", str(bot), "--yes", cwd=bot.parent)
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert said in done.stderr
    assert "AAsecret" not in done.stdout + done.stderr
    assert (tree(bot) if bot.exists() else {}) == before


def test_a_start_command_other_than_the_live_services_is_refused(bot):
    """The live service's commands are production's truth: a flag never rewrites them."""
    before = tree(bot)
    done = ci_tools("adopt", str(bot), "--yes", "--start", "python -m other", cwd=bot.parent)
    assert done.returncode == 2
    assert "render.yaml already starts ava-bot as 'python -m bot'; adopt keeps the live service's" in done.stderr
    assert tree(bot) == before


def test_two_web_services_are_fine_once_the_live_one_is_named(bot):
    _two_web_services(bot)
    said = adopted(bot, "--service", "ava-bot")
    assert "detected: live web service `ava-bot` from --service: production, name kept" in said
    assert ci_tools("config", "check", cwd=bot).returncode == 0


def test_adopting_the_pipelines_own_repository_is_refused(bot):
    """Refused, not a no-op: its render.yaml has two live web services of its own and a config that
    is the pipeline's reference, and copying the workflows onto themselves would stamp adopt's
    header into the originals. The fixture, inside it, is refused too: it is not a repository root."""
    done = ci_tools("adopt", str(ROOT), "--yes", cwd=bot)
    assert done.returncode == 2
    assert "is the release pipeline's own repository: it has the pipeline already" in done.stderr
    done = ci_tools("adopt", str(FIXTURE), "--yes", cwd=bot)
    assert done.returncode == 2
    assert f"{FIXTURE} is inside the git repository {ROOT}" in done.stderr
    assert not (FIXTURE / "pyproject.toml").exists()


def test_in_a_terminal_adopt_asks_what_it_cannot_detect_and_enter_takes_the_default(bot):
    """As the owner runs it: a prompt per value the code cannot tell, its default in brackets."""
    answers = {"the production bot's username (without @) [ava_bot]: ": "ava_companion_bot"}
    controller, terminal = pty.openpty()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CI_TOOLS_", "GITHUB_", "RUNNER_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "ci_tools", "adopt", str(bot)],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,  # input() prompts there when it reads a terminal
        cwd=bot.parent,
        env=environ,
    )
    os.close(terminal)
    seen, asked = "", []
    deadline = time.monotonic() + 45
    try:
        while process.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if not ready:
                continue
            try:
                seen += os.read(controller, 4096).decode(errors="replace")
            except OSError:  # the terminal closed: the process is ending
                break
            prompt = seen.rsplit("\n", 1)[-1]
            if prompt.endswith(": ") and "[" in prompt:
                asked.append(prompt.strip())
                os.write(controller, (answers.get(prompt.lstrip("\r"), "") + "\n").encode())
                seen += "\n"
        assert process.wait(timeout=max(1.0, deadline - time.monotonic())) == 0, seen
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
    assert asked == [
        "the production bot's username (without @) [ava_bot]:",
        "the production service's address [https://ava-bot.onrender.com]:",
        "the staging bot's username (without @) [ava_dev_bot]:",
        "the staging service's address [https://ava-bot-dev.onrender.com]:",
    ]
    config = load_config(bot / "pyproject.toml")
    assert (config.env("production").bot_username, config.env("staging").bot_username) == (
        "ava_companion_bot",
        "ava_dev_bot",
    )
    assert "asked: production bot `ava_companion_bot`" in seen
    assert "asked: staging bot `ava_dev_bot`" in seen


def test_the_owners_pyproject_is_kept_and_what_adopt_changes_in_their_services_is_said(bot):
    own = '[project]\nname = "ava"  # the companion\nversion = "1.0"\n\n[tool.ruff]\nline-length = 100\n'
    (bot / "pyproject.toml").write_text(own)
    blueprint = (bot / "render.yaml").read_text()
    blueprint = blueprint.replace(
        "    startCommand: python -m bot\n", "    startCommand: python -m bot\n    autoDeploy: true\n"
    )
    (bot / "render.yaml").write_text(blueprint.replace("    maxmemoryPolicy: noeviction\n", ""))
    said = adopted(bot)
    assert (bot / "pyproject.toml").read_text().startswith(own)
    assert "detected: build command `pip install -r requirements.txt` from render.yaml" in said
    for change in ("ava-bot: the legacy autoDeploy removed", "ava-redis: maxmemoryPolicy 'noeviction' added"):
        assert f"changed in your render.yaml: {change}" in said
    assert ci_tools("config", "check", cwd=bot).returncode == 0
    before = tree(bot)
    adopted(bot)
    assert tree(bot) == before
