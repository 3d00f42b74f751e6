"""Who launched a run, as the proxy knows it: the ``dagster/user`` tag, set here and nowhere else.

Behind the proxy, every request to a role's webserver carries ``X-Forwarded-User``, which nginx sets
from the signed-in session (and overwrites when a client sends one). This ASGI middleware puts that
name on every run launched through GraphQL: the launch, re-execution and backfill parameters get the
tag ``dagster/user``, replacing any value the client put there (the UI copies a parent run's tags
into a re-execution). The platform's jobs read the tag into the audit log (``audit.run_actor``),
and the UI shows it on the run.

So a user cannot launch a run in another's name, a launch must pass its parameters as GraphQL
variables (as the UI does), and the tag's name may not appear in the query text at all; a request
that breaks either rule is refused with 400, before Dagster sees it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from graphql import GraphQLError, parse, visit
from graphql.language import OperationDefinitionNode, StringValueNode, Visitor

USER_TAG = "dagster/user"
USER_HEADER = b"x-forwarded-user"

#: GraphQL mutations that create runs, and the argument that carries their parameters
LAUNCHES: dict[str, str] = {
    "launchRun": "executionParams",
    "launchPipelineExecution": "executionParams",
    "launchMultipleRuns": "executionParamsList",
    "launchRunReexecution": "reexecutionParams",
    "launchPipelineReexecution": "reexecutionParams",
    "launchPartitionBackfill": "backfillParams",
}

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class Refused(ValueError):
    """A GraphQL request the proxy's rules do not let through, with the reason."""


def _with_user(tags: Any, user: str) -> list[dict]:
    kept = [t for t in (tags or []) if not (isinstance(t, dict) and t.get("key") == USER_TAG)]
    return [*kept, {"key": USER_TAG, "value": user}]


def tag_launches(variables: Any, user: str) -> Any:
    """Every run parameter object in ``variables``, tagged with ``user`` (a new structure)."""
    if isinstance(variables, list):
        return [tag_launches(v, user) for v in variables]
    if not isinstance(variables, dict):
        return variables
    tagged = {k: tag_launches(v, user) for k, v in variables.items()}
    if "parentRunId" in tagged and "strategy" in tagged:  # ReexecutionParams
        tagged["extraTags"] = _with_user(tagged.get("extraTags"), user)
    elif "selector" in tagged and (
        "partitionNames" in tagged or "allPartitions" in tagged or "tags" in tagged
    ):
        tagged["tags"] = _with_user(tagged.get("tags"), user)  # LaunchBackfillParams
    elif "selector" in tagged or "executionMetadata" in tagged:  # ExecutionParams
        metadata = dict(tagged.get("executionMetadata") or {})
        metadata["tags"] = _with_user(metadata.get("tags"), user)
        tagged["executionMetadata"] = metadata
    elif "assetSelection" in tagged and "tags" in tagged:
        tagged["tags"] = _with_user(tagged.get("tags"), user)
    return tagged


def check_query(query: str) -> bool:
    """Whether the document is a mutation; raises :class:`Refused` on the rules above."""
    try:
        document = parse(query)
    except GraphQLError:
        return False  # Dagster answers a malformed query with its own error
    findings = {"mutation": False, "forged": False, "inline": []}

    class Inspect(Visitor):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            if node.operation.value == "mutation":
                findings["mutation"] = True
                for selection in node.selection_set.selections:
                    name = getattr(getattr(selection, "name", None), "value", None)
                    for argument in getattr(selection, "arguments", None) or ():
                        if LAUNCHES.get(name) == argument.name.value and argument.value.kind != "variable":
                            findings["inline"].append(name)

        def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
            if node.value == USER_TAG:
                findings["forged"] = True

    visit(document, Inspect())
    if findings["forged"]:
        raise Refused(f"the tag {USER_TAG} is set by the proxy from the signed-in user, not by a request")
    if findings["inline"]:
        raise Refused(
            f"{', '.join(findings['inline'])}: pass the run parameters as GraphQL variables behind the proxy"
        )
    return bool(findings["mutation"])


def rewrite_body(body: bytes, user: str) -> bytes:
    """The POSTed GraphQL request with every launch tagged; :class:`Refused` when it breaks a rule."""
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return body  # not JSON: Dagster answers it
    requests = payload if isinstance(payload, list) else [payload]
    for request in requests:
        if (
            isinstance(request, dict)
            and isinstance(request.get("query"), str)
            and check_query(request["query"])
        ):
            request["variables"] = tag_launches(request.get("variables") or {}, user)
    return json.dumps(payload).encode()


class ActingUserMiddleware:
    """ASGI middleware for a role's webserver: the proxy's user on every launch, and no request
    that did not come through the proxy."""

    def __init__(self, app: Callable, graphql_path: str = "/graphql") -> None:
        self.app = app
        self.graphql_path = graphql_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        user = dict(scope.get("headers") or []).get(USER_HEADER, b"").decode()
        if not user:
            await _refuse(scope, send, 401, "sign in through the platform's proxy")
            return
        if scope["type"] == "http" and scope.get("path") == self.graphql_path:
            try:
                if scope.get("method") == "GET":
                    _check_get(scope)
                elif scope.get("method") == "POST":
                    receive, length = await _rewritten(receive, user)
                    headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
                    scope = {**scope, "headers": [*headers, (b"content-length", str(length).encode())]}
            except Refused as exc:
                await _refuse(scope, send, 400, str(exc))
                return
        await self.app(scope, receive, send)


def _check_get(scope: Scope) -> None:
    query = parse_qs(scope.get("query_string", b"").decode()).get("query", [""])[0]
    if query and check_query(query):
        raise Refused("a mutation is POSTed, not sent in a GET request")


async def _rewritten(receive: Receive, user: str) -> tuple[Receive, int]:
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = rewrite_body(b"".join(chunks), user)
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay, len(body)


async def _refuse(scope: Scope, send: Send, status: int, reason: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 4401 if status == 401 else 4400})
        return
    body = json.dumps({"errors": [{"message": reason}]}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
