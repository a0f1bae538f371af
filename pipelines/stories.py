"""Link enriched articles into stories, copies and reuse, looking up recent candidates in Elasticsearch.

Placed after enrichment in the ingest pipeline::

    from khabar.pipelines.stories import LinkStories

    linked = enriched.ok | "Link stories" >> LinkStories(cfg.elasticsearch)
    requests = linked | "Build index documents" >> beam.FlatMap(_to_requests, prefix)

Elements are ``(article, origin)`` pairs (or bare article dicts); each comes out with ``story_id``,
``duplicate_of`` and ``reuses`` set by :func:`khabar.stories.link`, and with ``story_signature`` so
that :func:`khabar.pipelines.documents.article_to_requests` stores it for later articles.

Candidates are the articles in ``{prefix}-articles`` that share a claim id, an LSH band of the text
or one of the main entity ids, published within ``window_days`` (or undated), plus an LRU cache of
the signatures this worker linked recently (Elasticsearch only shows documents after a refresh, and
articles of the same bundle are not written yet). State is bounded by the cache size. The transform
is a plain ParDo: no GroupByKey or Reshuffle, so it stays fused with the Kafka read and the sink,
and offsets are still committed only after the writes. If the lookup fails, the article is linked
against the cache alone (its claim-based story id does not depend on candidates) and the
``story_lookup_errors`` counter says so.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any, Protocol

import apache_beam as beam
from apache_beam.metrics import Metrics

from khabar import stories
from khabar.config import ElasticsearchConfig

__all__ = ["CandidateLookup", "EsCandidateLookup", "LinkStories", "candidate_query", "hit_to_candidate"]

log = logging.getLogger(__name__)

_SOURCE_FIELDS = ["id", "published_at", "story_id", "duplicate_of", "story_signature"]


class CandidateLookup(Protocol):
    """Where :class:`LinkStories` finds the signatures of earlier articles (picklable until ``open``)."""

    def open(self) -> None:
        """Connect (called once per DoFn instance, in ``setup``)."""

    def search(self, signature: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Signatures (with ``story_id`` and ``duplicate_of``) of candidate articles for ``signature``."""

    def close(self) -> None:
        """Release the connection."""


def _window(published_at: Any, days: int) -> tuple[str, str] | None:
    d = stories._date(published_at)
    if d is None:
        return None
    return (d - timedelta(days=days)).isoformat(), (d + timedelta(days=days)).isoformat()


def candidate_query(signature: Mapping[str, Any], window_days: int = 365) -> dict[str, Any]:
    """The Elasticsearch query for the candidates of ``signature`` (see the module docstring)."""
    keys = stories.lookup_keys(signature)
    should: list[dict[str, Any]] = []
    for field, boost in (("claim_ids", 3.0), ("story_bands", 5.0), ("entity_ids", 1.0)):
        should.extend({"term": {field: {"value": v, "boost": boost}}} for v in keys[field])
    query: dict[str, Any] = {
        "bool": {
            "should": should,
            "minimum_should_match": 1,
            "must_not": [{"ids": {"values": [str(signature["id"])]}}],
        }
    }
    window = _window(signature.get("published_at"), window_days)
    if window is not None:
        query["bool"]["filter"] = [{"bool": {"minimum_should_match": 1, "should": [
            {"range": {"published_at": {"gte": window[0], "lte": window[1]}}},
            {"bool": {"must_not": [{"exists": {"field": "published_at"}}]}},
        ]}}]
    return query


def hit_to_candidate(source: Mapping[str, Any]) -> dict[str, Any] | None:
    """A stored article document -> candidate signature with its story fields, or None if unlinked."""
    sig = source.get("story_signature")
    if not isinstance(sig, Mapping):
        return None
    return {**sig, "story_id": source.get("story_id"), "duplicate_of": source.get("duplicate_of")}


class EsCandidateLookup:
    """Candidates from ``{prefix}-articles`` (the index the ingest pipeline writes)."""

    def __init__(self, cfg: ElasticsearchConfig, *, window_days: int = 365, size: int = 30) -> None:
        self._cfg = cfg
        self._window_days = window_days
        self._size = size
        self._client: Any = None

    def open(self) -> None:
        from khabar.connectors.elasticsearch import open_client

        self._client = open_client(self._cfg)

    def search(self, signature: Mapping[str, Any]) -> list[dict[str, Any]]:
        if not stories.lookup_keys(signature)["claim_ids"] and not signature.get("bands") \
                and not signature.get("entities"):
            return []
        res = self._client.search(
            index=self._cfg.index("articles"),
            query=candidate_query(signature, self._window_days),
            size=self._size,
            source=_SOURCE_FIELDS,
            ignore_unavailable=True,
        )
        out = []
        for hit in res["hits"]["hits"]:
            cand = hit_to_candidate(hit.get("_source") or {})
            if cand is not None:
                out.append(cand)
        return out

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class _LinkStoriesFn(beam.DoFn):
    def __init__(self, lookup: CandidateLookup, params: stories.Params, cache_size: int) -> None:
        self._lookup = lookup
        self._params = params
        self._cache_size = cache_size
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._linked = Metrics.counter("khabar", "stories_linked")
        self._duplicates = Metrics.counter("khabar", "story_duplicates")
        self._reuses = Metrics.counter("khabar", "story_reuses")
        self._lookup_errors = Metrics.counter("khabar", "story_lookup_errors")
        self._link_errors = Metrics.counter("khabar", "story_link_errors")

    def setup(self) -> None:
        self._cache = OrderedDict()
        self._lookup.open()

    def _from_cache(self, sig: Mapping[str, Any]) -> list[dict[str, Any]]:
        keys = stories.lookup_keys(sig)
        wanted = {(f, v) for f, vs in keys.items() for v in vs}
        window = _window(sig.get("published_at"), self._params.window_days)
        scored = []
        for cid, cand in self._cache.items():
            if cid == sig["id"]:
                continue
            d = cand.get("published_at")
            if window is not None and stories._date(d) is not None and not window[0] <= str(d)[:10] <= window[1]:
                continue
            ck = stories.lookup_keys(cand)
            shared = sum(1 for f, vs in ck.items() for v in vs if (f, v) in wanted)
            if shared:
                scored.append((shared, cid, cand))
        scored.sort(key=lambda t: (-t[0], t[1]))
        return [c for _, _, c in scored[: self._params.max_candidates]]

    def process(self, element: Any) -> Iterator[Any]:
        article, rest = (element[0], element[1:]) if isinstance(element, tuple) else (element, None)
        try:
            sig = stories.signature(article, params=self._params)
        except Exception as exc:  # a linking bug must not lose the article: it goes on unlinked
            log.warning("story signature failed for %s: %s", article.get("id"), exc)
            self._link_errors.inc()
            yield element
            return
        try:
            found = self._lookup.search(sig)
        except Exception as exc:  # Elasticsearch down or index missing: link against the cache alone
            log.warning("story candidate lookup failed for %s: %s", sig["id"], exc)
            self._lookup_errors.inc()
            found = []
        candidates = {str(c.get("id")): c for c in found if c.get("id") != sig["id"]}
        for c in self._from_cache(sig):
            candidates[str(c["id"])] = c  # the cache is fresher than the index
        result = stories.link(sig, list(candidates.values()), self._params)
        self._linked.inc()
        if result["duplicate_of"]:
            self._duplicates.inc()
        if result["reuses"]:
            self._reuses.inc()
        self._cache[sig["id"]] = {**sig, **result}
        self._cache.move_to_end(sig["id"])
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        linked = {**article, **result, "story_signature": sig}
        yield (linked, *rest) if rest is not None else linked

    def teardown(self) -> None:
        self._lookup.close()


class LinkStories(beam.PTransform):
    """Set ``story_id``, ``duplicate_of``, ``reuses`` (and ``story_signature``) on enriched articles.

    Args:
        es_config: where the earlier articles are (``{prefix}-articles``).
        lookup: replaces the Elasticsearch lookup (tests; another store).
        params: linking thresholds, including the lookup window.
        cache_size: signatures of recent articles kept per worker.
    """

    def __init__(self, es_config: ElasticsearchConfig, *, lookup: CandidateLookup | None = None,
                 params: stories.Params = stories.DEFAULT, cache_size: int = 2000) -> None:
        super().__init__()
        if cache_size < 0:
            raise ValueError("cache_size must be >= 0")
        self._lookup = lookup or EsCandidateLookup(es_config, window_days=params.window_days,
                                                   size=params.max_candidates)
        self._params = params
        self._cache_size = cache_size

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        return pcoll | "Link" >> beam.ParDo(_LinkStoriesFn(self._lookup, self._params, self._cache_size))
