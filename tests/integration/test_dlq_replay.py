"""`khabar dlq replay` end to end: dead letters caused by a limit are replayed after the limit is
raised and get indexed; a second replay re-sends nothing; index dead letters re-send their message once.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from khabar import dlq, ops, submit
from khabar.config import KhabarConfig
from khabar.connectors.elasticsearch import open_client
from khabar.connectors.kafka import send_records
from khabar.pipelines.ingest import run

pytestmark = pytest.mark.integration


def _produce(cfg: KhabarConfig, items: Sequence[tuple[bytes | None, bytes]]) -> None:
    send_records(cfg.kafka, items)


def _article_ids(cfg: KhabarConfig) -> list[str]:
    client = open_client(cfg.elasticsearch)
    try:
        index = cfg.elasticsearch.index("articles")
        client.indices.refresh(index=index)
        res = client.search(index=index, size=10_000, source=False, query={"match_all": {}})
        return [hit["_id"] for hit in res["hits"]["hits"]]
    finally:
        client.close()


def _topic_size(cfg: KhabarConfig) -> int:
    return sum(row["end_offset"] for row in ops.consumer_lag(cfg))


def _flags(cfg: KhabarConfig) -> list[str]:
    return ["--bootstrap-servers", cfg.kafka.bootstrap_servers, "--topic", cfg.kafka.topic,
            "--dlq-topic", cfg.kafka.dlq_topic, "--group-id", cfg.kafka.group_id]


def test_replay_after_raising_a_limit_indexes_the_dead_letters_once(
        isolated_config: KhabarConfig, sample_paths: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    base = isolated_config
    limited = dataclasses.replace(base, pipeline=dataclasses.replace(base.pipeline, max_text_chars=3000))
    paragraphs = [p for path in sample_paths for p in path.read_text("utf-8").split("\n") if len(p) > 40]
    good = [{"id": f"ok-{i}", "text": paragraphs[i]} for i in range(20) if len(paragraphs[i]) < 3000]
    long_docs = [{"id": f"long-{i}", "text": "\n\n".join(paragraphs[i:] + paragraphs[:i])[:6000]} for i in range(2)]
    assert all(len(m["text"]) > 3000 for m in long_docs)
    long_id = {"id": "R" * 510, "text": "قال قاسم سليماني في طهران: «الاجتماع عقد في موسكو»."}
    items = [submit.encode(m) for m in good + long_docs + [long_id]] + [(b"junk", b"{not json")]
    _produce(base, items)

    first = run(limited, bounded=True)
    letters = ops.read_dead_letters(base)
    stages = sorted(le["stage"] for le in letters)
    assert sorted(_article_ids(base)) == sorted([m["id"] for m in good] + [long_id["id"]])
    assert stages.count("validate") == 2 and stages.count("parse") == 1 and stages.count("index") >= 2

    # A dry run lists the two, sends and records nothing.
    before = _topic_size(base)
    with capsys.disabled():
        print(f"\nfirst run: {first.counters}; dead letters by stage {stages}")
    capsys.readouterr()
    assert dlq.main(["replay", "--stage", "validate", "--dry-run", *_flags(base)]) == 0
    dry = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(row["key"] for row in dry) == ["long-0", "long-1"]
    assert _topic_size(base) == before

    # The real replay, filtered by stage and reason, re-submits exactly those two, keyed by id.
    assert dlq.main(["replay", "--stage", "validate", "--reason-contains", "over the limit", *_flags(base)]) == 0
    capsys.readouterr()
    assert _topic_size(base) == before + 2
    again = dlq.replay(base, stage="validate")
    assert again.sent == 0 and again.already_replayed == 2, again

    # With the limit raised (the default), the pipeline indexes them.
    second = run(base, bounded=True)
    ids = _article_ids(base)
    with capsys.disabled():
        print(f"after replay: {second.counters}; {len(ids)} articles")
    assert sorted(ids) == sorted([m["id"] for m in good] + [long_id["id"]] + ["long-0", "long-1"])
    assert len(ids) == len(set(ids))

    # Index dead letters: several per message (entities, quotes), the message is re-sent once,
    # from the original message the dead letter carries.
    index_letters = [le for le in ops.read_dead_letters(base) if le["stage"] == "index"]
    result = dlq.replay(base, stage="index")
    assert result.sent == 1 and result.duplicates == len(index_letters) - 1, result
    assert _topic_size(base) == before + 3

    # An unfiltered replay then sends only what was never replayed: the invalid JSON (which fails
    # again, as it should) — not the validate or index letters handled above.
    rest = dlq.replay(base)
    assert rest.sent == 1 and [row["stage"] for row in rest.letters] == ["parse"], rest
    assert rest.already_replayed == 2 + len(index_letters)
    assert dlq.replay(base).sent == 0
    with capsys.disabled():
        print(f"figures: produced {len(items)}, dead-lettered {len(letters)}, replayed 2 + 1 + 1, "
              f"indexed {len(ids)} articles, duplicated 0")
