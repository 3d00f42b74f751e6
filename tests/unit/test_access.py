"""The parts of a shared deployment that need no running stack: each role's Dagster permissions and
jobs, the proxy's files from the users file, the rules on who a run says launched it, and nginx's
own check of the configuration the stack writes (`nginx -t`; the production profile installs nginx,
`make test` too)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess

import pytest

from cdc_platform.access.acting_user import (
    USER_TAG,
    ActingUserMiddleware,
    Refused,
    check_query,
    rewrite_body,
    tag_launches,
)
from cdc_platform.access.roles import is_admin_only_job, role_permissions
from cdc_platform.access.users import (
    Role,
    UsersError,
    add_user,
    htpasswd_file,
    remove_user,
    roles_file,
)
from cdc_platform.stack.proxy_config import ProxyLayout, nginx_conf

LAUNCH = "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename } }"


def test_each_role_has_its_permissions():
    viewer, operator, admin = (role_permissions(r) for r in (Role.viewer, Role.operator, Role.admin))
    assert not any(viewer.values())
    for allowed in ("launch_pipeline_execution", "launch_pipeline_reexecution", "terminate_pipeline_execution",
                    "reload_repository_location"):  # fmt: skip
        assert operator[allowed] and admin[allowed]
    for denied in ("edit_sensor", "start_schedule", "stop_running_schedule", "update_sensor_cursor",
                   "sensor_dry_run", "wipe_assets", "delete_pipeline_run"):  # fmt: skip
        assert not operator[denied] and admin[denied], denied


def test_teardown_and_apply_drift_are_the_admins_only():
    for name in (
        "cdc_teardown",
        "cdc_teardown_orders",
        "cdc_apply_drift",
        "cdc_apply_drift_a_b",
        "teardown_pipeline_job",
    ):
        assert is_admin_only_job(name), name
    for name in (
        "cdc_pause",
        "cdc_acknowledge_alert",
        "__ASSET_JOB",
        "cdc_teardownx",
        "cdc_test_connections",
    ):
        assert not is_admin_only_job(name), name


def test_every_launch_is_tagged_with_the_signed_in_user_replacing_a_clients_claim():
    variables = {
        "p": {
            "selector": {"jobName": "cdc_pause"},
            "executionMetadata": {
                "tags": [{"key": USER_TAG, "value": "ada"}, {"key": "team", "value": "data"}]
            },
        },  # fmt: skip
        "list": [{"selector": {"jobName": "a"}}],
        "re": {
            "parentRunId": "r1",
            "strategy": "FROM_FAILURE",
            "extraTags": [{"key": USER_TAG, "value": "ada"}],
        },
        "backfill": {"selector": {"partitionSetName": "x"}, "partitionNames": ["p1"]},
    }
    tagged = tag_launches(variables, "otto")
    assert tagged["p"]["executionMetadata"]["tags"] == [
        {"key": "team", "value": "data"},
        {"key": USER_TAG, "value": "otto"},
    ]
    assert tagged["list"][0]["executionMetadata"]["tags"] == [{"key": USER_TAG, "value": "otto"}]
    assert tagged["re"]["extraTags"] == [{"key": USER_TAG, "value": "otto"}]
    assert tagged["backfill"]["tags"] == [{"key": USER_TAG, "value": "otto"}]
    assert variables["p"]["executionMetadata"]["tags"][0]["value"] == "ada"  # the input is left alone


def test_a_launch_must_use_variables_and_may_not_name_the_user_tag():
    assert check_query(LAUNCH) is True and check_query("{ version }") is False
    with pytest.raises(Refused, match="as GraphQL variables"):
        check_query('mutation { launchRun(executionParams: {selector: {jobName: "x"}}) { __typename } }')
    with pytest.raises(Refused, match="set by the proxy"):
        check_query('mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename } } '
                    'query Q { runsOrError(filter: {tags: [{key: "dagster/\\u0075ser", value: "x"}]}) { __typename } }')  # fmt: skip
    body = rewrite_body(json.dumps({"query": LAUNCH, "variables": {"p": {"selector": {}}}}).encode(), "vera")
    assert json.loads(body)["variables"]["p"]["executionMetadata"]["tags"] == [
        {"key": USER_TAG, "value": "vera"}
    ]


def _call(
    middleware: ActingUserMiddleware, method: str, headers: dict, body: bytes = b"", query: bytes = b""
):
    """One request through the middleware to an app that records what it received."""
    seen, sent = {}, []

    async def app(scope, receive, send):
        message = await receive()
        seen.update(scope=scope, body=message.get("body", b""))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware.app = app
    scope = {"type": "http", "method": method, "path": "/graphql", "query_string": query,
             "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}  # fmt: skip

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(middleware(scope, receive, send))
    return sent[0]["status"], seen


def test_the_webserver_refuses_requests_that_did_not_come_through_the_proxy():
    middleware = ActingUserMiddleware(None)
    status, seen = _call(middleware, "POST", {}, b'{"query": "{ version }"}')
    assert status == 401 and not seen
    body = json.dumps({"query": LAUNCH, "variables": {"p": {"selector": {"jobName": "cdc_pause"}}}}).encode()
    status, seen = _call(
        middleware, "POST", {"x-forwarded-user": "otto", "content-length": str(len(body))}, body
    )
    assert status == 200
    forwarded = json.loads(seen["body"])
    assert forwarded["variables"]["p"]["executionMetadata"]["tags"] == [{"key": USER_TAG, "value": "otto"}]
    assert dict(seen["scope"]["headers"])[b"content-length"] == str(len(seen["body"])).encode()
    status, _ = _call(
        middleware, "GET", {"x-forwarded-user": "otto"}, query=b"query=mutation%20%7B%20x%20%7D"
    )
    assert status == 400


def test_the_users_file_publishes_the_proxys_htpasswd_and_roles_map(tmp_path, monkeypatch):
    path = tmp_path / "secrets" / "users"
    monkeypatch.setenv("CDC_USERS_FILE", str(path))
    add_user("ana", Role.admin, "a long enough password")
    add_user("olga", Role.operator, "a long enough password")
    lines = htpasswd_file().read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == ["ana", "olga"]
    assert all(len(line.split(":")) == 2 and line.split(":")[1].startswith("$2b$") for line in lines)
    assert roles_file().read_text() == "ana admin;\nolga operator;\n"
    remove_user("olga")
    assert roles_file().read_text() == "ana admin;\n" and "olga" not in htpasswd_file().read_text()
    with pytest.raises(UsersError, match="reserved"):
        add_user("default", Role.viewer, "a long enough password")


def test_nginx_accepts_the_configuration_the_stack_writes(tmp_path):
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    assert nginx, "nginx is not installed: `make test` installs it (apt-get install nginx)"
    from cdc_platform.stack.services import self_signed_certificate

    cert, key = self_signed_certificate("127.0.0.1")
    (tmp_path / "proxy.crt").write_bytes(cert)
    (tmp_path / "proxy.key").write_bytes(key)
    (tmp_path / "roles").write_text("ana admin;\nolga operator;\n")
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / "tmp" / sub).mkdir(parents=True)
    layout = ProxyLayout(
        host="127.0.0.1", port=18443, auth_port=14180,
        sockets={role: tmp_path / f"{role.value}.sock" for role in Role}, roles_file=tmp_path / "roles",
        certificate=tmp_path / "proxy.crt", key=tmp_path / "proxy.key", temp_dir=tmp_path / "tmp",
        logs_dir=tmp_path, pid_path=tmp_path / "nginx.pid", no_role_socket=tmp_path / "no-role.sock",
    )  # fmt: skip
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_conf(layout))
    checked = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "e.log")],
                             capture_output=True, text=True)  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    text = conf.read_text()
    assert "proxy_set_header X-Forwarded-User $cdc_user;" in text and "limit_req zone=cdc_sign_in" in text
