"""The branch flow: ``feature/*``/``fix/*`` → ``develop`` → ``main``, ``hotfix/*`` → ``main``.

GitHub rulesets can say which branch a PR writes to, never which branch it comes
from; this check closes that gap as a required status check. Every refusal says
where the branch should go instead, because the person reading it is mid-PR.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ci_tools.errors import ConfigError, InputError

# git check-ref-format's rules, in short: what no branch name may contain.
_BAD_REF = re.compile(r"(^/|/$|//|\.\.|@\{|[\x00-\x20~^:?*\[\\\x7f]|\.lock(/|$)|(^|/)\.|\.$)")
_KEBAB = r"[a-z0-9]+(?:-[a-z0-9]+)*"
NAME_RULES = {
    "feature": re.compile(rf"^feature/{_KEBAB}$"),
    "fix": re.compile(rf"^fix/{_KEBAB}$"),
    "hotfix": re.compile(rf"^hotfix/{_KEBAB}$"),
}
LONG_LIVED = ("main", "develop")


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    message: str


def _pattern(pattern: str) -> re.Pattern[str]:
    """``feature/*`` → one non-empty path segment after ``feature/``; ``**`` → any depth."""
    deep = ["[^/]+".join(re.escape(part) for part in chunk.split("*")) for chunk in pattern.split("**")]
    return re.compile("^" + ".+".join(deep) + "$")


def matches(pattern: str, branch: str) -> bool:
    return bool(_pattern(pattern).match(branch))


def bases_for(flow: dict[str, tuple[str, ...]], head: str) -> list[str]:
    """The bases a head branch may open a PR into."""
    return [base for base, heads in flow.items() if any(matches(p, head) for p in heads)]


def _describe(flow: dict[str, tuple[str, ...]]) -> str:
    return "; ".join(f"{', '.join(heads)} → {base}" for base, heads in flow.items())


def check_pair(
    flow: dict[str, tuple[str, ...]],
    base: str,
    head: str,
    *,
    head_repo: str | None = None,
    repo: str | None = None,
) -> Verdict:
    """May a PR from ``head`` merge into ``base``? Always says why, and what to do instead."""
    if not base or not head:
        raise InputError("both --base and --head are needed", hint="pass the PR's base and head branches")
    if _BAD_REF.search(head):
        return Verdict(False, f"{head!r} is not a valid branch name; rename it, e.g. feature/short-name")
    if base not in flow:
        return Verdict(True, f"{base!r} is not governed by the branch flow; nothing to check")
    if head_repo and repo and head_repo.lower() != repo.lower():
        return Verdict(
            False,
            f"a PR from the fork {head_repo} cannot go straight into {base}; a maintainer pushes it "
            f"to a feature/* branch of {repo} and opens the PR from there",
        )
    if any(matches(pattern, head) for pattern in flow[base]):
        return Verdict(True, f"{head} → {base} follows the flow")
    targets = bases_for(flow, head)
    if targets:
        return Verdict(
            False,
            f"{head} may not merge into {base}; retarget this PR to {' or '.join(targets)} (flow: {_describe(flow)})",
        )
    lowered = [b for b in bases_for(flow, head.lower()) if head.lower() != head]
    hint = f" (branch names are lower-case: did you mean {head.lower()}?)" if lowered else ""
    return Verdict(
        False,
        f"{head!r} matches no branch in the flow{hint}; name it feature/<name> or fix/<name> "
        f"for develop, hotfix/<name> for main (flow: {_describe(flow)})",
    )


def check_name(branch: str) -> Verdict:
    """Branch names: ``feature/<kebab-case>``, ``fix/…``, ``hotfix/…``, or a long-lived branch."""
    if branch in LONG_LIVED:
        return Verdict(True, f"{branch} is a long-lived branch")
    kind = branch.split("/", 1)[0]
    rule = NAME_RULES.get(kind)
    if rule and rule.match(branch):
        return Verdict(True, f"{branch} is a valid {kind} branch name")
    suggestion = re.sub(r"[^a-z0-9]+", "-", branch.split("/", 1)[-1].lower()).strip("-") or "short-name"
    prefix = kind if rule else "feature"
    return Verdict(
        False,
        f"{branch!r} is not a valid branch name; use {prefix}/<kebab-case>, e.g. {prefix}/{suggestion}",
    )


def arrived_problem(flow: dict[str, tuple[str, ...]], base: str, sha: str, pulls: list[dict[str, Any]]) -> str | None:
    """Where GitHub offers no ruleset (a private repository on Free), the flow's guard at deploy
    time: ``sha`` on ``base`` must be the merge of a PR from a head the flow admits into it.
    None when it is; else what is wrong, said in one line."""
    heads = flow.get(base, ())
    for pull in pulls:
        head = str((pull.get("head") or {}).get("ref", ""))
        if (
            pull.get("merged_at")
            and pull.get("merge_commit_sha") == sha
            and (pull.get("base") or {}).get("ref") == base
            and any(matches(pattern, head) for pattern in heads)
        ):
            return None
    came = [f"#{p.get('number')} from {(p.get('head') or {}).get('ref')}" for p in pulls]
    return f"{sha[:7]} reached {base} without a merged PR from {', '.join(heads)}" + (
        f" (its PRs: {', '.join(came)})" if came else " (no PR brought it)"
    )


MODE_WORDS = ("environments", "repository-secrets", "no-rulesets")  # what github setup records


def arrival_checked(mode: str) -> bool:
    """Must ``flow arrived`` hold the flow for this plan? ``mode`` is the repository variable
    ``CI_TOOLS_GITHUB_MODE`` that ``github setup`` records. Unset or unknown, nobody knows whether a
    ruleset guards ``main``, so it fails closed: a deploy waits for setup rather than risk one."""
    words = mode.split()
    unknown = [word for word in words if word not in MODE_WORDS]
    if not words or unknown:
        what = "is not set" if not words else f"says {' '.join(unknown)!r}, which ci-tools does not know"
        raise ConfigError(
            f"the repository variable CI_TOOLS_GITHUB_MODE {what}, so nothing tells whether a ruleset guards "
            "main: not deploying",
            hint="run ci-tools github setup --apply (it records the plan's mode), then re-run this workflow",
        )
    return "no-rulesets" in words
