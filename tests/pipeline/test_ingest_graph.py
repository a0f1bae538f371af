"""The ingest graph on TestPipeline, with the Kafka read and both writes replaced at their seams."""

import json
from pathlib import Path

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from khabar.config import load_config
from khabar.connectors.kafka import KafkaRecord
from khabar.pipelines.ingest import build
from khabar.pipelines.stories import LinkStories

SAMPLES = sorted((Path(__file__).parents[1] / "fixtures" / "samples").glob("*.txt"))


def _record(offset: int, value: bytes, key: bytes | None = None) -> KafkaRecord:
    return KafkaRecord("khabar.documents", 0, offset, key, value, 0)


class _FakeIndex(beam.PTransform):
    """Stands in for WriteToElasticsearch: rejects one article document, like a mapping error."""

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        def reject(request):  # type: ignore[no-untyped-def]
            if request.index.endswith("-articles") and request.id == "reject-me":
                yield {"stage": "index", "error": "mapper_parsing_exception: boom", "error_type": "http_400",
                       "index": request.index, "document_id": request.id, "document": dict(request.source),
                       "origin": dict(request.origin or {})}

        return pcoll | beam.FlatMap(reject)


class _NoCandidates:
    """Story candidates from nowhere: the graph test has no Elasticsearch."""

    def open(self) -> None:
        pass

    def search(self, signature: object) -> list:
        return []

    def close(self) -> None:
        pass


def _link() -> LinkStories:
    return LinkStories(load_config(environ={}).elasticsearch, lookup=_NoCandidates())


class _NoSend(beam.PTransform):
    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        return pcoll | beam.Map(lambda kv: kv)


def test_graph_routes_good_documents_and_every_kind_of_dead_letter() -> None:
    cfg = load_config(environ={})
    records = [
        _record(i, json.dumps({"id": p.stem[:3], "text": p.read_text("utf-8")}, ensure_ascii=False).encode())
        for i, p in enumerate(SAMPLES)
    ]
    records += [
        _record(10, b"{broken"),
        _record(11, b"\xff\xfe\xfd"),
        _record(12, b'{"text": 5}'),
        _record(13, json.dumps({"id": "reject-me", "text": "قال وزير الخارجية الروسي سيرغي لافروف في موسكو إن "
                                "الاجتماع مهم."}, ensure_ascii=False).encode()),
    ]
    with TestPipeline(runner="FnApiRunner") as p:
        outputs = build(p, cfg, read=beam.Create(records), write_documents=_FakeIndex(),
                        write_dead_letters=_NoSend, link_stories=_link())
        ids = outputs.articles | "Ids" >> beam.Map(lambda el: el[0]["id"])
        assert_that(ids, equal_to(["000", "001", "002", "003", "004", "reject-me"]), label="articles")
        parse_dead, enrich_dead, index_dead = outputs.dead_letters
        assert_that(parse_dead | "Stages" >> beam.Map(lambda d: (d["stage"], d["source"]["offset"])),
                    equal_to([("parse", 10), ("decode", 11), ("validate", 12)]), label="parse dead letters")
        assert_that(enrich_dead, equal_to([]), label="enrich dead letters")
        assert_that(index_dead | "Index stage" >> beam.Map(lambda d: (d["stage"], d["document_id"],
                                                                      d["source"]["offset"], d["index"])),
                    equal_to([("index", "reject-me", 13, "khabar-articles")]), label="index dead letters")


def test_enrichment_failure_becomes_a_dead_letter(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import khabar.enrich as core

    real = core.enrich

    def flaky(message, **kwargs):  # type: ignore[no-untyped-def]
        if "poison" in message["text"]:
            raise RuntimeError("poison pill")
        return real(message, **kwargs)

    monkeypatch.setattr(core, "enrich", flaky)
    cfg = load_config(environ={})
    records = [_record(0, b'{"id": "ok", "text": "\xd8\xb3\xd9\x84\xd8\xa7\xd9\x85"}'),
               _record(1, b'{"id": "bad", "text": "poison"}')]
    with TestPipeline(runner="FnApiRunner") as p:
        outputs = build(p, cfg, read=beam.Create(records), write_documents=_FakeIndex(),
                        write_dead_letters=_NoSend, link_stories=_link())
        assert_that(outputs.articles | beam.Map(lambda el: el[0]["id"]), equal_to(["ok"]), label="articles")
        assert_that(outputs.dead_letters[1] | beam.Map(lambda d: (d["stage"], d["document_id"], d["error"])),
                    equal_to([("enrich", "bad", "RuntimeError: poison pill")]), label="enrich dead")
