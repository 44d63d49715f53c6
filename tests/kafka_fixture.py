"""Pytest fixtures for tests on the real local Kafka, shared by tests/integration and tests/failure.

The broker comes from `connectors/kafka/broker.py` (or KAFKA_BOOTSTRAP_SERVERS): a test that needs
Kafka starts it and never skips silently; when Java or Maven is missing it fails with the reason.
Each test gets its own topic namespace, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from connectors.kafka import broker
from connectors.kafka.admin import delete_namespace, ensure_topics
from connectors.kafka.topics import Topics


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a healthy broker; a local one started here is stopped at session end."""
    handle = broker.start()
    yield handle.bootstrap
    if handle.started:
        broker.stop()


@pytest.fixture
def kafka_topics(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Iterator[Topics]:
    """A fresh topic namespace for one test (created), deleted afterwards with its changelogs."""
    name = request.node.name.lower().replace("_", "-")[:24].strip("-")
    topics = Topics(f"t-{name}-{uuid.uuid4().hex[:6]}")
    ensure_topics(kafka_bootstrap, topics)
    yield topics
    asyncio.run(delete_namespace(kafka_bootstrap, topics))
