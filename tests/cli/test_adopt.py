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
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from ci_tools.repo.workflow_files import OURS_ONLY, PIN, adopted_set, adopted_workflows
from ci_tools.settings import load_config
from sandbox.world import git
from tests.support import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "owner_bot"
# What the adopted workflows install ci-tools from: a commit of the pipeline (adopt checks its form;
# this checkout has no GitHub origin for the default, which a test of its own gives one).
COMMIT = "0123456789abcdef0123456789abcdef01234567"
PINNED = ("--pin", f"git+https://github.com/mindmate/mindmate-release@{COMMIT}")
# What of this checkout adopt reads: the files it copies and its own code.
PIPELINE = (".github", "ci_tools", "release_kit", "CONTRIBUTING.md", "pyproject.toml", ".gitignore")
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
    done = ci_tools("adopt", str(bot), *PINNED, "--yes", *more, cwd=bot.parent)
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


def test_adopt_copies_the_adopted_set_and_pins_ci_tools_where_it_says(bot):
    """Our own checks stay ours (OURS_ONLY); the setup action installs the pinned pipeline, never
    this checkout (an editable path three folders up, which is the bot's own root there)."""
    said = adopted(bot)
    assert f"  given: ci-tools installed from `{PINNED[1]}` (--pin)" in said
    assert {p.relative_to(bot).as_posix() for p in (bot / ".github").rglob("*") if p.is_file()} == set(
        adopted_set(ROOT)
    )
    assert not [name for name in OURS_ONLY if (bot / ".github" / "workflows" / name).exists()]
    lock = (bot / PIN).read_text()
    [own] = [p for p in tomllib.loads(lock)["packages"] if "vcs" in p]
    assert own["vcs"] == {"type": "git", "url": "https://github.com/mindmate/mindmate-release", "commit-id": COMMIT}
    assert "editable" not in lock and "directory" not in lock

    before = tree(bot)
    other = f"git+https://github.com/mindmate/mindmate-release@{'f' * 40}"
    moved = ci_tools("adopt", str(bot), "--yes", "--pin", other, cwd=bot.parent)
    assert moved.returncode == 0, moved.stderr
    assert "written: .github/actions/ (1 file)" in moved.stdout  # the pin alone moved
    assert {n for n in tree(bot) if tree(bot)[n] != before.get(n)} == {PIN}
    assert f'commit-id = "{"f" * 40}"' in (bot / PIN).read_text()


def pipeline_checkout(root: Path, origin: str | None) -> str:
    """A clone of this checkout as adopt reads it (its files, one commit, ``origin``): adopt pins
    the checkout it runs from. Its HEAD."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *PIPELINE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, root / name)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "the pipeline")
    if origin:
        git(root, "remote", "add", "origin", origin)
    return git(root, "rev-parse", "HEAD")


def test_without_pin_adopt_pins_the_checkouts_github_origin_at_head_or_names_the_flag(bot, tmp_path):
    pipeline = tmp_path / "pipeline"
    head = pipeline_checkout(pipeline, None)
    before = tree(bot)
    refused = ci_tools("adopt", str(bot), "--yes", cwd=pipeline)  # python -m: ci_tools from the clone
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert refused.stderr.startswith(
        "ci-tools: bad input: adopt cannot pin ci-tools: this checkout has no origin remote, "
        "not a GitHub repository to install from — give --pin git+https://github.com/<owner>/<repo>@<40-hex commit>"
    )
    assert tree(bot) == before

    git(pipeline, "remote", "add", "origin", "git@github.com:someone/release-pipeline.git")
    git(pipeline, "update-ref", "refs/remotes/origin/main", head)  # HEAD is pushed
    done = ci_tools("adopt", str(bot), "--yes", cwd=pipeline)
    assert done.returncode == 0, done.stderr
    pin = f"git+https://github.com/someone/release-pipeline@{head}"
    assert f"  default: ci-tools installed from `{pin}` (this checkout's origin at HEAD; another: --pin)" in done.stdout
    assert "⚠" not in done.stdout, done.stdout
    assert f'url = "https://github.com/someone/release-pipeline", commit-id = "{head}"' in (bot / PIN).read_text()
    again = ci_tools("adopt", str(bot), "--yes", "--pin", pin, cwd=pipeline)  # the same pin, given
    assert "nothing to change" in again.stdout, again.stdout + again.stderr


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
    assert workflows == sorted(p.name for p in adopted_workflows(ROOT))
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
    done = ci_tools("adopt", str(bot), *PINNED, cwd=bot.parent)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "ci-tools: bad input: adopt has a question and no answer to it (no terminal, or its input ended): "
        "the production bot's username "
        "(without @) — give --production-bot, or --yes to take the defaults (each named in the report)"
    )
    assert tree(bot) == before
    given = ("--production-bot", "ava_companion_bot", "--staging-bot", "ava_tryout_bot")
    urls = ("--production-url", "https://ava.example.com", "--staging-url", "https://ava-dev.example.com")
    done = ci_tools("adopt", str(bot), *PINNED, *given, *urls, cwd=bot.parent)
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


def _owners_own_ruleset(bot: Path) -> None:
    (bot / ".github" / "rulesets").mkdir(parents=True)
    (bot / ".github" / "rulesets" / "main.json").write_text('{"name": "my own main rules"}\n')


def _a_list_set_as_a_string(bot: Path) -> None:
    (bot / "pyproject.toml").write_text('[tool.ci_tools.environments.production]\ndeploy_branches = "main"\n')


def _an_environment_that_is_no_table(bot: Path) -> None:
    (bot / "pyproject.toml").write_text("[tool.ci_tools.environments]\nstaging = 5\n")


def _contributing_in_latin_1(bot: Path) -> None:
    (bot / "CONTRIBUTING.md").write_bytes("# Contributing\n\nCafé rules\n".encode("latin-1"))


def _render_yaml_edit(old: str, new: str) -> Callable[[Path], None]:
    def edit(bot: Path) -> None:
        text = (bot / "render.yaml").read_text()
        assert old in text
        (bot / "render.yaml").write_text(text.replace(old, new, 1))

    return edit


def _pyproject(text: str) -> Callable[[Path], None]:
    def write(bot: Path) -> None:
        (bot / "pyproject.toml").write_text(text)

    return write


def _folder_where_a_ruleset_goes(bot: Path) -> None:
    (bot / ".github" / "rulesets" / "main.json").mkdir(parents=True)


def _file_where_the_actions_go(bot: Path) -> None:
    (bot / ".github").mkdir()
    (bot / ".github" / "actions").write_text("notes\n")


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
        (_owners_own_ruleset, ".github/rulesets/main.json exists and was not written by ci-tools adopt"),
        (
            _a_list_set_as_a_string,
            "pyproject.toml: [tool.ci_tools.environments.production] deploy_branches must be a list of strings",
        ),
        (_an_environment_that_is_no_table, "pyproject.toml: [tool.ci_tools.environments.staging] must be a table"),
        (_contributing_in_latin_1, "CONTRIBUTING.md is not UTF-8 text (byte 0xe9 at 19)"),
        (
            _render_yaml_edit(
                "    envVars:\n      - key: PYTHON_VERSION", "    envVars: PYTHON_VERSION\n    x:\n      - key: P"
            ),
            "render.yaml: ava-bot's envVars must be a list of variables (key: …), not 'PYTHON_VERSION'",
        ),
        (
            _render_yaml_edit("name: ava-bot", "name: 1234"),
            "render.yaml: a web service's name must be text, not 1234",
        ),
        (
            _render_yaml_edit("startCommand: python -m bot", "startCommand: [python, -m, bot]"),
            "render.yaml: ava-bot's startCommand must be text, not ['python', '-m', 'bot']",
        ),
        (
            _pyproject('[tool.ci_tools]\nenvironments = {production = {bot_username = "ava_real_bot"}}\n'),
            "pyproject.toml writes [tool.ci_tools] with dotted keys or inline tables, which adopt cannot merge into",
        ),
        (
            _pyproject('[tool]\nci_tools.probe.turns = ["/hi"]\n'),
            "pyproject.toml writes [tool.ci_tools] with dotted keys or inline tables, which adopt cannot merge into",
        ),
        (_folder_where_a_ruleset_goes, ".github/rulesets/main.json is a folder where a file goes: nothing was"),
        (_file_where_the_actions_go, ".github/actions is a file where a folder goes (.github/actions/setup-ci-"),
    ],
    ids=[
        "missing",
        "not-git",
        "bad-yaml",
        "bad-toml",
        "two-services",
        "token-in-git",
        "owners-workflow",
        "owners-ruleset",
        "kept-list-as-string",
        "kept-environment-not-a-table",
        "contributing-not-utf8",
        "env-vars-not-a-list",
        "service-name-not-text",
        "start-command-a-list",
        "inline-table",
        "dotted-keys",
        "folder-in-the-way",
        "file-in-the-way",
    ],
)
def test_bad_input_is_one_line_with_its_fix_and_nothing_is_written(bot, spoil, said):
    spoil(bot)
    before = tree(bot) if bot.exists() else {}
    folders = sorted(p for p in bot.rglob("*") if p.is_dir()) if bot.exists() else []
    done = ci_tools("adopt", str(bot), *PINNED, "--yes", cwd=bot.parent)
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert said in done.stderr
    assert "AAsecret" not in done.stdout + done.stderr
    assert (tree(bot) if bot.exists() else {}) == before
    assert (sorted(p for p in bot.rglob("*") if p.is_dir()) if bot.exists() else []) == folders


def test_a_start_command_other_than_the_live_services_is_refused(bot):
    """The live service's commands are production's truth: a flag never rewrites them."""
    before = tree(bot)
    done = ci_tools("adopt", str(bot), *PINNED, "--yes", "--start", "python -m other", cwd=bot.parent)
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
    done = ci_tools("adopt", str(ROOT), *PINNED, "--yes", cwd=bot)
    assert done.returncode == 2
    assert "is the release pipeline's own repository: it has the pipeline already" in done.stderr
    done = ci_tools("adopt", str(FIXTURE), *PINNED, "--yes", cwd=bot)
    assert done.returncode == 2
    assert f"{FIXTURE} is inside the git repository {ROOT}" in done.stderr
    assert not (FIXTURE / "pyproject.toml").exists()


def in_a_terminal(bot: Path, reply: Callable[[str], bytes]) -> tuple[int, str, list[str]]:
    """adopt run in a real pty; ``reply`` answers each prompt (b"\\x04" at a line's start: the input
    ends). Its exit code, everything it showed, and the prompts it asked."""
    controller, terminal = pty.openpty()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CI_TOOLS_", "GITHUB_", "RUNNER_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "ci_tools", "adopt", str(bot), *PINNED],
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
                os.write(controller, reply(prompt.lstrip("\r")))
                seen += "\n"
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        while select.select([controller], [], [], 0.2)[0]:  # what it said last, after the prompts
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk.decode(errors="replace")
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
    return code, seen, asked


def test_in_a_terminal_adopt_asks_what_it_cannot_detect_and_enter_takes_the_default(bot):
    """As the owner runs it: a prompt per value the code cannot tell, its default in brackets."""
    answers = {"the production bot's username (without @) [ava_bot]: ": "ava_companion_bot"}
    code, seen, asked = in_a_terminal(bot, lambda prompt: (answers.get(prompt, "") + "\n").encode())
    assert code == 0, seen
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


def test_the_input_ending_at_a_prompt_is_one_line_and_nothing_is_written(bot):
    before = tree(bot)
    code, seen, asked = in_a_terminal(bot, lambda prompt: b"\x04")
    assert code == 2, seen
    assert asked == ["the production bot's username (without @) [ava_bot]:"]
    assert "Traceback" not in seen and "EOFError" not in seen
    assert "adopt has a question and no answer to it (no terminal, or its input ended)" in seen
    assert "give --production-bot, or --yes" in seen
    assert tree(bot) == before


def test_a_bad_answer_is_asked_again_with_what_is_wrong_with_it(bot):
    answers = iter(["@@not a bot!!\n", "@ava_companion_bot\n", "ava.onrender.com\n", "\n"])
    code, seen, asked = in_a_terminal(bot, lambda prompt: next(answers, "\n").encode())
    assert code == 0, seen
    assert asked[:4] == [
        "the production bot's username (without @) [ava_bot]:",
        "'not a bot!!' is not a Telegram bot username (5-32 letters, digits or underscores, ending in 'bot'); "
        "the production bot's username (without @) [ava_bot]:",
        "the production service's address [https://ava-bot.onrender.com]:",
        "'ava.onrender.com' is not an address (a scheme and host, e.g. https://ava-bot.onrender.com); "
        "the production service's address [https://ava-bot.onrender.com]:",
    ]
    config = load_config(bot / "pyproject.toml")
    assert config.env("production").bot_username == "ava_companion_bot"
    assert config.env("production").base_url == "https://ava-bot.onrender.com"


def test_a_bad_value_given_as_a_flag_is_refused_by_its_flag(bot):
    before = tree(bot)
    done = ci_tools("adopt", str(bot), *PINNED, "--yes", "--staging-bot", "ava", cwd=bot.parent)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "ci-tools: bad input: --staging-bot 'ava' is not a Telegram bot username (5-32 letters, digits or "
        "underscores, ending in 'bot') — correct it, e.g. --staging-bot ava_dev_bot"
    )
    assert tree(bot) == before


def test_files_with_windows_line_endings_keep_them(bot):
    """A render.yaml, pyproject.toml or CONTRIBUTING.md saved with CRLF stays CRLF: a merge that
    turned every line to LF would show the owner a diff of the whole file."""
    own = {
        "render.yaml": (bot / "render.yaml").read_text(),
        "pyproject.toml": '[project]\nname = "ava"  # the companion\nversion = "1.0"\n',
        "CONTRIBUTING.md": "# Contributing to Ava\n\nBe kind.\n",
    }
    for name, text in own.items():
        (bot / name).write_bytes(text.replace("\n", "\r\n").encode())
    adopted(bot)
    for name, text in own.items():
        merged = (bot / name).read_bytes()
        assert merged.count(b"\n") == merged.count(b"\r\n"), f"{name} has lines without CRLF"
        assert all(line in merged.decode().split("\r\n") for line in text.splitlines()), name
    assert ci_tools("config", "check", cwd=bot).returncode == 0
    before = tree(bot)
    assert "nothing to change" in adopted(bot)
    assert tree(bot) == before


STAGING_OF_THEIR_OWN = """
  - type: web
    name: ava-bot-dev
    runtime: python
    plan: starter
    region: frankfurt
    branch: staging
    buildCommand: pip install -r requirements.txt
    startCommand: python -m bot
    envVars:
      - key: PYTHON_VERSION
        value: "3.11.7"
      - key: REDIS_URL
        fromService:
          type: keyvalue
          name: ava-staging-redis
          property: connectionString

  - type: keyvalue
    name: ava-staging-redis
    plan: starter
    ipAllowList: []
    maxmemoryPolicy: noeviction
"""


def test_a_staging_twin_the_owner_runs_already_keeps_its_key_value_and_branch(bot):
    """Their ava-bot-dev is staging: its Key Value holds their testers' memory and its branch is
    theirs; adopt takes both rather than wiring it to a new, empty Key Value on develop."""
    (bot / "render.yaml").write_text((bot / "render.yaml").read_text() + STAGING_OF_THEIR_OWN)
    said = adopted(bot)
    assert "detected: staging service `ava-bot-dev` from render.yaml (the live service's twin)" in said
    assert "detected: staging Key Value `ava-staging-redis` from render.yaml (REDIS_URL of ava-bot-dev)" in said
    assert "detected: staging branch `staging` from render.yaml (ava-bot-dev's)" in said
    config = load_config(bot / "pyproject.toml")
    assert config.default_branch == "staging"  # GitHub's default branch: where the flow's PRs go
    staging = config.env("staging")
    assert (staging.render_service, staging.key_value, staging.branch) == (
        "ava-bot-dev",
        "ava-staging-redis",
        "staging",
    )
    names = [s["name"] for s in yaml.safe_load((bot / "render.yaml").read_text())["services"]]
    assert names == ["ava-bot", "ava-redis", "ava-bot-dev", "ava-staging-redis"]
    assert "REDIS_URL" not in said.split("changed in your render.yaml: ava-bot-dev", 1)[-1]
    assert ci_tools("config", "check", cwd=bot).returncode == 0
    before = tree(bot)
    assert "nothing to change" in adopted(bot)
    assert tree(bot) == before


def test_another_service_built_from_the_repository_that_still_deploys_itself_is_named(bot):
    """A worker running the bot's code still deploys each push to main by itself: the pipeline
    releases the bot only, and the owner is told, not left to find out."""
    worker = (
        "  - type: worker\n    name: ava-reminders\n    runtime: python\n    branch: main\n"
        "    buildCommand: pip install -r requirements.txt\n    startCommand: python -m bot.reminders\n\n"
        "  - type: cron\n    name: ava-report\n    runtime: python\n    schedule: '0 8 * * *'\n"
        "    autoDeployTrigger: 'off'\n    buildCommand: pip install -r requirements.txt\n"
        "    startCommand: python -m bot.report\n\n"
    )
    text = (bot / "render.yaml").read_text()
    (bot / "render.yaml").write_text(text.replace("  - type: keyvalue", worker + "  - type: keyvalue"))
    said = adopted(bot)
    assert (
        "⚠ ava-reminders (worker) deploys itself from this repository on each push: the pipeline releases "
        "ava-bot only (set its autoDeployTrigger yourself if it runs the bot's code)"
    ) in said
    assert "ava-report" not in said  # deploys only when told to


def test_a_value_the_owner_set_on_staging_alone_is_kept_too(bot):
    adopted(bot)
    config = bot / "pyproject.toml"
    text = config.read_text()
    staging = text.index("[tool.ci_tools.environments.staging]")
    edited = text[:staging] + text[staging:].replace(
        'memory_patterns = ["memory:{user_id}", "user:{user_id}:history"]',
        'memory_patterns = ["memory:{user_id}", "user:{user_id}:history", "beta:{user_id}"]',
        1,
    )
    config.write_text(edited)
    before = tree(bot)
    said = adopted(bot)
    assert tree(bot) == before, said
    assert load_config(config).env("staging").memory_patterns[-1] == "beta:{user_id}"
