"""The GitHub side of the pipeline as code: what it must be, how to get there, and whether it is.

Everything the branch flow and the deploys rest on but that lives in GitHub, not in
this repository: the ``staging`` and ``production`` environments (deployment
branches, production's reviewers), each environment's secrets (every name the
workflows running in it use), the rulesets in ``.github/rulesets/`` with their
required checks pinned to the GitHub Actions app, a read-only workflow token, Actions
allowed to open the back-merge PR (unless a ``BACKMERGE_TOKEN`` does), and the default
branch that dependabot's security updates target (``develop``: the flow refuses them
into ``main``). ``plan()`` lists the changes — secrets by name only — and ``check()``
reads it all back and judges it, ✓ or ✗ with the fix.

Where the plan has no environments (a private repository on GitHub Free), every secret is a
repository secret, and every workflow run of every pushed branch reads every repository secret:
nothing there can keep a feature branch from production's. So production's secrets (those of
every environment whose values are the cutover target's) are withheld from the repository
unless the owner accepts that in so many words (``--production-secrets-in-repository``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ci_tools.checklist import Item
from ci_tools.clients.github_rest import ACTIONS_APP_ID, Capabilities, GitHubAPI
from ci_tools.context import Context, check_ascii
from ci_tools.errors import ConfigError, FatalError, RemoteError
from ci_tools.repo.environment_gate import ConfiguredEnvironment, github_environments
from ci_tools.repo.owner_files import read_dotenv
from ci_tools.repo.workflow_files import job_names, secrets_by_environment
from ci_tools.settings import Config

# Needed only for the migration, or one of two ways: their absence is not a fault.
OPTIONAL_SECRETS = {
    "NEW_TELEGRAM_BOT_TOKEN",
    "PREVIOUS_TELEGRAM_BOT_TOKEN",
    "SOURCE_REDIS_URL",
    "RENDER_DEPLOY_HOOK_URL",
    "GITHUB_ADMIN_TOKEN",  # preflight.yml and acceptance.yml also check GitHub's settings with it
    "OWNER_CHAT_ID",  # without it nobody is told in Telegram; the runs still say everything
}


@dataclass(frozen=True)
class Change:
    what: str  # said to people: never a secret's value
    apply: Callable[[GitHubAPI], None]


def rulesets(root: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((root / ".github" / "rulesets").glob("*.json"))]


def required_checks(ruleset: dict[str, Any]) -> list[dict[str, Any]]:
    for rule in ruleset.get("rules", []):
        if rule.get("type") == "required_status_checks":
            return list(rule.get("parameters", {}).get("required_status_checks", []))
    return []


MODE_VARIABLE = "CI_TOOLS_GITHUB_MODE"  # the workflows read it: where secrets are, who guards main


def _environment_changes(
    api: GitHubAPI,
    environments: Mapping[str, ConfiguredEnvironment],
    wanted_secrets: Mapping[str, set[str]],
    values: Mapping[str, str],
    update_secrets: bool,
) -> list[Change]:
    """Each environment with its reviewers, deployment branches and secrets."""
    changes: list[Change] = []
    present = api.environments()
    for env in environments.values():
        reviewer_ids = [api.user_id(login) for login in env.reviewers]
        current = present.get(env.name)
        if (
            current is None
            or sorted(r.id for r in current.reviewers) != sorted(reviewer_ids)
            or not current.custom_branches
        ):
            changes.append(
                Change(
                    f"environment {env.name}: reviewers {list(env.reviewers) or 'none'}, custom deployment branches",
                    partial(GitHubAPI.put_environment, env=env.name, reviewer_ids=reviewer_ids),
                )
            )
        policies = api.branch_policy_ids(env.name) if current else {}
        for pattern in env.deploy_branches:
            if pattern not in policies:
                changes.append(
                    Change(
                        f"environment {env.name}: {pattern} may deploy",
                        partial(GitHubAPI.add_branch_policy, env=env.name, pattern=pattern),
                    )
                )
        for pattern, policy_id in sorted(policies.items()):
            if pattern not in env.deploy_branches:  # e.g. develop, which production-scheduled once admitted
                changes.append(
                    Change(
                        f"environment {env.name}: {pattern} may no longer deploy",
                        partial(GitHubAPI.delete_branch_policy, env=env.name, policy_id=policy_id),
                    )
                )
        existing = api.secret_names(env.name) if current else set()
        for name in sorted(wanted_secrets.get(env.name, set())):
            value = values.get(f"{env.values_from.upper()}_{name}")
            if value and (name not in existing or update_secrets):
                changes.append(
                    Change(
                        f"environment {env.name}: secret {name} ({'update' if name in existing else 'new'})",
                        partial(GitHubAPI.put_secret, env=env.name, name=name, value=value),
                    )
                )
    return changes


def repository_secret_names(
    config: Config,
    environments: Mapping[str, ConfiguredEnvironment],
    wanted_secrets: Mapping[str, set[str]],
    *,
    production: bool,
) -> list[str]:
    """The ``<ENV>_<NAME>`` repository secrets of a plan without environments; the cutover
    target's only with ``production`` (every pushed branch's workflows would read them)."""
    target = config.role("cutover_target").name
    return sorted(
        {
            f"{env.values_from.upper()}_{n}"
            for env in environments.values()
            if production or env.values_from != target
            for n in wanted_secrets.get(env.name, set())
        }
    )


def _repository_secret_changes(
    api: GitHubAPI,
    names: list[str],
    values: Mapping[str, str],
    update_secrets: bool,
) -> list[Change]:
    """No environments on this plan: each environment's secrets as repository secrets
    ``<ENV>_<NAME>``, which every workflow step reads after ``secrets.<NAME>``."""
    changes: list[Change] = []
    existing = api.repo_secret_names()
    for name in names:
        value = values.get(name)
        if value and (name not in existing or update_secrets):
            changes.append(
                Change(
                    f"repository secret {name} ({'update' if name in existing else 'new'})",
                    partial(GitHubAPI.put_repo_secret, name=name, value=value),
                )
            )
    return changes


def secret_values(config: Config, dotenv: Path | None, environ: Mapping[str, str]) -> dict[str, str]:
    """``STAGING_<NAME>`` / ``PRODUCTION_<NAME>`` values from ``environ`` or a dotenv file."""
    values = dict(environ)
    if dotenv is not None:
        if not dotenv.is_file():
            raise ConfigError(
                f"{dotenv} not found", hint="run `ci-tools init`, which writes it, or pass --secrets-file"
            )
        values |= read_dotenv(dotenv)
    prefixes = tuple(f"{env.upper()}_" for env in config.environments)
    found = {k: v for k, v in values.items() if k.startswith(prefixes) and v}
    for name, value in found.items():
        check_ascii(name, value)  # a .env value is not read through the Context
    return found


def plan(
    api: GitHubAPI,
    config: Config,
    root: Path,
    values: Mapping[str, str],
    *,
    update_secrets: bool = False,
    production_in_repository: bool = False,
) -> list[Change]:
    """What setup would change, from what GitHub holds now; empty when all is in place.

    ``production_in_repository``: on a plan without environments, store production's secrets as
    repository secrets too (the owner accepts that any pushed branch's workflow can read them)."""
    changes: list[Change] = []
    repo = api.repository()
    if repo.default_branch != config.default_branch and api.branch_sha(config.default_branch) is None:
        source = config.role("cutover_target").branch
        changes.append(  # GitHub refuses a default branch that does not exist (422)
            Change(
                f"branch {config.default_branch} created from {source}",
                partial(GitHubAPI.create_branch, branch=config.default_branch, from_branch=source),
            )
        )
    if repo.default_branch != config.default_branch:
        changes.append(
            Change(
                f"default branch {repo.default_branch} → {config.default_branch}",
                partial(GitHubAPI.set_default_branch, branch=config.default_branch),
            )
        )
    caps = api.capabilities()
    environments = github_environments(config)
    wanted_secrets = secrets_by_environment(root, list(environments))
    if caps.environments:
        changes += _environment_changes(api, environments, wanted_secrets, values, update_secrets)
    else:
        names = repository_secret_names(config, environments, wanted_secrets, production=production_in_repository)
        changes += _repository_secret_changes(api, names, values, update_secrets)
    if api.variable(MODE_VARIABLE) != caps.mode:
        changes.append(
            Change(
                f"repository variable {MODE_VARIABLE} = {caps.mode}",
                partial(GitHubAPI.set_variable, name=MODE_VARIABLE, value=caps.mode),
            )
        )
    by_name = api.rulesets() if caps.rulesets else {}
    for ruleset in rulesets(root) if caps.rulesets else []:
        found = by_name.get(ruleset["name"])
        if found is None or not ruleset_holds(ruleset, found):
            existing_id = found.get("id") if found else None
            changes.append(
                Change(
                    f"ruleset {ruleset['name']} ({'update' if found else 'import'})",
                    partial(GitHubAPI.save_ruleset, ruleset=ruleset, existing_id=existing_id),
                )
            )
    permissions = api.workflow_permissions()
    may_open = "BACKMERGE_TOKEN" not in api.repo_secret_names()
    if permissions.default != "read" or (may_open and not permissions.can_approve_pull_requests):
        changes.append(
            Change(
                "Actions: workflow token read-only" + (", may open the back-merge PR" if may_open else ""),
                partial(GitHubAPI.set_workflow_permissions, default="read", can_approve=may_open),
            )
        )
    return changes


def check(api: GitHubAPI, config: Config, root: Path) -> list[Item]:
    """Every fact read back and judged; each ✗ with the fix."""
    items: list[Item] = []
    try:
        repo = api.repository()
    except FatalError as exc:
        return [
            Item(
                "the token can read the repository",
                False,
                exc.message,
                exc.hint or "",
                remote=isinstance(exc, RemoteError),
            )
        ]
    admin = repo.admin
    items.append(
        Item(
            "the token has admin rights",
            admin,
            "admin" if admin else "no admin scope",
            "" if admin else "use a token with Administration: read (and write, for setup)",
        )
    )
    branch = repo.default_branch
    items.append(
        Item(
            f"the default branch is {config.default_branch}",
            branch == config.default_branch,
            str(branch),
            "ci-tools github setup --apply (dependabot's security PRs go to the default branch, "
            f"and the flow takes them only into {config.default_branch})",
        )
    )
    jobs = job_names(root)
    for ruleset in rulesets(root):
        missing = [c["context"] for c in required_checks(ruleset) if c["context"] not in jobs]
        items.append(
            Item(
                f"ruleset {ruleset['name']}: every required check is a job",
                not missing,
                "all are" if not missing else f"no job named {missing}",
                "rename the check in .github/rulesets or the job back: a missing check blocks every merge",
            )
        )
        unpinned = [c["context"] for c in required_checks(ruleset) if c.get("integration_id") != ACTIONS_APP_ID]
        items.append(
            Item(
                f"ruleset {ruleset['name']}: checks come from GitHub Actions",
                not unpinned,
                "pinned" if not unpinned else f"not pinned: {unpinned}",
                f"set integration_id {ACTIONS_APP_ID} on each required check",
            )
        )
    if not admin:
        items.append(
            Item(
                "environments, secrets, rulesets",
                None,
                "not readable without admin rights",
                "use a token with admin rights",
            )
        )
        return items
    caps = api.capabilities()
    expected = github_environments(config)
    wanted = secrets_by_environment(root, list(expected))
    items += _plan_items(repo.private, caps)
    if caps.environments:
        items += _environment_items(api, expected, wanted)
    else:
        items += _repository_secret_items(api, config, expected, wanted)
    mode = api.variable(MODE_VARIABLE)
    items.append(
        Item(
            f"repository variable {MODE_VARIABLE} says {caps.mode!r}",
            mode == caps.mode,
            str(mode),
            "ci-tools github setup --apply (the workflows read it)",
        )
    )
    present_rulesets = api.rulesets() if caps.rulesets else {}
    for ruleset in rulesets(root) if caps.rulesets else []:
        found = present_rulesets.get(ruleset["name"])
        same = found is not None and ruleset_holds(ruleset, found)
        items.append(
            Item(
                f"ruleset {ruleset['name']} is imported as in the repository",
                same,
                "imported" if same else ("not imported" if found is None else "differs"),
                "ci-tools github setup --apply",
            )
        )
    permissions = api.workflow_permissions()
    read_only = permissions.default == "read"
    items.append(
        Item(
            "the workflow token is read-only by default",
            read_only,
            permissions.default,
            "Settings → Actions → Workflow permissions: read (ci-tools github setup --apply)",
        )
    )
    token = "BACKMERGE_TOKEN" in api.repo_secret_names()
    may_open = token or permissions.can_approve_pull_requests
    items.append(
        Item(
            "the back-merge can open its PR",
            may_open,
            "BACKMERGE_TOKEN" if token else "Actions may open PRs" if may_open else "it may not",
            "allow Actions to create pull requests, or add a BACKMERGE_TOKEN secret",
        )
    )
    if may_open and not token:
        # GitHub: "events triggered by the GITHUB_TOKEN ... will not create a new workflow run"
        # (docs "Triggering a workflow from a workflow"), so the PR's required checks never
        # report, and the ruleset on develop keeps it unmergeable until someone pushes to it.
        items.append(
            Item(
                "the back-merge PR runs its checks",
                True,
                "opened with GITHUB_TOKEN: GitHub starts no workflow for it, so its required checks never report",
                "add a BACKMERGE_TOKEN repository secret (a fine-grained token: Contents and Pull requests, "
                "read and write)",
                warning=True,
            )
        )
    return items


def _environment_items(
    api: GitHubAPI, expected: Mapping[str, ConfiguredEnvironment], wanted: Mapping[str, set[str]]
) -> list[Item]:
    items: list[Item] = []
    environments = api.environments()
    for env in expected.values():
        current = environments.get(env.name)
        if current is None:
            items.append(
                Item(
                    f"environment {env.name} exists",
                    False,
                    "missing",
                    "ci-tools github setup --apply",
                )
            )
            continue
        reviewers = sorted(r.login for r in current.reviewers)
        missing_reviewers = [r for r in env.reviewers if r not in reviewers]
        items.append(
            Item(
                f"environment {env.name}: reviewers",
                not missing_reviewers,
                ", ".join(reviewers) or "none",
                f"add {missing_reviewers} as required reviewers (ci-tools github setup --apply)",
            )
        )
        policies = api.branch_policies(env.name)
        right = sorted(env.deploy_branches) == policies
        items.append(
            Item(
                f"environment {env.name}: deploys only {list(env.deploy_branches)}",
                right,
                str(policies),
                "ci-tools github setup --apply",
            )
        )
        present = api.secret_names(env.name)
        lacking = sorted(wanted.get(env.name, set()) - present - OPTIONAL_SECRETS)
        items.append(
            Item(
                f"environment {env.name}: every secret its workflows use",
                not lacking,
                "all present" if not lacking else f"missing {lacking}",
                f"set {', '.join(f'{env.values_from.upper()}_{n}' for n in lacking)} "
                "and run ci-tools github setup --apply",
            )
        )
    return items


def _repository_secret_items(
    api: GitHubAPI, config: Config, expected: Mapping[str, ConfiguredEnvironment], wanted: Mapping[str, set[str]]
) -> list[Item]:
    """Staging's repository secrets must all be there; production's are the owner's choice (withheld
    by default: every pushed branch would read them), said as a warning either way."""
    present = api.repo_secret_names()
    required = {n: set(ns) - OPTIONAL_SECRETS for n, ns in wanted.items()}
    staging = set(repository_secret_names(config, expected, required, production=False))
    production = set(repository_secret_names(config, expected, required, production=True)) - staging
    lacking = sorted(staging - present)
    items = [
        Item(
            "staging's secrets are repository secrets <ENV>_<NAME>",
            not lacking,
            "all present" if not lacking else f"missing {lacking}",
            f"set {', '.join(lacking)} and run ci-tools github setup --apply",
        )
    ]
    held = sorted(production & present)
    items.append(
        Item(
            "production's secrets and every pushed branch",
            True,
            f"{len(held)} production secrets are repository secrets: any pushed branch's workflow can read them"
            if held
            else "withheld from the repository: production.yml, backup.yml and watch.yml cannot run in Actions",
            "make the repository public or upgrade (environments), or keep them out and release from your machine "
            "(ci-tools release production)",
            warning=True,
        )
    )
    return items


def _plan_items(private: bool, caps: Capabilities) -> list[Item]:
    """What the plan lacks, said as ⚠ (it is the owner's plan, not a fault), with what guards instead."""
    if caps.environments and caps.rulesets:
        return []
    lacks = [word for word, has in (("environments", caps.environments), ("rulesets", caps.rulesets)) if not has]
    where = "private repository on GitHub Free" if private and not caps.environments else "this repository's plan"
    detail = (
        f"{where}: no {', no '.join(lacks)}"
        + (
            ", no required reviewers — every pushed branch's workflows read every repository secret, "
            "so production's are withheld unless setup is told --production-secrets-in-repository"
            if not caps.environments
            else ""
        )
        + ("; the flow is enforced when production deploys" if not caps.rulesets else "")
    )
    return [
        Item(
            "what GitHub's plan protects",
            True,
            detail,
            "make the repository public, or upgrade to GitHub Pro (environments) / Enterprise (required reviewers)",
            warning=True,
        )
    ]


def check_if_possible(ctx: Context, root: Path, *, budget: float | None = None) -> list[Item]:
    """``check()`` when a token and a repository are at hand; otherwise say it was not checked."""
    token, repo = ctx.github_token(), ctx.runner.repository
    if not token or not repo:
        return [
            Item(
                "GitHub's environments, secrets and rulesets",
                True,
                "not checked: no GITHUB_TOKEN and GITHUB_REPOSITORY",
                "export both, or run ci-tools github check",
                warning=True,
            )
        ]
    with ctx.github(token, repo, budget=budget) as api:
        return check(api, ctx.config, root)


RULESET_FIELDS = ("target", "enforcement", "conditions", "rules", "bypass_actors")


def ruleset_holds(wanted: dict[str, Any], found: dict[str, Any]) -> bool:
    """Does GitHub's ruleset hold everything the file sets? What GitHub adds on read-back (server
    fields such as ``source`` or ``_links``, default parameters such as a pull request rule's
    ``required_reviewers: []``) is ignored; a rule, check or bypass actor that the file does not
    name, or a value it sets differently, is a difference."""
    return all(_holds(wanted.get(key), found.get(key)) for key in RULESET_FIELDS if key in wanted)


def _key(item: Any) -> Any:
    """What identifies an entry of a list of objects: a rule by type, a check by context."""
    if isinstance(item, dict):
        return item.get("type", item.get("context", item.get("actor_id", json.dumps(item, sort_keys=True))))
    return item


def _holds(wanted: Any, found: Any) -> bool:
    if isinstance(wanted, dict):
        return isinstance(found, dict) and all(_holds(v, found.get(k)) for k, v in wanted.items())
    if isinstance(wanted, list):
        if not isinstance(found, list) or len(found) != len(wanted):
            return False
        if all(not isinstance(item, dict) for item in wanted):
            return sorted(map(str, wanted)) == sorted(map(str, found))
        by_key = {_key(item): item for item in found}
        return all(_key(item) in by_key and _holds(item, by_key[_key(item)]) for item in wanted)
    return bool(wanted == found)
