"""What the repository's workflow files say, read statically: the jobs, and the secrets each
environment must hold for the jobs that run in it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

_SECRET = re.compile(r"secrets\.([A-Z][A-Z0-9_]*)")
# ``secrets.NAME || secrets.PRODUCTION_NAME``: the second is the repository-secret fallback of a
# plan without environments (CI_TOOLS_GITHUB_MODE), not a secret the environment holds.
_FALLBACK = re.compile(r"(?:\|\||&&)\s*secrets\.([A-Z][A-Z0-9_]*)")
_BUILT_IN = {"GITHUB_TOKEN"}


def load_workflows(root: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted((root / ".github" / "workflows").glob("*.yml")):
        document = yaml.safe_load(path.read_text()) or {}
        if True in document:  # YAML 1.1 reads the key `on` as true
            document["on"] = document.pop(True)
        found[path.name] = document
    return found


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
            text = yaml.safe_dump(job, width=10**6)
            names = set(_SECRET.findall(_FALLBACK.sub("", text))) - _BUILT_IN
            for env in job_environments(job, document, environments):
                wanted.setdefault(env, set()).update(names)
    return wanted
