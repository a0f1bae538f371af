"""The scorer itself: each field counts what it should."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from khabar.evaluate import check_floors, main, score

GOLD = {
    "documents": [
        {"seed": "000_a.txt", "language": "fa", "title": "تیتر خبر", "published_at": None,
         "boilerplate_lines": ["جستجو", "اختصاصی"], "duplicate_lines": ["زیرنویس عکس"],
         "entities": [
             {"name": "Vladimir Putin", "type": "PER", "forms": ["پوتین"], "required": True},
             {"name": "BBC", "type": "ORG", "forms": ["بی بی سی"], "required": False},
         ],
         "quotes": [{"speaker": "Putin", "speaker_forms": ["پوتین"], "quote_starts_with": "دوست من",
                     "kind": "direct", "required": True}],
         "not_quotes": ["دوست"],
         "claims": [{"claim": "X met Y", "asserted_by": ["Fars"], "denied_by": []}]},
        {"seed": "001_b.txt", "language": "ar", "title": None, "published_at": "2016-04-15",
         "boilerplate_lines": [],
         "entities": [{"name": "Vladimir Putin", "type": "PER", "forms": ["بوتين"], "required": True}],
         "claims": [{"claim": "X met Y", "asserted_by": [], "denied_by": ["Kremlin"]}]},
    ],
    "stories": [{"articles": ["000", "001"]}],
    "text_reuse": [{"article": "001", "reuses": "000"}],
}


def _arts() -> list[dict]:
    return [
        {"id": "000_a", "language": "fa", "title": "تیتر خبر", "published_at": None,
         "boilerplate": [{"text": "جستجو"}, {"text": "جمله ای از متن خبر"}], "body": "متن\nزیرنویس عکس",
         "entities": [{"id": "per:putin", "type": "PER", "mentions": [{"text": "پوتین"}]},
                      {"id": "loc:x", "type": "LOC", "mentions": [{"text": "ناکجا"}]}],
         "quotes": [{"text": "«دوست من، قاسم»", "speaker": {"text": "پوتین"}},
                    {"text": "«دوست»", "speaker": {}}],
         "claims": [{"id": "c1"}], "story_id": "s1", "reuses": []},
        {"id": "001", "language": "ar", "title": "عنوان خاطئ", "published_at": "2016-04-15",
         "boilerplate": [], "body": "",
         "entities": [{"id": "per:putin2", "type": "PER", "mentions": [{"text": "بوتين"}]}],
         "quotes": [], "claims": [{"id": "c1"}], "story_id": "s1", "reuses": [{"article": "000"}]},
    ]


def test_counts_per_field() -> None:
    r = score(_arts(), GOLD)
    f = r["fields"]
    assert (f["title"]["tp"], f["title"]["fp"], f["title"]["fn"]) == (1, 1, 0)
    assert f["published_at"]["f1"] == 1.0 and f["language"]["f1"] == 1.0
    assert (f["boilerplate"]["tp"], f["boilerplate"]["fp"], f["boilerplate"]["fn"]) == (1, 1, 1)
    assert r["extra"]["body_lines_removed"] == 1
    assert f["duplicate_lines"]["recall"] == 1.0
    assert (f["entities"]["tp"], f["entities"]["fp"], f["entities"]["fn"]) == (2, 1, 0)
    assert r["extra"]["entity_id_consistency"] == 0.0  # putin has two ids
    assert (f["quotes"]["tp"], f["quotes"]["fp"]) == (1, 1) and r["extra"]["not_quotes_reported"] == 1
    assert f["claims"]["recall"] == 1.0 and f["claims"]["precision"] == 1.0
    assert f["stories"]["f1"] == 1.0 and f["text_reuse"]["f1"] == 1.0


def test_missing_article_counts_as_misses() -> None:
    r = score([], GOLD)
    assert r["fields"]["boilerplate"]["fn"] == 2 and r["fields"]["language"]["fn"] == 2


def test_floors() -> None:
    r = score(_arts(), GOLD)
    assert check_floors(r, {"language": {"f1": 1.0}}) == []
    assert check_floors(r, {"title": {"precision": 1.0}, "extra": {"body_lines_removed": 0}}) == [
        "title.precision = 0.5 < 1.0", "extra.body_lines_removed = 1 > 0"]


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred = tmp_path / "p.jsonl"
    pred.write_text("\n".join(json.dumps(a, ensure_ascii=False) for a in _arts()), encoding="utf-8")
    gold = tmp_path / "g.json"
    gold.write_text(json.dumps(GOLD, ensure_ascii=False), encoding="utf-8")
    floors = tmp_path / "f.json"
    floors.write_text(json.dumps({"language": {"f1": 1.0}}), encoding="utf-8")
    assert main([str(pred), "--gold", str(gold), "--floors", str(floors)]) == 0
    assert "language" in capsys.readouterr().out
    floors.write_text(json.dumps({"title": {"f1": 1.0}}), encoding="utf-8")
    assert main([str(pred), "--gold", str(gold), "--floors", str(floors)]) == 1
