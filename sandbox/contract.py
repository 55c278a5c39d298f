"""Every request a client sends a stand-in, and every answer it gives, held to the provider's
published description (``ci_tools/contracts/specs``).

The stand-ins were first written from reading docs; held against the descriptions their
answers deviated in dozens of ways, so the tests exercised the clients against answers the
real services never give. Checking at the stand-ins' own boundary (``StandInServer``) covers
every caller at once: unit tests, workflow runs in act, ``ci-tools rehearse`` and the
benchmarks. Render and GitHub go through ``openapi-core`` (an undocumented status code is a
violation too); the Bot API, which publishes no OpenAPI, through a small validator over
``api.json``. What is found goes into one process-wide ``LEDGER``: the test that caused a
violation fails naming the operation and the JSON path, and the suite ends with one line
that counts what was validated.

A stand-in marks a deliberate fault (a proxy's 502, a dropped answer) with the ``FAULT``
header; it is stripped before sending and the answer is not validated, because no real
service would give it as its own answer.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol

from ci_tools.contracts import SPECS
from sandbox.forms import MULTIPART, attachment_names, multipart_fields

FAULT = "X-Sandbox-Fault"  # header a stand-in sets on an answer that is a deliberate fault
NAMES = {"render": "Render", "github": "GitHub", "telegram": "Telegram"}


@dataclass(frozen=True)
class Violation:
    provider: str
    operation: str
    side: str  # "request" (what the client sent) or "answer" (what the stand-in gave)
    path: str  # JSON path inside the body or a parameter's name
    message: str

    def line(self) -> str:
        return f"{NAMES[self.provider]} {self.operation} {self.side} {self.path}: {self.message}"


class Ledger:
    """What every stand-in in this process validated, and what broke its description."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.violations: list[Violation] = []
        self._merged = 0  # violations other processes reported
        self._taken = 0  # violations tests provoked on purpose and took out

    def record(self, provider: str, found: list[Violation]) -> None:
        with self._lock:
            self.calls[provider] += 1
            self.violations.extend(found)

    def mark(self) -> int:
        with self._lock:
            return len(self.violations)

    def take(self, mark: int) -> list[Violation]:
        """The violations recorded since ``mark``, removed: a test that provoked them on purpose."""
        with self._lock:
            taken, self.violations = self.violations[mark:], self.violations[:mark]
            self._taken += len(taken)
            return taken

    def since(self, mark: int) -> list[Violation]:
        with self._lock:
            return self.violations[mark:]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": dict(self.calls),
                "violations": len(self.violations),
                "provoked": self._taken,
            }

    def merge(self, other: dict[str, Any]) -> None:
        """Fold in another process's ``snapshot()`` (pytest-xdist workers report to the controller)."""
        with self._lock:
            self.calls.update(other["calls"])
            self._merged += int(other["violations"])
            self._taken += int(other.get("provoked", 0))

    def line(self) -> str:
        with self._lock:
            parts = ", ".join(f"{NAMES[p]} {self.calls[p]}" for p in NAMES)
            broken = len(self.violations) + self._merged
            provoked = f" (and {self._taken} provoked on purpose by mutation tests)" if self._taken else ""
        return f"contracts: {sum(self.calls.values())} calls validated ({parts}), {broken} violations{provoked}"


LEDGER = Ledger()


class Contract(Protocol):
    provider: str

    def load(self) -> None: ...

    def check(
        self, method: str, target: str, headers: dict[str, str], body: bytes, answer: Answer
    ) -> list[Violation] | None:
        """The violations of one exchange; None when ``target`` is not part of this API."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


# -- Render and GitHub: OpenAPI ------------------------------------------------------------


def _render_overrides(spec: dict[str, Any]) -> None:
    """Render's ``service.serviceDetails`` is a ``oneOf`` of five detail types without a
    discriminator, and a web service's details satisfy the private service's and the
    background worker's required fields too: no real web service answer can match exactly
    one. It is read as ``anyOf``, the only reading any real answer passes."""
    details = spec["components"]["schemas"]["service"]["properties"]["serviceDetails"]
    details["anyOf"] = details.pop("oneOf")
    # The same holds for a service event's ``details``: seven of its variants are a bare
    # ``{"type": "object"}`` (Server Available, Server Hardware Failure, …), so every event
    # matches several and none can match exactly one. Read as ``anyOf`` for the same reason.
    # Other schemas $ref into its variants by index, so those pointers follow the rename.
    event = spec["components"]["schemas"]["serviceEventWithCursor"]["properties"]["event"]
    event["properties"]["details"]["anyOf"] = event["properties"]["details"].pop("oneOf")
    _repoint(spec, "/event/properties/details/oneOf/", "/event/properties/details/anyOf/")


def _repoint(node: Any, old: str, new: str) -> None:
    """Every ``$ref`` under ``node`` that contains ``old``, rewritten to ``new``."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and old in ref:
            node["$ref"] = ref.replace(old, new)
        for value in node.values():
            _repoint(value, old, new)
    elif isinstance(node, list):
        for value in node:
            _repoint(value, old, new)


def _github_overrides(spec: dict[str, Any]) -> None:
    """GitHub answers 401 (bad credentials), 403 (a token without the right) and 404 on every
    operation, but its description lists them on some only; octokit and githubkit treat them
    as universal. Where an operation we use omits one, it is read as the ``basic-error`` that
    GitHub sends."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/basic-error"}}}
    # OpenAPI 3.0 cannot say that {ref} spans segments (GitHub: "formatted as heads/<branch
    # name>"), so openapi-core finds a branch's ref under this alias of the same operation.
    ref = "/repos/{owner}/{repo}/git/ref/{ref}"
    if ref in spec["paths"]:
        spec["paths"]["/repos/{owner}/{repo}/git/ref/heads/{ref}"] = spec["paths"][ref]
    # A duplicate branch policy's 303 points at the policy that exists ("Create a deployment
    # branch policy"), and a client that follows it (gh, Go's and browsers' HTTP clients) asks
    # "Get a deployment branch policy", which the pipeline never calls, so the vendored subset
    # lacks it. Its documented answer is the ``deployment-branch-policy`` the create returns.
    policies = "/repos/{owner}/{repo}/environments/{environment_name}/deployment-branch-policies"
    one = spec["paths"].setdefault(f"{policies}/{{branch_policy_id}}", {})  # DELETE is vendored (github setup)
    if policies in spec["paths"] and "get" not in one:
        create = spec["paths"][policies]["post"]
        one.update(
            {
                "get": {
                    "operationId": "repos/get-deployment-branch-policy",
                    "parameters": [
                        *create["parameters"],
                        {"name": "branch_policy_id", "in": "path", "required": True, "schema": {"type": "integer"}},
                    ],
                    "responses": {"200": create["responses"]["200"]},
                }
            }
        )
    for item in spec["paths"].values():
        for method, operation in item.items():
            if method in ("get", "put", "post", "patch", "delete"):
                for code in ("401", "403", "404"):
                    operation["responses"].setdefault(code, {"description": "error", "content": error})


OVERRIDES = {"render-public-api-1.json": _render_overrides, "github-api.json": _github_overrides}


@functools.cache
def _openapi(file: str) -> Any:
    from openapi_core import Config, OpenAPI

    spec = json.loads((SPECS / file).read_text(encoding="utf-8"))
    OVERRIDES[file](spec)
    # The vendored files are the providers' own: checking them as specs would cost a second.
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


@functools.cache
def _templates(file: str) -> list[tuple[re.Pattern[str], str, frozenset[str]]]:
    """Each path of the description as a regex, literal paths first (``/x/count`` before ``/x/{id}``)."""
    spec = json.loads((SPECS / file).read_text(encoding="utf-8"))
    OVERRIDES[file](spec)  # the paths an override adds are operations too
    found = []
    for path, item in spec["paths"].items():
        # A Git ref spans segments ("heads/develop": GitHub's "Get a reference" says the ref is
        # formatted as heads/<branch name>), so a path's final {ref} takes the rest of the path.
        escaped = re.sub(r"\\\{ref\\\}$", "(?:.+)", re.escape(path))
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", escaped)
        found.append((re.compile(f"^{pattern}$"), path, frozenset(m for m in item if m != "parameters")))
    return sorted(found, key=lambda t: t[1].count("{"))


def _schema_errors(error: BaseException) -> list[tuple[str, str]]:
    seen: BaseException | None = error
    while seen is not None:
        nested = getattr(seen, "schema_errors", None)
        if nested:
            return [(e.json_path, e.message) for e in nested]
        seen = seen.__cause__ or seen.__context__
    cause = error.__cause__
    return [("$", f"{error}" + (f" ({cause})" if cause else ""))]


class OpenAPIContract:
    """One provider's OpenAPI description, mapped onto the stand-in's loopback base URL."""

    def __init__(self, provider: str, file: str, server: str, prefix: str = "") -> None:
        self.provider = provider
        self.file = file
        self.server = server  # the description's server host, e.g. https://api.render.com
        self.prefix = prefix  # the server's path (Render's /v1): the description's paths omit it

    def load(self) -> None:
        _openapi(self.file)
        _templates(self.file)

    def operation(self, method: str, path: str) -> str | None:
        for pattern, template, methods in _templates(self.file):
            if pattern.match(path) and method.lower() in methods:
                return f"{method.upper()} {template}"
        return None

    def check(
        self, method: str, target: str, headers: dict[str, str], body: bytes, answer: Answer
    ) -> list[Violation] | None:
        """The exchange held to the description. An exchange seen before, byte for byte, has the
        same violations: tests repeat a setup's calls many times, and openapi-core spends tens of
        ms resolving GitHub's description per call (a third of a GitHub test's time, profiled)."""
        found = self._check(
            method, target, tuple(headers.items()), body, answer.status, tuple(answer.headers.items()), answer.body
        )
        return None if found is None else list(found)

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - two module-level contracts, kept for the process
    def _check(
        self,
        method: str,
        target: str,
        headers: tuple[tuple[str, str], ...],
        body: bytes,
        status: int,
        answer_headers: tuple[tuple[str, str], ...],
        answer_body: bytes,
    ) -> tuple[Violation, ...] | None:
        found = self._validate(method, target, dict(headers), body, Answer(status, dict(answer_headers), answer_body))
        return None if found is None else tuple(found)

    def _validate(
        self, method: str, target: str, headers: dict[str, str], body: bytes, answer: Answer
    ) -> list[Violation] | None:
        from urllib.parse import parse_qsl, urlsplit

        from openapi_core.testing import MockRequest, MockResponse

        parts = urlsplit(target)
        if not parts.path.startswith(self.prefix + "/"):
            return None
        path = parts.path[len(self.prefix) :]
        operation = self.operation(method, path)
        if operation is None:
            return [Violation(self.provider, f"{method} {path}", "request", "$", "no such operation")]
        found: list[Violation] = []
        request = MockRequest(
            self.server,
            method,
            parts.path,
            args=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers=headers,
            data=body or None,
            content_type=_content_type(headers),
        )
        api = _openapi(self.file)
        for error in api.iter_request_errors(request):
            found += [Violation(self.provider, operation, "request", p, m) for p, m in _schema_errors(error)]
        response = MockResponse(
            answer.body,
            answer.status,
            headers=answer.headers,
            content_type=_content_type(answer.headers),
        )
        for error in api.iter_response_errors(request, response):
            found += [Violation(self.provider, operation, "answer", p, m) for p, m in _schema_errors(error)]
        return found


def _content_type(headers: dict[str, str]) -> str:
    for key, value in headers.items():
        if key.lower() == "content-type":
            return value.split(";")[0].strip().lower()
    return ""


RENDER = OpenAPIContract("render", "render-public-api-1.json", "https://api.render.com", "/v1")
GITHUB = OpenAPIContract("github", "github-api.json", "https://api.github.com")


# -- Telegram: api.json ----------------------------------------------------------------------


@functools.cache
def _bot_api() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((SPECS / "telegram-api.json").read_text(encoding="utf-8"))
    spec["by_lower"] = {name.lower(): name for name in spec["methods"]}
    return spec


_METHOD = re.compile(r"^/bot[^/]+/(?P<method>[A-Za-z]+)$")
_ARRAY = "Array of "
_PRIMITIVES: dict[str, Any] = {
    "Integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "Float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "String": lambda v: isinstance(v, str),
    "Boolean": lambda v: isinstance(v, bool),
    "True": lambda v: v is True,
    "InputFile": lambda v: True,
}


def value_errors(kinds: list[str], value: Any, path: str) -> list[tuple[str, str]]:
    """Where ``value`` breaks every one of the Bot API ``kinds`` (alternatives); [] if one fits."""
    best: list[tuple[str, str]] | None = None
    for kind in kinds:
        errors = _kind_errors(kind, value, path)
        if not errors:
            return []
        if best is None or len(errors) < len(best):
            best = errors
    return best or [(path, f"no type in {kinds}")]


def _kind_errors(kind: str, value: Any, path: str) -> list[tuple[str, str]]:
    if kind.startswith(_ARRAY):
        if not isinstance(value, list):
            return [(path, f"expected {kind}, got {type(value).__name__}")]
        return [e for i, item in enumerate(value) for e in value_errors([kind[len(_ARRAY) :]], item, f"{path}[{i}]")]
    if kind in _PRIMITIVES:
        return [] if _PRIMITIVES[kind](value) else [(path, f"expected {kind}, got {value!r}")]
    spec = _bot_api()["types"].get(kind)
    if spec is None:
        return [(path, f"unknown type {kind}")]
    if spec.get("subtypes"):
        return value_errors(spec["subtypes"], value, path)
    if not isinstance(value, dict):
        return [(path, f"expected {kind} (an object), got {type(value).__name__}")]
    fields = {f["name"]: f for f in spec.get("fields", [])}
    errors = [(f"{path}.{k}", f"{kind} has no field {k!r}") for k in value if k not in fields]
    for name, field in fields.items():
        if name in value:
            errors += value_errors(field["types"], value[name], f"{path}.{name}")
        elif field.get("required"):
            errors.append((f"{path}.{name}", f"required by {kind}, missing"))
    return errors


class BotApiContract:
    """The Bot API as ``api.json`` describes it: methods, their parameters, their results."""

    provider = "telegram"

    def load(self) -> None:
        _bot_api()

    def check(
        self, method: str, target: str, headers: dict[str, str], body: bytes, answer: Answer
    ) -> list[Violation] | None:
        from urllib.parse import urlsplit

        match = _METHOD.match(urlsplit(target).path)
        if not match:
            return None
        api = _bot_api()
        name = api["by_lower"].get(match["method"].lower())
        if name is None:
            return [Violation("telegram", match["method"], "request", "$", "no such Bot API method")]
        found = [Violation("telegram", name, "request", p, m) for p, m in self._params(name, target, headers, body)]
        found += [Violation("telegram", name, "answer", p, m) for p, m in self._answer(name, answer)]
        return found

    def _params(self, name: str, target: str, headers: dict[str, str], body: bytes) -> list[tuple[str, str]]:
        from urllib.parse import parse_qsl, urlsplit

        params: dict[str, Any] = dict(parse_qsl(urlsplit(target).query))
        kind = _content_type(headers)
        if body and kind == "application/json":
            params.update(json.loads(body))
        elif body and kind == "application/x-www-form-urlencoded":
            params.update(parse_qsl(body.decode()))
        elif body and kind == MULTIPART:
            whole = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
            fields = multipart_fields(body, whole)
            params.update({k: v for k, v in fields.items() if k not in attachment_names(fields)})
        elif body:
            return [
                ("$", f"content type {kind!r}: the Bot API takes a query, a form (urlencoded or multipart) or JSON")
            ]
        fields = {f["name"]: f for f in _bot_api()["methods"][name].get("fields", [])}
        errors = [(k, f"{name} has no parameter {k!r}") for k in params if k not in fields]
        errors += [(k, f"required by {name}, missing") for k, f in fields.items() if f["required"] and k not in params]
        return errors

    def _answer(self, name: str, answer: Answer) -> list[tuple[str, str]]:
        try:
            data = json.loads(answer.body)
        except ValueError:
            return [("$", "the answer is not JSON")]
        if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
            return [("$.ok", "the envelope needs a boolean ok")]
        if data["ok"]:
            errors = [
                (f"$.{k}", "not in the success envelope") for k in data if k not in ("ok", "result", "description")
            ]
            if answer.status != 200:
                errors.append(("$", f"ok with HTTP {answer.status}"))
            if "result" not in data:
                return [*errors, ("$.result", "missing")]
            return errors + value_errors(_bot_api()["methods"][name]["returns"], data["result"], "$.result")
        allowed = ("ok", "error_code", "description", "parameters")
        errors = [(f"$.{k}", "not in the error envelope") for k in data if k not in allowed]
        errors += value_errors(["Integer"], data.get("error_code"), "$.error_code")
        errors += value_errors(["String"], data.get("description"), "$.description")
        if data.get("error_code") != answer.status:
            errors.append(("$.error_code", f"{data.get('error_code')} but HTTP {answer.status}"))
        if "parameters" in data:
            errors += value_errors(["ResponseParameters"], data["parameters"], "$.parameters")
        return errors


TELEGRAM = BotApiContract()


def check_update(update: dict[str, Any]) -> None:
    """What Telegram sends a webhook must be an ``Update``: recorded like an answer."""
    found = [Violation("telegram", "webhook Update", "answer", p, m) for p, m in value_errors(["Update"], update, "$")]
    LEDGER.record("telegram", found)


def describe(found: list[Violation]) -> str:
    return "\n".join(v.line() for v in found)
