"""The two files ``ci-tools adopt`` merges into a bot's repository: render.yaml and ``[tool.ci_tools]``.

Both are edited as text the owner wrote (ruamel.yaml and tomlkit keep comments, order and
quoting) and only where the pipeline needs something: the live web service keeps its name,
build and start (it is production), gets ``autoDeployTrigger: "off"`` and the variables the
pipeline and the kit read; a staging twin is added beside it, built and started the same way,
on ``develop`` with a Key Value of its own. Each function takes text and returns text, so a
caller composes every file before it writes any; what the same values already say is left
byte for byte as it was, so a second adopt changes nothing.
"""

from __future__ import annotations

import copy
import io
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import tomlkit
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString
from tomlkit.exceptions import TOMLKitError

from ci_tools.errors import InputError
from ci_tools.repo.owner_files import round_trip_yaml
from ci_tools.settings import NO_PREFIX

# What a copy of a service must not take from the live one: its custom domains are its own.
NOT_COPIED = ("domains",)


@dataclass(frozen=True)
class EnvironmentPlan:
    """One environment as adopt writes it into both files."""

    name: str
    branch: str
    render_service: str
    key_value: str
    bot_username: str
    base_url: str
    key_prefix: str
    memory_patterns: tuple[str, ...]
    health_path: str
    deploy_branches: tuple[str, ...]
    testers_only: bool = False
    reviewers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Commands:
    """How the bot is built and started: production's, and so staging's."""

    build: str
    start: str


@dataclass
class BlueprintMerge:
    text: str
    changes: list[str] = field(default_factory=list)  # what changed in a service that was there


# -- render.yaml -------------------------------------------------------------------------------
def load_round_trip(text: str, name: str = "render.yaml") -> Any:
    try:
        data = round_trip_yaml().load(text)
    except YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise InputError(f"{name} is not valid YAML{line}", hint=f"fix {name}, then run adopt again") from None
    if data is None:
        data = CommentedMap()
    if not isinstance(data, CommentedMap) or not isinstance(data.setdefault("services", CommentedSeq()), list):
        raise InputError(f"{name} has no services list", hint=f"fix {name}, then run adopt again")
    return data


def _tail(node: Any) -> tuple[Any, Any] | None:
    """Where ruamel keeps the comment after ``node``'s last line: (container, key) of its last scalar."""
    if isinstance(node, CommentedMap) and len(node):
        key = list(node)[-1]
        return _tail(node[key]) or (node, key)
    if isinstance(node, CommentedSeq) and len(node):
        return _tail(node[-1]) or (node, len(node) - 1)
    return None


def _slot(container: Any) -> int:
    return 2 if isinstance(container, CommentedMap) else 0


def _append(sequence: CommentedSeq, item: Any) -> None:
    """``item`` at the end, taking over the blank line or comment that ended the sequence."""
    tail = _tail(sequence)
    token = None
    if tail is not None:
        entry = tail[0].ca.items.get(tail[1])
        if entry and entry[_slot(tail[0])] is not None:
            token, entry[_slot(tail[0])] = entry[_slot(tail[0])], None
    sequence.append(item)
    new_tail = _tail(sequence)
    if token is not None and new_tail is not None:
        entry = new_tail[0].ca.items.setdefault(new_tail[1], [None, None, None, None])
        entry[_slot(new_tail[0])] = token


def _plain_copy(node: Any) -> Any:
    """A copy with the values and their quoting, without the comments (those are the original's)."""
    copied = copy.deepcopy(node)
    for part in _walk(copied):
        part.ca.items.clear()
        part.ca.comment = None
    return copied


def _walk(node: Any) -> list[Any]:
    found: list[Any] = []
    if isinstance(node, CommentedMap):
        found.append(node)
        for value in node.values():
            found += _walk(value)
    elif isinstance(node, CommentedSeq):
        found.append(node)
        for value in node:
            found += _walk(value)
    return found


def _set(mapping: Any, key: str, value: Any, *, after: Sequence[str] = (), changes: list[str], where: str) -> None:
    """``mapping[key] = value`` when it differs: a new key goes after the first of ``after`` there
    (never at the end, where the comment closing the mapping lives)."""
    old = mapping.get(key)
    if key in mapping and old == value:
        return
    if key in mapping:
        changes.append(f"{where}: {key} {old!r} → {value!r}")
        mapping[key] = value
        return
    keys = list(mapping)
    anchor = next((keys.index(name) + 1 for name in after if name in keys), len(keys))
    mapping.insert(anchor, key, value)
    changes.append(f"{where}: {key} {value!r} added")


def _quoted(value: str) -> Any:
    return DoubleQuotedScalarString(value)


def _variables(env: EnvironmentPlan) -> list[CommentedMap]:
    """The variables the pipeline (and the kit) reads on this environment's service."""
    wanted = [
        CommentedMap([("key", "ENV"), ("value", env.name)]),
        CommentedMap([("key", "KEY_PREFIX"), ("value", _quoted(env.key_prefix or NO_PREFIX))]),
        CommentedMap(
            [
                ("key", "REDIS_URL"),
                (
                    "fromService",
                    CommentedMap([("type", "keyvalue"), ("name", env.key_value), ("property", "connectionString")]),
                ),
            ]
        ),
        CommentedMap([("key", "TELEGRAM_BOT_TOKEN"), ("sync", False)]),
        CommentedMap([("key", "TELEGRAM_WEBHOOK_SECRET"), ("sync", False)]),
    ]
    if env.testers_only:  # the staging bot serves its testers only (the kit reads both)
        wanted += [
            CommentedMap([("key", "TESTER_IDS"), ("sync", False)]),
            CommentedMap([("key", "PRODUCTION_BOT"), ("sync", False)]),
        ]
    return wanted


def _align_variables(service: Any, env: EnvironmentPlan, changes: list[str], where: str) -> None:
    variables = service.get("envVars")
    if not isinstance(variables, CommentedSeq):
        variables = CommentedSeq()
        _set(service, "envVars", variables, changes=changes, where=where)
    by_key = {str(var.get("key")): var for var in variables if isinstance(var, CommentedMap)}
    for index, wanted in enumerate(_variables(env)):
        key = str(wanted["key"])
        var = by_key.get(key)
        if var is None:
            if index < 2:  # ENV and KEY_PREFIX first, as the pipeline's own render.yaml has them
                variables.insert(index, wanted)
            else:
                _append(variables, wanted)
            changes.append(f"{where}: {key} added")
            continue
        for name, value in wanted.items():
            if name == "key":
                continue
            if name == "fromService":
                for part, part_value in value.items():
                    _set(var["fromService"], part, part_value, changes=changes, where=f"{where}: {key}")
            elif var.get(name) != value:
                _set(var, name, value, after=("key",), changes=changes, where=f"{where}: {key}")


def _align_service(
    service: Any, env: EnvironmentPlan, commands: Commands, health_check: Any, changes: list[str]
) -> None:
    where = f"{env.render_service}"
    _set(service, "branch", env.branch, after=("region", "plan", "runtime", "name"), changes=changes, where=where)
    _set(service, "buildCommand", commands.build, after=("branch",), changes=changes, where=where)
    _set(service, "startCommand", commands.start, after=("buildCommand",), changes=changes, where=where)
    if env.health_path:
        _set(service, "healthCheckPath", env.health_path, after=("startCommand",), changes=changes, where=where)
    elif health_check is not None:  # Render's own check of the live service: staging the same
        _set(service, "healthCheckPath", health_check, after=("startCommand",), changes=changes, where=where)
    if "autoDeploy" in service:
        del service["autoDeploy"]
        changes.append(f"{where}: the legacy autoDeploy removed")
    after = ("healthCheckPath", "startCommand")
    _set(service, "autoDeployTrigger", _quoted("off"), after=after, changes=changes, where=where)
    _align_variables(service, env, changes, where)


def _align_key_value(kv: Any, changes: list[str]) -> None:
    where = f"{kv.get('name')}"
    _set(kv, "ipAllowList", CommentedSeq(), after=("region", "plan", "name"), changes=changes, where=where)
    _set(kv, "maxmemoryPolicy", "noeviction", after=("ipAllowList",), changes=changes, where=where)


def _new_service(env: EnvironmentPlan, commands: Commands) -> CommentedMap:
    service = CommentedMap([("type", "web"), ("name", env.render_service), ("runtime", "python")])
    service["plan"] = "starter"
    service["branch"] = env.branch
    service["buildCommand"] = commands.build
    service["startCommand"] = commands.start
    service["envVars"] = CommentedSeq()
    return service


def _new_key_value(name: str) -> CommentedMap:
    return CommentedMap([("type", "keyvalue"), ("name", name), ("plan", "starter"), ("ipAllowList", CommentedSeq())])


def merge_blueprint(
    current: str | None, production: EnvironmentPlan, staging: EnvironmentPlan, commands: Commands
) -> BlueprintMerge:
    """``current`` render.yaml (None: none yet) with both environments' services and Key Values."""
    data = load_round_trip(current) if current is not None else CommentedMap([("services", CommentedSeq())])
    if current is None:
        data.yaml_set_start_comment(
            "Written by ci-tools adopt: production (main) and staging (develop), each with its own Key Value.\n"
            'The release pipeline is the only deployer (autoDeployTrigger: "off"); names and branches\n'
            "agree with [tool.ci_tools.environments] in pyproject.toml (`ci-tools config check`)."
        )
    services: CommentedSeq = data["services"]
    merged = BlueprintMerge("")
    by_name = {s.get("name"): s for s in services if isinstance(s, CommentedMap)}
    live = by_name.get(production.render_service)
    if live is None:
        live = _new_service(production, commands)
        _append(services, live)
        by_name[production.render_service] = live
    health_check = live.get("healthCheckPath")
    there = set(by_name) if current is not None else set()  # what the owner's file had: its changes are said
    for env in (production, staging):
        service = by_name.get(env.render_service)
        if service is None:  # the staging twin: production's copy, on its own branch and Key Value
            service = _plain_copy(live)
            for key in NOT_COPIED:
                service.pop(key, None)
            service["name"] = env.render_service
            _append(services, service)
            services.yaml_set_comment_before_after_key(
                len(services) - 1,
                before=f"\nstaging: added by ci-tools adopt, built and started as {production.render_service} is",
                indent=2,
            )
        _align_service(service, env, commands, health_check, merged.changes if env.render_service in there else [])
        kv = by_name.get(env.key_value)
        if kv is None:
            live_kv = by_name.get(production.key_value)
            kv = _plain_copy(live_kv) if isinstance(live_kv, CommentedMap) else _new_key_value(env.key_value)
            kv["name"] = env.key_value
            _append(services, kv)
            if len(services) > 1:
                services.yaml_set_comment_before_after_key(len(services) - 1, before="\n", indent=2)
            by_name[env.key_value] = kv
        _align_key_value(kv, merged.changes if env.key_value in there else [])
    out = io.StringIO()
    round_trip_yaml().dump(data, out)
    merged.text = out.getvalue()
    return merged


# -- [tool.ci_tools] ---------------------------------------------------------------------------
CONFIG_COMMENT = (
    "The release pipeline's facts (written by ci-tools adopt; `ci-tools config check` holds render.yaml to them)."
)


def merge_config(
    current: str | None,
    environments: Sequence[EnvironmentPlan],
    flow: Mapping[str, Sequence[str]],
    probe_turns: Sequence[str],
    default_branch: str = "develop",
) -> str:
    """``current`` pyproject.toml (None: none yet) with ``[tool.ci_tools]``: each value written
    where it differs (the caller has kept what the owner set), the owner's comments kept.

    tomlkit merges into tables as a file writes them (``[tool.ci_tools.environments.staging]``);
    into an inline table it raises, and beside dotted keys (``ci_tools.probe.turns = …``) it
    writes a table under the wrong name. Either is refused in one line, checked on the result."""
    try:
        merged = _merged_config(current, environments, flow, probe_turns, default_branch)
    except (ValueError, TOMLKitError):
        merged = None
    if merged is None or not _holds(merged, current, environments):
        raise InputError(
            "pyproject.toml writes [tool.ci_tools] with dotted keys or inline tables, which adopt cannot merge into",
            hint="write it as tables ([tool.ci_tools.environments.production] and so on), then run adopt again",
        )
    return merged


def _holds(merged: str, current: str | None, environments: Sequence[EnvironmentPlan]) -> bool:
    """The merged text says what was merged, under [tool.ci_tools], and nothing at the top besides."""
    data = tomllib.loads(merged)
    tables = data.get("tool", {}).get("ci_tools", {}).get("environments", {})
    added = set(data) - set(tomllib.loads(current or "")) - {"tool"}
    return not added and all(tables.get(env.name, {}).get("branch") == env.branch for env in environments)


def _merged_config(
    current: str | None,
    environments: Sequence[EnvironmentPlan],
    flow: Mapping[str, Sequence[str]],
    probe_turns: Sequence[str],
    default_branch: str,
) -> str:
    document = tomlkit.parse(current or "")
    tool: Any = document.get("tool")
    if tool is None:
        tool = tomlkit.table(is_super_table=True)
        document.add("tool", tool)
    section: Any = tool.get("ci_tools")
    if section is None:
        section = tomlkit.table()
        section.add(tomlkit.comment(CONFIG_COMMENT))
        tool["ci_tools"] = section
    if "default_branch" not in section and default_branch != "develop":  # staging's, where GitHub opens PRs
        section["default_branch"] = default_branch
    if "flow" not in section:
        table = tomlkit.table()
        table.add(tomlkit.comment("base branch -> the heads that may open a PR into it"))
        for base, heads in flow.items():
            table[base] = list(heads)
        section["flow"] = table
    probe = section.setdefault("probe", tomlkit.table())
    if "turns" not in probe:
        probe.add(tomlkit.comment('what the probe user says after each release; expect = "": any reply passes'))
        probe["turns"] = list(probe_turns)
        probe["expect"] = ""
    tables: Any = section.setdefault("environments", tomlkit.table(is_super_table=True))
    for env in environments:
        table = tables.setdefault(env.name, tomlkit.table())
        wanted: dict[str, Any] = {
            "branch": env.branch,
            "deploy_branches": list(env.deploy_branches),
            "render_service": env.render_service,
            "key_value": env.key_value,
            "bot_username": env.bot_username,
            "base_url": env.base_url,
            "key_prefix": env.key_prefix,
            "memory_patterns": list(env.memory_patterns),
            "health_path": env.health_path,
        }
        if env.reviewers:
            wanted["reviewers"] = list(env.reviewers)
        for key, value in wanted.items():
            if table.get(key) != value:
                table[key] = value
    return tomlkit.dumps(document)
