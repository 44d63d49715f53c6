"""The broker script's refusals, without starting anything: each names the cause and the remedy."""

from __future__ import annotations

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
