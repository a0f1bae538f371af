"""Elasticsearch sink: bulk writes through ``elasticsearch.helpers.streaming_bulk``.

Example::

    import apache_beam as beam
    from khabar.config import ElasticsearchConfig
    from khabar.connectors.elasticsearch import IndexRequest, WriteToElasticsearch

    cfg = ElasticsearchConfig(url="http://127.0.0.1:9200")
    with beam.Pipeline() as p:
        result = (p
                  | beam.Create([IndexRequest("khabar-articles", "a1", {"id": "a1", "body": "…"})])
                  | "Index" >> WriteToElasticsearch(cfg))
        result.dead_letters | beam.Map(print)

Documents are buffered per bundle and written in chunks of ``chunk_size`` documents or
``max_chunk_bytes`` bytes, with their deterministic ``_id``, so a replay overwrites instead of
duplicating. 429 and 5xx answers are retried by ``streaming_bulk`` with exponential backoff (the
initial backoff is jittered per batch so that workers do not retry in step); connection failures
are retried the same way until ``retry_deadline``, after which the bundle fails and nothing after it
is committed. Items that Elasticsearch rejects (mapping errors and other 4xx), or that still fail
after the retries, become dead letters carrying the reason; when Elasticsearch refuses a whole
request with a 4xx (one over-long id fails the whole bulk), the batch is split in halves until the
offending documents stand alone, so the good documents around them are still indexed.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindows

from khabar.config import ElasticsearchConfig

log = logging.getLogger(__name__)

DEAD_LETTERS = "dead_letters"
RETRY_STATUSES = (429, 500, 502, 503, 504)


class IndexRequest(NamedTuple):
    """One document to index: target index, deterministic id, source, and where it came from.

    ``owner`` groups the documents written for one parent (an article's entity and quote documents);
    ``replaces`` on the parent's request lists ``(index, field, keep_ids)``: documents of ``index``
    whose ``field`` equals ``owner`` and whose id is not in ``keep_ids`` are stale and get deleted,
    so a new version of an article does not leave the old version's children behind.
    """

    index: str
    id: str
    source: Mapping[str, Any]
    origin: Mapping[str, Any] | None = None
    owner: str | None = None
    replaces: tuple[tuple[str, str, tuple[str, ...]], ...] = ()


def stale_children(batch: Sequence[IndexRequest]) -> tuple[list[IndexRequest], dict[str, list[dict[str, Any]]]]:
    """Drop children of earlier versions in a batch; return the batch and a stale-document query per index.

    The last parent request of an owner in the batch wins: children of earlier versions that the last
    version does not keep are dropped from the batch, and the returned ``bool`` queries (one per
    child index) match the already indexed children that the last version does not keep.
    """
    latest: dict[tuple[str, str], tuple[str, frozenset[str]]] = {}
    for request in batch:
        for index, field, keep in request.replaces:
            if request.owner is not None:
                latest[(index, request.owner)] = (field, frozenset(keep))
    if not latest:
        return list(batch), {}
    kept = [r for r in batch
            if r.owner is None or (r.index, r.owner) not in latest or r.id in latest[(r.index, r.owner)][1]]
    clauses: dict[str, list[dict[str, Any]]] = {}
    for (index, owner), (field, keep) in latest.items():
        clause: dict[str, Any] = {"bool": {"filter": [{"term": {field: owner}}]}}
        if keep:
            clause["bool"]["must_not"] = [{"ids": {"values": sorted(keep)}}]
        clauses.setdefault(index, []).append(clause)
    return kept, clauses


def to_es_action(request: IndexRequest) -> dict[str, Any]:
    """The bulk action for a request: an ``index`` op, so a replay replaces the earlier version."""
    return {"_op_type": "index", "_index": request.index, "_id": request.id, "_source": request.source}


def failure_reason(info: Mapping[str, Any]) -> str:
    """A one-line reason from a bulk item's error info."""
    error = info.get("error")
    if isinstance(error, Mapping):
        reason = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        cause = error.get("caused_by")
        if isinstance(cause, Mapping):
            reason += f" (caused by {cause.get('type')}: {cause.get('reason')})"
        return reason
    return str(error)


def open_client(cfg: ElasticsearchConfig) -> Any:
    """An ``Elasticsearch`` client for the configuration."""
    from elasticsearch import Elasticsearch

    return Elasticsearch(**cfg.client_options())


def ensure_index_templates(client: Any, prefix: str) -> list[str]:
    """Put khabar's index templates and create the indices (idempotent); returns the index names."""
    from khabar.schemas import index_templates

    names = []
    for name, body in index_templates(prefix).items():
        client.indices.put_index_template(name=name, **body)
        if not client.indices.exists(index=name):
            try:
                client.indices.create(index=name)
            except Exception as exc:
                if "resource_already_exists" not in str(exc):
                    raise
        names.append(name)
    return names


class _BulkWriteFn(beam.DoFn):
    def __init__(self, cfg: ElasticsearchConfig) -> None:
        self._cfg = cfg
        self._client: Any = None
        self._buffer: list[IndexRequest] = []
        self._buffer_bytes = 0
        self._indexed = Metrics.counter("khabar", "es_indexed")
        self._rejected = Metrics.counter("khabar", "es_rejected")
        self._retried_batches = Metrics.counter("khabar", "es_connection_retries")
        self._bulk_latency = Metrics.distribution("khabar", "es_bulk_ms")
        self._stale_deleted = Metrics.counter("khabar", "es_stale_deleted")
        self._stale_errors = Metrics.counter("khabar", "es_stale_delete_errors")

    def setup(self) -> None:
        self._client = open_client(self._cfg)

    def start_bundle(self) -> None:
        self._buffer = []
        self._buffer_bytes = 0

    def process(self, request: IndexRequest) -> Iterator[Any]:
        self._buffer.append(request)
        self._buffer_bytes += _approx_size(request.source)
        if len(self._buffer) >= self._cfg.chunk_size or self._buffer_bytes >= self._cfg.max_chunk_bytes:
            yield from (pvalue.TaggedOutput(DEAD_LETTERS, d) for d in self._flush())

    def finish_bundle(self) -> Iterator[Any]:
        for dead in self._flush():
            yield pvalue.TaggedOutput(DEAD_LETTERS, GlobalWindows.windowed_value(dead))

    def _flush(self) -> list[dict[str, Any]]:
        if not self._buffer:
            return []
        batch, self._buffer, self._buffer_bytes = self._buffer, [], 0
        started = time.monotonic()
        batch, stale = stale_children(batch)
        self._delete_stale(stale)
        dead = write_batch(self._client, self._cfg, batch, on_connection_retry=self._retried_batches.inc)
        self._bulk_latency.update(int((time.monotonic() - started) * 1000))
        self._indexed.inc(len(batch) - len(dead))
        self._rejected.inc(len(dead))
        return dead

    def _delete_stale(self, stale: Mapping[str, list[dict[str, Any]]]) -> None:
        # A search then a bulk delete, not _delete_by_query, which needs the reindex module that minimal
        # distributions lack. Done before the bulk write, so new children (kept by must_not) are never hit.
        for index, clauses in stale.items():
            try:
                res = self._client.search(
                    index=index, query={"bool": {"should": clauses, "minimum_should_match": 1}},
                    size=10_000, source=False, ignore_unavailable=True)
                ids = [hit["_id"] for hit in res["hits"]["hits"]]
                if ids:
                    self._client.bulk(operations=[{"delete": {"_index": index, "_id": i}} for i in ids])
                    self._stale_deleted.inc(len(ids))
            except Exception as exc:
                log.warning("deleting stale documents in %s failed: %s", index, exc)
                self._stale_errors.inc()

    def teardown(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _approx_size(source: Mapping[str, Any]) -> int:
    # Cheap upper-bound estimate: avoids serialising twice; streaming_bulk enforces the real limit.
    body = source.get("body") or source.get("text") or ""
    return 512 + 3 * len(body) if isinstance(body, str) else 2048


def write_batch(
    client: Any,
    cfg: ElasticsearchConfig,
    batch: Sequence[IndexRequest],
    *,
    on_connection_retry: Any = None,
    sleep: Any = time.sleep,
) -> list[dict[str, Any]]:
    """Write a batch with ``streaming_bulk``; return one dead letter per item that was not indexed.

    Raises:
        elasticsearch.ConnectionError: Elasticsearch stayed unreachable past ``cfg.retry_deadline``.
    """
    from elasticsearch import ApiError, ConnectionError, ConnectionTimeout
    from elasticsearch.helpers import streaming_bulk

    dead: list[dict[str, Any]] = []
    done = 0
    deadline = time.monotonic() + cfg.retry_deadline
    attempt = 0
    while done < len(batch):
        pending = batch[done:]
        try:
            for ok, info in streaming_bulk(
                client,
                (to_es_action(r) for r in pending),
                chunk_size=cfg.chunk_size,
                max_chunk_bytes=cfg.max_chunk_bytes,
                raise_on_error=False,
                raise_on_exception=True,
                max_retries=cfg.max_retries,
                initial_backoff=cfg.initial_backoff * random.uniform(0.5, 1.5),
                max_backoff=cfg.max_backoff,
                retry_on_status=RETRY_STATUSES,
                yield_ok=True,
            ):
                if not ok:
                    _op, item = next(iter(info.items()))
                    request = _find(pending, item.get("_id"), item.get("_index"))
                    dead.append(_dead_letter(request, item))
                done += 1
        except (ConnectionError, ConnectionTimeout, ApiError) as exc:
            status = getattr(exc, "status_code", None)
            transient = status is None or status in RETRY_STATUSES
            if not transient and isinstance(status, int) and 400 <= status < 500:
                # Elasticsearch refused the whole request (an over-long id, a request too large): split
                # it until the offending documents stand alone, and dead-letter only those.
                rest = batch[done:]
                if len(rest) == 1:
                    dead.append(_dead_letter(rest[0], {"status": status, "error": _api_reason(exc),
                                                       "_id": rest[0].id, "_index": rest[0].index}))
                else:
                    half = len(rest) // 2
                    for part in (rest[:half], rest[half:]):
                        dead.extend(write_batch(client, cfg, part, on_connection_retry=on_connection_retry,
                                                sleep=sleep))
                return dead
            if not transient or time.monotonic() >= deadline:
                raise
            attempt += 1
            wait = min(cfg.max_backoff, cfg.initial_backoff * 2 ** min(attempt, 16)) * random.uniform(0.5, 1.5)
            log.warning("Elasticsearch unavailable (%s); retrying %d documents in %.1fs",
                        type(exc).__name__, len(batch) - done, wait)
            if on_connection_retry is not None:
                on_connection_retry()
            sleep(min(wait, max(0.0, deadline - time.monotonic())))
    return dead


def _api_reason(exc: Exception) -> str:
    info = getattr(exc, "info", None) or getattr(exc, "body", None)
    if isinstance(info, Mapping) and isinstance(info.get("error"), Mapping):
        return failure_reason(info)
    return str(getattr(exc, "message", exc))[:2000]


def _find(batch: Sequence[IndexRequest], doc_id: str | None, index: str | None) -> IndexRequest | None:
    for request in batch:
        if request.id == doc_id and request.index == index:
            return request
    return None


def _dead_letter(request: IndexRequest | None, item: Mapping[str, Any]) -> dict[str, Any]:
    status = item.get("status")
    reason = failure_reason(item)
    if status in RETRY_STATUSES:
        reason = f"retries exhausted ({status}): {reason}"
    return {
        "stage": "index",
        "error": reason,
        "error_type": f"http_{status}",
        "index": item.get("_index"),
        "document_id": item.get("_id"),
        "document": dict(request.source) if request is not None else None,
        "origin": dict(request.origin) if request is not None and request.origin else None,
    }


class WriteToElasticsearch(beam.PTransform):
    """Indexes :class:`IndexRequest` elements; returns the dead letters of rejected items.

    Args:
        cfg: Elasticsearch settings (URL, credentials, chunk sizes, retries).

    Returns:
        A PCollection of dead-letter dicts (stage ``index``) with the Elasticsearch reason.
    """

    def __init__(self, cfg: ElasticsearchConfig) -> None:
        super().__init__()
        self._cfg = cfg

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        results = pcoll | "Bulk index" >> beam.ParDo(_BulkWriteFn(self._cfg)).with_outputs(DEAD_LETTERS)
        return results[DEAD_LETTERS]
