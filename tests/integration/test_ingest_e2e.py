"""End to end on real Kafka and real Elasticsearch: submit, ingest (bounded), check what landed."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from khabar import ops, submit
from khabar.config import KhabarConfig
from khabar.connectors.elasticsearch import open_client
from khabar.connectors.kafka import send_records
from khabar.pipelines.ingest import run

pytestmark = pytest.mark.integration


def _produce(cfg: KhabarConfig, items: Sequence[tuple[bytes | None, bytes]]) -> None:
    send_records(cfg.kafka, items)


def _ids(cfg: KhabarConfig, kind: str) -> list[str]:
    client = open_client(cfg.elasticsearch)
    try:
        index = cfg.elasticsearch.index(kind)
        client.indices.refresh(index=index)
        res = client.search(index=index, size=10_000, source=False, query={"match_all": {}})
        return [hit["_id"] for hit in res["hits"]["hits"]]
    finally:
        client.close()


def _generated(n: int, sample_paths: Sequence[Path], seed: int = 7) -> list[dict[str, Any]]:
    """Documents built from real sample paragraphs, shuffled, so enrichment sees realistic text."""
    rng = random.Random(seed)
    paragraphs = [p for path in sample_paths for p in path.read_text("utf-8").split("\n") if len(p) > 40]
    return [{"id": f"gen-{i:05d}", "text": "\n\n".join(rng.sample(paragraphs, 3)), "source": f"src{i % 7}"}
            for i in range(n)]


def _sample_messages(sample_paths: Sequence[Path]) -> list[dict[str, Any]]:
    return [m for m, _ in submit.iter_messages([str(p) for p in sample_paths])]


def _encode(messages: Sequence[dict[str, Any]]) -> list[tuple[bytes | None, bytes]]:
    return [submit.encode(m) for m in messages]


def test_samples_and_generated_documents_all_indexed_once(isolated_config: KhabarConfig,
                                                          sample_paths: list[Path]) -> None:
    cfg = isolated_config
    messages = _sample_messages(sample_paths) + _generated(1000, sample_paths)
    _produce(cfg, _encode(messages))

    result = run(cfg, bounded=True)
    print(f"\nfirst run: {result.seconds:.1f}s, counters {result.counters}")
    assert "DONE" in result.state
    article_ids = _ids(cfg, "articles")
    assert sorted(article_ids) == sorted(m["id"] for m in messages)
    assert result.counters.get("enriched") == len(messages)
    entity_ids = _ids(cfg, "entities")
    quote_ids = _ids(cfg, "quotes")
    for sample in ("000_ecccd35292984dac", "003_2b8ce03f76824978"):
        assert any(i.startswith(sample + ":") for i in entity_ids), f"no entities indexed for {sample}"
        assert any(i.startswith(sample + ":") for i in quote_ids), f"no quotes indexed for {sample}"

    # Offsets of the consumer group equal the end offsets after a bounded run.
    lag = ops.consumer_lag(cfg)
    assert sum(row["end_offset"] for row in lag) == len(messages)
    assert all(row["committed"] == row["end_offset"] and row["lag"] == 0 for row in lag), lag

    # The same documents submitted again: their ids overwrite, nothing doubles.
    _produce(cfg, _encode(messages[:200]))
    again = run(cfg, bounded=True)
    assert again.counters.get("enriched") == 200
    assert sorted(_ids(cfg, "articles")) == sorted(article_ids)
    assert sorted(_ids(cfg, "entities")) == sorted(entity_ids)
    assert sorted(_ids(cfg, "quotes")) == sorted(quote_ids)
    assert ops.read_dead_letters(cfg) == []


def _malformed() -> list[tuple[str, bytes]]:
    """Twenty malformed messages of different kinds, each with the stage it must be stopped at."""
    five_mb = json.dumps({"id": "huge", "text": "خبر " * 750_000}, ensure_ascii=False).encode()
    return [
        ("parse", b"{not json"),
        ("parse", b'{"text": "unterminated'),
        ("parse", b"\x00\x01binary"),
        ("decode", b"\xff\xfe\xfa invalid utf-8"),
        ("decode", '{"text": "سلام"}'.encode("utf-16")),
        ("decode", '{"text": "خبر عاجل"}'.encode("cp1256")),
        ("validate", b'{"id": "no-text"}'),
        ("validate", b'{"text": null}'),
        ("validate", b'{"text": 12345}'),
        ("validate", b'{"text": ["a", "list"]}'),
        ("validate", b'{"text": ""}'),
        ("validate", b'{"text": "   \\n\\t  "}'),
        ("validate", b'{"text": "ok", "title": {"nested": true}}'),
        ("validate", b'{"text": "ok", "published_at": 20160415}'),
        ("validate", b'"just a string"'),
        ("validate", b"[1, 2, 3]"),
        ("validate", b"null"),
        ("validate", five_mb),
        ("parse", b'{"text": "deep", "x": ' + b"[" * 100 + b"]" * 100 + b"}"),
        ("index", json.dumps({"id": "معرف" * 80, "text": "قال المتحدث إن الاجتماع عقد في دمشق."},
                             ensure_ascii=False).encode()),
    ]


def test_malformed_messages_become_dead_letters_while_good_ones_flow(isolated_config: KhabarConfig,
                                                                     sample_paths: list[Path]) -> None:
    cfg = isolated_config
    good = _generated(60, sample_paths, seed=11)
    bad = _malformed()
    assert len(bad) == 20
    items: list[tuple[bytes | None, bytes]] = []
    for i, (_stage, value) in enumerate(bad):
        # Good documents before and after each bad one, on the same partition (same key).
        items.extend(submit.encode(m) for m in good[i * 3:(i + 1) * 3])
        items.append((b"bad-%d" % i, value))
    _produce(cfg, items)

    result = run(cfg, bounded=True)
    print(f"\nmalformed run: {result.counters}")
    assert sorted(_ids(cfg, "articles")) == sorted(m["id"] for m in good)

    letters = ops.read_dead_letters(cfg)
    by_key = {}
    for letter in letters:
        source = letter.get("source") or {}
        by_key.setdefault(source.get("key"), []).append(letter)
    for i, (stage, value) in enumerate(bad):
        got = by_key.get(f"bad-{i}")
        assert got, f"message {i} ({stage}) did not reach the dead-letter topic"
        assert got[0]["stage"] == stage, (i, got[0]["stage"], got[0]["error"])
        assert got[0]["error"], f"dead letter {i} has no reason"
        if stage != "index" and len(value) < 1_000_000:
            restored = got[0]["payload"].encode() if got[0]["payload"] is not None else None
            if restored is None:
                import base64

                restored = base64.b64decode(got[0]["payload_base64"])
            assert restored == value, f"dead letter {i} lost its original payload"
    index_letters = by_key["bad-19"]
    assert any(letter["index"].endswith("-articles") and "too long" in letter["error"] for letter in index_letters)
    lag = ops.consumer_lag(cfg)
    assert all(row["lag"] == 0 for row in lag), lag
