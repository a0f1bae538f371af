"""enrich / run_enrich end to end on the sample articles and on messages."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from khabar.enrich import enrich, enrich_many, message_text, run_enrich

SAMPLES = Path(__file__).parents[1] / "fixtures" / "samples"
FIELDS = {"id", "language", "language_confidence", "title", "body", "published_at", "published_at_original",
          "dates", "source", "url", "boilerplate", "entities", "quotes", "claims", "story_id", "duplicate_of",
          "reuses"}


def test_record_fields_and_offsets() -> None:
    text = (SAMPLES / "003_2b8ce03f76824978.txt").read_text(encoding="utf-8")
    rec = enrich({"id": "003", "text": text})
    assert set(rec) >= FIELDS
    assert rec["id"] == "003" and rec["language"] == "ar"
    assert rec["published_at"] == "2016-04-15"
    for b in rec["boilerplate"]:
        assert text[b["start"] : b["end"]] == b["text"]
    for e in rec["entities"]:
        for m in e["mentions"]:
            assert text[m["start"] : m["end"]] == m["text"]
    json.dumps(rec, ensure_ascii=False)


def test_deterministic_id_without_message_id() -> None:
    a = enrich({"text": "نفى الكرملين اللقاء."})
    b = enrich({"text": "نفى الكرملين اللقاء."})
    assert a["id"] == b["id"] and a["id"]


def test_corpus_field_names_and_message_date() -> None:
    msg = {"source": "aawsat", "title": "عنوان",
           "content": "حدد رئيس الوزراء البريطاني ديفيد كاميرون ملامح استراتيجية.",
           "date_extracted": "2015-07-21 02:51:32"}
    assert message_text(msg).startswith("حدد")
    rec = enrich(msg)
    assert rec["title"] == "عنوان" and rec["language"] == "ar"
    assert rec["extra"] == {"date_extracted": "2015-07-21 02:51:32"}
    rec2 = enrich({"body": "روز سه‌شنبه ۱۷ دی پوتین به دمشق رفت و با بشار اسد دیدار کرد.",
                   "published_at": "2019-01-08T10:00:00Z"})
    assert rec2["published_at"] == "2019-01-08"
    assert rec2["dates"][0]["date"] == "2019-01-07"


def test_html_message() -> None:
    html = "<html><body><article>" + "".join(
        f"<p>هذه فقرة رقم {i} من نص الخبر الطويل الذي يتحدث عن سوريا وموسكو.</p>" for i in range(5)
    ) + "</article></body></html>"
    rec = enrich({"id": "h", "html": html})
    assert rec["language"] == "ar" and "فقرة رقم 2" in rec["body"]


def test_run_enrich_folder_and_bad_lines(tmp_path: Path) -> None:
    good = {"id": "a", "text": "کرملین دیدار پوتین و سلیمانی را تکذیب کرد."}
    f = tmp_path / "in.jsonl"
    f.write_text(json.dumps(good, ensure_ascii=False) + "\n{not json\n[1, 2]\n\n", encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    assert run_enrich([str(f)], out, err=err) == 1
    assert [json.loads(x)["id"] for x in out.getvalue().splitlines()] == ["a"]
    errors = [json.loads(x) for x in err.getvalue().splitlines()]
    assert [(e["file"], e["line"]) for e in errors] == [(str(f), 2), (str(f), 3)]

    out = io.StringIO()
    assert run_enrich([str(SAMPLES)], out, pretty=True) == 0
    text = out.getvalue()
    assert text.count('\n  "id": ') == 5 and '"id": "000_ecccd35292984dac"' in text


def test_enrich_many_shares_a_learner() -> None:
    msgs = [
        {"source": "s", "text": f"خبر {i} درباره موضوع تازه.\n\nعضویت در کانال تلگرام ما"} for i in range(10)
    ]
    last = list(enrich_many(msgs))[-1]
    assert [b["reason"] for b in last["boilerplate"]] == ["repeated across documents of this source"]


@pytest.mark.parametrize("text", ["", "   ", "\u200e\ufeff", "12 34", "Hello"])
def test_degenerate_texts(text: str) -> None:
    rec = enrich({"id": "x", "text": text})
    assert rec["body"] == "" or rec["language"] == "other"


def test_run_enrich_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO('{"id": "s1", "text": "نفى الكرملين اللقاء مع سليماني."}\n'))
    out = io.StringIO()
    assert run_enrich(["-"], out) == 0
    assert json.loads(out.getvalue())["id"] == "s1"


_ALPHABET = list("ابپتثجچحخدذرزژسشصضطظعغفقکگلمنوهیيكةى ۱۲۳0123/\n\u200c«»\".،:-")


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet=st.sampled_from(_ALPHABET), max_size=300))
def test_enrich_never_crashes_and_offsets_hold(text: str) -> None:
    rec = enrich({"id": "h", "text": text})
    for b in rec["boilerplate"]:
        assert text[b["start"] : b["end"]] == b["text"]
    for d in rec["dates"]:
        assert text[d["start"] : d["end"]] == d["text"]


def test_preload_loads_both_languages_models_and_tables() -> None:
    # Workers call preload() in setup() so that loading is not charged to the first documents' time
    # budget (an ordinary first document once took over 1.5 s because a model loaded inside it).
    # A fresh interpreter: this test process has long loaded everything.
    import subprocess
    import sys

    code = ("from khabar import enrich, ner\n"
            "enrich.preload()\n"
            "assert {'ar', 'fa'} <= {k for k, v in ner._models.items() if v is not None}, ner._models\n"
            "assert {'ar', 'fa'} <= set(ner._ranks) and {'ar', 'fa'} <= set(ner._lexicons)\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
