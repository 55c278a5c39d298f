"""Which deploys were rejected, and what ``rollback --previous`` picks: from the deploy list alone."""

from __future__ import annotations

from ci_tools.clients.render import Deploy
from ci_tools.pipeline.release_order import previous_target, rebuilds, rejected


def history(*rows: str) -> list[Deploy]:
    """Newest first: 'id commit status [trigger]'."""
    deploys = []
    for row in rows:
        id_, commit, status, *trigger = row.split()
        deploys.append(Deploy(id_, status, commit, trigger=trigger[0] if trigger else "api"))
    return deploys


def test_the_deploy_a_rollback_went_away_from_is_rejected():
    deploys = history("dep-r g live rollback", "dep-b b deactivated", "dep-g g deactivated")
    assert rejected(deploys) == {"dep-b": "was rolled back from by dep-r"}
    target, skipped = previous_target(deploys)
    assert target is None
    assert [s.line() for s in skipped] == [
        "dep-b (b) was rolled back from by dep-r",
        "dep-g (g) carries the live commit",
    ]


def test_previous_skips_failed_and_rejected_and_takes_the_next_good_one():
    deploys = history(
        "dep-r2 c live rollback",
        "dep-x x build_failed",
        "dep-b b deactivated",
        "dep-c c deactivated",
        "dep-a a deactivated",
    )
    target, skipped = previous_target(deploys)
    assert target is not None and target.id == "dep-a"
    assert [s.deploy.id for s in skipped] == ["dep-b", "dep-c"]


def test_an_earlier_deploy_of_a_commit_rejected_later_is_rejected_too():
    deploys = history(
        "dep-r a live rollback",
        "dep-c2 c deactivated",  # c again, rolled back from
        "dep-a a deactivated",
        "dep-c1 c deactivated",  # the same code, earlier: going back to it brings c back
        "dep-z z deactivated",
    )
    found = rejected(deploys)
    assert set(found) == {"dep-c2", "dep-c1"}
    target, _ = previous_target(deploys)
    assert target is not None and target.id == "dep-z"


def test_a_commit_rejected_once_and_released_fine_later_is_a_target_again():
    deploys = history("dep-n n live", "dep-c2 c deactivated", "dep-r a deactivated rollback", "dep-c1 c deactivated")
    assert rejected(deploys) == {"dep-c1": "was rolled back from by dep-r"}
    target, _ = previous_target(deploys)
    assert target is not None and target.id == "dep-c2"


def test_a_rebuild_past_build_retention_rejects_what_it_replaced_as_a_rollback_does():
    """Render no longer kept a's build (3 previous ones back, past a free service's 2), so the
    rollback deployed a again (trigger api): it goes back in release order, so f is rejected."""
    deploys = history(
        "dep-a2 a live", "dep-f f deactivated", "dep-e e deactivated", "dep-d d deactivated", "dep-a1 a deactivated"
    )
    assert rebuilds(deploys, ordered=True) == {"dep-a2"}
    assert rejected(deploys, ordered=True) == {"dep-f": "was rolled back from by dep-a2 (a rebuild of a)"}
    target, _ = previous_target(deploys, ordered=True)
    assert target is not None and target.id == "dep-e"


def test_where_releases_keep_no_order_a_deploy_of_an_older_commit_is_no_rebuild():
    """Staging deploys any commit: the same list there is a, d, e, f, then a again on purpose."""
    deploys = history(
        "dep-a2 a live", "dep-f f deactivated", "dep-e e deactivated", "dep-d d deactivated", "dep-a1 a deactivated"
    )
    assert rebuilds(deploys) == set() and rejected(deploys) == {}
    target, _ = previous_target(deploys)
    assert target is not None and target.id == "dep-f"


def test_only_a_deploy_past_every_plan_build_retention_is_read_as_a_rebuild():
    """Two previous builds back, Render rolls back on any plan: a deploy of that commit is no rebuild."""
    deploys = history("dep-a2 a live", "dep-f f deactivated", "dep-e e deactivated", "dep-a1 a deactivated")
    assert rebuilds(deploys, ordered=True) == set()


def test_a_forward_release_of_a_commit_once_rolled_back_is_no_rebuild():
    """b was rolled back from (by Render, to a), then released again: b first went live after a."""
    deploys = history(
        "dep-b2 b live",
        "dep-r a deactivated rollback",
        "dep-e e deactivated",
        "dep-d d deactivated",
        "dep-b1 b deactivated",
        "dep-a a deactivated",
    )
    assert rebuilds(deploys, ordered=True) == set()
    assert rejected(deploys, ordered=True)["dep-e"] == "was rolled back from by dep-r"
    assert "dep-b2" not in rejected(deploys, ordered=True)
