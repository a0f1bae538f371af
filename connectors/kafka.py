"""Apache Kafka connector on kafka-python: a splittable-DoFn source and a producer sink.

Beam's own ``ReadFromKafka`` needs a Java expansion service; this one is pure Python.

Example::

    import apache_beam as beam
    from khabar.config import KafkaConfig
    from khabar.connectors.kafka import ReadFromKafka, WriteToKafka

    cfg = KafkaConfig(bootstrap_servers="127.0.0.1:9092", topic="khabar.documents")
    with beam.Pipeline() as p:
        records = p | "Read documents" >> ReadFromKafka(cfg, bounded=True)
        (records
         | "Values" >> beam.Map(lambda r: (r.key, r.value))
         | "Copy" >> WriteToKafka(cfg, topic="copy"))

``ReadFromKafka`` reads every partition of the topic from the consumer group's committed offset
(or the beginning). Unbounded by default; ``bounded=True`` stops at the end offsets seen at start,
and ``max_records`` stops after that many records in all. Each read step claims at most
``max_records_per_poll`` records and then checkpoints, so the runner finishes the bundle; offsets
are committed to the consumer group by a bundle finalizer, which runs only after every DoFn fused
downstream (the Elasticsearch sink, the dead-letter producer) has flushed in ``finish_bundle``.
So an offset is committed only for records whose writes were acknowledged, and a crash replays
the rest.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.metrics import Metrics
from apache_beam.transforms.core import RestrictionProvider

from khabar.config import KafkaConfig

log = logging.getLogger(__name__)

UNBOUNDED_END = 2**63 - 1
BROKER_DOWN_DEADLINE_S = 600.0  # how long the source waits for an unreachable broker before failing


class KafkaRecord(NamedTuple):
    """One consumed record; ``value`` stays bytes so decoding errors become dead letters downstream."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int


class PartitionSpec(NamedTuple):
    """The offset range of one partition to read: ``[start, stop)``, ``stop`` unbounded when huge."""

    topic: str
    partition: int
    start: int
    stop: int


def _consumer(cfg: KafkaConfig, **extra: Any) -> Any:
    from kafka import KafkaConsumer

    opts: dict[str, Any] = {
        **cfg.client_options(),
        "group_id": cfg.group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": cfg.max_records_per_poll,
        "fetch_max_bytes": max(52_428_800, cfg.max_message_bytes),
        "max_partition_fetch_bytes": max(1_048_576, cfg.max_message_bytes),
        "client_id": "khabar",
    }
    opts.update(extra)
    return KafkaConsumer(**opts)


def producer(cfg: KafkaConfig, **extra: Any) -> Any:
    """Open a kafka-python producer configured for khabar (acks=all, idempotent batching)."""
    from kafka import KafkaProducer

    opts: dict[str, Any] = {
        **cfg.client_options(),
        "acks": "all",
        "linger_ms": 20,
        "retries": 5,
        "max_request_size": cfg.max_message_bytes,
        "compression_type": None,
        "client_id": "khabar-producer",
    }
    opts.update(extra)
    return KafkaProducer(**opts)


def send_records(cfg: KafkaConfig, items: Iterable[tuple[bytes | None, bytes]], *, topic: str | None = None,
                 timeout: float = 60.0) -> int:
    """Send ``(key, value)`` byte pairs to a topic (default ``cfg.topic``, created if missing) and wait for every ack.

    Returns:
        How many records the broker acknowledged.
    """
    ensure_topics(cfg)
    prod = producer(cfg)
    try:
        futures = [prod.send(topic or cfg.topic, key=k, value=v) for k, v in items]
        prod.flush()
        for future in futures:
            future.get(timeout=timeout)
        return len(futures)
    finally:
        prod.close(timeout=10)


def ensure_topics(cfg: KafkaConfig, topics: Mapping[str, int] | None = None, timeout: float = 30.0) -> list[str]:
    """Create the document and dead-letter topics when missing.

    Args:
        cfg: Kafka settings; ``cfg.partitions`` partitions for the document topic, 1 for the DLQ.
        topics: Explicit ``{name: partitions}`` instead.
        timeout: Seconds to wait for the broker.

    Returns:
        The topics that were created.
    """
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    wanted = dict(topics or {cfg.topic: cfg.partitions, cfg.dlq_topic: 1})
    admin = KafkaAdminClient(**cfg.client_options(), request_timeout_ms=int(timeout * 1000))
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name, n, 1, topic_configs={"max.message.bytes": str(cfg.max_message_bytes)})
            for name, n in wanted.items() if name not in existing
        ]
        if missing:
            # Another process may create the same topic between the listing and this call.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing, timeout_ms=int(timeout * 1000))
        return [t.name for t in missing]
    finally:
        admin.close()


def partition_specs(cfg: KafkaConfig, *, bounded: bool, consumer: Any = None) -> list[PartitionSpec]:
    """Offset ranges to read: from the group's committed offset (or the beginning) to the end or forever."""
    from kafka.structs import TopicPartition

    own = consumer is None
    consumer = consumer or _consumer(cfg)
    try:
        deadline = time.monotonic() + 30
        parts = consumer.partitions_for_topic(cfg.topic)
        while not parts and time.monotonic() < deadline:
            time.sleep(0.5)
            consumer.topics()  # refreshes metadata
            parts = consumer.partitions_for_topic(cfg.topic)
        if not parts:
            raise RuntimeError(f"Kafka topic {cfg.topic!r} does not exist on {cfg.bootstrap_servers}")
        tps = [TopicPartition(cfg.topic, p) for p in sorted(parts)]
        beginning = consumer.beginning_offsets(tps)
        end = consumer.end_offsets(tps) if bounded else {}
        specs = []
        for tp in tps:
            committed = consumer.committed(tp)
            start = max(committed if committed is not None else 0, beginning[tp])
            stop = end[tp] if bounded else UNBOUNDED_END
            specs.append(PartitionSpec(tp.topic, tp.partition, start, max(start, stop)))
        return specs
    finally:
        if own:
            consumer.close()


class _ListPartitionsFn(beam.DoFn):
    def __init__(self, cfg: KafkaConfig, bounded: bool) -> None:
        self._cfg = cfg
        self._bounded = bounded

    def process(self, _: Any) -> Iterator[PartitionSpec]:
        specs = partition_specs(self._cfg, bounded=self._bounded)
        for spec in specs:
            log.info("reading %s[%d] from offset %d to %s", spec.topic, spec.partition, spec.start,
                     "end" if spec.stop == UNBOUNDED_END else spec.stop)
            yield spec


class _PartitionRestrictionProvider(RestrictionProvider):
    def initial_restriction(self, element: PartitionSpec) -> OffsetRange:
        return OffsetRange(element.start, element.stop)

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return OffsetRestrictionTracker(restriction)

    def restriction_size(self, element: PartitionSpec, restriction: OffsetRange) -> int:
        return min(restriction.size(), 1 << 40)

    def split(self, element: PartitionSpec, restriction: OffsetRange) -> Iterable[OffsetRange]:
        # One partition is read in order by one consumer; splitting it would break that.
        yield restriction


class _ReadPartitionFn(beam.DoFn):
    """Reads one partition's offset range; checkpoints after each poll so bundles stay small."""

    def __init__(self, cfg: KafkaConfig) -> None:
        self._cfg = cfg
        self._consumers: dict[tuple[str, int], Any] = {}
        self._records = Metrics.counter("khabar", "kafka_records_read")
        self._commits = Metrics.counter("khabar", "kafka_offset_commits")

    def setup(self) -> None:
        self._consumers = {}
        self._down_since: float | None = None
        self._down_waits = 0

    def _consumer_for(self, topic: str, partition: int, start: int) -> Any:
        from kafka.structs import TopicPartition

        key = (topic, partition)
        tp = TopicPartition(topic, partition)
        consumer = self._consumers.get(key)
        if consumer is None:
            consumer = _consumer(self._cfg)
            consumer.assign([tp])
            consumer.seek(tp, start)
            self._consumers[key] = consumer
        elif consumer.position(tp) != start:
            consumer.seek(tp, start)
        return consumer

    def process(
        self,
        spec: PartitionSpec,
        finalizer: Any = beam.DoFn.BundleFinalizerParam,
        # Beam passes the tracker by keyword, so it must come after the positional placeholders.
        tracker: OffsetRestrictionTracker = beam.DoFn.RestrictionParam(_PartitionRestrictionProvider()),  # noqa: B008
    ) -> Iterator[KafkaRecord]:
        from kafka.structs import OffsetAndMetadata, TopicPartition

        restriction = tracker.current_restriction()
        if restriction.start >= restriction.stop:
            return
        tp = TopicPartition(spec.topic, spec.partition)
        try:
            consumer = self._consumer_for(spec.topic, spec.partition, restriction.start)
            # Blocks for up to poll_timeout_ms when idle rather than spinning.
            batch = consumer.poll(timeout_ms=self._cfg.poll_timeout_ms, max_records=self._cfg.max_records_per_poll)
        except Exception as exc:
            self._wait_for_broker(exc)  # nothing claimed: the same range is read again
            tracker.defer_remainder()
            return
        last = None
        for record in batch.get(tp, ()):
            if not tracker.try_claim(record.offset):
                return
            last = record.offset
            yield KafkaRecord(record.topic, record.partition, record.offset, record.key, record.value,
                              record.timestamp)
        if last is not None:
            self._records.inc(last - restriction.start + 1)
            offsets = {tp: OffsetAndMetadata(last + 1, "", -1)}
            finalizer.register(lambda c=consumer, o=offsets: self._commit(c, o))
        try:
            position = consumer.position(tp)
        except Exception as exc:
            self._wait_for_broker(exc)  # the claimed records stay claimed; the rest is read later
            tracker.defer_remainder()
            return
        self._down_since = None
        if position >= restriction.stop:
            # Past the end of a bounded range (possibly over transaction markers): claim the end to finish.
            if last is None or last + 1 < restriction.stop:
                tracker.try_claim(restriction.stop)
            return
        tracker.defer_remainder()

    def _wait_for_broker(self, exc: Exception) -> None:
        """Back off while the broker is unreachable (a restart, a network blip); re-raise anything else.

        kafka-python reconnects by itself, but while the broker is down ``poll``/``position`` and a
        new consumer raise retriable errors; ending the pipeline for them would turn a broker
        restart into a pipeline outage. Past ``BROKER_DOWN_DEADLINE_S`` the error is raised.
        """
        from kafka.errors import KafkaTimeoutError

        if not (getattr(exc, "retriable", False) or isinstance(exc, KafkaTimeoutError)):
            raise exc
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            self._down_waits = 0
        if now - self._down_since > BROKER_DOWN_DEADLINE_S:
            raise exc
        wait = min(30.0, 0.5 * 2 ** self._down_waits)
        self._down_waits += 1
        log.warning("Kafka unreachable (%s: %s); retrying in %.1fs", type(exc).__name__, exc, wait)
        time.sleep(wait)

    def _commit(self, consumer: Any, offsets: Mapping[Any, Any]) -> None:
        from kafka.errors import KafkaError

        try:
            consumer.commit(offsets=dict(offsets))
        except KafkaError as exc:
            # A lost commit only means these records are read again after a restart, and their
            # deterministic ids overwrite: safe. Failing here would end the pipeline instead.
            log.warning("committing offsets failed (%s); the next commit covers them", exc)
            return
        self._commits.inc()

    def teardown(self) -> None:
        for consumer in self._consumers.values():
            try:
                consumer.close(autocommit=False)
            except Exception:
                log.debug("closing consumer failed", exc_info=True)
        self._consumers = {}


@beam.DoFn.unbounded_per_element()
class _ReadPartitionUnboundedFn(_ReadPartitionFn):
    """The same reader, marking its output unbounded for streaming runners."""


class ReadFromKafka(beam.PTransform):
    """Reads records from every partition of ``cfg.topic`` as :class:`KafkaRecord`.

    Args:
        cfg: Kafka settings (bootstrap servers, topic, group id, poll sizes).
        bounded: Stop at the end offsets seen when the read starts (backfills and tests).
        max_records: With ``bounded``, stop after about this many records in all (``None``: no limit).
    """

    def __init__(self, cfg: KafkaConfig, *, bounded: bool = False, max_records: int | None = None) -> None:
        super().__init__()
        if max_records is not None and max_records <= 0:
            raise ValueError("max_records must be positive")
        if max_records is not None and not bounded:
            raise ValueError("max_records needs bounded=True")
        self._cfg = cfg
        self._bounded = bounded
        self._max_records = max_records

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        specs = (
            pbegin
            | "Start" >> beam.Impulse()
            | "List partitions" >> beam.ParDo(_ListPartitionsFn(self._cfg, self._bounded))
        )
        if self._max_records is not None:
            specs = specs | "Limit records" >> beam.Map(_limit_spec, self._max_records)
        reader = _ReadPartitionFn(self._cfg) if self._bounded else _ReadPartitionUnboundedFn(self._cfg)
        return specs | "Read partitions" >> beam.ParDo(reader)


def _limit_spec(spec: PartitionSpec, max_records: int) -> PartitionSpec:
    # A per-partition cap: an upper bound of max_records per partition, exact for one partition.
    return spec._replace(stop=min(spec.stop, spec.start + max_records))


class _WriteFn(beam.DoFn):
    def __init__(self, cfg: KafkaConfig, topic: str) -> None:
        self._cfg = cfg
        self._topic = topic
        self._producer: Any = None
        self._pending: list[Any] = []
        self._sent = Metrics.counter("khabar", f"kafka_sent_{topic}")

    def setup(self) -> None:
        self._producer = producer(self._cfg)

    def start_bundle(self) -> None:
        self._pending = []

    def process(self, element: tuple[bytes | None, bytes]) -> None:
        key, value = element
        self._pending.append(self._producer.send(self._topic, key=key, value=value))

    def finish_bundle(self) -> None:
        # Block until the broker has every record of the bundle, so offsets commit after them.
        self._producer.flush()
        for future in self._pending:
            future.get(timeout=60)
        self._sent.inc(len(self._pending))
        self._pending = []

    def teardown(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=10)
            self._producer = None


class WriteToKafka(beam.PTransform):
    """Writes ``(key, value)`` byte pairs to a topic; each bundle is acknowledged before it completes.

    Args:
        cfg: Kafka settings.
        topic: The topic to write to (defaults to ``cfg.dlq_topic``).
    """

    def __init__(self, cfg: KafkaConfig, topic: str | None = None) -> None:
        super().__init__()
        self._cfg = cfg
        self._topic = topic or cfg.dlq_topic

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        return pcoll | f"Send to {self._topic}" >> beam.ParDo(_WriteFn(self._cfg, self._topic))
