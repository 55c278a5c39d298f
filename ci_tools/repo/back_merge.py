"""After a release or hotfix lands on ``main``, ``develop`` must contain ``main``.

Otherwise the next release from ``develop`` silently drops the hotfix. When
``develop`` lags, this opens the back-merge PR ``main`` → ``develop`` through the
GitHub REST API, or, when the workflow token may not open PRs, says exactly what
to run instead.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from ci_tools.context import Context
from ci_tools.errors import ConfigError, RemoteError
from ci_tools.http import MaybeDone


@dataclass(frozen=True)
class BackmergeResult:
    needed: bool
    pr_url: str | None
    message: str


def contains(target: str, source: str, *, cwd: str | None = None) -> bool:
    """Is every commit of ``source`` already in ``target``? (git merge-base --is-ancestor)"""
    result = subprocess.run(
        ["git", "merge-base", "--is-ancestor", source, target],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode in (0, 1):
        return result.returncode == 0
    raise ConfigError(
        f"git cannot compare {source} and {target}: {result.stderr.strip()[:200]}",
        hint="fetch both branches first (actions/checkout with fetch-depth: 0)",
    )


def manual_steps(source: str, target: str) -> str:
    return (
        f"git fetch origin && git switch -c backmerge/{source}-into-{target} origin/{target} && "
        f"git merge --no-ff origin/{source} && git push -u origin HEAD, then open a PR into {target}"
    )


def open_pr(ctx: Context, repo: str, token: str, source: str, target: str) -> str | None:
    """Open the PR; return its URL, or None when the token may not open PRs.

    A create is not retried blindly (``ci_tools.http``): GitHub's 422 "already exists"
    after a lost answer finds the PR the first attempt opened.
    """
    body = {
        "title": f"Back-merge {source} into {target}",
        "head": source,
        "base": target,
        "body": f"`{target}` does not contain `{source}` (a release or hotfix landed). "
        f"Merge this so the next release keeps it.",
    }
    with ctx.github(token, repo) as api:

        def existing() -> str | None:
            try:
                found = api.send(
                    "GET",
                    f"/repos/{repo}/pulls",
                    "finding the open back-merge PR",
                    params={"head": f"{repo.split('/')[0]}:{source}", "base": target, "state": "open"},
                )
            except RemoteError:
                return None
            pulls = found.json() if found.is_success else []
            return str(pulls[0]["html_url"]) if pulls else None

        try:
            response = api.send("POST", f"/repos/{repo}/pulls", "opening the back-merge PR", json=body)
        except MaybeDone as lost:  # the PR may exist now: look before saying anything
            url = existing()
            if url:
                return url
            raise RemoteError(
                f"{lost.message}; no back-merge PR was opened", hint=manual_steps(source, target)
            ) from None
        if response.status_code == 201:
            return str(response.json()["html_url"])
        if response.status_code == 422 and "already exists" in response.text:
            return existing() or f"https://github.com/{repo}/pulls"
        if response.status_code == 403:
            return None
    raise RemoteError(
        f"GitHub refused the back-merge PR: HTTP {response.status_code}",
        hint=manual_steps(source, target),
    )


def backmerge(
    ctx: Context,
    repo: str | None,
    token: str | None,
    *,
    source: str = "origin/main",
    target: str = "origin/develop",
) -> BackmergeResult:
    if contains(target, source):
        return BackmergeResult(False, None, f"{target} already contains {source}")
    short_source, short_target = source.split("/")[-1], target.split("/")[-1]
    if not repo or not token:
        return BackmergeResult(
            True,
            None,
            f"{target} lacks commits of {source}; {manual_steps(short_source, short_target)}",
        )
    url = open_pr(ctx, repo, token, short_source, short_target)
    if url is None:
        return BackmergeResult(
            True,
            None,
            f"{target} lacks commits of {source} and this token may not open PRs "
            f"(Settings → Actions → 'Allow GitHub Actions to create pull requests'); "
            f"{manual_steps(short_source, short_target)}",
        )
    return BackmergeResult(True, url, f"opened the back-merge PR {url}")
