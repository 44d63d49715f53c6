"""Real-Kafka fixtures (tests/kafka_fixture.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kafka_fixture import kafka_bootstrap, kafka_topics

__all__ = ["kafka_bootstrap", "kafka_topics"]
