"""What adopt reads from a bot's code: the keys of a user's memory, a health endpoint, how it starts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ci_tools.errors import InputError
from ci_tools.repo import bot_detection as detect


def repo(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    return tmp_path


KEYS = """
PREFIX = "x"
def keys(user, uid, update, count, name, user_id):
    a = f"{PREFIX}profile:{user.id}"          # a prefix variable first: the key is what follows
    b = "conv:{}".format(uid)
    c = "seen:%s" % update.effective_user.id
    d = "notes:{user_id}"                     # a template, formatted elsewhere
    e = f"chat:{str(update.effective_chat.id)}:log"
    # not a user's keys:
    f = f"fact:{count}"                       # a hash field numbered by a counter
    g = f"https://example.com/{user_id}"      # an address
    h = f"Welcome back, {name}:{user_id}!"    # a sentence
    i = f"pair:{user_id}:{user.id}"           # two ids: no single user's key
    j = f"{user_id}"                          # nothing but the id
"""


def test_memory_keys_in_every_way_python_writes_them(tmp_path):
    root = repo(tmp_path, {"bot/keys.py": KEYS, "release_kit/store.py": 'K = f"kit:{user_id}"\n'})
    found = detect.memory_patterns(root, detect.files(root))
    assert [f.value for f in found] == [
        "chat:{user_id}:log",
        "conv:{user_id}",
        "notes:{user_id}",
        "profile:{user_id}",
        "seen:{user_id}",
    ]
    assert found[3].origin == "bot/keys.py:4"


CONCATENATED = """
def keys(user, uid, update, PREFIX, count):
    a = "memory:" + str(uid)
    b = "user:" + str(update.effective_user.id) + ":history"
    c = PREFIX + "state:" + str(user.id)       # a prefix variable first: the key is what follows
    # not a user's keys:
    d = "fact:" + str(count)
    e = "pair:" + str(uid) + ":" + str(user.id)
"""


def test_memory_keys_built_by_concatenation(tmp_path):
    root = repo(tmp_path, {"bot/keys.py": CONCATENATED})
    found = detect.memory_patterns(root, detect.files(root))
    assert [(f.value, f.origin) for f in found] == [
        ("memory:{user_id}", "bot/keys.py:3"),
        ("state:{user_id}", "bot/keys.py:5"),
        ("user:{user_id}:history", "bot/keys.py:4"),
    ]


def test_a_file_that_does_not_parse_is_skipped_not_fatal(tmp_path):
    root = repo(tmp_path, {"old.py": "print 'python 2'\n", "new.py": 'K = f"memory:{uid}"\n'})
    assert [f.value for f in detect.memory_patterns(root, detect.files(root))] == ["memory:{user_id}"]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("kit.run_webhook(application, url_path=TOKEN)\n", "/healthz"),
        ('run(app)\nkit.run_webhook(application, url_path=TOKEN, health_path="/alive")\n', "/alive"),
        ('kit.run_webhook(application, url_path=TOKEN, health_path="alive")\n', "/alive"),  # as the kit serves it
        ('app.add_route("/healthz", health)\n', "/healthz"),
        ("application.run_webhook(listen='0.0.0.0', url_path=TOKEN)\n", None),  # PTB's own: no health JSON
    ],
)
def test_a_health_endpoint_is_the_kits_or_a_healthz_route(tmp_path, code, expected):
    root = repo(tmp_path, {"bot/__main__.py": code})
    found = detect.health_path(root, detect.files(root))
    assert (found.value if found else None) == expected


@pytest.mark.parametrize(
    ("files"),
    [
        {"tests/test_bot.py": 'def test_no_health(client):\n    assert client.get("/healthz").status_code == 404\n'},
        {"bot/test_web.py": 'kit.run_webhook(application, url_path="t")\n'},
        {"conftest.py": 'kit.run_webhook(application, url_path="t")\n'},
        {"bot/docs.py": 'HINT = "/healthz"\n'},  # a string, not a route
    ],
    ids=["a-test-asks-for-it", "a-test-module", "conftest", "a-constant"],
)
def test_no_health_endpoint_is_read_from_tests_or_a_mere_string(tmp_path, files):
    """A health_path adopt sets becomes Render's healthCheckPath on the live service: one the bot
    does not serve fails every deploy, so only the bot's own code, and a route, count."""
    root = repo(tmp_path, {"bot/__init__.py": "", **files})
    assert detect.health_path(root, detect.files(root)) is None


def test_a_virtualenv_in_the_tree_is_not_the_bots_code(tmp_path):
    """``python -m venv venv`` (3.11) writes no .gitignore: git lists the libraries as new files,
    and python-telegram-bot's task names read as keys (``Application:{id}:update_fetcher``)."""
    library = 'def task(self):\n    return f"Application:{self.id}:update_fetcher"\n'
    root = repo(
        tmp_path,
        {
            "bot/store.py": 'K = f"memory:{uid}"\n',
            "venv/pyvenv.cfg": "home = /usr/bin\n",
            "venv/lib/python3.11/site-packages/telegram/ext/_application.py": library,
            "vendor/site-packages/telegram/_app.py": library,  # a library tree without a pyvenv.cfg
        },
    )
    assert detect.files(root) == ["bot/store.py"]
    assert [f.value for f in detect.memory_patterns(root, detect.files(root))] == ["memory:{user_id}"]


def test_memory_keys_of_tests_are_not_the_bots(tmp_path):
    root = repo(tmp_path, {"bot/store.py": 'K = f"memory:{uid}"\n', "tests/test_store.py": 'T = f"fixture:{uid}"\n'})
    assert [f.value for f in detect.memory_patterns(root, detect.files(root))] == ["memory:{user_id}"]


def test_the_start_command_from_procfile_or_a_runnable_package(tmp_path):
    root = repo(tmp_path, {"Procfile": "worker: python jobs.py\nweb: python -m ava.web\n", "ava/__main__.py": ""})
    assert detect.start_command(root, detect.files(root), None) == detect.Finding("python -m ava.web", "Procfile")
    (root / "Procfile").unlink()
    assert detect.start_command(root, detect.files(root), None) == detect.Finding("python -m ava", "ava/__main__.py")
    (root / "other").mkdir()
    (root / "other" / "__main__.py").write_text("")
    assert detect.start_command(root, detect.files(root), None) is None  # two: nothing to guess
    assert detect.module_of(".venv/bin/python -m mindmate") == "mindmate"
    assert detect.module_of("gunicorn app:app") is None


@pytest.mark.parametrize(
    ("files", "manager", "build"),
    [
        ({"uv.lock": "", "requirements.txt": ""}, "uv", "uv sync --locked --no-dev"),
        ({"poetry.lock": ""}, "poetry", "poetry install --only main --no-root"),
        ({"requirements.txt": ""}, "pip", "pip install -r requirements.txt"),
        ({"pyproject.toml": "[project]\nname = 'ava'\n"}, "pip", "pip install ."),
        ({"pyproject.toml": "[tool.ci_tools]\n"}, None, None),  # tool settings alone install nothing
    ],
)
def test_the_dependency_manager_and_its_build(tmp_path, files, manager, build):
    root = repo(tmp_path, files)
    listed = detect.files(root)
    found = detect.dependencies(root, listed)
    assert (found.value if found else None) == manager
    command = detect.build_command(root, listed, None)
    assert (command.value if command else None) == build


def test_the_live_service_is_the_one_web_service_not_its_twin():
    blueprint = {"services": [{"type": "web", "name": "ava"}, {"type": "web", "name": "ava-dev"}, {"type": "keyvalue"}]}
    assert detect.live_service(blueprint, given=None, configured=None).value == "ava"
    blueprint["services"].append({"type": "web", "name": "admin"})
    with pytest.raises(InputError, match=r"2 web services \(ava, admin\)") as error:
        detect.live_service(blueprint, given=None, configured=None)
    assert "--service ava" in error.value.one_line()
    assert detect.live_service(blueprint, given=None, configured="admin").value == "admin"
    with pytest.raises(InputError, match="no web service named 'nope'"):
        detect.live_service(blueprint, given="nope", configured=None)
