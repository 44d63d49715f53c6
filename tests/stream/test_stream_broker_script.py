"""The broker script's refusals, without starting anything: each names the cause and the remedy."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest

from connectors.kafka import broker


def test_missing_java_is_named_with_the_remedy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(broker.BrokerError, match=r"java is not installed.*openjdk-17.*KAFKA_BOOTSTRAP_SERVERS"):
        broker._java()


def test_missing_maven_is_named_with_the_remedy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("PAYRECON_KAFKA_CACHE", str(tmp_path / "cache"))
    with pytest.raises(broker.BrokerError, match=r"mvn is not installed.*apt-get install maven.*KAFKA_HOME"):
        broker.resolve_libs(broker.paths())


def test_an_external_cluster_that_does_not_answer_is_an_error_not_a_local_start(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    with pytest.raises(broker.BrokerError, match=r"KAFKA_BOOTSTRAP_SERVERS=127\.0\.0\.1:1 does not answer"):
        broker.start()
    assert broker.stop() is False  # never stops a cluster it did not start


def test_bad_port_override(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PAYRECON_KAFKA_PORT", "kafka")
    with pytest.raises(broker.BrokerError, match="PAYRECON_KAFKA_PORT"):
        broker.paths()


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch):
    # 0xf8 in the first byte encodes to "-" first: kafka-storage format would read it as an
    # option ("argument --cluster-id/-t: expected one argument"), one fresh data folder in 64.
    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x10" + bytes(15))])
    monkeypatch.setattr(broker.uuid, "uuid4", lambda: next(draws))
    cid = broker._cluster_id()
    assert cid == base64.urlsafe_b64encode(b"\x10" + bytes(15)).decode().rstrip("=")
    assert len(cid) == 22
