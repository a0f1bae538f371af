"""Operator views over the running system: consumer lag, index counts, dead letters, what was indexed.

Used by ``khabar status`` and ``khabar demo``; every function takes clients built from the config.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from khabar.config import KhabarConfig


def consumer_lag(cfg: KhabarConfig) -> list[dict[str, Any]]:
    """Per partition of the document topic: end offset, committed offset of the group, and lag."""
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    consumer = KafkaConsumer(**cfg.kafka.client_options(), group_id=cfg.kafka.group_id, enable_auto_commit=False)
    try:
        parts = consumer.partitions_for_topic(cfg.kafka.topic) or set()
        tps = [TopicPartition(cfg.kafka.topic, p) for p in sorted(parts)]
        end = consumer.end_offsets(tps) if tps else {}
        begin = consumer.beginning_offsets(tps) if tps else {}
        rows = []
        for tp in tps:
            committed = consumer.committed(tp)
            base = committed if committed is not None else begin[tp]
            rows.append({"partition": tp.partition, "end_offset": end[tp], "committed": committed,
                         "lag": max(0, end[tp] - base)})
        return rows
    finally:
        consumer.close(autocommit=False)


def index_counts(cfg: KhabarConfig, client: Any) -> dict[str, int | None]:
    """Documents per khabar index (``None`` when the index does not exist)."""
    out: dict[str, int | None] = {}
    for kind in ("articles", "entities", "quotes"):
        name = cfg.elasticsearch.index(kind)
        try:
            client.indices.refresh(index=name)
            out[name] = int(client.count(index=name)["count"])
        except Exception:
            out[name] = None
    return out


def read_dead_letters(cfg: KhabarConfig, *, limit: int | None = None, timeout_ms: int = 2000) -> list[dict[str, Any]]:
    """Every dead letter on the DLQ topic from the beginning (no consumer group, nothing committed)."""
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    consumer = KafkaConsumer(**cfg.kafka.client_options(), group_id=None, enable_auto_commit=False,
                             fetch_max_bytes=max(52_428_800, cfg.kafka.max_message_bytes),
                             max_partition_fetch_bytes=cfg.kafka.max_message_bytes)
    try:
        parts = consumer.partitions_for_topic(cfg.kafka.dlq_topic) or set()
        tps = [TopicPartition(cfg.kafka.dlq_topic, p) for p in sorted(parts)]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: list[dict[str, Any]] = []
        while any(consumer.position(tp) < end[tp] for tp in tps):
            batch = consumer.poll(timeout_ms=timeout_ms)
            if not batch:
                break
            for records in batch.values():
                for record in records:
                    try:
                        letter = json.loads(record.value)
                    except (ValueError, TypeError):
                        letter = {"stage": "unknown", "error": "unreadable dead letter"}
                    letter["_offset"] = record.offset
                    out.append(letter)
                    if limit is not None and len(out) >= limit:
                        return out
        return out
    finally:
        consumer.close(autocommit=False)


def dead_letter_summary(letters: list[Mapping[str, Any]]) -> list[tuple[str, str, int]]:
    """``(stage, reason, count)`` rows, the reason cut to its kind so similar errors group."""
    counts: Counter[tuple[str, str]] = Counter()
    for letter in letters:
        reason = str(letter.get("error_type") or letter.get("error") or "")[:80]
        counts[(str(letter.get("stage")), reason)] += 1
    return [(stage, reason, n) for (stage, reason), n in counts.most_common()]


def top_entities(cfg: KhabarConfig, client: Any, size: int = 10) -> list[dict[str, Any]]:
    """The entities mentioned in the most articles, with their canonical names."""
    body = {
        "size": 0,
        "aggs": {"ids": {"terms": {"field": "entity_id", "size": size},
                         "aggs": {"name": {"terms": {"field": "name", "size": 1}},
                                  "type": {"terms": {"field": "type", "size": 1}},
                                  "mentions": {"sum": {"field": "mention_count"}}}}},
    }
    res = client.search(index=cfg.elasticsearch.index("entities"), **body)
    rows = []
    for bucket in res["aggregations"]["ids"]["buckets"]:
        name = bucket["name"]["buckets"][0]["key"] if bucket["name"]["buckets"] else None
        etype = bucket["type"]["buckets"][0]["key"] if bucket["type"]["buckets"] else None
        rows.append({"id": bucket["key"], "name": name, "type": etype, "articles": bucket["doc_count"],
                     "mentions": int(bucket["mentions"]["value"])})
    return rows


def sample_quotes(cfg: KhabarConfig, client: Any, size: int = 8) -> list[dict[str, Any]]:
    """A few indexed quotes with their speakers, direct ones first."""
    res = client.search(index=cfg.elasticsearch.index("quotes"), size=size,
                        sort=[{"kind": "asc"}, {"article_id": "asc"}, {"start": "asc"}],
                        source=["article_id", "kind", "text", "speaker_name", "speaker_text", "via_name",
                                "stance", "cue"])
    return [hit["_source"] for hit in res["hits"]["hits"]]
