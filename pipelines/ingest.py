"""The ``ingest`` pipeline: Kafka -> parse/validate -> enrich -> Elasticsearch, dead letters to Kafka.

Example::

    from khabar.config import load_config
    from khabar.pipelines.ingest import run

    result = run(load_config(), bounded=True)       # read to the end offsets seen at start
    print(result.counters)

Every step is fused into the read's stage (no GroupByKey or Reshuffle), so for each bundle the
Elasticsearch sink and the dead-letter producer flush in ``finish_bundle`` before the Kafka
source's bundle finalizer commits the offsets: an offset is committed only once its documents are
acknowledged by Elasticsearch or safely on the dead-letter topic.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from khabar.config import KhabarConfig, PipelineConfig
from khabar.connectors.elasticsearch import WriteToElasticsearch
from khabar.connectors.kafka import KafkaRecord, ReadFromKafka, WriteToKafka
from khabar.pipelines import documents
from khabar.pipelines.stories import LinkStories

log = logging.getLogger(__name__)

DEAD = "dead_letters"
ORIGINAL_MESSAGE = "message"


def _check_encodable(message: dict[str, Any]) -> None:
    """Reject strings that cannot be written as UTF-8 (lone surrogates from ``\\ud800`` escapes).

    JSON allows such escapes and ``json.loads`` accepts them, but nothing downstream can write the
    result as UTF-8 (the id hash of a message without id, the dead letter of a failed enrichment, the
    bulk request, which Elasticsearch refuses as a whole): stopped here, it is one clear dead letter.
    """
    try:
        json.dumps(message, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise documents.Rejected("validate", f"text contains a lone surrogate (U+{ord(exc.object[exc.start]):04X}) "
                                 "that cannot be encoded as UTF-8", "encoding") from exc


class _ParseFn(beam.DoFn):
    """Kafka record -> validated message, or a dead letter (decode / parse / validate)."""

    def __init__(self, cfg: PipelineConfig) -> None:
        self._cfg = cfg
        self._ok = Metrics.counter("khabar", "parsed")
        self._dead = {s: Metrics.counter("khabar", f"dead_letters_{s}") for s in ("decode", "parse", "validate")}

    def process(self, record: KafkaRecord) -> Iterator[Any]:
        origin = documents.origin_of(record)
        try:
            message = documents.parse_message(record.value, record.key, self._cfg)
            _check_encodable(message)
        except documents.Rejected as rejected:
            self._dead[rejected.stage].inc()
            yield pvalue.TaggedOutput(DEAD, documents.dead_letter(
                rejected.stage, rejected.error, error_type=rejected.error_type, payload=record.value,
                origin=origin))
            return
        except Exception as exc:
            # A bug or an input nobody foresaw must not stop the stream: it is a dead letter too.
            log.warning("parsing record %s failed unexpectedly: %s", origin, exc)
            self._dead["parse"].inc()
            yield pvalue.TaggedOutput(DEAD, documents.dead_letter(
                "parse", f"{type(exc).__name__}: {exc}"[:2000], error_type="unexpected", payload=record.value,
                origin=origin))
            return
        self._ok.inc()
        yield message, origin


_WORKER_LEARNER: Any = None


def _enrich_in_worker(message: dict[str, Any]) -> dict[str, Any]:
    """Enrichment as run in the time budget's worker process (off the main thread), with its own learner."""
    global _WORKER_LEARNER
    from khabar import enrich as core

    if _WORKER_LEARNER is None:
        _WORKER_LEARNER = _new_learner()
    return core.enrich(message, learner=_WORKER_LEARNER) if _WORKER_LEARNER else core.enrich(message)


def _new_learner() -> Any:
    from khabar import enrich as core

    learner_cls = getattr(core, "FurnitureLearner", None)
    if learner_cls is None:
        from khabar import boilerplate

        learner_cls = getattr(boilerplate, "FurnitureLearner", None)
    return learner_cls() if learner_cls is not None else None


class _EnrichFn(beam.DoFn):
    """Message -> enriched article via the ``khabar`` core; an exception becomes a dead letter.

    Each document gets ``pipeline.enrich_timeout_s`` seconds (:mod:`khabar.timebudget`): on the main
    thread (Beam's in-process FnApiRunner) a SIGALRM interrupts the enrichment; on SDK harness
    threads (Flink, Dataflow, Prism) the enrichment runs in a worker process that is killed on
    timeout. Either way the document becomes a dead letter with reason "time budget exceeded" and the
    worker goes on with the next one.
    """

    def __init__(self, cfg: PipelineConfig | None = None) -> None:
        self._timeout = (cfg or PipelineConfig()).enrich_timeout_s
        self._enrich: Any = None
        self._learner: Any = None
        self._budget: Any = None
        self._ok = Metrics.counter("khabar", "enriched")
        self._dead = Metrics.counter("khabar", "dead_letters_enrich")
        self._over_budget = Metrics.counter("khabar", "enrich_over_budget")
        self._latency = Metrics.distribution("khabar", "enrich_ms")

    def setup(self) -> None:
        from khabar import enrich as core
        from khabar.timebudget import TimeBudget

        core.tune_gc()
        self._enrich = core.enrich
        self._learner = _new_learner()
        self._budget = TimeBudget(self._timeout, worker_target="khabar.pipelines.ingest:_enrich_in_worker",
                                  worker_setup="khabar.enrich:preload")
        # Load models and data once per worker, not on the first document.
        core.preload()

    def _call(self, message: dict[str, Any]) -> dict[str, Any]:
        if self._learner is not None:
            return self._enrich(message, learner=self._learner)
        return self._enrich(message)

    def process(self, element: tuple[dict[str, Any], dict[str, Any]]) -> Iterator[Any]:
        from khabar.timebudget import BudgetExceeded, WorkerError

        message, origin = element
        started = time.perf_counter()
        try:
            if self._budget.mechanism() == "process":
                article = self._budget.call(_enrich_in_worker, message)
            else:
                article = self._budget.call(self._call, message)
        except BudgetExceeded as exc:
            self._over_budget.inc()
            yield self._dead_letter(message, origin, f"time budget exceeded: enrichment took longer than "
                                    f"{exc.seconds:g} s ({exc.mechanism})", "time_budget")
            return
        except WorkerError as exc:
            yield self._dead_letter(message, origin, str(exc)[:2000], exc.kind)
            return
        except Exception as exc:
            yield self._dead_letter(message, origin, f"{type(exc).__name__}: {exc}"[:2000], type(exc).__name__)
            return
        self._latency.update(int((time.perf_counter() - started) * 1000))
        self._ok.inc()
        if message.get("extra"):
            # The parsed message's unknown fields, as they came: the core would nest them as extra.extra.
            article["extra"] = message["extra"]
        yield article, origin, message

    def _dead_letter(self, message: dict[str, Any], origin: dict[str, Any], error: str, error_type: str) -> Any:
        self._dead.inc()
        log.warning("enrichment of %s failed: %s", message.get("id"), error[:200])
        payload = json.dumps(message, ensure_ascii=False).encode("utf-8")
        return pvalue.TaggedOutput(DEAD, documents.dead_letter(
            "enrich", error, error_type=error_type, payload=payload, origin=origin,
            document_id=message.get("id")))

    def teardown(self) -> None:
        if self._budget is not None:
            self._budget.close()


def _to_requests(element: tuple[dict[str, Any], dict[str, Any], dict[str, Any]], prefix: str) -> list[Any]:
    article, origin, message = element
    # The message rides along in the origin (by reference, nothing is copied) so that a document
    # Elasticsearch rejects can be dead-lettered with the original message, for `khabar dlq replay`.
    return documents.article_to_requests(article, prefix, origin={**origin, ORIGINAL_MESSAGE: message})


def _index_dead_letter(dead: Mapping[str, Any]) -> dict[str, Any]:
    """The sink's rejected item as a dead letter, with the original message as ``original_payload``."""
    origin = dict(dead.get("origin") or {})
    message = origin.pop(ORIGINAL_MESSAGE, None)
    letter = documents.index_dead_letter({**dead, "origin": origin or None})
    letter["original_payload"] = (json.dumps(message, ensure_ascii=False) if message is not None else None)
    return letter


@dataclass
class IngestOutputs:
    """The pipeline's PCollections, for tests and for composing more steps."""

    articles: beam.PCollection
    dead_letters: list[beam.PCollection] = field(default_factory=list)


def build(
    pipeline: beam.Pipeline,
    cfg: KhabarConfig,
    *,
    bounded: bool = False,
    max_records: int | None = None,
    read: beam.PTransform | None = None,
    write_documents: beam.PTransform | None = None,
    write_dead_letters: Any = None,
    link_stories: beam.PTransform | None = None,
) -> IngestOutputs:
    """Add the ingest steps to ``pipeline``.

    Args:
        pipeline: The Beam pipeline.
        cfg: The khabar configuration.
        bounded: Stop at the end offsets seen at start (otherwise read forever).
        max_records: With ``bounded``, read at most about this many records per partition.
        read: Replaces the Kafka read (a PTransform from PBegin to :class:`KafkaRecord`s); tests use it.
        write_documents: Replaces the Elasticsearch write (IndexRequest -> dead-letter dicts).
        write_dead_letters: Callable returning a fresh PTransform for ``(key, value)`` dead letters.
        link_stories: Replaces the story linking (which looks up candidates in Elasticsearch).
    """
    records = pipeline | "Read documents" >> (read or ReadFromKafka(cfg.kafka, bounded=bounded,
                                                                      max_records=max_records))
    parsed = records | "Parse and validate" >> beam.ParDo(_ParseFn(cfg.pipeline)).with_outputs(DEAD, main="ok")
    enriched = parsed.ok | "Enrich" >> beam.ParDo(_EnrichFn(cfg.pipeline)).with_outputs(DEAD, main="ok")
    linked = enriched.ok | "Link stories" >> (link_stories or LinkStories(cfg.elasticsearch))
    requests = linked | "Build index documents" >> beam.FlatMap(_to_requests, cfg.elasticsearch.index_prefix)
    index_dead = (
        requests
        | "Write to Elasticsearch" >> (write_documents or WriteToElasticsearch(cfg.elasticsearch))
        | "Describe rejected documents" >> beam.Map(_index_dead_letter)
    )
    make_writer = write_dead_letters or (lambda: WriteToKafka(cfg.kafka, cfg.kafka.dlq_topic))
    dead = []
    # One dead-letter writer per branch instead of a Flatten, so each stays fused with the read and
    # flushes before the read's offsets are committed.
    for label, pcoll in (("parse", parsed[DEAD]), ("enrich", enriched[DEAD]), ("index", index_dead)):
        dead.append(pcoll)
        _ = (
            pcoll
            | f"Encode {label} dead letters" >> beam.Map(documents.encode_dead_letter)
            | f"Send {label} dead letters" >> make_writer()
        )
    return IngestOutputs(articles=linked, dead_letters=dead)


def pipeline_options(argv: Sequence[str] = (), *, streaming: bool = False) -> PipelineOptions:
    """Beam options from runner flags; DirectRunner (the default) runs on the in-process FnApiRunner."""
    options = PipelineOptions(list(argv))
    std = options.view_as(StandardOptions)
    if streaming:
        std.streaming = True
    return options


def _runner_for(options: PipelineOptions) -> Any:
    name = options.view_as(StandardOptions).runner
    if name in (None, "DirectRunner", "direct", "FnApiRunner"):
        # Beam's DirectRunner first tries to download Prism; the FnApiRunner runs in-process, offline.
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        return FnApiRunner()
    return None  # let Beam resolve --runner (FlinkRunner, PrismRunner, DataflowRunner, ...)


@dataclass
class RunResult:
    """What a finished (bounded) run did."""

    state: str
    counters: dict[str, int]
    distributions: dict[str, dict[str, float]]
    seconds: float


def run(
    cfg: KhabarConfig,
    *,
    bounded: bool = False,
    max_records: int | None = None,
    beam_args: Sequence[str] = (),
    setup_indices: bool = True,
) -> RunResult:
    """Build and run the ingest pipeline; for bounded runs wait for it and return its metrics."""
    if setup_indices:
        from khabar.connectors.elasticsearch import ensure_index_templates, open_client
        from khabar.connectors.kafka import ensure_topics

        ensure_topics(cfg.kafka)
        client = open_client(cfg.elasticsearch)
        try:
            ensure_index_templates(client, cfg.elasticsearch.index_prefix)
        finally:
            client.close()
    options = pipeline_options(beam_args, streaming=not bounded)
    started = time.monotonic()
    pipeline = beam.Pipeline(runner=_runner_for(options), options=options)
    build(pipeline, cfg, bounded=bounded, max_records=max_records)
    result = pipeline.run()
    state = result.wait_until_finish()
    return RunResult(str(state), *collect_metrics(result), seconds=time.monotonic() - started)


def collect_metrics(result: Any) -> tuple[dict[str, int], dict[str, dict[str, float]]]:
    """Committed counters and distributions of the ``khabar`` namespace, summed over steps."""
    query = result.metrics().query(MetricsFilter().with_namespace("khabar"))
    counters: dict[str, int] = {}
    for c in query["counters"]:
        counters[c.key.metric.name] = counters.get(c.key.metric.name, 0) + int(c.committed or 0)
    dists: dict[str, dict[str, float]] = {}
    for d in query["distributions"]:
        value = d.committed
        if value is None or not value.count:
            continue
        dists[d.key.metric.name] = {"count": value.count, "mean": value.mean, "min": value.min, "max": value.max}
    return counters, dists


def format_counters(counters: Mapping[str, int]) -> str:
    """A readable one-line-per-counter summary."""
    return "\n".join(f"  {name:<32} {value}" for name, value in sorted(counters.items()))
