import json
from pathlib import Path

import pytest

from khabar.config import PipelineConfig
from khabar.connectors.elasticsearch import IndexRequest, failure_reason, to_es_action
from khabar.pipelines import documents
from khabar.pipelines.documents import Rejected, article_to_requests, parse_message

CFG = PipelineConfig(max_text_chars=1000, max_payload_bytes=20_000, max_json_depth=5)


def _msg(**fields: object) -> bytes:
    return json.dumps(fields, ensure_ascii=False).encode("utf-8")


def test_valid_message_keeps_unknown_fields_under_extra() -> None:
    msg = parse_message(_msg(id="a1", text="قال الرئيس", source="fars", tags=["x"], score=3), b"k", CFG)
    assert msg["id"] == "a1"
    assert msg["source"] == "fars"
    assert msg["extra"] == {"tags": ["x"], "score": 3}


def test_id_falls_back_to_key_then_text_hash() -> None:
    assert parse_message(_msg(text="نص"), b"key-1", CFG)["id"] == "key-1"
    first = parse_message(_msg(text="نص"), None, CFG)["id"]
    assert first == parse_message(_msg(text="نص"), None, CFG)["id"]
    assert first != parse_message(_msg(text="نص آخر"), None, CFG)["id"]


@pytest.mark.parametrize(
    ("value", "stage", "needle"),
    [
        (b"", "decode", "empty"),
        (b"\xff\xfe\x00t", "decode", "UTF-8"),
        ("{\"text\": \"سلام\"}".encode("utf-16"), "decode", "UTF-8"),
        ("{\"text\": \"سلام\"}".encode("cp1256"), "decode", "UTF-8"),
        (b"{not json", "parse", "invalid JSON"),
        (b"[1, 2]", "validate", "JSON object"),
        (b'{"id": "x"}', "validate", "text"),
        (b'{"text": 42}', "validate", "text"),
        (b'{"text": ""}', "validate", "text"),
        (b'{"text": "   \\n\\t "}', "validate", "text"),
        (b'{"text": "ok", "title": ["a"]}', "validate", "title"),
        (b'{"text": "ok", "a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}', "parse", "deeper"),
        (b"[" * 100_000 + b"]" * 100_000, "validate", "bytes"),
        (_msg(text="x" * 1001), "validate", "1001 characters"),
    ],
)
def test_bad_messages_are_rejected_with_stage_and_reason(value: bytes, stage: str, needle: str) -> None:
    with pytest.raises(Rejected) as info:
        parse_message(value, None, CFG)
    assert info.value.stage == stage
    assert needle in info.value.error


def test_deep_nesting_within_payload_limit_is_a_parse_error() -> None:
    cfg = PipelineConfig(max_payload_bytes=10_000_000)
    with pytest.raises(Rejected) as info:
        parse_message(b'{"text": "x", "a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", None, cfg)
    assert info.value.stage == "parse"


def test_utf8_bom_is_accepted() -> None:
    assert parse_message("\ufeff{\"text\": \"سلام\"}".encode(), None, CFG)["text"] == "سلام"


ARTICLE = {
    "id": "003",
    "language": "ar",
    "title": "سليماني يزور موسكو",
    "body": "سليماني في موسكو",
    "published_at": "2016-04-15",
    "published_at_original": {"calendar": "gregorian", "text": "2016/04/15", "start": 3, "end": 13},
    "entities": [
        {"id": "per:qasem-soleimani", "type": "PER", "names": {"en": "Qasem Soleimani", "ar": "قاسم سليماني"},
         "mentions": [{"start": 0, "end": 7, "text": "سليماني"}, {"start": 30, "end": 37, "text": "سليماني"}]},
        {"id": "loc:moscow", "type": "LOC", "names": {"en": "Moscow"},
         "mentions": [{"start": 11, "end": 16, "text": "موسكو"}]},
    ],
    "quotes": [{"id": "q1", "kind": "direct", "start": 40, "end": 60, "text": "…", "cue": "قال",
                "speaker": {"text": "مصدر", "start": 30, "end": 34, "entity_id": None, "name": "source"},
                "via": {"text": "رويترز", "entity_id": "org:reuters", "name": "Reuters"},
                "stance": "assert", "claim_id": "c1"}],
    "claims": [{"id": "c1", "summary": "Soleimani met Putin in Moscow", "stance": "assert", "by": ["org:reuters"]}],
}


def test_article_to_requests_builds_deterministic_documents() -> None:
    origin = {"topic": "t", "partition": 0, "offset": 7, "key": "003"}
    reqs = article_to_requests(ARTICLE, "khabar", origin=origin, ingested_at="2026-01-01T00:00:00+00:00")
    by_index: dict[str, list[IndexRequest]] = {}
    for r in reqs:
        by_index.setdefault(r.index, []).append(r)
    assert [r.id for r in by_index["khabar-articles"]] == ["003"]
    assert sorted(r.id for r in by_index["khabar-entities"]) == ["003:loc:moscow", "003:per:qasem-soleimani"]
    assert [r.id for r in by_index["khabar-quotes"]] == ["003:q1"]
    article = by_index["khabar-articles"][0].source
    assert article["entity_ids"] == ["per:qasem-soleimani", "loc:moscow"]
    assert article["timestamp"] == "2016-04-15"
    assert article["kafka"] == {"topic": "t", "partition": 0, "offset": 7}
    soleimani = next(r.source for r in by_index["khabar-entities"] if r.id.endswith("soleimani"))
    assert soleimani["mention_count"] == 2
    assert soleimani["name"] == "Qasem Soleimani"
    quote = by_index["khabar-quotes"][0].source
    assert quote["via_entity_id"] == "org:reuters"
    assert quote["claim_id"] == "c1"
    again = article_to_requests(ARTICLE, "khabar", origin=origin, ingested_at="2026-01-01T00:00:00+00:00")
    assert again == reqs


def test_to_es_action_is_an_index_op_with_the_id() -> None:
    action = to_es_action(IndexRequest("khabar-articles", "003", {"id": "003"}))
    assert action == {"_op_type": "index", "_index": "khabar-articles", "_id": "003", "_source": {"id": "003"}}


def test_failure_reason_includes_cause() -> None:
    info = {"error": {"type": "document_parsing_exception", "reason": "failed to parse field [published_at]",
                      "caused_by": {"type": "illegal_argument_exception", "reason": "bad date"}}}
    assert "document_parsing_exception" in failure_reason(info)
    assert "bad date" in failure_reason(info)


def test_dead_letter_keeps_text_or_base64_payload() -> None:
    text = documents.dead_letter("parse", "invalid JSON", payload=b"{oops")
    assert text["payload"] == "{oops" and text["payload_base64"] is None
    binary = documents.dead_letter("decode", "not UTF-8", payload=b"\xff\xfe")
    assert binary["payload"] is None and binary["payload_base64"] == "//4="
    key, value = documents.encode_dead_letter({**binary, "document_id": "d1"})
    assert key == b"d1" and json.loads(value)["stage"] == "decode"


def test_index_documents_match_their_json_schemas() -> None:
    from jsonschema import Draft202012Validator

    from khabar.enrich import enrich
    from khabar.schemas import load_schema

    samples = sorted((Path(__file__).parents[1] / "fixtures" / "samples").glob("*.txt"))
    validators = {kind: Draft202012Validator(load_schema(name))
                  for kind, name in (("articles", "article"), ("entities", "entity"), ("quotes", "quote"))}
    seen = set()
    for path in samples:
        article = enrich({"id": path.stem, "text": path.read_text("utf-8")})
        for request in article_to_requests(article, "khabar"):
            kind = request.index.rsplit("-", 1)[1]
            errors = [e.message for e in validators[kind].iter_errors(dict(request.source))]
            assert not errors, (request.index, request.id, errors[:3])
            seen.add(kind)
    assert seen == {"articles", "entities", "quotes"}


def test_stale_children_last_version_wins_within_a_batch() -> None:
    from khabar.connectors.elasticsearch import stale_children

    v1 = article_to_requests(ARTICLE, "khabar", ingested_at="2026-01-01T00:00:00+00:00")
    v2_article = {**ARTICLE, "entities": ARTICLE["entities"][1:], "quotes": []}
    v2 = article_to_requests(v2_article, "khabar", ingested_at="2026-01-01T00:00:00+00:00")
    kept, queries = stale_children(v1 + v2)
    kept_ids = [(r.index, r.id) for r in kept]
    assert ("khabar-entities", "003:per:qasem-soleimani") not in kept_ids  # only the first version had it
    assert ("khabar-entities", "003:loc:moscow") in kept_ids
    assert ("khabar-quotes", "003:q1") not in kept_ids
    assert queries["khabar-entities"] == [{"bool": {"filter": [{"term": {"article_id": "003"}}],
                                                    "must_not": [{"ids": {"values": ["003:loc:moscow"]}}]}}]
    assert queries["khabar-quotes"] == [{"bool": {"filter": [{"term": {"article_id": "003"}}]}}]
    unchanged, _ = stale_children(v1)
    assert unchanged == v1
