"""Run this project's workflow files in a workflow engine (nektos/act) against the sandbox.

act runs on the host (``-P ubuntu-24.04=-self-hosted``: no containers), in the
sandbox ``World``'s repository, which is a copy of this project whose committed
``pyproject.toml`` points at the stand-ins. Every third-party action is replaced
through ``--local-repository`` by an offline composite action under
``tests/workflows/actions/``; one without a stand-in fails the test by name.
Secrets go in through ``--secret-file`` as GitHub environment secrets would, and the
stand-ins' addresses through ``--env-file``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from ci_tools.repo.environment_gate import refused
from ci_tools.settings import load_config
from sandbox.tools import find_tool
from sandbox.world import World

HERE = Path(__file__).resolve().parent
STANDINS = {
    "actions/checkout": HERE / "actions" / "checkout",
    "astral-sh/setup-uv": HERE / "actions" / "setup-uv",
    "actions/upload-artifact": HERE / "actions" / "upload-artifact",
    "actions/download-artifact": HERE / "actions" / "download-artifact",
}
_USES = re.compile(r"^\s*-?\s*uses:\s*([\w.-]+/[\w.-]+)(?:/[\w./-]+)?@([\w.-]+)", re.MULTILINE)


# What `ci-tools github setup` records on a public repository (every plan there has environments and
# rulesets): the default for every run; a test passes ``variables`` to model another plan or none.
SET_UP = {"CI_TOOLS_GITHUB_MODE": "environments"}


class NoStandIn(AssertionError):
    """A workflow uses an action the workflow tests cannot run offline."""


def remote_actions(repo: Path) -> set[tuple[str, str]]:
    """Every ``owner/name@ref`` the workflows and our composite actions use."""
    files = [*repo.glob(".github/workflows/*.yml"), *repo.glob(".github/actions/*/action.yml")]
    return {(m[1], m[2]) for path in files for m in _USES.finditer(path.read_text())}


def local_repository_flags(repo: Path) -> list[str]:
    flags = []
    for name, ref in sorted(remote_actions(repo)):
        standin = STANDINS.get(name)
        if standin is None:
            raise NoStandIn(
                f"{name}@{ref} has no offline stand-in: add one under tests/workflows/actions/ and list it in STANDINS"
            )
        flags += ["--local-repository", f"{name}@{ref}={standin}"]
    return flags


@dataclass
class Run:
    exit_code: int
    log: str
    run_id: int = 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.splitlines()[-lines:])


class Act:
    """One workflow engine bound to one World; each ``run`` is a fresh workspace."""

    def __init__(self, world: World, scratch: Path) -> None:
        self.world = world
        self.scratch = scratch
        self.artifacts = scratch / "artifacts"
        self.bin = scratch / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.artifacts.mkdir(exist_ok=True)
        (self.bin / "uv").symlink_to(find_tool("uv"))
        self.runs = 0

    def gate(self, workflow: str, event: str, payload: dict) -> str | None:
        """What GitHub's environment gate would say of this run's jobs (None: all may run)."""
        config = load_config(self.world.config)
        document = workflow_document(self.world.repo / ".github" / "workflows" / workflow)
        ref = config.default_branch if event == "schedule" else str(payload.get("ref", "")).removeprefix("refs/heads/")
        inputs = payload.get("inputs") or {}
        for job_id, job in document.get("jobs", {}).items():
            environment = job.get("environment")
            name = str(environment.get("name") if isinstance(environment, dict) else environment or "")
            for key, value in inputs.items():
                name = name.replace(f"${{{{ inputs.{key} }}}}", str(value))
            if not name or "${{" in name or not ref or not _job_runs(job, inputs):
                continue
            if reason := refused(config, name, event, ref):
                return f"{workflow} job {job_id}: {reason}"
        return None

    def var_flags(self, run_id: int, variables: dict[str, str]) -> list[str]:
        """Repository variables, what a workflow reads as ``vars.NAME`` (CI_TOOLS_GITHUB_MODE)."""
        if not variables:
            return []
        path = self.scratch / f"run-{run_id}.vars"
        path.write_text("".join(f"{k}={v}\n" for k, v in variables.items()))
        return ["--var-file", str(path)]

    def env_file(self, run_id: int, extra: dict[str, str]) -> Path:
        values = {
            "STANDIN_REMOTE": str(self.world.repo),
            "STANDIN_BIN": str(self.bin),
            "STANDIN_PYTHON": getattr(sys, "_base_executable", sys.executable),
            "STANDIN_ARTIFACTS": str(self.artifacts),
            "RENDER_API_URL": self.world.render.url,
            "TELEGRAM_API_URL": self.world.telegram.url,
            "IP_ECHO_URL": f"{self.world.render.url}/whoami",  # what a runner asks for its address
            "GITHUB_RUN_ID": str(run_id),
            # Between two looks at Render (a deploy's status, an allow list settling): 2 s against
            # render.com, where a look is slow; the stand-in answers in milliseconds and moves in
            # steps of World.step, so a 2 s poll there is only waiting.
            "CI_TOOLS_POLL": "0.2",
            **extra,
        }
        path = self.scratch / f"run-{run_id}.env"
        path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        return path

    def run(
        self,
        workflow: str,
        event: str,
        *,
        secrets: dict[str, str],
        payload: dict | None = None,
        env: dict[str, str] | None = None,
        variables: dict[str, str] | None = None,
        timeout: float = 300,
    ) -> Run:
        """Run ``.github/workflows/<workflow>`` for ``event`` on the repository's current HEAD.

        A job whose environment would refuse it on GitHub is refused here too, before act runs
        anything (act itself ignores environments): see ``environment_gate``.
        """
        self.runs += 1
        run_id = 1000 + self.runs
        if reason := self.gate(workflow, event, payload or {}):
            return Run(1, f"[GitHub's environment gate] {reason}", run_id)
        secret_file = self.scratch / f"run-{run_id}.secrets"
        secret_file.write_text("".join(f"{k}={v}\n" for k, v in secrets.items() if v))
        secret_file.chmod(0o600)
        event_file = self.scratch / f"run-{run_id}.event.json"
        event_file.write_text(json.dumps(payload or {}))
        command = [
            find_tool("act"),
            event,
            "-W",
            f".github/workflows/{workflow}",
            "-e",
            str(event_file),
            "-P",
            "ubuntu-24.04=-self-hosted",
            "--no-skip-checkout",
            "--action-offline-mode",
            "--action-cache-path",
            str(self.scratch / f"act-{run_id}"),
            "--secret-file",
            str(secret_file),
            "--env-file",
            str(self.env_file(run_id, env or {})),
            *self.var_flags(run_id, SET_UP if variables is None else variables),
            "--defaultbranch",
            "main",
            *local_repository_flags(self.world.repo),
        ]
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_"))}
        environ.pop("VIRTUAL_ENV", None)
        try:
            done = subprocess.run(
                command,
                cwd=self.world.repo,
                env=environ,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            return Run(124, out + f"\n[act did not finish in {timeout}s]", run_id)
        return Run(done.returncode, done.stdout + done.stderr, run_id)


def _job_runs(job: dict, inputs: dict) -> bool:
    """False only for a job whose ``if:`` is an input that is false (watch.yml's staging job)."""
    condition = str(job.get("if", "")).strip()
    if condition.startswith("inputs.") and condition[len("inputs.") :] in inputs:
        return str(inputs[condition[len("inputs.") :]]).lower() == "true"
    return True


def workflow_document(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    if True in data:  # YAML 1.1 reads the key `on` as the boolean true
        data["on"] = data.pop(True)
    return data
