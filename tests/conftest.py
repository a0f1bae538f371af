"""Shared fixtures: sample articles, the gold annotation, and real Kafka + Elasticsearch.

The ``services`` fixture starts the project's own local Kafka and Elasticsearch (through
``khabar.deploy.local.services``) on ports of their own, in ``$KHABAR_TEST_HOME`` (default
``~/.cache/khabar-test``), once per test session, and stops them at the end. A failure to start is
a test error that carries the service's log. To reuse services you already run, set
``KHABAR_TEST_BOOTSTRAP_SERVERS`` and ``KHABAR_TEST_ES_URL``; set ``KHABAR_TEST_KEEP_SERVICES=1``
to leave the started ones running after the session.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SAMPLES_DIR = FIXTURES / "samples"


@pytest.fixture(scope="session")
def sample_paths() -> list[Path]:
    """The five sample articles."""
    return sorted(SAMPLES_DIR.glob("*.txt"))


@pytest.fixture(scope="session")
def gold() -> dict[str, Any]:
    """The hand annotation of the samples."""
    return json.loads((FIXTURES / "seeds.gold.json").read_text("utf-8"))


@dataclass(frozen=True)
class Services:
    """Addresses of the running test services."""

    bootstrap_servers: str
    es_url: str


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """Real Kafka and Elasticsearch for the session (started here unless given by the environment)."""
    given_kafka = os.environ.get("KHABAR_TEST_BOOTSTRAP_SERVERS")
    given_es = os.environ.get("KHABAR_TEST_ES_URL")
    if given_kafka and given_es:
        yield Services(given_kafka, given_es)
        return
    from khabar.deploy.local import services as launcher

    home = os.environ.get("KHABAR_TEST_HOME") or str(Path.home() / ".cache" / "khabar-test")
    cfg = launcher.ServicesConfig.from_env(home=home, kafka_port=19092, kafka_controller_port=19093,
                                           es_port=19200, es_transport_port=19300)
    try:
        launcher.up(cfg, ("kafka", "elasticsearch"), timeout=300)
    except launcher.ServiceError as exc:
        pytest.fail(f"could not start the test services:\n{exc}", pytrace=False)
    try:
        yield Services(cfg.bootstrap_servers, cfg.es_url)
    finally:
        if not os.environ.get("KHABAR_TEST_KEEP_SERVICES"):
            launcher.down(cfg)


@pytest.fixture
def isolated_config(services: Services) -> Any:
    """A khabar configuration with a topic, DLQ, group and index prefix of its own."""
    from khabar.config import load_config

    tag = uuid.uuid4().hex[:10]
    return load_config(
        {
            "kafka.bootstrap_servers": services.bootstrap_servers,
            "kafka.topic": f"test-{tag}",
            "kafka.dlq_topic": f"test-{tag}.dlq",
            "kafka.group_id": f"group-{tag}",
            "kafka.partitions": 3,
            "kafka.poll_timeout_ms": 500,
            "elasticsearch.url": services.es_url,
            "elasticsearch.index_prefix": f"test-{tag}",
            "elasticsearch.chunk_size": 200,
        },
        environ={},
    )
