"""Session fixtures. Integration tests use the real local stack and fail (never skip) without it."""

from __future__ import annotations

import pytest

from cdc_platform.settings import StackSettings, load_stack_settings


@pytest.fixture(scope="session")
def stack() -> StackSettings:
    """Bring the local stack up (a no-op when it runs) and hand its settings to the test."""
    from cdc_platform.stack.manager import up

    settings = load_stack_settings()
    up(settings, echo=lambda *_: None)
    return settings


@pytest.fixture(scope="session")
def connect(stack: StackSettings):
    from cdc_platform.kafka_connect import KafkaConnectResource

    return KafkaConnectResource(url=stack.connect_url, timeout_seconds=60)
