"""The story-linking step on TestPipeline, with the Elasticsearch candidate lookup replaced by a fake."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from khabar import stories
from khabar.config import load_config
from khabar.enrich import enrich
from khabar.pipelines import documents
from khabar.pipelines.stories import LinkStories, candidate_query, hit_to_candidate

SAMPLES = sorted((Path(__file__).parents[1] / "fixtures" / "samples").glob("*.txt"))
CFG = load_config(environ={})
ORIGIN = {"topic": "t", "partition": 0, "offset": 0, "key": None}


class FakeLookup:
    """Returns fixed candidates (as stored in the index) and records what it was asked."""

    def __init__(self, stored: list[dict[str, Any]], fail: bool = False) -> None:
        self._stored = stored
        self._fail = fail

    def open(self) -> None:
        pass

    def search(self, signature: Mapping[str, Any]) -> list[dict[str, Any]]:
        if self._fail:
            raise ConnectionError("elasticsearch is down")
        keys = stories.lookup_keys(signature)
        out = []
        for doc in self._stored:
            shares = set(doc.get("claim_ids") or []) & set(keys["claim_ids"]) or \
                set(doc.get("entity_ids") or []) & set(keys["entity_ids"]) or \
                set(doc.get("story_bands") or []) & set(keys["story_bands"])
            cand = hit_to_candidate(doc)
            if shares and cand is not None and cand["id"] != signature["id"]:
                out.append(cand)
        return out

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def articles() -> dict[str, dict[str, Any]]:
    return {p.name[:3]: enrich({"id": p.name[:3], "text": p.read_text("utf-8")}) for p in SAMPLES}


def _stored(article: dict[str, Any]) -> dict[str, Any]:
    """The article document the pipeline would have written for an already linked article."""
    sig = stories.signature(article)
    linked = {**article, **stories.link(sig, []), "story_signature": sig}
    (req, *_rest) = documents.article_to_requests(linked, "khabar")
    return dict(req.source)


def _run(elements: list[Any], lookup: FakeLookup, check: Any) -> dict[str, int]:
    """Run the step over ``elements``; ``check`` gets the output list inside the pipeline."""
    p = TestPipeline(runner="FnApiRunner")
    linked = p | beam.Create(elements) | LinkStories(CFG.elasticsearch, lookup=lookup)
    assert_that(linked, check)
    result = p.run()
    result.wait_until_finish()
    return {c.key.metric.name: c.committed for c in
            result.metrics().query(MetricsFilter().with_namespace("khabar"))["counters"]}


def test_later_articles_join_the_stored_story_and_find_the_reuse(articles: dict[str, dict[str, Any]]) -> None:
    stored = [_stored(articles["000"])]
    story = stored[0]["story_id"]
    elements = [(articles[k], {**ORIGIN, "offset": i}) for i, k in enumerate(["001", "002", "003", "004"])]

    def check(out: list[Any]) -> None:
        by_id = {a["id"]: (a, origin) for a, origin in out}
        assert sorted(by_id) == ["001", "002", "003", "004"]
        assert [by_id[k][0]["story_id"] == story for k in ("001", "002", "003", "004")] == [True, True, True, False]
        assert [r["article"] for r in by_id["001"][0]["reuses"]] == ["000"]
        assert all(by_id[k][0]["reuses"] == [] and by_id[k][0]["duplicate_of"] is None for k in ("002", "003", "004"))
        assert by_id["003"][1]["offset"] == 2  # the origin rides along untouched
        # The signature goes on to the index document, where the next lookup reads it.
        doc = documents.article_to_requests(by_id["001"][0], "khabar")[0].source
        assert doc["story_signature"]["id"] == "001" and doc["story_bands"] and doc["story_key"]

    counters = _run(elements, FakeLookup(stored), check)
    assert counters["stories_linked"] == 4 and counters["story_reuses"] == 1


def test_copies_in_one_bundle_are_found_through_the_cache(articles: dict[str, dict[str, Any]]) -> None:
    copy = {**articles["003"], "id": "003-copy"}

    def check(out: list[Any]) -> None:
        dup = sorted((a["id"], a["duplicate_of"]) for a in out)
        assert dup in ([("003", None), ("003-copy", "003")], [("003", "003-copy"), ("003-copy", None)])
        assert len({a["story_id"] for a in out}) == 1

    counters = _run([articles["003"], copy], FakeLookup([]), check)
    assert counters["story_duplicates"] == 1


def test_lookup_failure_still_links_by_claim(articles: dict[str, dict[str, Any]]) -> None:
    claim = "claim:meet:per:qasem-soleimani+per:vladimir-putin@loc:moscow"

    def check(out: list[Any]) -> None:
        ids = {a["id"]: a["story_id"] for a in out}
        assert ids["002"] == stories.story_id_for(claim) and ids["004"] != ids["002"]

    counters = _run([articles["002"], articles["004"]], FakeLookup([], fail=True), check)
    assert counters["story_lookup_errors"] == 2


def test_step_adds_no_grouping_and_keeps_bare_articles(articles: dict[str, dict[str, Any]]) -> None:
    p = TestPipeline(runner="FnApiRunner")
    linked = p | beam.Create([articles["004"]]) | LinkStories(CFG.elasticsearch, lookup=FakeLookup([]))
    assert_that(linked | beam.Map(lambda a: (a["id"], a["duplicate_of"], a["reuses"])),
                equal_to([("004", None, [])]))
    proto = p.to_runner_api()
    link_urns = {t.spec.urn for t in proto.components.transforms.values() if "LinkStories" in t.unique_name}
    assert link_urns and not link_urns & {"beam:transform:group_by_key:v1", "beam:transform:reshuffle:v1"}
    p.run().wait_until_finish()


def test_candidate_query_filters_by_window_and_excludes_itself(articles: dict[str, dict[str, Any]]) -> None:
    sig = stories.signature(articles["003"])
    q = candidate_query(sig, window_days=30)
    assert q["bool"]["must_not"] == [{"ids": {"values": ["003"]}}]
    rng = q["bool"]["filter"][0]["bool"]["should"][0]["range"]["published_at"]
    assert rng == {"gte": "2016-03-16", "lte": "2016-05-15"}
    fields = {next(iter(c["term"])) for c in q["bool"]["should"]}
    assert fields == {"claim_ids", "story_bands", "entity_ids"}
    assert "filter" not in candidate_query(stories.signature(articles["000"]))  # undated: no window


class _CountingClient:
    """Elasticsearch client stand-in: answers msearch with no hits (or an error item), counts calls."""

    def __init__(self, fail_item: int | None = None) -> None:
        self.calls = {"search": 0, "msearch": 0}
        self.fail_item = fail_item

    def search(self, **_: Any) -> dict[str, Any]:
        self.calls["search"] += 1
        return {"hits": {"hits": []}}

    def msearch(self, *, searches: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls["msearch"] += 1
        assert len(searches) % 2 == 0 and all("index" in h for h in searches[::2])
        return {"responses": [{"error": {"type": "boom"}} if k == self.fail_item else {"hits": {"hits": []}}
                              for k in range(len(searches) // 2)]}

    def close(self) -> None:
        pass


def test_lookups_are_batched_and_a_batch_sees_itself(articles: dict[str, dict[str, Any]]) -> None:
    from khabar.pipelines.stories import EsCandidateLookup, _LinkStoriesFn

    client = _CountingClient(fail_item=1)
    lookup = EsCandidateLookup(CFG.elasticsearch)
    lookup.open = lambda: setattr(lookup, "_client", client)  # type: ignore[method-assign]
    fn = _LinkStoriesFn(lookup, stories.DEFAULT, cache_size=100, batch_size=3)
    fn.setup()
    fn.start_bundle()
    copy = {**articles["003"], "id": "003-copy"}
    order = [articles["000"], articles["001"], articles["002"], articles["003"], copy]
    out = []
    for a in order:
        out.extend(fn.process(a))
    assert len(out) == 3 and client.calls == {"search": 0, "msearch": 1}
    out.extend(wv.value for wv in fn.finish_bundle())
    assert client.calls == {"search": 0, "msearch": 2}
    assert [a["id"] for a in out] == ["000", "001", "002", "003", "003-copy"]
    by_id = {a["id"]: a for a in out}
    # 001 reuses 000 from the same batch (the cache), 003-copy copies 003 from the previous one.
    assert [r["article"] for r in by_id["001"]["reuses"]] == ["000"]
    assert by_id["003-copy"]["duplicate_of"] == "003"
    assert len({a["story_id"] for a in out}) == 1


class _StoreClient:
    """Elasticsearch stand-in holding article documents: ``msearch`` returns every stored hit without
    its signature (as the lookup asks), ``mget`` returns signatures; both are counted."""

    def __init__(self, docs: dict[str, dict[str, Any]]) -> None:
        self.docs = docs
        self.seq = dict.fromkeys(docs, 0)
        self.mget_ids: list[list[str]] = []

    def _hit(self, i: str) -> dict[str, Any]:
        src = {k: self.docs[i].get(k) for k in ("id", "published_at", "story_id", "duplicate_of")}
        return {"_index": "khabar-articles", "_id": i, "_seq_no": self.seq[i], "_primary_term": 1, "_source": src}

    def msearch(self, *, searches: list[dict[str, Any]]) -> dict[str, Any]:
        bodies = searches[1::2]
        assert all(b["_source"] == ["id", "published_at", "story_id", "duplicate_of"] for b in bodies)
        return {"responses": [{"hits": {"hits": [self._hit(i) for i in self.docs]}} for _ in bodies]}

    def mget(self, *, docs: list[dict[str, Any]], source: list[str]) -> dict[str, Any]:
        assert source == ["story_signature"]
        self.mget_ids.append(sorted(d["_id"] for d in docs))
        out = []
        for d in docs:
            i = d["_id"]
            if i not in self.docs:
                out.append({"_index": d["_index"], "_id": i, "found": False})
                continue
            out.append({"_index": d["_index"], "_id": i, "found": True, "_seq_no": self.seq[i], "_primary_term": 1,
                        "_source": {"story_signature": self.docs[i]["story_signature"]}})
        return {"docs": out}

    def close(self) -> None:
        pass


def test_es_lookup_fetches_each_signature_once_per_version(articles: dict[str, dict[str, Any]]) -> None:
    from khabar.pipelines.stories import EsCandidateLookup

    docs = {}
    for k in ("000", "004"):
        sig = stories.signature(articles[k])
        docs[k] = {"id": k, "published_at": None, "story_id": f"s-{k}", "duplicate_of": None, "story_signature": sig}
    client = _StoreClient(docs)
    lookup = EsCandidateLookup(CFG.elasticsearch, cache_size=10)
    lookup.open = lambda: setattr(lookup, "_client", client)  # type: ignore[method-assign]
    lookup.open()
    probe = [stories.signature(articles["001"]), stories.signature(articles["002"])]
    first = lookup.search_many(probe)
    assert client.mget_ids == [["000", "004"]]
    expected = [hit_to_candidate(docs[k]) for k in ("000", "004")]
    assert first == [expected, expected]
    # The same hits again: no fetch. A new version of 000 (story field changed): only 000 is fetched.
    assert lookup.search_many(probe) == first and len(client.mget_ids) == 1
    docs["000"]["story_id"] = "s-new"
    client.seq["000"] += 1
    again = lookup.search_many(probe[:1])
    assert client.mget_ids[1:] == [["000"]]
    assert again[0][0]["story_id"] == "s-new"
    # A document deleted between the search and the fetch is simply not a candidate.
    client.seq["004"] += 1
    real = client.docs
    client.docs = {k: v for k, v in real.items() if k != "004"}
    client.msearch = lambda *, searches: {"responses": [  # type: ignore[method-assign]
        {"hits": {"hits": [_StoreClient._hit(client, "000"), {**_StoreClient._hit(_StoreClient(real), "004"),
                                                               "_seq_no": 5}]}}]}
    assert [c["id"] for c in lookup.search_many(probe[:1])[0]] == ["000"]
