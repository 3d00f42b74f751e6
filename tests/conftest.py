"""Session fixtures. Integration tests use the real local stack and fail (never skip) without it."""

from __future__ import annotations

import gc

import pytest

from cdc_platform.settings import StackSettings, load_stack_settings

#: the longest files, started first: with several workers (`make test`), the slowest test would
#: otherwise start late and run alone at the end
SLOWEST_FIRST = ("test_daemon.py", "test_ui.py", "test_checksum_checks.py", "test_quality_checks.py",
                 "test_pipeline_replication.py", "test_value_fidelity.py", "test_alerts.py", "test_audit.py")  # fmt: skip


def pytest_collection_modifyitems(config, items) -> None:
    """The slowest integration files first, the rest of the integration tests, then the quick unit
    tests that fill the gaps at the end (the order within a file is kept)."""

    def weight(item) -> int:
        if item.path.name in SLOWEST_FIRST:
            return SLOWEST_FIRST.index(item.path.name)
        return len(SLOWEST_FIRST) + (0 if item.get_closest_marker("integration") else 1)

    items.sort(key=weight)


@pytest.fixture(scope="session")
def stack() -> StackSettings:
    """Bring the local stack up (a no-op when it runs) and hand its settings to the test."""
    from cdc_platform.stack.manager import up

    up(load_stack_settings(), echo=lambda *_: None)
    return load_stack_settings()  # again: a first start may have moved a private state dir


@pytest.fixture(scope="session")
def connect(stack: StackSettings):
    from cdc_platform.kafka_connect import KafkaConnectResource

    return KafkaConnectResource(url=stack.connect_url, timeout_seconds=60)


# -- no secret in any output -----------------------------------------------------------------------
# Every captured stdout/stderr/log section and failure report of the run, and every service log of
# the stack, is searched for the stack's generated passwords at the end of the session; a hit fails
# the run, naming where it was found (not the password).
_OUTPUTS: list[tuple[str, str, str]] = []


def pytest_runtest_logreport(report) -> None:
    for section, content in report.sections:
        _OUTPUTS.append((report.nodeid, section, content))
    if report.longrepr is not None:
        _OUTPUTS.append((report.nodeid, f"{report.when} report", str(report.longrepr)))


def find_secret_leaks(settings: StackSettings, outputs: list[tuple[str, str, str]]) -> list[str]:
    from cdc_platform.settings import read_properties

    passwords = [
        v for k, v in read_properties(settings.secrets_file).items() if k.endswith(".password") and v
    ]
    leaks = [f"{where} ({section})" for where, section, text in outputs for p in passwords if p in text]
    if settings.logs_dir.is_dir():
        for log in sorted(settings.logs_dir.glob("*.log")):
            text = log.read_text(errors="replace")
            leaks += [f"service log {log}" for p in passwords if p in text]
    return leaks


def pytest_sessionfinish(session, exitstatus) -> None:
    settings = load_stack_settings()
    if not settings.secrets_file.exists():
        return
    leaks = find_secret_leaks(settings, _OUTPUTS)
    if leaks:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = "a generated stack password appeared in: " + "; ".join(sorted(set(leaks)))
        if reporter is not None:
            reporter.write_line(f"SECRET LEAK: {message}", red=True, bold=True)
        session.exitstatus = 1


# -- a real SMTP server for the alert channels (aiosmtpd), logins checked against one password -------
class Inbox:
    def __init__(self):
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp():
    """(controller, inbox, logins): a local SMTP server accepting the password ``mail-secret``."""
    import socket

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    inbox, logins = Inbox(), []

    def authenticate(server, session, envelope, mechanism, auth_data):
        logins.append(auth_data.login.decode())
        return AuthResult(success=auth_data.password == b"mail-secret", handled=False)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, authenticator=authenticate, auth_require_tls=False
    )
    controller.start()
    yield controller, inbox, logins
    controller.stop()


@pytest.fixture(autouse=True)
def _collectable_definitions():
    """Building definitions freezes them (``gc.freeze``: a code server keeps them for its life); a
    test session builds them hundreds of times, so each test hands them back to the collector."""
    yield
    gc.unfreeze()


@pytest.fixture
def lake_conn(stack, monkeypatch, tmp_path) -> dict:
    """An S3 connection (Iceberg tables) to a new bucket on the stack's S3 server, its catalog in a
    platform database of the test's own."""
    import boto3

    monkeypatch.setenv("CDC_METRICS_URL", f"sqlite:///{tmp_path / 'platform.sqlite'}")
    monkeypatch.setenv("LAKE_KEY", "testing")
    monkeypatch.setenv("LAKE_SECRET", "testing")
    from tests.support import unique

    name = unique("ice").replace("_", "-")
    boto3.client("s3", endpoint_url=stack.s3_url, aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket=name)  # fmt: skip
    return {"kind": "s3", "bucket": name, "prefix": "wh", "endpoint_url": stack.s3_url, "table_format": "iceberg",
            "access_key_id": {"env": "LAKE_KEY"}, "secret_access_key": {"env": "LAKE_SECRET"}}  # fmt: skip
