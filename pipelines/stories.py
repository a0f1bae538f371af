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
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any, Protocol

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindows

from khabar import stories
from khabar.config import ElasticsearchConfig

__all__ = ["CandidateLookup", "EsCandidateLookup", "LinkStories", "candidate_query", "hit_to_candidate"]

log = logging.getLogger(__name__)

# The candidate search returns only these; signatures (~5 KB of JSON each, 30 candidates per article)
# are fetched once per document version with ``mget`` and kept in the lookup's LRU.
_HIT_FIELDS = ["id", "published_at", "story_id", "duplicate_of"]


class CandidateLookup(Protocol):
    """Where :class:`LinkStories` finds the signatures of earlier articles (picklable until ``open``)."""

    def open(self) -> None:
        """Connect (called once per DoFn instance, in ``setup``)."""

    def search(self, signature: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Signatures (with ``story_id`` and ``duplicate_of``) of candidate articles for ``signature``."""

    # Optional: ``search_many(signatures) -> list of candidate lists`` answers a batch in one round
    # trip; a lookup without it is asked ``search`` once per article.

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
    """Candidates from ``{prefix}-articles`` (the index the ingest pipeline writes).

    The search asks for ids, story fields and each hit's ``_seq_no``/``_primary_term`` only; the
    signatures of hits it has not seen at that version come in one ``mget`` and stay in an LRU of
    ``cache_size`` entries. The same earlier articles are candidates for many later ones, so most
    lookups decode no signature at all (decoding them was most of the linking step's CPU).
    """

    def __init__(self, cfg: ElasticsearchConfig, *, window_days: int = 365, size: int = 30,
                 cache_size: int = 2000) -> None:
        self._cfg = cfg
        self._window_days = window_days
        self._size = size
        self._cache_size = cache_size
        self._client: Any = None
        self._sigs: OrderedDict[tuple[str, str], tuple[tuple[Any, Any], Mapping[str, Any]]] = OrderedDict()

    def open(self) -> None:
        from khabar.connectors.elasticsearch import open_client

        self._client = open_client(self._cfg)
        self._sigs = OrderedDict()

    @staticmethod
    def _searchable(signature: Mapping[str, Any]) -> bool:
        return bool(stories.lookup_keys(signature)["claim_ids"] or signature.get("bands")
                    or signature.get("entities"))

    def _body(self, signature: Mapping[str, Any]) -> dict[str, Any]:
        return {"query": candidate_query(signature, self._window_days), "size": self._size,
                "_source": _HIT_FIELDS, "seq_no_primary_term": True}

    @staticmethod
    def _key(doc: Mapping[str, Any]) -> tuple[tuple[str, str], tuple[Any, Any]]:
        return (str(doc.get("_index")), str(doc.get("_id"))), (doc.get("_seq_no"), doc.get("_primary_term"))

    def _fetch_missing(self, hit_lists: Sequence[Sequence[Mapping[str, Any]]]) -> None:
        """``mget`` the signatures of hits not cached at their version (one round trip)."""
        missing: dict[tuple[str, str], None] = {}
        for hits in hit_lists:
            for hit in hits:
                if isinstance((hit.get("_source") or {}).get("story_signature"), Mapping):
                    continue  # a store that returns the signature with the hit needs no fetch
                key, version = self._key(hit)
                got = self._sigs.get(key)
                if got is None or got[0] != version:
                    missing[key] = None
        if not missing:
            return
        res = self._client.mget(docs=[{"_index": i, "_id": d} for i, d in missing], source=["story_signature"])
        for doc in res.get("docs", []):
            sig = (doc.get("_source") or {}).get("story_signature") if doc.get("found") else None
            key, version = self._key(doc)
            if isinstance(sig, Mapping):
                self._sigs[key] = (version, sig)
                self._sigs.move_to_end(key)
            else:
                self._sigs.pop(key, None)
        while len(self._sigs) > self._cache_size:
            self._sigs.popitem(last=False)

    def _candidates(self, hits: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for hit in hits:
            source = hit.get("_source") or {}
            if not isinstance(source.get("story_signature"), Mapping):
                got = self._sigs.get(self._key(hit)[0])
                if got is None:
                    continue  # deleted between the search and the mget
                # A newer version fetched by mget is still this article's signature; the story
                # fields come from the search, which is at least as fresh as the cache.
                source = {**source, "story_signature": got[1]}
            cand = hit_to_candidate(source)
            if cand is not None:
                out.append(cand)
        return out

    def search(self, signature: Mapping[str, Any]) -> list[dict[str, Any]]:
        if not self._searchable(signature):
            return []
        body = self._body(signature)
        res = self._client.search(
            index=self._cfg.index("articles"), query=body["query"], size=body["size"], source=_HIT_FIELDS,
            seq_no_primary_term=True, ignore_unavailable=True,
        )
        hits = res["hits"]["hits"]
        self._fetch_missing([hits])
        return self._candidates(hits)

    def search_many(self, signatures: Sequence[Mapping[str, Any]]) -> list[list[dict[str, Any]] | Exception]:
        """Candidates of each signature with one ``msearch`` (and one ``mget``); a failed item is its exception."""
        out: list[list[dict[str, Any]] | Exception] = [[] for _ in signatures]
        asked = [k for k, sig in enumerate(signatures) if self._searchable(sig)]
        if not asked:
            return out
        searches: list[dict[str, Any]] = []
        for k in asked:
            searches.append({"index": self._cfg.index("articles"), "ignore_unavailable": True})
            searches.append(self._body(signatures[k]))
        res = self._client.msearch(searches=searches)
        responses = res["responses"]
        if len(responses) != len(asked):
            raise RuntimeError(f"msearch answered {len(responses)} of {len(asked)} searches")
        self._fetch_missing([item["hits"]["hits"] for item in responses if not item.get("error")])
        for k, item in zip(asked, responses, strict=True):
            if item.get("error"):
                out[k] = RuntimeError(f"candidate search failed: {item['error']}")
            else:
                out[k] = self._candidates(item["hits"]["hits"])
        return out

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._sigs = OrderedDict()


class _LinkStoriesFn(beam.DoFn):
    def __init__(self, lookup: CandidateLookup, params: stories.Params, cache_size: int,
                 batch_size: int = 100) -> None:
        self._lookup = lookup
        self._params = params
        self._cache_size = cache_size
        self._batch_size = max(1, batch_size)
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._postings: dict[tuple[str, str], dict[str, int]] = {}
        self._pending: list[Any] = []
        self._linked = Metrics.counter("khabar", "stories_linked")
        self._duplicates = Metrics.counter("khabar", "story_duplicates")
        self._reuses = Metrics.counter("khabar", "story_reuses")
        self._lookup_errors = Metrics.counter("khabar", "story_lookup_errors")
        self._link_errors = Metrics.counter("khabar", "story_link_errors")

    def setup(self) -> None:
        self._cache = OrderedDict()
        self._postings = {}
        self._pending = []
        self._lookup.open()

    def _remember(self, entry: dict[str, Any]) -> None:
        """Put a linked signature in the LRU cache and its lookup terms in the cache's term index."""
        cid = entry["id"]
        if cid in self._cache:
            self._forget(cid)
        self._cache[cid] = entry
        for term in self._terms(entry):
            bucket = self._postings.setdefault(term, {})
            bucket[cid] = bucket.get(cid, 0) + 1
        while len(self._cache) > self._cache_size:
            self._forget(next(iter(self._cache)))

    def _forget(self, cid: str) -> None:
        entry = self._cache.pop(cid)
        for term in self._terms(entry):
            bucket = self._postings.get(term)
            if bucket is not None and bucket.pop(cid, None) is not None and not bucket:
                del self._postings[term]

    @staticmethod
    def _terms(sig: Mapping[str, Any]) -> list[tuple[str, str]]:
        return [(f, v) for f, vs in stories.lookup_keys(sig).items() for v in vs]

    def _from_cache(self, sig: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Cached signatures sharing lookup terms with ``sig``, most shared terms first (then id)."""
        shared: dict[str, int] = {}
        for term in set(self._terms(sig)):
            for cid, n in self._postings.get(term, {}).items():
                shared[cid] = shared.get(cid, 0) + n
        window = _window(sig.get("published_at"), self._params.window_days)
        scored = []
        for cid, n in shared.items():
            if cid == sig["id"]:
                continue
            cand = self._cache[cid]
            d = cand.get("published_at")
            if window is not None and stories._date(d) is not None and not window[0] <= str(d)[:10] <= window[1]:
                continue
            scored.append((n, cid, cand))
        scored.sort(key=lambda t: (-t[0], t[1]))
        return [c for _, _, c in scored[: self._params.max_candidates]]

    def start_bundle(self) -> None:
        self._pending: list[Any] = []

    def process(self, element: Any) -> Iterator[Any]:
        self._pending.append(element)
        if len(self._pending) >= self._batch_size:
            yield from self._flush()

    def finish_bundle(self) -> Iterator[Any]:
        # Elements come from a global window (the Kafka read); the sinks flush after this.
        for out in self._flush():
            yield GlobalWindows.windowed_value(out)

    def _lookup_batch(self, sigs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """Candidates from the store for each signature, one round trip when the lookup batches."""
        many = getattr(self._lookup, "search_many", None)
        try:
            if many is not None:
                found = many(sigs)
            else:
                found = []
                for sig in sigs:
                    try:
                        found.append(self._lookup.search(sig))
                    except Exception as exc:
                        found.append(exc)
        except Exception as exc:  # Elasticsearch down or index missing: link against the cache alone
            found = [exc] * len(sigs)
        out = []
        for sig, res in zip(sigs, found, strict=True):
            if isinstance(res, Exception):
                log.warning("story candidate lookup failed for %s: %s", sig["id"], res)
                self._lookup_errors.inc()
                res = []
            out.append(res)
        return out

    def _flush(self) -> Iterator[Any]:
        batch, self._pending = self._pending, []
        if not batch:
            return
        parsed = []
        for element in batch:
            article, rest = (element[0], element[1:]) if isinstance(element, tuple) else (element, None)
            try:
                sig = stories.signature(article, params=self._params)
            except Exception as exc:  # a linking bug must not lose the article: it goes on unlinked
                log.warning("story signature failed for %s: %s", article.get("id"), exc)
                self._link_errors.inc()
                sig = None
            parsed.append((element, article, rest, sig))
        sigs = [sig for *_, sig in parsed if sig is not None]
        found = iter(self._lookup_batch(sigs))
        # In arrival order: each article sees the ones before it in the batch through the cache.
        for element, article, rest, sig in parsed:
            if sig is None:
                yield element
                continue
            yield self._link(article, rest, sig, next(found))

    def _link(self, article: Mapping[str, Any], rest: tuple[Any, ...] | None, sig: dict[str, Any],
              found: list[dict[str, Any]]) -> Any:
        candidates = {str(c.get("id")): c for c in found if c.get("id") != sig["id"]}
        for c in self._from_cache(sig):
            candidates[str(c["id"])] = c  # the cache is fresher than the index
        result = stories.link(sig, list(candidates.values()), self._params)
        self._linked.inc()
        if result["duplicate_of"]:
            self._duplicates.inc()
        if result["reuses"]:
            self._reuses.inc()
        self._remember({**sig, **result})
        linked = {**article, **result, "story_signature": sig}
        return (linked, *rest) if rest is not None else linked

    def teardown(self) -> None:
        self._lookup.close()


class LinkStories(beam.PTransform):
    """Set ``story_id``, ``duplicate_of``, ``reuses`` (and ``story_signature``) on enriched articles.

    Args:
        es_config: where the earlier articles are (``{prefix}-articles``).
        lookup: replaces the Elasticsearch lookup (tests; another store).
        params: linking thresholds, including the lookup window.
        cache_size: signatures of recent articles kept per worker.
        batch_size: articles per candidate lookup (one ``msearch``); the rest go at the bundle's end.
    """

    def __init__(self, es_config: ElasticsearchConfig, *, lookup: CandidateLookup | None = None,
                 params: stories.Params = stories.DEFAULT, cache_size: int = 2000,
                 batch_size: int = 100) -> None:
        super().__init__()
        if cache_size < 0:
            raise ValueError("cache_size must be >= 0")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self._batch_size = batch_size
        self._lookup = lookup or EsCandidateLookup(es_config, window_days=params.window_days,
                                                   size=params.max_candidates)
        self._params = params
        self._cache_size = cache_size

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        return pcoll | "Link" >> beam.ParDo(
            _LinkStoriesFn(self._lookup, self._params, self._cache_size, self._batch_size))
