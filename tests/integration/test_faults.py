"""Faults on a dedicated Kafka + Elasticsearch pair: nothing lost, nothing duplicated.

The shared test services are never stopped: this module starts its own pair through
``khabar.deploy.local.services`` (home ``$KHABAR_FAULTS_HOME`` or ``~/.cache/khabar-faults``, ports
29092/29093/29200/29300) and stops only that pair at the end. The pipeline runs as users run it,
``khabar run`` (streaming) in a subprocess. Faults:

* Elasticsearch stopped for 60 s mid-stream and started again (the sink retries connection
  failures until ``elasticsearch.retry_deadline``);
* Elasticsearch answering 429 to part of the bulk traffic (``es_proxy.ThrottlingProxy``);
* the Kafka broker restarted mid-stream.

(SIGKILL of the pipeline and restart is in test_streaming.py; a poison message in test_bad_input.py.)
After each, the articles index holds exactly the produced ids, once each, nothing is on the
dead-letter topic and the consumer group's lag is zero. Figures are printed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from khabar import ops, submit
from khabar.cli import run_command
from khabar.config import KhabarConfig, load_config
from khabar.connectors.elasticsearch import open_client
from khabar.connectors.kafka import ensure_topics, producer

from .es_proxy import ThrottlingProxy

pytestmark = pytest.mark.integration

PORTS = {"kafka_port": 29092, "kafka_controller_port": 29093, "es_port": 29200, "es_transport_port": 29300}
ES_OUTAGE_S = 60.0


@pytest.fixture(scope="module")
def fault_services() -> Iterator[Any]:
    """A Kafka + Elasticsearch pair of this module's own, which its tests may stop and start."""
    from khabar.deploy.local import services as launcher

    home = os.environ.get("KHABAR_FAULTS_HOME") or str(Path.home() / ".cache" / "khabar-faults")
    scfg = launcher.ServicesConfig.from_env(home=home, **PORTS)
    try:
        launcher.up(scfg, ("kafka", "elasticsearch"), timeout=300)
    except launcher.ServiceError as exc:
        pytest.fail(f"could not start the fault-test services:\n{exc}", pytrace=False)
    try:
        yield scfg
    finally:
        if not os.environ.get("KHABAR_TEST_KEEP_SERVICES"):
            launcher.down(scfg)


def _config(scfg: Any, es_url: str | None = None) -> KhabarConfig:
    tag = uuid.uuid4().hex[:10]
    return load_config({
        "kafka.bootstrap_servers": scfg.bootstrap_servers,
        "kafka.topic": f"fault-{tag}", "kafka.dlq_topic": f"fault-{tag}.dlq", "kafka.group_id": f"group-{tag}",
        "kafka.partitions": 3, "kafka.poll_timeout_ms": 500,
        "elasticsearch.url": es_url or scfg.es_url, "elasticsearch.index_prefix": f"fault-{tag}",
    }, environ={})


def _messages(sample_paths: Sequence[Path], n: int, prefix: str) -> list[dict[str, Any]]:
    paragraphs = [p for path in sample_paths for p in path.read_text("utf-8").split("\n") if 40 < len(p) < 1500]
    return [{"id": f"{prefix}-{i:04d}", "text": paragraphs[i % len(paragraphs)] + "\n\n"
             + paragraphs[(i * 7 + 3) % len(paragraphs)]} for i in range(n)]


def _produce(cfg: KhabarConfig, messages: Sequence[dict[str, Any]], rate: float | None = None) -> None:
    prod = producer(cfg.kafka)
    try:
        futures = []
        for m in messages:
            key, value = submit.encode(m)
            futures.append(prod.send(cfg.kafka.topic, key=key, value=value))
            if rate:
                time.sleep(1.0 / rate)
        prod.flush()
        for f in futures:
            f.get(timeout=120)
    finally:
        prod.close(timeout=10)


class _Feeder(threading.Thread):
    """Produces messages at a steady rate in the background (mid-stream traffic)."""

    def __init__(self, cfg: KhabarConfig, messages: Sequence[dict[str, Any]], rate: float) -> None:
        super().__init__(daemon=True, name="feeder")
        self.cfg, self.messages, self.rate = cfg, messages, rate
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            _produce(self.cfg, self.messages, self.rate)
        except BaseException as exc:  # reported by the test
            self.error = exc


def _es_ids(cfg: KhabarConfig, url: str | None = None) -> list[str] | None:
    """The ids in the articles index (None while Elasticsearch is unreachable)."""
    client = open_client(cfg.elasticsearch) if url is None else _client_at(cfg, url)
    try:
        index = cfg.elasticsearch.index("articles")
        if not client.indices.exists(index=index):
            return []
        client.indices.refresh(index=index)
        hits = client.search(index=index, size=10_000, source=False, query={"match_all": {}})["hits"]["hits"]
        return [h["_id"] for h in hits]
    except Exception:
        return None
    finally:
        client.close()


def _client_at(cfg: KhabarConfig, url: str) -> Any:
    from elasticsearch import Elasticsearch

    return Elasticsearch(url, request_timeout=10)


class _Pipeline:
    """``khabar run`` (streaming) in a subprocess, with its output in a log file.

    With ``supervised``, an exit is recorded and the pipeline started again, as systemd or
    Kubernetes would; otherwise an exit fails the test.
    """

    def __init__(self, cfg: KhabarConfig, log: Path, *, supervised: bool = False) -> None:
        self.log = log
        self.supervised = supervised
        self.exits: list[tuple[int, str]] = []
        self._cmd = run_command(replace(cfg, elasticsearch=replace(cfg.elasticsearch, chunk_size=50)))
        self._out = log.open("a")
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[str]:
        return subprocess.Popen(self._cmd, stdout=self._out, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def check(self) -> None:
        """Fail (or, supervised, restart) when the pipeline exited."""
        if self.proc.poll() is None:
            return
        last_error = next((line for line in reversed(self.tail().splitlines()) if "Error" in line), "?")
        assert self.supervised, f"khabar run exited ({self.proc.returncode}):\n{self.tail()}"
        self.exits.append((self.proc.returncode, last_error.strip()[:300]))
        assert len(self.exits) <= 3, f"khabar run keeps exiting: {self.exits}\n{self.tail()}"
        self.proc = self._start()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, chars: int = 4000) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


def _wait_count(cfg: KhabarConfig, at_least: int, pipeline: _Pipeline, timeout: float, url: str | None = None) -> int:
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        ids = _es_ids(cfg, url)
        count = len(ids) if ids is not None else count
        if count >= at_least:
            return count
        pipeline.check()
        time.sleep(0.5)
    return count


def _wait_lag_zero(cfg: KhabarConfig, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    lag = ops.consumer_lag(cfg)
    while time.monotonic() < deadline and any(r["lag"] for r in lag):
        time.sleep(1)
        lag = ops.consumer_lag(cfg)
    return lag


def _check_exactly_once(cfg: KhabarConfig, messages: Sequence[dict[str, Any]], label: str, **figures: Any) -> None:
    ids = _es_ids(cfg) or []
    lag = _wait_lag_zero(cfg)
    letters = ops.read_dead_letters(cfg)
    produced = {m["id"] for m in messages}
    lost = produced - set(ids)
    duplicated = len(ids) - len(set(ids))
    extra = " ".join(f"{k}={v:.1f}s" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
    print(f"\n{label}: produced {len(messages)}, indexed {len(set(ids))}, lost {len(lost)}, duplicated "
          f"{duplicated}, dead-lettered {len(letters)}, lag {sum(r['lag'] for r in lag)}; {extra}")
    assert not lost, f"{len(lost)} lost, e.g. {sorted(lost)[:5]}"
    assert duplicated == 0 and len(ids) == len(produced) and set(ids) == produced
    assert letters == [], [(le["stage"], le["error"][:200]) for le in letters]
    assert all(r["lag"] == 0 for r in lag), lag


def test_elasticsearch_stopped_for_60s_mid_stream(fault_services: Any, sample_paths: list[Path],
                                                  tmp_path: Path) -> None:
    from khabar.deploy.local import services as launcher

    cfg = _config(fault_services)
    ensure_topics(cfg.kafka)
    messages = _messages(sample_paths, 400, "es")
    pipeline = _Pipeline(cfg, tmp_path / "run.log")
    feeder = _Feeder(cfg, messages, rate=8)
    try:
        feeder.start()
        before = _wait_count(cfg, 40, pipeline, timeout=180)
        assert before >= 40, pipeline.tail()
        stopped = time.monotonic()
        launcher.down(fault_services, ("elasticsearch",))
        assert _es_ids(cfg) is None, "Elasticsearch still answers after down"
        time.sleep(max(0.0, ES_OUTAGE_S - (time.monotonic() - stopped)))
        assert pipeline.alive(), f"the pipeline died during the outage:\n{pipeline.tail()}"
        launcher.up(fault_services, ("elasticsearch",), timeout=300)
        back = time.monotonic()
        outage = back - stopped
        feeder.join(timeout=300)
        assert feeder.error is None, feeder.error
        final = _wait_count(cfg, len(messages), pipeline, timeout=300)
        recovery = time.monotonic() - back
        assert final == len(messages), f"{final} of {len(messages)} indexed:\n{pipeline.tail()}"
        _check_exactly_once(cfg, messages, "Elasticsearch stopped mid-stream", indexed_before_stop=before,
                            outage=outage, recovery_after_es_healthy=recovery)
    finally:
        pipeline.stop()
    assert "unavailable" in pipeline.tail(200_000), "the sink never reported retrying"


def test_elasticsearch_answering_429(fault_services: Any, sample_paths: list[Path], tmp_path: Path) -> None:
    with ThrottlingProxy(fault_services.es_url, whole=0.25, items=0.35) as proxy:
        cfg = _config(fault_services, es_url=proxy.url)
        ensure_topics(cfg.kafka)
        messages = _messages(sample_paths, 200, "tooMany")
        _produce(cfg, messages[:100])
        pipeline = _Pipeline(cfg, tmp_path / "run.log")
        try:
            feeder = _Feeder(cfg, messages[100:], rate=20)
            feeder.start()
            started = time.monotonic()
            final = _wait_count(cfg, len(messages), pipeline, timeout=300, url=fault_services.es_url)
            took = time.monotonic() - started
            feeder.join(timeout=60)
            assert feeder.error is None, feeder.error
            assert final == len(messages), f"{final} of {len(messages)}:\n{pipeline.tail()}"
            stats = dict(proxy.stats)
            _check_exactly_once(cfg, messages, "Elasticsearch answering 429", caught_up=took, **stats)
        finally:
            pipeline.stop()
    assert stats["whole_429"] > 0 and stats["items_429"] > 0, stats


def test_kafka_broker_restarted_mid_stream(fault_services: Any, sample_paths: list[Path], tmp_path: Path) -> None:
    """The broker restarts while the pipeline runs: the source waits for it, nothing is lost or doubled.

    The pipeline runs unsupervised, so an exit fails the test: the Kafka source backs off while the
    broker is unreachable instead of ending ``khabar run``.
    """
    from khabar.deploy.local import services as launcher

    cfg = _config(fault_services)
    ensure_topics(cfg.kafka)
    messages = _messages(sample_paths, 200, "kafka")
    _produce(cfg, messages[:100])
    pipeline = _Pipeline(cfg, tmp_path / "run.log")
    try:
        before = _wait_count(cfg, 40, pipeline, timeout=180)
        stopped = time.monotonic()
        launcher.down(fault_services, ("kafka",))
        time.sleep(5)
        launcher.up(fault_services, ("kafka",), timeout=300)
        back = time.monotonic()
        _produce(cfg, messages[100:])
        final = _wait_count(cfg, len(messages), pipeline, timeout=300)
        recovery = time.monotonic() - back
        assert final == len(messages), f"{final} of {len(messages)}:\n{pipeline.tail()}"
        _check_exactly_once(cfg, messages, "Kafka broker restarted mid-stream", indexed_before_restart=before,
                            broker_down=back - stopped, recovery_after_broker_healthy=recovery,
                            pipeline_exits=len(pipeline.exits))
    finally:
        pipeline.stop()
