"""The plan's commands against the stand-ins: preflight, cutover, announce, acceptance, rehearse."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ci_tools.__main__ import main
from ci_tools.context import build
from ci_tools.pipeline.acceptance import TALKED, acceptance
from sandbox.rehearsal import DAILY_USER, Rehearsal
from sandbox.world import SECRETS, World
from tests.support import ROOT, unmeasured, use, wait_until


def both(world):
    values = dict(world.secrets("production"))
    for env in ("staging", "production"):
        secrets = world.secrets(env)
        values[f"{env.upper()}_TELEGRAM_BOT_TOKEN"] = secrets["TELEGRAM_BOT_TOKEN"]
        values[f"{env.upper()}_REDIS_URL"] = secrets["REDIS_URL"]
        values[f"{env.upper()}_RENDER_SERVICE_ID"] = secrets["RENDER_SERVICE_ID"]
        values[f"{env.upper()}_RENDER_API_KEY"] = secrets["RENDER_API_KEY"]  # scoped to its environment
    return values


def test_one_render_key_for_both_environments_is_named_with_the_fix(world, monkeypatch, capsys):
    """Staging runs feature-branch code: with production's power in its key, review guards nothing."""
    values = both(world)
    values["STAGING_RENDER_API_KEY"] = values["PRODUCTION_RENDER_API_KEY"] = world.render.api_key  # account-wide
    use(monkeypatch, values)
    assert main(["preflight", "--json"]) == 5
    items = {i["name"]: i for i in json.loads(capsys.readouterr().out)["items"]}
    item = items["staging's Render key cannot change mindmate-prod"]
    assert item["ok"] is False and "one Render key for both environments" in item["detail"]
    assert "create a Render API key scoped to mindmate-dev" in item["fix"]


def test_a_staging_key_that_can_read_production_is_refused(world, monkeypatch, capsys):
    values = both(world)
    values["STAGING_RENDER_API_KEY"] = world.render.scoped_key(
        {world.services["staging"].id: "write", world.services["production"].id: "read"}
    )
    use(monkeypatch, values)
    assert main(["preflight", "--json"]) == 5
    items = {i["name"]: i for i in json.loads(capsys.readouterr().out)["items"]}
    assert "it reads mindmate-prod" in items["staging's Render key cannot change mindmate-prod"]["detail"]


def test_a_staging_key_that_reaches_productions_key_value_is_refused(world, monkeypatch, capsys):
    """Scoped to staging's service and Key Value, and production's Key Value: it cannot see
    production's service, but GET /key-value/<production's>/connection-info is production's Redis URL."""
    values = both(world)
    values["STAGING_RENDER_API_KEY"] = world.render.scoped_key(
        {
            world.services["staging"].id: "write",
            world.key_values["staging"].id: "write",
            world.key_values["production"].id: "read",
        }
    )
    use(monkeypatch, values)
    assert main(["preflight", "--json"]) == 5
    out = capsys.readouterr().out
    item = {i["name"]: i for i in json.loads(out)["items"]}["staging's Render key cannot change mindmate-prod"]
    assert item["ok"] is False and "production's Redis URL" in item["detail"], item
    assert world.external_redis_url("production") not in out


def test_preflight_all_good(world, monkeypatch, capsys):
    use(monkeypatch, both(world))
    world.services["staging"].env["TESTER_IDS"] = "1001"
    assert main(["preflight"]) == 0
    out = capsys.readouterr().out
    assert "✗" not in out and "TESTER_IDS is set" in out
    assert "mindmate-prod and mindmate-prod-redis are" in out  # staging's scoped key: service and Key Value


def test_preflight_warns_when_staging_has_no_allowlist(world, monkeypatch, capsys):
    use(monkeypatch, both(world))
    assert main(["preflight"]) == 0  # a warning, not a failure
    out = capsys.readouterr().out
    assert "⚠ staging: only testers get the staging bot: set TESTER_IDS" in out


@pytest.mark.parametrize(
    ("breakage", "item", "fix"),
    [
        (
            "swap-token",
            "staging: token is @mindmate_dev_bot",
            "put @mindmate_dev_bot's token in STAGING_TELEGRAM_BOT_TOKEN",
        ),
        (
            "same-bot",
            "staging and production are different bots",
            "create a new production bot in @BotFather",
        ),
        (
            "dev-username",
            "production username looks like production",
            "without dev, test or staging",
        ),
        ("marker", "production: Redis belongs to production", "points at the staging Redis"),
        (
            "same-redis",
            "staging and production use different Redis",
            "give production its own Key Value",
        ),
        ("auto-deploy", "production: Render service mindmate-prod", "turn auto-deploy off"),
        ("branch", "staging: Render service mindmate-dev", "set its branch to develop"),
        (
            "missing",
            "production: token is @mindmate_companion_bot",
            "export PRODUCTION_TELEGRAM_BOT_TOKEN",
        ),
        ("revoked", "staging: token is @mindmate_dev_bot", "is wrong or revoked"),
    ],
)
def test_each_preflight_failure_names_its_fix(world, monkeypatch, capsys, breakage, item, fix):
    values = both(world)
    if breakage == "swap-token":
        values["STAGING_TELEGRAM_BOT_TOKEN"] = values["PRODUCTION_TELEGRAM_BOT_TOKEN"]
    elif breakage == "same-bot":
        values["PRODUCTION_TELEGRAM_BOT_TOKEN"] = values["STAGING_TELEGRAM_BOT_TOKEN"]
    elif breakage == "dev-username":
        world.config.write_text(world.config.read_text().replace("mindmate_companion_bot", "mindmate_devcopy_bot"))
        world.telegram.add_bot("mindmate_devcopy_bot", token="555000111:AAdevcopyTokenValue0123456789abcdef")
        values["PRODUCTION_TELEGRAM_BOT_TOKEN"] = "555000111:AAdevcopyTokenValue0123456789abcdef"
    elif breakage == "marker":
        world.redis["production"].client().set("prod:meta:env", "staging")
    elif breakage == "same-redis":
        values["PRODUCTION_REDIS_URL"] = values["STAGING_REDIS_URL"]
    elif breakage == "auto-deploy":
        world.services["production"].auto_deploy = "yes"
    elif breakage == "branch":
        world.services["staging"].branch = "main"
    elif breakage == "missing":
        del values["PRODUCTION_TELEGRAM_BOT_TOKEN"]
    elif breakage == "revoked":
        values["STAGING_TELEGRAM_BOT_TOKEN"] = "999999999:AArevokedTokenValue0123456789abcdef"
    monkeypatch.delenv("PRODUCTION_TELEGRAM_BOT_TOKEN", raising=False)
    use(monkeypatch, values)
    assert main(["preflight", "--json"]) == 5
    out, err = capsys.readouterr()
    assert item in err  # the final line names it; the table (here the JSON) gives its fix
    [found] = [i for i in json.loads(out)["items"] if i["name"] == item]
    assert found["ok"] is not True and fix in found["fix"]


@pytest.fixture
def seed_world(tmp_path, monkeypatch):
    """The world as the seed starts it: the daily user's bot on the legacy unprefixed keys."""
    with World(tmp_path / "world", step=0.05, legacy_staging=True) as sandbox:
        monkeypatch.chdir(sandbox.repo)
        yield sandbox


def run_until(world, phase_name):
    """Run the rehearsal's phases (in threads) on this world until ``phase_name`` is done."""
    rehearsal = Rehearsal(world.root, ROOT, process=False, log=lambda line: None)
    steps = [
        ("dev", rehearsal.dev_bot_in_use),
        ("cutover", rehearsal.cutover),
        ("copy", rehearsal.copy),
        ("announce", rehearsal.announce),
        ("moves", rehearsal.user_moves),
    ]
    for name, step in steps:
        step(world)
        if name == phase_name:
            return rehearsal
    raise AssertionError(phase_name)


def test_cutover_puts_the_old_token_back_after_a_failed_probe(world, monkeypatch, capsys):
    old = world.bots["staging"].token
    world.services["production"].env["TELEGRAM_BOT_TOKEN"] = old  # what the owner has today
    sha = world.commit("main", "release with an open webhook")
    world.render.fault(world.services["production"], sha, open_webhook=True)
    use(
        monkeypatch,
        {**world.secrets("production"), "NEW_TELEGRAM_BOT_TOKEN": world.bots["production"].token},
    )
    assert main(["cutover", "--commit", sha, "--deadline", "1", "--timeout", "30"]) == 5
    out, err = capsys.readouterr()
    assert "cutover failed" in err
    assert "the old token was put back and the service answers as @mindmate_dev_bot again" in err
    assert world.services["production"].env["TELEGRAM_BOT_TOKEN"] == old
    assert "PREVIOUS_TELEGRAM_BOT_TOKEN" not in world.services["production"].env  # the record went with the revert
    for secret in (old, world.bots["production"].token):
        assert secret not in out + err


def test_cutover_records_the_way_back_before_it_changes_anything(world, monkeypatch, capsys):
    """A run cancelled between the token swap and the deploy still leaves the old token on the service."""
    from ci_tools.pipeline import cutover as cutting_over

    old = world.bots["staging"].token
    service = world.services["production"]
    service.env["TELEGRAM_BOT_TOKEN"] = old
    seen: dict[str, str | None] = {}

    def cancelled(ctx, request, env, token, *args):  # type: ignore[no-untyped-def]
        seen.update({k: service.env.get(k) for k in ("PREVIOUS_TELEGRAM_BOT_TOKEN", "PREVIOUS_BOT", "CUTOVER_AT")})
        service.env["TELEGRAM_BOT_TOKEN"] = token  # the swap happened; then the runner is gone
        raise KeyboardInterrupt

    monkeypatch.setattr(cutting_over, "_swap", cancelled)
    use(monkeypatch, {**world.secrets("production"), "NEW_TELEGRAM_BOT_TOKEN": world.bots["production"].token})
    assert main(["cutover", "--commit", world.commit("main", "x")]) != 0
    assert seen["PREVIOUS_TELEGRAM_BOT_TOKEN"] == old  # recorded before the swap began
    assert seen["PREVIOUS_BOT"] == f"@mindmate_dev_bot {world.bots['staging'].id}" and seen["CUTOVER_AT"]
    assert service.env["PREVIOUS_TELEGRAM_BOT_TOKEN"] == old  # and still there for cutover --back


def test_cutover_refuses_a_new_token_of_another_bot(world, monkeypatch, capsys):
    use(
        monkeypatch,
        {**world.secrets("production"), "NEW_TELEGRAM_BOT_TOKEN": world.bots["staging"].token},
    )
    assert main(["cutover", "--commit", world.commit("main", "x")]) == 3
    assert "is @mindmate_dev_bot's, but production expects @mindmate_companion_bot" in capsys.readouterr().err
    assert world.services["production"].env["TELEGRAM_BOT_TOKEN"] == world.bots["production"].token


def test_announce_to_a_user_who_never_started_the_old_bot_is_one_line(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("staging"))
    world.telegram.meet(world.bots["staging"], 5150)  # a user the bot knows (a shared group), never started
    assert main(["announce", "--chat-id", "5150"]) == 2  # the Bot API's 403: a bot cannot write first
    err = capsys.readouterr().err
    assert "the user 5150 never started the old bot" in err and not world.bots["staging"].sent


def test_announce_to_a_user_who_blocked_the_bot(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("staging"))
    world.telegram.start_chat(world.bots["staging"], DAILY_USER)  # the daily user has talked to it for months
    world.bots["staging"].blocked_by.add(DAILY_USER)
    assert main(["announce", "--chat-id", str(DAILY_USER)]) == 4
    err = capsys.readouterr().err
    assert "has blocked the old bot" in err
    assert "https://t.me/mindmate_companion_bot" in err
    world.bots["staging"].blocked_by.clear()
    world.telegram.rate_limit(world.bots["staging"], 1, retry_after=0)
    assert (
        main(
            [
                "announce",
                "--chat-id",
                str(DAILY_USER),
                "--text",
                "We moved! https://t.me/mindmate_companion_bot",
            ]
        )
        == 0
    )
    assert world.telegram.replies_to(world.bots["staging"], DAILY_USER) == [
        "We moved! https://t.me/mindmate_companion_bot"
    ]
    assert main(["announce", "--chat-id", "1*"]) == 2


def test_acceptance_names_the_unmet_item_then_passes(seed_world, monkeypatch, capsys):
    world = seed_world
    rehearsal = run_until(world, "copy")
    use(monkeypatch, world.secrets("production"))
    args = [
        "acceptance",
        "--user-id",
        str(DAILY_USER),
        "--snapshot",
        str(rehearsal.snapshot),
        "--since",
        str(time.time() + 5),
    ]
    monkeypatch.setattr("ci_tools.pipeline.acceptance.REPOSITORY_FILES", ())  # the sandbox's config has no .github/
    assert main(args) == 5
    err = capsys.readouterr().err
    assert "the user has talked to the new bot" in err
    assert "ci-tools announce" in err
    world.redis["production"].client().lrem(f"prod:memory:{DAILY_USER}", 1, "My sister is called Mia")
    assert main(args[:-2]) == 5
    assert "1 fact(s) lost" in capsys.readouterr().out
    world.redis["production"].client().rpush(f"prod:memory:{DAILY_USER}", "My sister is called Mia")
    world.telegram.send_user_message(world.bots["production"], DAILY_USER, "hello new bot")
    assert main(args[:-2]) == 0
    # Whose message it was, the kit's arrival record says (any bot served by the kit keeps it).
    items = acceptance(build(world.secrets("production")), DAILY_USER, rehearsal.snapshot, None, deadline=30)
    talked = next(item for item in items if item.name == TALKED)
    assert talked.ok and talked.detail.endswith("(the kit's arrival record)"), talked


# `ci-tools rehearse --threads` on a machine without redis-server, the whole runbook: one run in
# tests/sandbox/test_rehearsal.py (test_the_runbook_in_order_…) asserts what the command says too.


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def test_ctrl_c_leaves_nothing_running(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "ci_tools", "rehearse", "--keep", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=unmeasured(),
    )
    seen: set[int] = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(
        b"mindmate" in Path(f"/proc/{p}/cmdline").read_bytes() for p in seen if Path(f"/proc/{p}").exists()
    ):
        seen |= _descendants(process.pid)
        time.sleep(0.05)
    assert seen, "the rehearsal started no servers"
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 130

    def alive() -> list[int]:
        return [
            p
            for p in seen
            if Path(f"/proc/{p}").exists() and b"zombie" not in Path(f"/proc/{p}/status").read_bytes().lower()
        ]

    with contextlib.suppress(AssertionError):  # SIGKILL is delivered, not awaited: wait for the state
        wait_until(lambda: not alive(), "the rehearsal's servers to be gone", deadline=15)
    left = alive()
    assert not left, "left running: " + ", ".join(
        Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace") for p in left
    )


def test_no_secret_in_the_plan_commands_output(world, monkeypatch, capsys, caplog):
    values = {**both(world), "NEW_TELEGRAM_BOT_TOKEN": world.bots["production"].token}
    use(monkeypatch, values)
    main(["-vv", "preflight"])
    main(["-vv", "cutover", "--commit", world.commit("main", "go"), "--deadline", "3"])
    use(monkeypatch, world.secrets("staging"))
    main(["-vv", "announce", "--chat-id", "777"])
    use(monkeypatch, world.secrets("production"))
    main(["-vv", "acceptance", "--user-id", "777"])
    out, err = capsys.readouterr()
    everything = out + err + caplog.text
    assert "HTTP Request" in caplog.text
    for value in (
        world.bots["staging"].token,
        world.bots["production"].token,
        world.render.api_key,
        *SECRETS.values(),
        world.services["production"].hook_key,
    ):
        assert value not in everything


def test_cutover_back_is_refused_after_the_rollback_window_unless_told(world, monkeypatch, capsys):
    placeholder = world.telegram.add_bot("mindmate_placeholder_bot")
    service = world.services["production"]
    service.env["TELEGRAM_BOT_TOKEN"] = placeholder.token
    sha = world.commit("main", "release")
    use(
        monkeypatch,
        {**world.secrets("production"), "NEW_TELEGRAM_BOT_TOKEN": world.bots["production"].token},
    )
    assert main(["cutover", "--commit", sha, "--poll", "0.05"]) == 0
    assert "old bot kept until" in capsys.readouterr().out
    service.env["CUTOVER_AT"] = "2026-01-01T00:00:00+00:00"  # long ago
    before = len(service.deploys)
    assert main(["cutover", "--commit", sha, "--back", "--poll", "0.05"]) == 2
    err = capsys.readouterr().err
    assert "the rollback window ended on 2026-01-15 00:00 UTC" in err and "--after-window" in err
    assert len(service.deploys) == before
    assert main(["cutover", "--commit", sha, "--back", "--after-window", "--poll", "0.05"]) == 0
    assert service.env["TELEGRAM_BOT_TOKEN"] == placeholder.token
