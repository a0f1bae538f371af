"""The peer a user would write instead of the Beam pipeline: one kafka-python loop.

poll -> parse/validate -> enrich -> story linking (one candidate search in Elasticsearch per
article, as a user would write it) -> ``streaming_bulk`` (same chunk size) -> commit, with the same
parsing, enrichment, linking and index documents as the pipeline, so the benchmark compares the
runtime around them, not different work. Dead letters are counted, not produced.
"""

from __future__ import annotations

import argparse
import sys
import time

from elasticsearch.helpers import streaming_bulk
from kafka import KafkaConsumer

from khabar import stories
from khabar.config import load_config
from khabar.connectors.elasticsearch import ensure_index_templates, open_client, to_es_action
from khabar.enrich import enrich
from khabar.pipelines.documents import Rejected, article_to_requests, origin_of, parse_message
from khabar.pipelines.stories import EsCandidateLookup


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    for flag in ("--bootstrap-servers", "--topic", "--dlq-topic", "--group-id", "--es-url", "--index-prefix"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--chunk-size", type=int, default=500)
    parser.add_argument("--expect", type=int, required=True, help="stop after this many records")
    args = parser.parse_args(argv)
    cfg = load_config({
        "kafka.bootstrap_servers": args.bootstrap_servers, "kafka.topic": args.topic,
        "kafka.dlq_topic": args.dlq_topic, "kafka.group_id": args.group_id, "elasticsearch.url": args.es_url,
        "elasticsearch.index_prefix": args.index_prefix, "elasticsearch.chunk_size": args.chunk_size,
    }, environ={})
    client = open_client(cfg.elasticsearch)
    ensure_index_templates(client, cfg.elasticsearch.index_prefix)
    consumer = KafkaConsumer(cfg.kafka.topic, **cfg.kafka.client_options(), group_id=cfg.kafka.group_id,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             max_poll_records=cfg.kafka.max_records_per_poll)
    lookup = EsCandidateLookup(cfg.elasticsearch)
    lookup.open()
    seen = dead = 0
    started = time.perf_counter()
    while seen < args.expect:
        batch = consumer.poll(timeout_ms=1000)
        actions = []
        for records in batch.values():
            for record in records:
                seen += 1
                try:
                    message = parse_message(record.value, record.key, cfg.pipeline)
                    article = enrich(message)
                except Rejected:
                    dead += 1
                    continue
                sig = stories.signature(article)
                found = [c for c in lookup.search(sig) if c.get("id") != sig["id"]]
                article = {**article, **stories.link(sig, found), "story_signature": sig}
                origin = origin_of(record)
                actions.extend(to_es_action(r)
                               for r in article_to_requests(article, cfg.elasticsearch.index_prefix, origin=origin))
        if actions:
            for ok, _info in streaming_bulk(client, actions, chunk_size=cfg.elasticsearch.chunk_size,
                                            raise_on_error=False, max_retries=cfg.elasticsearch.max_retries):
                dead += 0 if ok else 1
        if batch:
            consumer.commit()
    elapsed = time.perf_counter() - started
    consumer.close()
    lookup.close()
    client.close()
    print(f"peer: {seen} records in {elapsed:.1f}s, {dead} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
