"""Unit tests for khabar.claims: canonical claim ids across languages, stance, and article-level merging."""

from __future__ import annotations

from khabar.claims import claim_id, extract_claims
from khabar.quotes import extract_quotes
from tests.unit.test_quotes import ent

SOLEIMANI_PUTIN_MOSCOW = "claim:meet:per:qasem-soleimani+per:vladimir-putin@loc:moscow"


def people(text: str) -> list[dict]:
    return [
        ent("per:qasem-soleimani", "PER", "Qasem Soleimani", text,
            "قاسم سلیمانی", "سلیمانی", "قاسم سليماني", "سليماني"),
        ent("per:vladimir-putin", "PER", "Vladimir Putin", text,
            "ولادیمیر پوتین", "پوتین", "فلاديمير بوتين", "بوتين"),
        ent("loc:moscow", "LOC", "Moscow", text, "مسکو", "موسكو"),
        ent("org:kremlin", "ORG", "Kremlin", text, "کرملین", "الكرملين"),
        ent("org:fars-news-agency", "ORG", "Fars News Agency", text, "خبرگزاری فارس", "وكالة فارس"),
        ent("org:reuters", "ORG", "Reuters", text, "رويترز"),
    ]


def run(text: str, lang: str) -> tuple[list[dict], list[dict]]:
    ents = people(text)
    quotes = extract_quotes(text, lang, ents)
    return quotes, extract_claims(text, lang, ents, quotes)


def test_claim_id_is_canonical():
    a = claim_id("meet", ["per:vladimir-putin", "per:qasem-soleimani"], "loc:moscow")
    b = claim_id("meet", ["per:qasem-soleimani", "per:vladimir-putin", "per:qasem-soleimani"], "loc:moscow")
    assert a == b == SOLEIMANI_PUTIN_MOSCOW
    assert claim_id("meet", ["per:a"], None) == "claim:meet:per:a"


def test_same_claim_in_persian_and_arabic_gets_one_id():
    fa = "خبرگزاری فارس گفت سلیمانی هفته گذشته در مسکو با پوتین دیدار کرده است."
    ar = "قال مصدر أمني لرويترز إن سليماني التقى مع بوتين في موسكو الأسبوع الماضي."
    _, fa_claims = run(fa, "fa")
    _, ar_claims = run(ar, "ar")
    fa_c = next(c for c in fa_claims if c["stance"] == "assert")
    ar_c = next(c for c in ar_claims if c["stance"] == "assert")
    assert fa_c["id"] == ar_c["id"] == SOLEIMANI_PUTIN_MOSCOW
    assert "org:fars-news-agency" in fa_c["by"]
    assert "org:reuters" in ar_c["by"]
    assert fa_c["summary"] == "Qasem Soleimani met Vladimir Putin in Moscow"


def test_denials_by_verb_by_negation_and_by_anaphora():
    fa = (
        "روز چهارشنبه کرملین تکذیب کرد که هفته گذشته دیداری میان ولادیمیر پوتین و قاسم سلیمانی "
        "در مسکو صورت گرفته است.\n"
        "در این خبر همچنین آمده است که سپاه پاسداران این گزارش را تکذیب کرده اند."
    )
    ents = [*people(fa), ent("org:islamic-revolutionary-guard-corps", "ORG", "IRGC", fa, "سپاه پاسداران")]
    quotes = extract_quotes(fa, "fa", ents)
    claims = extract_claims(fa, "fa", ents, quotes)
    deny = next(c for c in claims if c["stance"] == "deny")
    assert deny["id"] == SOLEIMANI_PUTIN_MOSCOW
    assert {"org:kremlin", "org:islamic-revolutionary-guard-corps"} <= set(deny["by"])
    ar = "وقال متحدث باسم الكرملين إن اجتماعا مع سليماني ليس على جدول أعمال بوتين في موسكو."
    quotes, claims = run(ar, "ar")
    (c,) = claims
    assert c["stance"] == "deny" and c["id"] == SOLEIMANI_PUTIN_MOSCOW
    assert c["by"] == ["org:kremlin"]
    assert quotes[0]["claim_id"] == c["id"] and quotes[0]["stance"] == "deny"


def test_visit_mention_joins_the_articles_meeting_claim():
    ar = (
        "قال مصدر أمني إيراني كبير لرويترز \"سافر الجنرال سليماني إلى موسكو الليلة الماضية.\"\n"
        "وذكر دبلوماسي غربي أن سليماني سيلتقي مع الرئيس الروسي فلاديمير بوتين."
    )
    quotes, claims = run(ar, "ar")
    ids = {q["claim_id"] for q in quotes if q["claim_id"]}
    assert ids == {SOLEIMANI_PUTIN_MOSCOW}
    assert set(next(c for c in claims if c["id"] == SOLEIMANI_PUTIN_MOSCOW)["by"]) >= {"org:reuters"}


def test_statement_without_claim_has_no_claim_id():
    text = "قال وزير الخارجية إن الوضع في المنطقة خطير للغاية ويتطلب تحركا عاجلا."
    quotes, claims = run(text, "ar")
    assert quotes and all(q["claim_id"] is None for q in quotes)
    assert claims == []
