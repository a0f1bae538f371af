"""Pure parts of `khabar dlq replay`: filters, payload recovery, de-duplication, replay bookkeeping."""

from __future__ import annotations

import base64
import json

import pytest

from khabar import dlq
from khabar.dlq import Letter, decode_ranges, encode_ranges, matches, original_of, plan_replay


def test_ranges_round_trip_and_advance_the_committed_offset() -> None:
    assert encode_ranges({0, 1, 2, 5, 6, 9}, 0) == (3, "5-6,9-9")
    assert encode_ranges({7, 8}, 3) == (3, "7-8")
    assert encode_ranges({3, 7, 8}, 3) == (4, "7-8")
    assert encode_ranges(set(), 10) == (10, "")
    assert decode_ranges("5-6,9-9") == {5, 6, 9}
    assert decode_ranges("") == set() and decode_ranges(None) == set() and decode_ranges("garbage,1-x") == set()
    handled = {4, 5, 11, 12, 13, 20}
    committed, meta = encode_ranges(handled, 4)
    assert committed == 6 and decode_ranges(meta) == {11, 12, 13, 20}


def test_filters() -> None:
    letter = {"stage": "validate", "error": "text has 5000 characters, over the limit of 3000",
              "error_type": "too_large"}
    assert matches(letter, None, None)
    assert matches(letter, "validate", "OVER THE LIMIT")
    assert matches(letter, None, "too_large")
    assert not matches(letter, "enrich", None)
    assert not matches(letter, "validate", "time budget")


def test_original_payload_per_stage() -> None:
    raw = b"\xff\xfe not utf-8"
    assert original_of({"stage": "decode", "payload_base64": base64.b64encode(raw).decode()}) == (raw, None)
    assert original_of({"stage": "enrich", "payload": '{"id": "a", "text": "خبر"}'})[0] == \
        '{"id": "a", "text": "خبر"}'.encode()
    assert original_of({"stage": "validate", "payload": "x", "payload_truncated": True})[0] is None
    index = {"stage": "index", "payload": '{"body": "enriched article"}',
             "original_payload": '{"id": "a", "text": "t"}', "source": {"topic": "t", "partition": 0, "offset": 4}}
    assert original_of(index) == (b'{"id": "a", "text": "t"}', None)
    # Without original_payload, the original record is read back from Kafka (never the enriched document).
    calls = []
    older = {**index, "original_payload": None}

    def fetch(topic: str, partition: int, offset: int) -> bytes | None:
        calls.append((topic, partition, offset))
        return b'{"text": "from kafka"}'

    assert original_of(older, fetch) == (b'{"text": "from kafka"}', None)
    assert calls == [("t", 0, 4)]
    payload, why = original_of(older, lambda *a: None)
    assert payload is None and "gone" in (why or "")
    assert original_of(older)[0] is None


def test_plan_sends_one_message_per_rejected_article_and_keys_by_id() -> None:
    source = {"topic": "docs", "partition": 1, "offset": 9, "key": "a1"}
    message = json.dumps({"id": "a1", "text": "t"})
    letters = [
        Letter(0, 10, {"stage": "index", "document_id": "a1:per:x", "source": source, "original_payload": message}),
        Letter(0, 11, {"stage": "index", "document_id": "a1:loc:y", "source": source, "original_payload": message}),
        Letter(0, 12, {"stage": "parse", "document_id": None, "payload": "{bad",
                       "source": {"topic": "docs", "partition": 0, "offset": 3, "key": "k3"}}),
        Letter(0, 13, {"stage": "validate", "payload": "x", "payload_truncated": True}),
    ]
    plan = plan_replay(letters)
    assert [(le.offset, key, payload) for le, key, payload in plan.send] == [
        (10, b"a1", message.encode()), (12, b"k3", b"{bad")]
    assert [(le.offset, primary) for le, primary in plan.duplicates] == [(11, 10)]
    assert [(le.offset, "truncated" in why) for le, why in plan.skipped] == [(13, True)]


def test_index_letters_keyed_by_article_id() -> None:
    # The article id, not the ES _id of the entity document, is the key to re-submit under.
    record = {"stage": "index", "document_id": "a1:per:x", "source": {"key": "a1"},
              "original_payload": json.dumps({"id": "a1", "text": "t"})}
    assert dlq.key_of(record) == b"a1"
    assert dlq.key_of({**record, "source": {"key": None}}) is None  # the message carries its id
    assert dlq.key_of({"stage": "enrich", "document_id": "sha1-abc", "source": {"key": None}}) == b"sha1-abc"


def test_cli_help_and_bad_stage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        dlq.main(["replay", "--help"])
    assert info.value.code == 0
    assert "--reason-contains" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        dlq.main(["replay", "--stage", "nope"])
