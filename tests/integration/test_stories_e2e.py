"""Stories on real Kafka and Elasticsearch: the five samples through the ingest pipeline.

Two runs: 000 and 002 first, then 001, 003 and 004. The second run's linking step starts with an
empty cache, so 001 can only find 000 (whose passages it reuses) through the signature stored in
``{prefix}-articles``: the lookup path of the streaming pipeline, not the in-memory shortcut.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from khabar import submit
from khabar.config import KhabarConfig
from khabar.connectors.elasticsearch import open_client
from khabar.connectors.kafka import send_records
from khabar.pipelines.ingest import run

pytestmark = pytest.mark.integration


def _produce(cfg: KhabarConfig, paths: list[Path]) -> None:
    send_records(cfg.kafka, [submit.encode(m) for m, _ in submit.iter_messages([str(p) for p in paths])])


def _articles(cfg: KhabarConfig) -> dict[str, dict[str, Any]]:
    client = open_client(cfg.elasticsearch)
    try:
        index = cfg.elasticsearch.index("articles")
        client.indices.refresh(index=index)
        res = client.search(index=index, size=100, query={"match_all": {}},
                            source=["id", "story_id", "duplicate_of", "reuses", "story_key", "story_signature"])
        return {hit["_id"][:3]: hit["_source"] for hit in res["hits"]["hits"]}
    finally:
        client.close()


def test_samples_share_stories_and_reuse_through_elasticsearch(isolated_config: KhabarConfig,
                                                              sample_paths: list[Path]) -> None:
    cfg = isolated_config
    by_prefix = {p.name[:3]: p for p in sample_paths}
    _produce(cfg, [by_prefix["000"], by_prefix["002"]])
    first = run(cfg, bounded=True)
    assert "DONE" in first.state
    stored = _articles(cfg)
    assert sorted(stored) == ["000", "002"]
    assert stored["000"]["story_signature"]["paragraphs"], "the signature must be stored for later lookups"

    _produce(cfg, [by_prefix["001"], by_prefix["003"], by_prefix["004"]])
    second = run(cfg, bounded=True)
    assert "DONE" in second.state
    print(f"\nsecond run counters: {second.counters}")
    docs = _articles(cfg)
    assert sorted(docs) == ["000", "001", "002", "003", "004"]

    story = docs["000"]["story_id"]
    assert story and all(docs[k]["story_id"] == story for k in ("001", "002", "003"))
    assert docs["004"]["story_id"] and docs["004"]["story_id"] != story

    assert [r["article"] for r in docs["001"]["reuses"]] == [by_prefix["000"].stem]
    text_001 = by_prefix["001"].read_text("utf-8")
    text_000 = by_prefix["000"].read_text("utf-8")
    for p in docs["001"]["reuses"][0]["passages"]:
        assert 0 <= p["start"] < p["end"] <= len(text_001)
        assert 0 <= p["source_start"] < p["source_end"] <= len(text_000)
    for k in ("000", "002", "003", "004"):
        assert docs[k]["reuses"] == [] and docs[k]["duplicate_of"] is None, k
    assert docs["001"]["duplicate_of"] is None
    assert second.counters.get("story_lookup_errors", 0) == 0

    # Found by the terms the lookup uses.
    client = open_client(cfg.elasticsearch)
    try:
        res = client.search(index=cfg.elasticsearch.index("articles"), size=0, aggs={
            "stories": {"terms": {"field": "story_id"}}})
        sizes = sorted(b["doc_count"] for b in res["aggregations"]["stories"]["buckets"])
    finally:
        client.close()
    assert sizes == [1, 4]
