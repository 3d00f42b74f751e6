"""Alert channels against real local servers: an SMTP server (aiosmtpd) that receives the message,
and an HTTP server (pytest-httpserver) that answers as a real receiver would, failures included."""

from __future__ import annotations

import hashlib
import hmac
import json

from werkzeug import Response

from cdc_platform.alerts.channels import Notice, send
from cdc_platform.alerts.rules import EmailChannel, WebhookChannel

NOTICE = Notice("triggered", 7, "sink_lag", "shop", "sink", "warning", "shop sink: lag_messages = 500", 500.0,
                1_800_000_000.0)  # fmt: skip


def test_email_arrives_with_login_and_the_password_only_by_reference(smtp, tmp_path, monkeypatch):
    controller, inbox, logins = smtp
    monkeypatch.setenv("ALERT_SMTP_PASSWORD", "mail-secret")
    channel = EmailChannel(kind="email", smtp_host="127.0.0.1", smtp_port=controller.port, tls="none",
                           username="alerts", password={"env": "ALERT_SMTP_PASSWORD"}, sender="cdc@example.com",
                           recipients=["oncall@example.com", "data@example.com"])  # fmt: skip
    assert send(channel, NOTICE, tmp_path).ok
    (message,) = inbox.messages
    assert message.rcpt_tos == ["oncall@example.com", "data@example.com"] and logins == ["alerts"]
    body = message.content.decode()
    assert "[FIRING] [warning] shop: sink_lag (sink)" in body and "cdc-platform alerts ack 7" in body
    assert "mail-secret" not in body
    # a refused login is an outcome naming the user, never the password
    monkeypatch.setenv("ALERT_SMTP_PASSWORD", "wrong-secret")
    refused = send(channel, NOTICE, tmp_path)
    assert not refused.ok and "refused" in refused.error and "wrong-secret" not in refused.error


def test_email_without_login(smtp, tmp_path):
    controller, inbox, _ = smtp
    channel = EmailChannel(kind="email", smtp_host="127.0.0.1", smtp_port=controller.port, tls="none",
                           sender="cdc@example.com", recipients=["oncall@example.com"])  # fmt: skip
    assert send(channel, NOTICE, tmp_path).ok and len(inbox.messages) == 1


def test_webhook_retries_a_failing_receiver_and_signs_the_body(httpserver, tmp_path, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "hmac-key")
    answers = iter([Response("busy", status=503), Response("busy", status=502), Response("ok", status=200)])
    received = []

    def handler(request):
        received.append(request)
        return next(answers)

    httpserver.expect_request("/hook", method="POST").respond_with_handler(handler)
    channel = WebhookChannel(kind="webhook", url=httpserver.url_for("/hook"), secret={"env": "HOOK_SECRET"},
                             retries=3, backoff_seconds=0.05)  # fmt: skip
    assert send(channel, NOTICE, tmp_path).ok
    assert len(received) == 3
    body = received[-1].get_data()
    expected = "sha256=" + hmac.new(b"hmac-key", body, hashlib.sha256).hexdigest()
    assert received[-1].headers["X-CDC-Signature"] == expected
    payload = json.loads(body)
    assert payload["alert_id"] == 7 and payload["kind"] == "triggered" and payload["pipeline"] == "shop"


def test_slack_shape_and_a_receiver_that_refuses(httpserver, tmp_path):
    httpserver.expect_request("/slack", method="POST").respond_with_data("ok")
    slack = WebhookChannel(kind="webhook", url=httpserver.url_for("/slack"), format="slack")
    assert send(slack, NOTICE, tmp_path).ok
    payload = json.loads(httpserver.log[-1][0].get_data())
    assert (
        payload["text"].startswith("[FIRING]") and payload["attachments"][0]["fields"][0]["value"] == "shop"
    )
    # a 4xx is not retried, and the error names the host, not the URL's path (a Slack hook's secret)
    httpserver.expect_request("/secret-path", method="POST").respond_with_data("no", status=404)
    refused = WebhookChannel(
        kind="webhook", url=httpserver.url_for("/secret-path"), retries=3, backoff_seconds=0
    )
    outcome = send(refused, NOTICE, tmp_path)
    assert not outcome.ok and "HTTP 404" in outcome.error and "secret-path" not in outcome.error
    assert "1 attempt" in outcome.error
