"""Pinned quality floors of the text stage on the five annotated sample articles.

Titles, dates, language and boilerplate must all be right (the acceptance floor of issue 3):
a regression in any of them fails here.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from khabar.enrich import run_enrich
from khabar.evaluate import check_floors, score

SAMPLES = Path(__file__).parents[1] / "fixtures" / "samples"
GOLD = Path(__file__).parents[1] / "fixtures" / "seeds.gold.json"

FLOORS = {
    "title": {"precision": 1.0, "recall": 1.0},
    "published_at": {"precision": 1.0, "recall": 1.0},
    "language": {"f1": 1.0},
    "byline": {"f1": 1.0},
    "boilerplate": {"precision": 1.0, "recall": 1.0},
    "duplicate_lines": {"recall": 1.0},
    "extra": {"body_lines_removed": 0},
}


def _result() -> dict:
    out = io.StringIO()
    assert run_enrich([str(SAMPLES)], out) == 0
    arts = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(arts) == 5
    return score(arts, json.loads(GOLD.read_text(encoding="utf-8")))


def test_text_stage_floors() -> None:
    result = _result()
    failures = check_floors(result, FLOORS)
    assert failures == [], json.dumps(result["articles"], ensure_ascii=False, indent=1)


def test_every_gold_title_and_date_exactly() -> None:
    out = io.StringIO()
    run_enrich([str(SAMPLES)], out)
    arts = {json.loads(x)["id"][:3]: json.loads(x) for x in out.getvalue().splitlines()}
    gold = json.loads(GOLD.read_text(encoding="utf-8"))
    for doc in gold["documents"]:
        a = arts[doc["seed"][:3]]
        assert a["title"] == doc["title"], doc["seed"]
        assert a["published_at"] == doc["published_at"], doc["seed"]
        assert a["language"] == doc["language"], doc["seed"]
