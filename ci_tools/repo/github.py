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
from ci_tools.repo.environment_gate import ConfiguredEnvironment, admits_unreviewed, github_environments
from ci_tools.repo.owner_files import read_dotenv
from ci_tools.repo.unreviewed_secrets import (
    NEVER_UNREVIEWED,
    digest,
    digest_variable,
    holds,
    refuse_production_values,
)
from ci_tools.repo.workflow_files import job_names, pull_request_checks, secrets_by_environment
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
    """The rulesets as GitHub gets them: each file's, its required checks completed from the workflows.

    A ruleset requires every check a pull request into its branch reports (``pull_request_checks``:
    the jobs of each workflow the pull request runs), whatever the repository's workflows are: the
    pipeline's own repository requires its lint too, an adopted one only what it has. A check the
    file names itself is required as well (and ``check`` says so when no job produces it)."""
    found = []
    for path in sorted((root / ".github" / "rulesets").glob("*.json")):
        ruleset = json.loads(path.read_text())
        for rule in ruleset.get("rules", []):
            if rule.get("type") == "required_status_checks":
                parameters = rule.setdefault("parameters", {})
                listed = {c["context"]: c for c in parameters.get("required_status_checks", [])}
                for name in _ruleset_checks(root, ruleset):
                    listed.setdefault(name, {"context": name, "integration_id": ACTIONS_APP_ID})
                parameters["required_status_checks"] = [listed[name] for name in sorted(listed)]
        found.append(ruleset)
    return found


def _ruleset_checks(root: Path, ruleset: dict[str, Any]) -> list[str]:
    """The checks every pull request into each branch the ruleset names reports (common to all)."""
    includes = ruleset.get("conditions", {}).get("ref_name", {}).get("include", [])
    branches = [ref.removeprefix("refs/heads/") for ref in includes if ref.startswith("refs/heads/")]
    per_branch = [set(pull_request_checks(root, branch)) for branch in branches or [""]]
    return sorted(set.intersection(*per_branch))


def required_checks(ruleset: dict[str, Any]) -> list[dict[str, Any]]:
    for rule in ruleset.get("rules", []):
        if rule.get("type") == "required_status_checks":
            return list(rule.get("parameters", {}).get("required_status_checks", []))
    return []


MODE_VARIABLE = "CI_TOOLS_GITHUB_MODE"  # the workflows read it: where secrets are, who guards main
# What the owner chose on a plan without environments: "accepted" (--production-secrets-in-repository)
# or "withheld". check reads it: production's repository secrets are a ⚠ when accepted, else a ✗.
PRODUCTION_CHOICE_VARIABLE = "CI_TOOLS_PRODUCTION_SECRETS"


def _environment_changes(
    api: GitHubAPI,
    config: Config,
    environments: Mapping[str, ConfiguredEnvironment],
    wanted_secrets: Mapping[str, set[str]],
    values: Mapping[str, str],
    *,
    update_secrets: bool,
    complete: bool,
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
            if (pattern, "branch") not in policies:
                changes.append(
                    Change(
                        f"environment {env.name}: {pattern} may deploy",
                        partial(GitHubAPI.add_branch_policy, env=env.name, pattern=pattern),
                    )
                )
        for (pattern, kind), policy_id in sorted(policies.items()):
            if kind != "branch" or pattern not in env.deploy_branches:  # an older develop; a tag named main
                changes.append(
                    Change(
                        f"environment {env.name}: {pattern}{'' if kind == 'branch' else f' ({kind})'} "
                        "may no longer deploy",
                        partial(GitHubAPI.delete_branch_policy, env=env.name, policy_id=policy_id),
                    )
                )
        existing = api.secret_names(env.name) if current else set()
        if admits_unreviewed(config, env):
            changes += _unreviewed_secret_changes(api, env, wanted_secrets, values, existing, update_secrets, complete)
            continue
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


def _unreviewed_secret_changes(
    api: GitHubAPI,
    env: ConfiguredEnvironment,
    wanted_secrets: Mapping[str, set[str]],
    values: Mapping[str, str],
    existing: set[str],
    update_secrets: bool,
    complete: bool,
) -> list[Change]:
    """An environment that admits unreviewed code holds what its workflows use and the values say,
    nothing else. With ``complete`` values (init's .env), a secret they no longer name is deleted
    (an older init's account-wide key, production's Redis as the copy's source) and, where the
    values differ from what setup last stored (its digest variable), every one is rewritten (an
    older init's shared snapshot key): GitHub never shows a value, so setup cannot compare them."""
    prefix = f"{env.values_from.upper()}_"
    allowed = wanted_secrets.get(env.name, set()) - NEVER_UNREVIEWED
    given = {n: values[prefix + n] for n in sorted(allowed) if values.get(prefix + n)}
    complete = complete and bool(given)  # values with none of this environment's say nothing of it
    variable = digest_variable(env.name)
    rewrite = update_secrets or (complete and not holds(api.variable(variable), given))
    changes = [
        Change(
            f"environment {env.name}: secret {name} ({'update' if name in existing else 'new'})",
            partial(GitHubAPI.put_secret, env=env.name, name=name, value=value),
        )
        for name, value in given.items()
        if name not in existing or rewrite
    ]
    unwanted = existing - allowed
    if complete:
        unwanted |= existing - set(given)
    changes += [
        Change(
            f"environment {env.name}: secret {name} deleted (it admits unreviewed code, and "
            f"{'no workflow there may use it' if name not in allowed else 'the values no longer name it'})",
            partial(GitHubAPI.delete_secret, env=env.name, name=name),
        )
        for name in sorted(unwanted)
    ]
    if complete and rewrite:
        changes.append(
            Change(
                f"repository variable {variable}: a salted digest of what {env.name} holds",
                partial(GitHubAPI.set_variable, name=variable, value=digest(given)),
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
            if env.values_from == target or n not in NEVER_UNREVIEWED
        }
    )


def _repository_secret_changes(
    api: GitHubAPI,
    config: Config,
    names: list[str],
    values: Mapping[str, str],
    *,
    update_secrets: bool,
    complete: bool,
) -> list[Change]:
    """No environments on this plan: each environment's secrets as repository secrets
    ``<ENV>_<NAME>``, which every workflow step reads after ``secrets.<NAME>``. Every other
    ``<ENV>_<NAME>`` repository secret is deleted: production's, withheld now (an older setup
    stored them by default), and all of them once the plan has environments (an upgrade). Staging's
    (every branch reads them) are held as its environment's would be: with ``complete`` values,
    what they no longer name is deleted and all are rewritten when they differ from the digest."""
    changes: list[Change] = []
    existing = api.repo_secret_names()
    rewrite: set[str] = set()
    remembered: list[Change] = []  # the digests, set once the secrets they describe are
    keep = {name for name in names if values.get(name)} if complete else set(names)
    unreviewed = {env.values_from for env in github_environments(config).values() if admits_unreviewed(config, env)}
    for env in sorted(unreviewed) if complete and names else []:
        prefix = f"{env.upper()}_"
        given = {n.removeprefix(prefix): values[n] for n in names if n.startswith(prefix) and values.get(n)}
        variable = digest_variable(env)
        if not given:  # values with none of this environment's say nothing of it
            keep |= {n for n in names if n.startswith(prefix)}
        elif update_secrets or not holds(api.variable(variable), given):
            rewrite |= {prefix + n for n in given}
            remembered.append(
                Change(
                    f"repository variable {variable}: a salted digest of what {env} holds",
                    partial(GitHubAPI.set_variable, name=variable, value=digest(given)),
                )
            )
    for name in names:
        value = values.get(name)
        if value and (name not in existing or update_secrets or name in rewrite):
            changes.append(
                Change(
                    f"repository secret {name} ({'update' if name in existing else 'new'})",
                    partial(GitHubAPI.put_repo_secret, name=name, value=value),
                )
            )
    unreviewed_prefixes = tuple(f"{env.upper()}_" for env in unreviewed)
    for name in sorted(_environment_repository_secrets(config, existing)):
        if name not in names or (name.startswith(unreviewed_prefixes) and name not in keep):
            changes.append(
                Change(
                    f"repository secret {name} deleted (every pushed branch's workflow reads it)",
                    partial(GitHubAPI.delete_repo_secret, name=name),
                )
            )
    return changes + remembered


def _environment_repository_secrets(config: Config, present: set[str]) -> set[str]:
    """The repository secrets named ``<ENV>_<NAME>`` (an environment's value, not BACKMERGE_TOKEN)."""
    prefixes = tuple(f"{env.upper()}_" for env in config.environments)
    return {name for name in present if name.startswith(prefixes)}


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
    complete: bool = False,
) -> list[Change]:
    """What setup would change, from what GitHub holds now; empty when all is in place.

    ``production_in_repository``: on a plan without environments, store production's secrets as
    repository secrets too (the owner accepts that any pushed branch's workflow can read them).
    ``complete``: the values are all an environment admitting unreviewed code should hold (init's
    .env), so what they no longer name is deleted there. A value for such an environment that equals
    a production secret stops the plan (ConfigError) before anything is read or written."""
    environments = github_environments(config)
    unreviewed = [env for env in environments.values() if admits_unreviewed(config, env)]
    refuse_production_values(config, {env.values_from for env in unreviewed}, values)
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
    wanted_secrets = secrets_by_environment(root, list(environments))
    if caps.environments:
        changes += _environment_changes(
            api, config, environments, wanted_secrets, values, update_secrets=update_secrets, complete=complete
        )
        names: list[str] = []  # every <ENV>_<NAME> repository secret is an older plan's: any branch reads it
    else:
        names = repository_secret_names(config, environments, wanted_secrets, production=production_in_repository)
        choice = "accepted" if production_in_repository else "withheld"
        if api.variable(PRODUCTION_CHOICE_VARIABLE) != choice:
            changes.append(
                Change(
                    f"repository variable {PRODUCTION_CHOICE_VARIABLE} = {choice}",
                    partial(GitHubAPI.set_variable, name=PRODUCTION_CHOICE_VARIABLE, value=choice),
                )
            )
    changes += _repository_secret_changes(
        api, config, names, values, update_secrets=update_secrets, complete=complete and not caps.environments
    )
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
                "drop it from .github/rulesets (setup requires every job a pull request runs) "
                "or rename the job back: a missing check blocks every merge",
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
        items += _environment_items(api, config, expected, wanted)
        held = sorted(_environment_repository_secrets(config, api.repo_secret_names()))
        items.append(
            Item(
                "no repository secret holds an environment's secret",
                not held,
                "none does" if not held else f"{held}: every pushed branch's workflow reads them",
                "ci-tools github setup --apply (deletes them: the environments hold their own)",
            )
        )
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


def _staging_keys(config: Config, expected: Mapping[str, ConfiguredEnvironment]) -> set[str]:
    """``RENDER_API_KEY`` names that are optional: an environment admitting unreviewed code deploys
    by a key scoped to its service or by its deploy hook alone (init gives it no key then), so
    neither its key nor production's copy of it is missing when absent."""
    return {
        name
        for env in expected.values()
        if admits_unreviewed(config, env)
        for name in ("RENDER_API_KEY", f"{env.values_from.upper()}_RENDER_API_KEY")
    }


def _render_power_item(name: str, holds_either: bool, service: str) -> Item:
    """An environment admitting unreviewed code without a deploy hook or scoped key cannot deploy:
    said as ⚠, as init says it, with the fix that never leads to the account-wide key."""
    return Item(
        f"environment {name}: can deploy on Render",
        True,
        "by its deploy hook or its own scoped key" if holds_either else "holds no deploy hook and no Render key",
        f"set {name.upper()}_RENDER_DEPLOY_HOOK_URL ({service} → Settings → Deploy Hook) or a "
        f"{name.upper()}_RENDER_API_KEY scoped to {service} alone, then ci-tools init and github setup --apply",
        warning=not holds_either,
    )


def _environment_items(
    api: GitHubAPI,
    config: Config,
    expected: Mapping[str, ConfiguredEnvironment],
    wanted: Mapping[str, set[str]],
) -> list[Item]:
    items: list[Item] = []
    environments = api.environments()
    held = {name: api.secret_names(name) for name in expected if name in environments}
    staging_keys = _staging_keys(config, expected)
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
        right = current.custom_branches and sorted(env.deploy_branches) == policies
        items.append(
            Item(
                f"environment {env.name}: deploys only {list(env.deploy_branches)}",
                right,
                str(policies) if current.custom_branches else "not limited to its branch policies (protected or all)",
                "ci-tools github setup --apply",
            )
        )
        present = held[env.name]
        unreviewed = admits_unreviewed(config, env)
        lacking = sorted(
            wanted.get(env.name, set())
            - present
            - OPTIONAL_SECRETS
            - staging_keys
            - (NEVER_UNREVIEWED if unreviewed else set())
        )
        items.append(
            Item(
                f"environment {env.name}: every secret its workflows use",
                not lacking,
                "all present" if not lacking else f"missing {lacking}",
                f"set {', '.join(f'{env.values_from.upper()}_{n}' for n in lacking)} "
                "and run ci-tools github setup --apply",
            )
        )
        if unreviewed:
            service = config.environments[env.values_from].render_service
            power = {"RENDER_API_KEY", "RENDER_DEPLOY_HOOK_URL"} & present
            items.append(_render_power_item(env.name, bool(power), service))
            extra = sorted(present - (wanted.get(env.name, set()) - NEVER_UNREVIEWED))
            items.append(
                Item(
                    f"environment {env.name}: holds nothing its workflows may not use",
                    not extra,
                    "nothing else" if not extra else f"also holds {extra}, which every unreviewed branch reads",
                    "ci-tools github setup --apply (deletes them)",
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
    lacking = sorted(staging - present - _staging_keys(config, expected))
    items = [
        Item(
            "staging's secrets are repository secrets <ENV>_<NAME>",
            not lacking,
            "all present" if not lacking else f"missing {lacking}",
            f"set {', '.join(lacking)} and run ci-tools github setup --apply",
        )
    ]
    target = f"{config.role('cutover_target').name.upper()}_"
    held = sorted(production & present | {n for n in present if n.startswith(target)})
    accepted = api.variable(PRODUCTION_CHOICE_VARIABLE) == "accepted"
    items.append(
        Item(
            "production's secrets and every pushed branch",
            not held or accepted,
            f"{len(held)} production secrets are repository secrets: any pushed branch's workflow can read them"
            if held
            else "withheld from the repository: production.yml, backup.yml and watch.yml cannot run in Actions",
            "ci-tools github setup --apply deletes them; make the repository public or upgrade (environments), "
            "and release from your machine meanwhile (ci-tools release production)"
            if held and not accepted
            else "make the repository public or upgrade (environments), or release from your machine "
            "(ci-tools release production)",
            warning=not held or accepted,
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
