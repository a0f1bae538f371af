"""Pinned quote and claim floors of the whole enrichment on the five annotated sample articles.

Runs :func:`khabar.enrich.enrich` over tests/fixtures/samples/*.txt (entities, quotes and claims as
the pipeline makes them) and scores it against the gold annotation with :func:`khabar.evaluate.score`:
every required quote found with its speaker, none of the ``not_quotes`` reported, and the claim
"Soleimani met Putin in Moscow" carried by one id across 000-003, asserted by Fars, Reuters and
Tasnim and denied by the Kremlin.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from khabar.enrich import enrich
from khabar.evaluate import score
from khabar.normalize import match_key

SAMPLES = Path(__file__).parents[1] / "fixtures" / "samples"
GOLD_CANDIDATES = (Path(__file__).parents[1] / "fixtures" / "seeds.gold.json",
                   Path("/work/shared/eval/seeds.gold.json"))
MEET = "claim:meet:per:qasem-soleimani+per:vladimir-putin@loc:moscow"


@pytest.fixture(scope="module")
def gold() -> dict:
    path = next((p for p in GOLD_CANDIDATES if p.exists()), None)
    if path is None:
        pytest.skip("no gold annotation available")
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def articles() -> dict[str, dict]:
    files = sorted(SAMPLES.glob("*.txt"))
    assert len(files) == 5
    return {f.stem[:3]: enrich({"id": f.stem, "text": f.read_text(encoding="utf-8")}) for f in files}


def test_every_required_quote_is_found_with_its_speaker(articles: dict, gold: dict) -> None:
    result = score(list(articles.values()), gold)
    missed = {seed: d["quotes_missed"] for seed, d in result["articles"].items() if d.get("quotes_missed")}
    assert missed == {}
    assert result["fields"]["quotes"]["recall"] == 1.0


def test_no_not_quote_is_reported(articles: dict, gold: dict) -> None:
    for doc in gold["documents"]:
        art = articles[doc["seed"][:3]]
        bad = {match_key(x) for x in doc.get("not_quotes", [])}
        reported = [q["text"] for q in art["quotes"] if match_key(q["text"]).strip() in bad]
        assert reported == [], doc["seed"]


def test_quote_offsets_index_the_input(articles: dict) -> None:
    for f in sorted(SAMPLES.glob("*.txt")):
        text = f.read_text(encoding="utf-8")
        for q in articles[f.stem[:3]]["quotes"]:
            assert text[q["start"] : q["end"]] == q["text"]
            sp = q["speaker"]
            assert text[sp["start"] : sp["end"]] == sp["text"]


def test_quote_precision_floor(articles: dict, gold: dict) -> None:
    # The gold lists the quotes a reader must find, not every attributed statement, so this
    # floor is loose; it catches a flood of spurious quotes.
    result = score(list(articles.values()), gold)
    assert result["extra"].get("not_quotes_reported", 0) == 0
    total = sum(len(a["quotes"]) for a in articles.values())
    assert total <= 80


def test_soleimani_putin_claim_shares_one_id_across_articles(articles: dict) -> None:
    by_stance: dict[str, set[str]] = {"assert": set(), "confirm": set(), "deny": set()}
    for seed in ("000", "001", "002", "003"):
        claims = [c for c in articles[seed]["claims"] if c["id"] == MEET]
        assert claims, seed
        for c in claims:
            by_stance[c["stance"]].update(c["by"])
    asserted = by_stance["assert"] | by_stance["confirm"]
    assert {"org:fars-news-agency", "org:reuters", "org:tasnim-news-agency"} <= asserted
    assert "org:kremlin" in by_stance["deny"]
    assert "org:islamic-revolutionary-guard-corps" in by_stance["deny"]
    # Quotes carry the claim id of the claim they state.
    assert any(q["claim_id"] == MEET for q in articles["003"]["quotes"])


def test_claims_score_against_gold(articles: dict, gold: dict) -> None:
    result = score(list(articles.values()), gold)
    assert result["fields"]["claims"]["recall"] >= 0.8
