"""What the repository's workflow files say, read statically: the jobs, the checks a pull
request gets, the secrets each environment must hold for the jobs that run in it, and which
files are the pipeline's own and which every adopted repository gets.

The pipeline's repository has two kinds of workflow. Most are the pipeline itself (deploy,
probe, roll back, back up, the bot's own tests in ci.yml) and are copied into every repository
that adopts it; ``OURS_ONLY`` are this repository's checks on its own code (its lint and test
suite, the drift of the provider descriptions its stand-ins are held to), which no bot needs.
That list is here and nowhere else: ``ci-tools adopt`` copies ``adopted_set()``.

The setup action installs ci-tools as ``pylock.toml`` beside it pins it (PEP 751, every
package by version and sha256). In this repository the pin is the checkout itself (editable:
the pipeline's workflows run the pipeline's own code); ``pinned_lock()`` turns it into the pin
an adopted repository installs (a commit of the pipeline's repository, or a wheel by hash).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import yaml

from ci_tools.errors import ConfigError

# This repository's checks on its own code, never copied into an adopted repository.
OURS_ONLY = frozenset({"ci-self.yml", "contract-drift.yml"})
SETUP_ACTION = ".github/actions/setup-ci-tools"
PIN = f"{SETUP_ACTION}/pylock.toml"  # what the setup action installs, pinned

_SECRET = re.compile(r"secrets\.([A-Z][A-Z0-9_]*)")
# ``secrets.NAME || secrets.PRODUCTION_NAME``: the second is the repository-secret fallback of a
# plan without environments (CI_TOOLS_GITHUB_MODE), not a secret the environment holds.
_FALLBACK = re.compile(r"(?:\|\||&&)\s*secrets\.([A-Z][A-Z0-9_]*)")
_BUILT_IN = {"GITHUB_TOKEN"}


def load_workflows(root: Path) -> dict[str, dict[str, Any]]:
    """Each workflow file, parsed; a copy the caller may change. ``github check`` reads the
    files once per ruleset and branch, so a file's text is parsed once per process (parsing them
    each time was most of what a check itself spent, profiled)."""
    return {
        path.name: copy.deepcopy(_parsed(path.read_text()))
        for path in sorted((root / ".github" / "workflows").glob("*.yml"))
    }


@functools.lru_cache(maxsize=128)
def _parsed(text: str) -> dict[str, Any]:
    document: dict[Any, Any] = yaml.safe_load(text) or {}
    if True in document:  # YAML 1.1 reads the key `on` as true
        document["on"] = document.pop(True)
    return document


def job_names(root: Path) -> set[str]:
    """The names checks report under (a job's ``name``, else its id)."""
    return {str(job.get("name", key)) for doc in load_workflows(root).values() for key, job in doc["jobs"].items()}


def job_environments(job: dict[str, Any], document: dict[str, Any], known: list[str]) -> list[str]:
    """The GitHub environments a job may run in: a literal, or each choice of the dispatch input
    its expression names (``${{ inputs.environment }}``, options [production, staging]); any of
    ``known`` for an expression no choice bounds."""
    environment = job.get("environment")
    name = str(environment.get("name") if isinstance(environment, dict) else environment or "")
    if not name:
        return []
    if "${{" not in name:
        return [name]
    inputs = ((document.get("on") or {}).get("workflow_dispatch") or {}).get("inputs") or {}
    for key, spec in inputs.items():
        if f"inputs.{key}" in name and isinstance(spec, dict) and spec.get("options"):
            return [str(option) for option in spec["options"]]
    return known


def secrets_by_environment(root: Path, environments: list[str]) -> dict[str, set[str]]:
    """Every ``secrets.NAME`` a job uses, under each environment the job runs in."""
    wanted: dict[str, set[str]] = {env: set() for env in environments}
    for document in load_workflows(root).values():
        for job in document["jobs"].values():
            text = json.dumps(job, default=str)  # every string of the job, in one text to search
            names = set(_SECRET.findall(_FALLBACK.sub("", text))) - _BUILT_IN
            for env in job_environments(job, document, environments):
                wanted.setdefault(env, set()).update(names)
    return wanted


def _triggers(document: dict[str, Any]) -> dict[str, Any]:
    """``on:`` as a mapping, whichever of its three YAML forms the file uses."""
    on = document.get("on") or {}
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return dict(on)


def _filter(pattern: str) -> re.Pattern[str]:
    """A GitHub branch filter: ``*`` is anything but ``/``, ``**`` anything."""
    return re.compile(
        "".join(".*" if p == "**" else "[^/]*" if p == "*" else re.escape(p) for p in re.split(r"(\*\*|\*)", pattern))
    )


def runs_on_pull_requests_into(document: dict[str, Any], branch: str) -> bool:
    """Does a pull request into ``branch`` run this workflow (its ``branches`` filters)?"""
    triggers = _triggers(document)
    if "pull_request" not in triggers:
        return False
    spec = triggers["pull_request"] or {}
    if "branches" in spec:
        return any(_filter(p).fullmatch(branch) for p in spec["branches"] or [])
    if "branches-ignore" in spec:
        return not any(_filter(p).fullmatch(branch) for p in spec["branches-ignore"] or [])
    return True


def pull_request_checks(root: Path, branch: str) -> list[str]:
    """The checks every pull request into ``branch`` reports: the jobs of each workflow it runs.

    These, and only these, may be required of it: a required check that no workflow produces
    never reports and blocks every merge; a job a pull request runs but nobody requires lets a
    red one merge. ``ci-tools github setup`` requires them (repo/github.py ``rulesets``)."""
    return sorted(
        {
            str(job.get("name", key))
            for document in load_workflows(root).values()
            if runs_on_pull_requests_into(document, branch)
            for key, job in document["jobs"].items()
        }
    )


def adopted_workflows(root: Path) -> list[Path]:
    """The workflow files every adopted repository gets: all of them but ``OURS_ONLY``."""
    return [p for p in sorted((root / ".github" / "workflows").glob("*.yml")) if p.name not in OURS_ONLY]


def adopted_set(root: Path) -> list[str]:
    """What ``ci-tools adopt`` copies, as paths relative to ``root``: the adopted workflows, the
    setup action (its ``pylock.toml`` to be written with ``pinned_lock``), the rulesets."""
    files = [*adopted_workflows(root), *sorted((root / SETUP_ACTION).iterdir())]
    files += sorted((root / ".github" / "rulesets").glob("*.json"))
    return [p.relative_to(root).as_posix() for p in files if p.is_file()]


# The pipeline's own entry in this repository's pylock.toml: the checkout (three folders up).
_OWN_ENTRY = re.compile(r'^directory = \{ path = "(?:\.\./){3}", editable = true \}$', re.M)
_COMMIT = re.compile(r"^git\+(https://[^\s\"'\\]+?)(?:\.git)?@([0-9a-f]{40})$")
_WHEEL = re.compile(r"^([^\s\"'\\]+\.whl)#sha256=([0-9a-f]{64})$")


def pin_entry(source: str) -> str:
    """The pylock.toml entry that installs ci-tools from ``source`` (``pinned_lock``'s forms);
    ConfigError naming both forms for anything else (a branch, a wheel without its hash)."""
    if commit := _COMMIT.match(source):
        return f'vcs = {{ type = "git", url = "{commit[1]}", commit-id = "{commit[2]}" }}'
    if wheel := _WHEEL.match(source):
        where = "url" if "://" in wheel[1] else "path"
        return f'wheels = [{{ {where} = "{wheel[1]}", hashes = {{ sha256 = "{wheel[2]}" }} }}]'
    raise ConfigError(
        f"cannot pin ci-tools to {source!r}",
        hint="give git+https://github.com/<owner>/<repo>@<40-hex commit> or <wheel>#sha256=<hex>",
    )


def pinned_lock(lock: str, source: str) -> str:
    """This repository's ``pylock.toml`` with the pipeline's own entry pinned to ``source``.

    ``source`` is ``git+https://<host>/<owner>/<repo>@<40-hex commit>`` (a commit of the
    pipeline's repository) or ``<wheel URL or absolute path>#sha256=<hex>`` (a built wheel, by
    hash). The dependencies keep their versions and hashes: an adopted repository runs the
    pipeline with exactly the libraries its tests ran with."""
    if len(_OWN_ENTRY.findall(lock)) != 1:
        raise ConfigError(
            f"{PIN} does not install the checkout (one editable entry three folders up)",
            hint="regenerate it as its first lines say",
        )
    entry = pin_entry(source)
    return _OWN_ENTRY.sub(lambda _: entry, lock)
