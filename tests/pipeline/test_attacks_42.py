"""Review 42's attacks on the drift watch's Bot API page parser and on the rollback past Render's
build retention.

The page is served by a real loopback server (the ``Page`` stand-in of
tests/contracts/test_botapi_page.py) and read through ``fetch.telegram_description``, as
``ci-tools contracts fetch`` reads it. What the brief asks of a page the parser cannot read: one
clear line and exit 4 (a RemoteError), never a traceback and never a wrong report.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ci_tools.__main__ import main
from ci_tools.contracts import SPECS, fetch
from ci_tools.errors import RemoteError
from tests.contracts.test_botapi_page import Page

PUBLISHED = Path(__file__).parents[1] / "contracts" / "published"
PAGE_102 = gzip.decompress((PUBLISHED / "bots-api-10.2.html.gz").read_bytes()).decode("utf-8")


@pytest.fixture
def page() -> Iterator[Page]:
    with Page(PAGE_102.encode("utf-8")) as server:
        yield server


def read(page: Page, html: str) -> bytes:
    page.body = html.encode("utf-8")
    with httpx.Client() as client:
        body, _named = fetch.telegram_description(client, f"{page.url}/bots/api")
    return body


def refused(page: Page, html: str) -> str:
    """The one line the parser gives up with; fails the test when it reads the page instead."""
    try:
        body = read(page, html)
    except RemoteError as exc:
        line = exc.one_line()
        assert "\n" not in line
        return line
    spec = json.loads(body)
    send = spec["methods"].get("sendMessage", {})
    pytest.fail(
        "the page was read, not refused: "
        f"version={spec['version']!r}, {len(spec['methods'])} methods, {len(spec['types'])} types, "
        f"sendMessage has {len(send.get('fields', []))} parameters"
    )


def diff_exit(tmp_path: Path, body: bytes) -> int:
    new = tmp_path / "published.json"
    new.write_bytes(body)
    return main(["contracts", "diff", "telegram", str(SPECS / "telegram-api.json"), str(new)])


def drift_exit(page: Page, html: str, tmp_path: Path) -> int:
    """What the drift watch ends with: the fetch's exit when it refuses the page, else the diff's.

    (Fixed after review: these tests first handed ``read``'s result to ``diff``, so a fetch that
    refuses the page, which is what the brief asks, raised in the test instead of counting.)
    """
    try:
        body = read(page, html)
    except RemoteError as exc:
        return exc.exit_code
    return diff_exit(tmp_path, body)


def test_the_unaltered_page_is_no_change(page, tmp_path):
    """The control: the 10.2 page against the vendored 10.2 copy is "no change" (exit 0)."""
    assert diff_exit(tmp_path, read(page, PAGE_102)) == 0


def test_a_missing_version_line_is_refused_not_read_as_the_next_paragraph(page):
    """``version`` is the first top-level ``p``: without "Bot API 10.2" it is the changelog's next
    paragraph ("Rich Messages"), and the drift watch names that as the version it read."""
    html = PAGE_102.replace("<p><strong>Bot API 10.2</strong></p>\n", "", 1)
    assert "Bot API 10.2" not in html.split('name="recent-changes"')[1][:2000]
    line = refused(page, html)
    assert "version" in line


def test_a_missing_version_line_is_not_no_change(page, tmp_path):
    """The same page through ``diff``: "no change" (exit 0), and fetch names it "Rich Messages"."""
    html = PAGE_102.replace("<p><strong>Bot API 10.2</strong></p>\n", "", 1)
    assert drift_exit(page, html, tmp_path) != 0


def test_a_method_table_with_an_extra_column_is_refused_not_read_as_no_parameters(page, tmp_path):
    """A fifth column in the methods' tables (say "Since"): every row is skipped as "not a field
    list", so every method has no parameters, and ``diff`` reports each parameter removed (exit 5)
    instead of saying that the page's layout changed (exit 4)."""
    html = PAGE_102.replace("<th>Description</th>\n</tr>", "<th>Description</th>\n<th>Since</th>\n</tr>")
    html = re.sub(r"(<td>(?:Yes|Optional)</td>\n<td>.*?</td>\n)</tr>", r"\1<td>10.0</td>\n</tr>", html)
    line = refused(page, html)
    assert "table" in line or "column" in line


def test_a_table_wrapped_in_a_div_is_refused_not_read_as_no_fields(page):
    """Bootstrap's ``<div class="table-responsive">`` around each table: the walk sees a ``div``,
    not a ``table``, and every method and type loses its fields without a word."""
    html = re.sub(r"<table\b", '<div class="table-responsive"><table', PAGE_102)
    html = html.replace("</table>", "</table></div>")
    refused(page, html)


def test_a_truncated_page_is_refused_not_read_as_removals(page, tmp_path):
    """A page cut off mid-transfer (a proxy's limit, a dropped connection that httpx still hands
    over): the parser reads what is there, and the methods and types after the cut are "removed"."""
    cut = PAGE_102.index('name="sendmessage"') + 4000  # in sendMessage's parameter table
    line = refused(page, PAGE_102[:cut])
    assert "truncated" in line or "incomplete" in line or "end" in line


def test_a_page_cut_after_the_methods_we_use_is_refused_not_no_change(page, tmp_path):
    """Cut near the end (CallbackGame and GameHighScore are gone): ``diff`` says "no change in the
    6 operations we use" (exit 0) for a page that is not whole: the wrong "no change"."""
    cut = PAGE_102.index('<h4><a class="anchor" name="callbackgame"')
    assert drift_exit(page, PAGE_102[:cut], tmp_path) != 0


def test_entities_in_a_type_cell_still_split_into_types(page):
    """``Integer&nbsp;or&nbsp;String``: html.parser turns ``&nbsp;`` into U+00A0, which
    ``type_names`` does not split on: chat_id becomes one type named "Integer\\xa0or\\xa0String"."""
    html = PAGE_102.replace("<td>Integer or String</td>", "<td>Integer&nbsp;or&nbsp;String</td>")
    spec = json.loads(read(page, html))
    chat_id = next(f for f in spec["methods"]["sendMessage"]["fields"] if f["name"] == "chat_id")
    assert chat_id["types"] == ["Integer", "String"]


# --- the rollback past Render's build retention ---------------------------------------------------

from ci_tools.pipeline.release_order import rebuilds  # noqa: E402
from tests.pipeline.test_release import FAST, cli, deploy, releases_past_retention  # noqa: E402
from tests.support import use  # noqa: E402


def live_deploy(service) -> dict:
    return next(d for d in service.deploys if d["status"] == "live")


def test_an_ordinary_staging_deploy_of_an_older_commit_is_not_read_as_a_rebuild(world, monkeypatch, capsys):
    """Staging deploys any commit (no release order there): a, b, c, d, then a again (develop reset
    to a, say). ``rebuilds()`` reads that ordinary deploy as a rollback's rebuild, so d is
    "rolled back from", and ``rollback staging --previous`` skips it for c: the deploy that was
    live just before is never offered, and the command says d was rejected."""
    use(monkeypatch, world.secrets("staging"))
    service = world.services["staging"]
    a = world.commit("develop", "a")
    commits = [a] + [world.commit("develop", name) for name in ("b", "c", "d")]
    for commit in [*commits, a]:
        assert deploy("staging", commit) == 0
    from ci_tools.clients.render import Deploy

    listed = [Deploy.from_api(d) for d in service.deploys]
    assert all(d.trigger == "api" for d in listed)
    capsys.readouterr()
    assert cli("rollback", "staging", "--previous", *FAST, "--deadline", "5") == 0
    said = capsys.readouterr()
    back_on = live_deploy(service)["commit"]["id"]
    assert back_on == commits[3], f"went back to {'c' if back_on == commits[2] else back_on}, not d: {said.err}"
    assert rebuilds(listed) == set(), "an ordinary deploy of an older commit read as a rollback's rebuild"


def test_a_refusal_worded_otherwise_still_leads_to_the_rebuild(world, monkeypatch, capsys):
    """Render does not document the refusal's wording (render.com/docs/rollbacks; its description
    gives rollback-deploy only the generic 400BadRequest with ``message``). The client recognises it
    by "no longer" in the stand-in's own wording; worded otherwise ("build artifact has expired"),
    the rollback stops with a generic HTTP 400 and production stays on the bad commit."""
    use(monkeypatch, world.secrets("production"))
    service = world.services["production"]
    service.plan = "free"
    first, oldest = releases_past_retention(world, service, 3)
    render = world.render
    handle = render.handle

    def reworded(request):
        status, payload, headers = handle(request)
        if status == 400 and isinstance(payload, dict) and "no longer available" in str(payload.get("message")):
            payload = {"message": f"cannot roll back to {oldest['id']}: build artifact has expired"}
        return status, payload, headers

    monkeypatch.setattr(render, "handle", reworded)
    capsys.readouterr()
    code = cli("rollback", "production", "--to", oldest["id"], *FAST, "--deadline", "5")
    err = capsys.readouterr().err
    assert code == 0, err
    assert live_deploy(service)["commit"]["id"] == first


def test_history_after_a_rebuild_says_it_was_a_rollback(world, monkeypatch, capsys):
    """``ci-tools history`` links a Render rollback to its target ("rollback → dep-…"); the
    rebuild that release_order treats as a rollback lists as a plain "api" deploy of an old commit,
    and nothing in the history says the deploy before it is now rejected."""
    use(monkeypatch, world.secrets("production"))
    service = world.services["production"]
    service.plan = "free"
    _first, oldest = releases_past_retention(world, service, 3)
    assert cli("rollback", "production", "--to", oldest["id"], *FAST, "--deadline", "5") == 0
    rebuilt = live_deploy(service)
    capsys.readouterr()
    assert cli("history", "production", "--json") == 0
    rows = json.loads(capsys.readouterr().out)["releases"]
    row = next(r for r in rows if r["deploy"] == rebuilt["id"])
    assert row["back_to"] == oldest["id"] or "rebuil" in str(row["trigger"]), row


def test_a_rebuild_of_a_commit_gone_from_git_does_not_go_live(world, monkeypatch, capsys):
    """main was rewritten (force-pushed) after ``first`` was released, so ``first`` is in no
    repository any more. Render cannot build a commit it cannot check out; the stand-in's build
    finds no bot in the missing commit and runs the installed one, so the rebuild "goes live" and
    the rollback reports success for a commit that exists nowhere. Expected: the rebuild is
    refused or fails to build, in one line naming the commit, and the live deploy serves on."""
    use(monkeypatch, world.secrets("production"))
    service = world.services["production"]
    service.plan = "free"
    first, oldest = releases_past_retention(world, service, 3)
    repo = world.repo
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()

    git("checkout", "-q", "main")
    git("reset", "-q", "--hard", f"{first}~1")
    git("commit", "-q", "--allow-empty", "-m", "history rewritten")
    git("reflog", "expire", "--expire=now", "--all")
    git("gc", "-q", "--prune=now")
    assert subprocess.run(["git", "cat-file", "-e", f"{first}^{{commit}}"], cwd=repo).returncode != 0
    live = live_deploy(service)
    capsys.readouterr()
    code = cli("rollback", "production", "--to", oldest["id"], *FAST, "--deadline", "5")
    err = capsys.readouterr().err
    assert code != 0, "a commit that exists nowhere was rebuilt and reported live"
    assert first[:12] in err and len(err.strip().splitlines()) == 1
    assert live_deploy(service)["id"] == live["id"]


def test_a_rebuild_near_an_earlier_rollback_to_the_same_commit_still_rejects_what_it_replaced(
    world, monkeypatch, capsys
):
    """Free plan (2 builds kept). a is released, then b, c; a Render rollback to a's deploy (kept)
    rejects c. d and e are released (they descend from a). ``--to`` a's first deploy is now past
    retention, so a is rebuilt. ``rebuilds()`` measures the distance to the *commit's* last deploy
    (the rollback deploy of a, 3 back) instead of the target's, reads the rebuild as an ordinary
    deploy, and leaves e, which it replaced, unrejected: ``--previous`` goes straight back to e."""
    use(monkeypatch, world.secrets("production"))
    service = world.services["production"]
    service.plan = "free"
    a = world.commit("main", "a")
    assert deploy("production", a) == 0
    a1 = service.deploys[0]
    for name in ("b", "c"):
        assert deploy("production", world.commit("main", name)) == 0
    assert cli("rollback", "production", "--to", a1["id"], *FAST, "--deadline", "5") == 0
    assert service.deploys[0]["trigger"] == "rollback"
    d = world.commit("main", "d")
    e = world.commit("main", "e")
    assert deploy("production", d) == 0 and deploy("production", e) == 0
    capsys.readouterr()
    assert cli("rollback", "production", "--to", a1["id"], *FAST, "--deadline", "5") == 0
    rebuilt = service.deploys[0]
    assert rebuilt["trigger"] == "api" and rebuilt["commit"]["id"] == a  # the rebuild
    capsys.readouterr()
    assert cli("rollback", "production", "--previous", *FAST, "--deadline", "5") == 0
    back_on = live_deploy(service)["commit"]["id"]
    assert back_on != e, "--previous went back to e, the deploy the rebuild had just rolled back from"


def test_a_rebuild_overridden_by_another_deploy_is_not_reported_as_rolled_back(world, monkeypatch, capsys):
    """Render's default overlapping-deploy policy cancels a deploy in progress when a newer one is
    created (another job's release, an auto-deploy). A rebuild cancelled that way must end non-zero
    in one line, never "redeployed … probing"."""
    import threading

    from tests.support import wait_until

    use(monkeypatch, world.secrets("production"))
    service = world.services["production"]
    service.plan = "free"
    first, oldest = releases_past_retention(world, service, 3)
    other = world.commit("main", "another job's release")
    result: dict[str, int] = {}
    runner = threading.Thread(
        target=lambda: result.setdefault("code", cli("rollback", "production", "--to", oldest["id"], *FAST)),
        daemon=True,
    )
    capsys.readouterr()
    runner.start()
    wait_until(
        lambda: service.deploys[0]["commit"]["id"] == first and service.deploys[0]["status"] == "build_in_progress",
        "the rebuild building",
    )
    with httpx.Client(
        base_url=world.render.url, headers={"Authorization": f"Bearer {world.render_keys['production']}"}
    ) as c:
        assert c.post(f"/v1/services/{service.id}/deploys", json={"commitId": other}).status_code in (201, 202)
    runner.join(60)
    assert not runner.is_alive()
    out, err = capsys.readouterr()
    assert result["code"] != 0, out
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_a_rebuild_render_queues_is_followed_to_live(world, monkeypatch, capsys):
    """Holds: Render answers the rebuild's create 202 with no body (queued, the "Wait" policy);
    the rollback finds the deploy by its commit and follows it to live."""
    use(monkeypatch, world.secrets("production"))
    service = world.services["production"]
    service.plan = "free"
    first, oldest = releases_past_retention(world, service, 3)
    world.render.queue_creates = True
    capsys.readouterr()
    assert cli("rollback", "production", "--to", oldest["id"], *FAST, "--deadline", "5") == 0
    out = capsys.readouterr().out
    assert "(queued)" in out and live_deploy(service)["commit"]["id"] == first
