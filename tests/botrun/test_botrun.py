"""ci_tools/botrun: any bot built and started with its own commands, against real stand-ins."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from ci_tools import botrun
from ci_tools.botrun.building import SHARED, site_packages
from ci_tools.botrun.commands import BotCommands, commands_of, from_blueprint
from ci_tools.botrun.sessions import session_members
from ci_tools.errors import BuildFailed, ConfigError, StartFailed
from sandbox.ports import free_port
from tests.support import ROOT, wait_until

OWNER_BOT = ROOT / "tests" / "fixtures" / "owner_bot"
OFFLINE = {"PIP_NO_INDEX": "1", "UV_OFFLINE": "1"}  # a test fetches nothing


def owner_bot(tmp_path: Path, name: str = "ava") -> Path:
    tree = tmp_path / name
    shutil.copytree(OWNER_BOT, tree)
    return tree


# -- which commands -----------------------------------------------------------------------
def test_the_owner_bots_own_service_is_read_from_its_render_yaml(tmp_path):
    commands = commands_of(owner_bot(tmp_path))
    assert (commands.build, commands.start, commands.health_path) == (
        "pip install -r requirements.txt",
        "python -m bot",
        "",
    )
    assert commands.service == "ava-bot" and commands.env == {"PYTHON_VERSION": "3.11.7"}


def test_our_services_are_read_by_name_and_another_name_is_refused():
    staging = commands_of(ROOT, "mindmate-dev")
    assert staging.start == ".venv/bin/python -m mindmate" and staging.health_path == "/healthz"
    assert staging.env["ENV"] == "staging"
    with pytest.raises(ConfigError, match=r"no web service 'ava-bot' \(it has: mindmate-dev, mindmate-prod\)"):
        commands_of(ROOT, "ava-bot")
    with pytest.raises(ConfigError, match=r"2 web services .* which one is the bot"):
        commands_of(ROOT)


def test_a_service_on_another_runtime_is_refused():
    text = "services:\n  - type: web\n    name: x\n    runtime: docker\n    startCommand: run\n"
    with pytest.raises(ConfigError, match="'docker' runtime"):
        from_blueprint(text)


def test_without_render_yaml_the_tree_says_how_it_runs(tmp_path):
    tree = owner_bot(tmp_path)
    (tree / "render.yaml").unlink()
    assert commands_of(tree) == BotCommands(build="pip install -r requirements.txt", start="python -m bot")
    (tree / "Procfile").write_text("worker: python worker.py\nweb: python -m bot --port $PORT\n")
    assert commands_of(tree).start == "python -m bot --port $PORT"
    (tree / "Procfile").unlink()
    (tree / "uv.lock").write_text("")
    assert commands_of(tree).build == "uv sync --locked --no-default-groups"
    (tree / "bot" / "__main__.py").unlink()
    with pytest.raises(ConfigError, match=r"no render\.yaml and no start command"):
        commands_of(tree)


# -- building -------------------------------------------------------------------------------
def test_a_requirements_build_of_what_is_installed_is_offline_and_cached(tmp_path, subprocess_env):
    cache = tmp_path / "cache"
    first, second = owner_bot(tmp_path, "one"), owner_bot(tmp_path, "two")
    commands = commands_of(first)
    botrun.build(first, commands, {**subprocess_env, **OFFLINE}, cache=cache)
    assert (first / ".venv" / "bin" / "pip").is_file()
    assert (site_packages(first / ".venv") / SHARED).is_file()
    log = tmp_path / "second.log"
    botrun.build(second, commands, {**subprocess_env, **OFFLINE}, cache=cache, log=log)
    assert not log.exists() or "Running build command" not in log.read_text()  # from the cache, not pip again
    assert list(cache.iterdir()), "the build was not cached"
    activate = (second / ".venv" / "bin" / "activate").read_text()
    assert str(second) in activate and str(first) not in activate  # relocated


def test_a_changed_requirements_file_is_built_again(tmp_path, subprocess_env):
    cache = tmp_path / "cache"
    first, second = owner_bot(tmp_path, "one"), owner_bot(tmp_path, "two")
    (second / "requirements.txt").write_text("no-such-package-for-ci-tools-tests==1.0\n")
    botrun.build(first, commands_of(first), {**subprocess_env, **OFFLINE}, cache=cache)
    with pytest.raises(BuildFailed, match=r"exited with 1: pip install -r requirements\.txt") as failed:
        botrun.build(second, commands_of(second), {**subprocess_env, **OFFLINE}, cache=cache)
    assert any("no-such-package-for-ci-tools-tests" in line for line in failed.value.log_tail)


def test_a_build_that_writes_into_the_tree_is_not_cached(tmp_path, subprocess_env):
    cache = tmp_path / "cache"
    tree = owner_bot(tmp_path)
    commands = BotCommands(build="echo built > static.txt", start="python -m bot")
    botrun.build(tree, commands, subprocess_env, cache=cache)
    assert (tree / "static.txt").read_text() == "built\n"
    assert not cache.exists() or not list(cache.iterdir())


def test_our_own_uv_build_is_offline(tmp_path, subprocess_env):
    """mindmate's render.yaml: uv sync --locked into .venv, from uv's cache (no index reachable)."""
    tree = tmp_path / "mindmate"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", ".*_cache", "tests"))
    commands = commands_of(tree, "mindmate-prod")
    botrun.build(tree, commands, {**subprocess_env, **OFFLINE})
    assert (tree / ".venv" / "bin" / "python").exists()
    editable = (site_packages(tree / ".venv") / "mindmate_release.pth").read_text()
    assert str(tree) in editable


# -- starting -------------------------------------------------------------------------------
def test_the_unchanged_owner_bot_talks_to_the_stand_in_and_answers(tmp_path, subprocess_env, telegram, redis_server):
    tree = owner_bot(tmp_path)
    commands = commands_of(tree)
    botrun.build(tree, commands, {**subprocess_env, **OFFLINE})
    fake = telegram.add_bot("ava_owner_bot")
    port = free_port()
    environ = {
        **subprocess_env,
        "TELEGRAM_BOT_TOKEN": fake.token,
        "REDIS_URL": redis_server.url,
        "PORT": str(port),
        "RENDER_EXTERNAL_URL": f"http://127.0.0.1:{port}",
    }
    with botrun.start(tree, commands, environ, telegram.url, log=tmp_path / "bot.log") as bot:
        assert bot.port == port
        wait_until(lambda: fake.webhook_url == f"http://127.0.0.1:{port}/{fake.token}", "the webhook set")
        assert ("POST", f"/bot{fake.token}/getMe") in telegram.requests
        telegram.send_user_message(fake, 4242, "hello")
        wait_until(lambda: telegram.replies_to(fake, 4242), "a reply through sendMessage")
        assert redis_server.client().llen("user:4242:history") == 2
    assert bot.exited is not None


def test_a_start_that_exits_names_its_last_line(tmp_path, subprocess_env):
    tree = owner_bot(tmp_path)
    commands = BotCommands(build="", start="echo 'booting'; echo 'KeyError: TELEGRAM_BOT_TOKEN' >&2; exit 3")
    botrun.build(tree, commands, subprocess_env)
    with pytest.raises(StartFailed, match=r"exited with 3 before the bot answered: .*\(KeyError: TELEGRAM_BOT_TOKEN\)"):
        botrun.start(tree, commands, subprocess_env, None)


def test_a_health_path_is_waited_for_and_a_silent_port_times_out(tmp_path, subprocess_env):
    tree = tmp_path / "web"
    tree.mkdir()
    serve = BotCommands(build="", start="exec python -m http.server $PORT --bind 127.0.0.1", health_path="/nowhere")
    with botrun.start(tree, serve, subprocess_env, None) as bot:  # 404 is an answer: started
        assert bot.url.endswith(str(bot.port))
    silent = BotCommands(build="", start="sleep 30", health_path="")
    with pytest.raises(StartFailed, match="its port did not accept connections"):
        botrun.start(tree, silent, subprocess_env, None, timeout=1.0)


def test_stop_takes_what_the_bot_started_and_a_bot_outlives_the_thread_that_started_it(tmp_path, subprocess_env):
    """A deploy's thread ends once the instance is up: the bot must not die with it (the parent-
    death signal is per thread); stop() ends its whole session, children included."""
    tree = tmp_path / "web"
    tree.mkdir()
    commands = BotCommands(build="", start="sleep 300 & exec python -m http.server $PORT --bind 127.0.0.1")
    started: list[botrun.RunningBot] = []
    thread = threading.Thread(target=lambda: started.append(botrun.start(tree, commands, subprocess_env, None)))
    thread.start()
    thread.join()
    (bot,) = started
    # The kernel sends a parent-death signal as the thread exits (exit_notify), before its task
    # is released: once /proc no longer lists the task, a SIGKILL would be pending or done.
    wait_until(lambda: not Path(f"/proc/self/task/{thread.native_id}").exists(), "the thread's task to be released")
    assert bot.exited is None
    assert not _sigkill_pending(bot.process.pid)
    assert len(session_members(bot.process.pid)) >= 2
    bot.stop()
    assert session_members(bot.process.pid) == []


def _sigkill_pending(pid: int) -> bool:
    """Is SIGKILL pending for the process (``SigPnd``/``ShdPnd`` in /proc/PID/status, bit 9 - 1)?"""
    status = Path(f"/proc/{pid}/status").read_text()
    masks = [int(line.split()[1], 16) for line in status.splitlines() if line.startswith(("SigPnd:", "ShdPnd:"))]
    return any(mask & (1 << (signal.SIGKILL - 1)) for mask in masks)


def test_the_reroute_is_inert_without_its_variable(tmp_path, subprocess_env):
    """Only CI_TOOLS_TELEGRAM_API turns it on: without it, httpx is left as it is."""
    tree = tmp_path / "t"
    tree.mkdir()
    probe = "import httpx; print(httpx.AsyncClient.send.__qualname__)"
    serve = "exec python -m http.server $PORT --bind 127.0.0.1"
    commands = BotCommands(build="", start=f"python -c '{probe}' > out.txt; {serve}")
    env = {k: v for k, v in subprocess_env.items() if k != "CI_TOOLS_TELEGRAM_API"}
    for api, expected in ((None, "AsyncClient.send"), ("http://127.0.0.1:9", "_patch.<locals>.send_async")):
        with botrun.start(tree, commands, env, api):  # ready once serving: out.txt was written before
            assert (tree / "out.txt").read_text().strip() == expected


def test_the_reroute_folder_puts_nothing_but_sitecustomize_on_a_bots_path():
    folder = ROOT / "ci_tools" / "botrun" / "reroute"
    assert set(os.listdir(folder)) - {"__pycache__"} == {"sitecustomize.py"}


# -- what a render.yaml may hold that a careless reader trips on -------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [("envVars", "5"), ("envVars", "{KEY: value}"), ("rootDir", "[a, b]"), ("startCommand", "[python, -m, bot]")],
)
def test_a_service_field_of_the_wrong_shape_is_one_config_line(field, value):
    """Not a TypeError ('a bug in ci-tools'): the field and the fix are named."""
    text = f"services:\n  - type: web\n    name: x\n    startCommand: python -m bot\n    {field}: {value}\n"
    with pytest.raises(ConfigError, match=rf"service 'x': {field} "):
        from_blueprint(text)


def test_a_render_yaml_without_a_web_service_says_so_not_which_one():
    with pytest.raises(ConfigError, match="has no web service") as raised:
        from_blueprint("services:\n  - type: worker\n    name: w\n    startCommand: python w.py\n")
    assert "--service" not in (raised.value.hint or "")
    with pytest.raises(ConfigError, match="has no web service"):
        from_blueprint("- just\n- a list\n")


@pytest.mark.parametrize("root", ["..", "../elsewhere", "app/../../.."])
def test_a_root_dir_that_leaves_the_repository_is_refused(root):
    """Render runs the commands in the service's rootDir, inside the repository; a rootDir
    of '..' would build (and rmtree a .venv) in the folder that holds the checkout."""
    text = f"services:\n  - type: web\n    name: x\n    startCommand: python -m bot\n    rootDir: '{root}'\n"
    with pytest.raises(ConfigError, match=r"rootDir .* leaves the repository"):
        from_blueprint(text)


def test_a_root_dir_that_is_a_link_out_of_the_tree_is_not_built(tmp_path, subprocess_env):
    outside = tmp_path / "outside"
    outside.mkdir()
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "app").symlink_to(outside)
    with pytest.raises(BuildFailed, match="rootDir 'app' is not in the tree"):
        botrun.build(tree, BotCommands(build="true", start="python -m bot", root="app"), subprocess_env)
    assert not (outside / ".venv").exists()


# -- a build leaves nothing running ---------------------------------------------------------
def alive(pid: int) -> bool:
    """A process that still runs (a zombie waiting for an init that does not reap is dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.parametrize(
    ("build", "timeout"),
    [("sleep 300 & echo $! > {pid}; wait", 2.0), ("sleep 300 & echo $! > {pid}; exit 0", 60.0)],
    ids=["runs past its time", "leaves a child behind"],
)
def test_a_build_leaves_no_process_of_it_running(tmp_path, subprocess_env, build, timeout):
    """bash's own child (pip, a compiler, a forgotten background job) is no process of ours to
    keep: Render discards the build's container, so its processes end with the build."""
    tree = tmp_path / "t"
    tree.mkdir()
    pid = tmp_path / "child.pid"
    commands = BotCommands(build=build.format(pid=pid), start="python -m bot")
    with contextlib.suppress(BuildFailed):
        botrun.build(tree, commands, subprocess_env, timeout=timeout)
    child = int(pid.read_text())
    wait_until(lambda: not alive(child), "the build's child to be gone", deadline=15)


# -- the build cache: what a cached build stands for ------------------------------------------
HELLO = """[project]
name = "hello"
version = "0.1.0"
requires-python = ">=3.11"
[project.scripts]
hello = "hello:main"
[build-system]
requires = ["uv_build>=0.9,<0.14"]
build-backend = "uv_build"
[tool.uv.build-backend]
module-root = ""
"""


def test_a_build_that_installs_the_trees_own_code_is_not_reused_for_other_code(tmp_path, subprocess_env):
    """``uv pip install .`` (``pip install .``, ``uv sync --no-editable``) copies the bot's code into
    .venv: the dependency files of the next commit are the same, its code is not. Reusing that
    .venv ran the old commit's code under the new commit's name."""
    cache = tmp_path / "cache"
    commands = BotCommands(build="uv pip install .", start="hello")
    for said in ("one", "two"):
        tree = tmp_path / said
        (tree / "hello").mkdir(parents=True)
        (tree / "pyproject.toml").write_text(HELLO)
        (tree / "hello" / "__init__.py").write_text(f"def main():\n    print({said!r})\n")
        botrun.build(tree, commands, {**subprocess_env, **OFFLINE}, cache=cache)
        ran = subprocess.run([tree / ".venv" / "bin" / "hello"], capture_output=True, text=True, check=True)
        assert ran.stdout.strip() == said


def test_a_requirements_file_the_requirements_file_includes_is_part_of_the_key(tmp_path, subprocess_env):
    """``-r base.txt`` (and ``-c``, nested, relative to the including file): a changed include
    is a changed dependency set, built again, as Render would."""
    cache = tmp_path / "cache"
    first, second = owner_bot(tmp_path, "one"), owner_bot(tmp_path, "two")
    for tree, more in ((first, "redis>=5\n"), (second, "no-such-package-for-ci-tools-tests==1.0\n")):
        (tree / "requirements.txt").write_text("-r reqs/base.txt\n")
        (tree / "reqs").mkdir()
        (tree / "reqs" / "base.txt").write_text("python-telegram-bot[webhooks]>=21,<23\n--requirement more.txt\n")
        (tree / "reqs" / "more.txt").write_text(more)
    botrun.build(first, commands_of(first), {**subprocess_env, **OFFLINE}, cache=cache)
    with pytest.raises(BuildFailed, match="exited with 1"):
        botrun.build(second, commands_of(second), {**subprocess_env, **OFFLINE}, cache=cache)


def test_two_builds_of_one_tree_at_once_do_not_remove_each_others_venv(tmp_path, subprocess_env):
    """The Render stand-in unpacks a commit once: staging and production deploying the same commit
    build the same tree. The second must wait for the first, not rmtree its .venv mid-build."""
    tree = owner_bot(tmp_path)
    commands = BotCommands(build="touch .venv/mine-$$ && sleep 2 && test -e .venv/mine-$$", start="python -m bot")
    failed: list[BaseException] = []

    def build() -> None:
        try:
            botrun.build(tree, commands, subprocess_env)
        except BaseException as exc:
            failed.append(exc)

    first = threading.Thread(target=build)
    first.start()
    wait_until(lambda: list((tree / ".venv").glob("mine-*")), "the first build to be under way")
    second = threading.Thread(target=build)
    second.start()
    first.join()
    second.join()
    assert not failed, failed


# -- the reroute, for bots on other clients and with a sitecustomize of their own --------------
AIOGRAM_BOT = """import os

from aiogram import Bot, Dispatcher
from aiogram.filters import CommandStart
from aiogram.types import Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

dp = Dispatcher()


@dp.message(CommandStart())
async def start(message: Message) -> None:
    await message.answer("hi from aiogram")


async def on_startup(bot: Bot) -> None:
    await bot.set_webhook(os.environ["RENDER_EXTERNAL_URL"] + "/webhook")


bot = Bot(os.environ["TELEGRAM_BOT_TOKEN"])
dp.startup.register(on_startup)
app = web.Application()
SimpleRequestHandler(dispatcher=dp, bot=bot).register(app, path="/webhook")
setup_application(app, dp, bot=bot)
web.run_app(app, host="127.0.0.1", port=int(os.environ["PORT"]))
"""


def test_an_unchanged_aiogram_bot_talks_to_the_stand_in(tmp_path, subprocess_env, telegram):
    """aiogram calls the Bot API with aiohttp, not httpx: rerouting httpx alone sent it to the
    real api.telegram.org with the throwaway token (here: no DNS, so it died at start)."""
    tree = tmp_path / "aio"
    (tree / "bot").mkdir(parents=True)
    (tree / "bot" / "__init__.py").write_text("")
    (tree / "bot" / "__main__.py").write_text(AIOGRAM_BOT)
    (tree / "requirements.txt").write_text("aiogram>=3\n")
    commands = BotCommands(build="pip install -r requirements.txt", start="python -m bot")
    botrun.build(tree, commands, {**subprocess_env, **OFFLINE})
    fake = telegram.add_bot("aiogram_owner_bot")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environ = {**subprocess_env, "TELEGRAM_BOT_TOKEN": fake.token, "PORT": str(port), "RENDER_EXTERNAL_URL": url}
    with botrun.start(tree, commands, environ, telegram.url, log=tmp_path / "bot.log"):
        wait_until(lambda: fake.webhook_url == f"{url}/webhook", "aiogram's webhook set at the stand-in")
        telegram.send_user_message(fake, 4242, "/start")
        wait_until(lambda: telegram.replies_to(fake, 4242), "aiogram's reply through the stand-in")


REROUTED = """import asyncio, json, sys
import aiohttp, httpx

url, seen = sys.argv[1], []


def on_httpx(request):
    seen.append(str(request.url))
    raise httpx.ConnectError("seen", request=request)


async def on_aiohttp(session, context, params):
    seen.append(str(params.url))
    raise RuntimeError("seen")


async def main():
    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_aiohttp)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        try:
            await session.get(url)
        except RuntimeError:
            pass


try:
    httpx.Client(event_hooks={"request": [on_httpx]}).get(url)
except httpx.ConnectError:
    pass
asyncio.run(main())
print(json.dumps(seen))
"""


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.telegram.org/bot1:AA/getMe?x=1", "http://127.0.0.1:9/stand-in/bot1:AA/getMe?x=1"),
        ("https://api.telegram.org/file/bot1:AA/photos/a.jpg", "http://127.0.0.1:9/stand-in/file/bot1:AA/photos/a.jpg"),
        ("https://example.org/bot1:AA/getMe", "https://example.org/bot1:AA/getMe"),
    ],
)
def test_httpx_and_aiohttp_requests_for_telegram_alone_are_rerouted(tmp_path, subprocess_env, url, expected):
    script = tmp_path / "probe.py"
    script.write_text(REROUTED)
    tree = tmp_path / "t"
    tree.mkdir()
    commands = BotCommands(
        build="", start=f"python {script} '{url}' > out.json; exec python -m http.server $PORT --bind 127.0.0.1"
    )
    with botrun.start(tree, commands, subprocess_env, "http://127.0.0.1:9/stand-in/"):
        assert json.loads((tree / "out.json").read_text()) == [expected, expected]


def test_a_bots_own_sitecustomize_still_runs(tmp_path, subprocess_env):
    """Python imports the first sitecustomize on sys.path: ours, first on PYTHONPATH, hid the
    bot's own (its PYTHONPATH's, its virtualenv's)."""
    tree = tmp_path / "t"
    (tree / "custom").mkdir(parents=True)
    (tree / "custom" / "sitecustomize.py").write_text("open('theirs-ran', 'w').close()\n")
    probe = "import httpx; print(httpx.AsyncClient.send.__qualname__)"
    commands = BotCommands(
        build="", start=f"python -c '{probe}' > out.txt; exec python -m http.server $PORT --bind 127.0.0.1"
    )
    environ = {**subprocess_env, "PYTHONPATH": "custom"}
    with botrun.start(tree, commands, environ, "http://127.0.0.1:9"):
        assert (tree / "theirs-ran").exists()
        assert (tree / "out.txt").read_text().strip() == "_patch.<locals>.send_async"  # and ours ran too


def test_stop_takes_a_child_that_left_the_bots_session(tmp_path, subprocess_env):
    """A bot that starts a helper in a session of its own (start_new_session=True, setsid): the
    helper is no member of the bot's session, but it is the bot's child while the bot runs."""
    tree = tmp_path / "web"
    tree.mkdir()
    (tree / "serve.py").write_text(
        "import os, subprocess, sys\n"
        "helper = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
        "open('helper.pid', 'w').write(str(helper.pid))\n"
        "os.execvp(sys.executable, [sys.executable, '-m', 'http.server', os.environ['PORT'], '--bind', '127.0.0.1'])\n"
    )
    commands = BotCommands(build="", start="python serve.py")
    with botrun.start(tree, commands, subprocess_env, None):
        helper = int((tree / "helper.pid").read_text())
        assert alive(helper)
    wait_until(lambda: not alive(helper), "the helper to be gone with the bot", deadline=15)


def test_a_damaged_cache_entry_is_built_afresh_not_a_crash(tmp_path, subprocess_env):
    """The cache is a shared temporary folder (tests, other checkouts, a full disk, a prune): an
    entry that cannot be restored is dropped and the tree built as if it were not there."""
    cache = tmp_path / "cache"
    first, second = owner_bot(tmp_path, "one"), owner_bot(tmp_path, "two")
    botrun.build(first, commands_of(first), {**subprocess_env, **OFFLINE}, cache=cache)
    (entry,) = cache.iterdir()
    (entry / ".venv" / ".ci-tools-build").unlink()
    botrun.build(second, commands_of(second), {**subprocess_env, **OFFLINE}, cache=cache)
    assert (second / ".venv" / ".ci-tools-build").is_file()
    assert str(second) in (second / ".venv" / "bin" / "activate").read_text()


def test_a_cache_folder_others_may_write_to_is_not_used(tmp_path, subprocess_env):
    """The default cache is a predictable name in the shared /tmp: a folder there that another
    user made (or may write to) could hold a planted .venv, run as the bot. Such a cache is
    neither read nor written: the tree is built."""
    cache = tmp_path / "cache"
    first, second = owner_bot(tmp_path, "one"), owner_bot(tmp_path, "two")
    botrun.build(first, commands_of(first), {**subprocess_env, **OFFLINE}, cache=cache)
    cache.chmod(0o777)
    log = tmp_path / "build.log"
    botrun.build(second, commands_of(second), {**subprocess_env, **OFFLINE}, cache=cache, log=log)
    assert "==> Running build command" in log.read_text()  # built, not restored
