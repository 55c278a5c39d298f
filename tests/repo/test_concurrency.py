"""No push or schedule ever displaces a dispatched rollback, cutover or memory job.

GitHub's documented group semantics (docs.github.com, "Control the concurrency of workflows
and jobs"): in a concurrency group at most one job runs and one is pending; "any existing
pending job or workflow in the same concurrency group, if it exists, will be canceled and the
new queued job or workflow will take its place"; with ``cancel-in-progress`` the running one is
cancelled too. ``Groups`` plays exactly that, and the test runs every ordering of an
automatic job (push, schedule) and a dispatched operation through it, with the groups the
workflow files name. CONTRIBUTING's "Concurrency" paragraph states the design this holds.
"""

from __future__ import annotations

import itertools
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ci_tools.repo.workflow_files import load_workflows
from tests.support import ROOT

AUTOMATIC = ("push", "schedule", "pull_request")
_INPUT = re.compile(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}")


@dataclass
class Groups:
    running: dict[str, str] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)

    def queue(self, group: str, job: str, cancel_in_progress: bool) -> None:
        if group not in self.running:
            self.running[group] = job
            return
        if group in self.pending:
            self.cancelled.append(self.pending.pop(group))
        if cancel_in_progress:
            self.cancelled.append(self.running[group])
            self.running[group] = job
        else:
            self.pending[group] = job


@dataclass(frozen=True)
class Queued:
    name: str  # workflow/job (inputs)
    group: str
    cancel_in_progress: bool
    dispatched_only: bool


def input_choices(document: dict) -> list[dict[str, str]]:
    """Every combination of the dispatch's choice inputs (others at their default)."""
    inputs = ((document["on"] or {}).get("workflow_dispatch") or {}).get("inputs") or {}
    names = list(inputs)
    values = [
        [str(o) for o in spec["options"]] if spec.get("type") == "choice" else [str(spec.get("default", ""))]
        for spec in inputs.values()
    ]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)] or [{}]


def queued_jobs(root: Path) -> list[Queued]:
    found = []
    for file, document in load_workflows(root).items():
        triggers = document["on"] if isinstance(document["on"], dict) else {document["on"]: None}
        dispatched_only = not any(t in triggers for t in AUTOMATIC)
        for key, job in document["jobs"].items():
            concurrency = job.get("concurrency") or document.get("concurrency")
            if not concurrency:
                continue
            spec = concurrency if isinstance(concurrency, dict) else {"group": concurrency}
            runs = input_choices(document) if "workflow_dispatch" in triggers else []
            if not dispatched_only:
                runs.append({})  # a push or a schedule has no inputs: they read as ''
            for inputs in runs:
                group = _INPUT.sub(lambda m, given=inputs: given.get(m[1], ""), str(spec["group"]))
                name = f"{file}/{key}" + (f" {inputs}" if inputs else "")
                found.append(Queued(name, group, bool(spec.get("cancel-in-progress")), dispatched_only))
    return found


def displaced(root: Path) -> list[str]:
    """Each dispatched operation that an automatic job queued after it would cancel."""
    jobs = queued_jobs(root)
    lost = []
    for operation in (j for j in jobs if j.dispatched_only):
        for automatic in (j for j in jobs if not j.dispatched_only):
            # the worst case: something runs in the group, the operation waits, a push arrives
            groups = Groups(running={operation.group: "something already running"})
            groups.queue(operation.group, operation.name, operation.cancel_in_progress)
            groups.queue(automatic.group, automatic.name, automatic.cancel_in_progress)
            if operation.name in groups.cancelled:
                lost.append(f"{automatic.name} displaces {operation.name} (group {operation.group})")
    return lost


def test_the_model_plays_githubs_rule():
    groups = Groups()
    groups.queue("g", "first", False)
    groups.queue("g", "second", False)
    groups.queue("g", "third", False)  # replaces the pending second
    assert groups == Groups(running={"g": "first"}, pending={"g": "third"}, cancelled=["second"])


def test_no_push_or_schedule_displaces_a_dispatched_operation():
    jobs = queued_jobs(ROOT)
    assert any(j.name.startswith("rollback.yml") for j in jobs) and any(j.name.startswith("cutover.yml") for j in jobs)
    assert displaced(ROOT) == []


def test_every_job_that_changes_production_waits_rather_than_cancels():
    for job in queued_jobs(ROOT):
        if job.name.split("/")[0] in ("production.yml", "rollback.yml", "cutover.yml", "restore-memory.yml"):
            assert not job.cancel_in_progress, job.name


@pytest.mark.parametrize(
    ("file", "group"),
    [("rollback.yml", "rollback-${{ inputs.environment }}"), ("cutover.yml", "cutover-${{ inputs.environment }}")],
)
def test_a_dispatch_sharing_the_release_group_would_be_displaced(tmp_path, file, group):
    shutil.copytree(ROOT / ".github", tmp_path / ".github")
    path = tmp_path / ".github" / "workflows" / file
    path.write_text(path.read_text().replace(f"group: {group}", "group: release-${{ inputs.environment }}"))
    lost = displaced(tmp_path)
    assert any(f"production.yml/release displaces {file}" in line for line in lost), lost
