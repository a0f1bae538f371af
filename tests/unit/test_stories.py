"""Stories, copies and text reuse: the samples' acceptance and the rules on small cases."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest

from khabar import stories
from khabar.enrich import enrich, enrich_many

SAMPLES = Path(__file__).parents[1] / "fixtures" / "samples"
GOLD = json.loads((Path(__file__).parents[1] / "fixtures" / "seeds.gold.json").read_text("utf-8"))


def _texts() -> dict[str, str]:
    return {p.name[:3]: p.read_text("utf-8") for p in sorted(SAMPLES.glob("*.txt"))}


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    return _texts()


@pytest.fixture(scope="module")
def records(texts: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {k: enrich({"id": k, "text": t}) for k, t in texts.items()}


def _by_id(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in results}


def test_samples_stories_match_the_gold(records: dict[str, dict[str, Any]]) -> None:
    got = _by_id(stories.link_all(list(records.values())))
    for story in GOLD["stories"]:
        ids = {got[a]["story_id"] for a in story["articles"]}
        assert len(ids) == 1, story
    assert len({got[s["articles"][0]]["story_id"] for s in GOLD["stories"]}) == len(GOLD["stories"])
    # 004 shares Putin, Soleimani, Syria and Russia with the others but is another story.
    assert got["004"]["story_id"] != got["000"]["story_id"]


def test_samples_reuse_and_no_other_copies(records: dict[str, dict[str, Any]], texts: dict[str, str]) -> None:
    got = _by_id(stories.link_all(list(records.values())))
    expected = {(r["article"], r["reuses"]) for r in GOLD["text_reuse"]}
    found = {(a, r["article"]) for a, res in got.items() for r in res["reuses"]}
    assert found == expected
    assert all(res["duplicate_of"] is None for res in got.values())
    (link,) = got["001"]["reuses"]
    assert len(link["passages"]) >= 3
    total = 0
    for p in link["passages"]:
        assert 0 <= p["start"] < p["end"] <= len(texts["001"])
        assert 0 <= p["source_start"] < p["source_end"] <= len(texts["000"])
        total += p["end"] - p["start"]
    # The translated background: the Fars report with Khamenei's "my friend, Qasem" and Hezbollah's losses.
    reused = " ".join(texts["001"][p["start"] : p["end"]] for p in link["passages"])
    source = " ".join(texts["000"][p["source_start"] : p["source_end"]] for p in link["passages"])
    assert "فارس" in reused and "فارس" in source
    assert "1300" in reused and "۱۳۰۰" in source
    assert total > 800


def test_set_is_order_independent(records: dict[str, dict[str, Any]]) -> None:
    base = _by_id(stories.link_all(list(records.values())))
    rng = random.Random(5)
    orders = list(itertools.permutations(records))
    for order in rng.sample(orders, 12):
        assert _by_id(stories.link_all([records[k] for k in order])) == base, order


def test_streaming_matches_the_set_in_any_arrival_order(records: dict[str, dict[str, Any]]) -> None:
    base = _by_id(stories.link_all(list(records.values())))
    for order in (sorted(records), sorted(records, reverse=True), ["003", "001", "004", "000", "002"]):
        seen: list[dict[str, Any]] = []
        for k in order:
            sig = stories.signature(records[k])
            res = stories.link(sig, seen)
            assert res["story_id"] == base[k]["story_id"], (order, k)
            seen.append({**sig, **res})
    # In publication order (000 before 001) the stream also finds the reuse.
    seen = []
    found = {}
    for k in sorted(records):
        sig = stories.signature(records[k])
        res = stories.link(sig, seen)
        found[k] = [r["article"] for r in res["reuses"]]
        seen.append({**sig, **res})
    assert found == {"000": [], "001": ["000"], "002": [], "003": [], "004": []}


def test_exact_copy_is_a_duplicate(texts: dict[str, str]) -> None:
    original = enrich({"id": "orig", "text": texts["003"], "published_at": "2016-04-15"})
    copy = enrich({"id": "copy", "text": texts["003"], "published_at": "2016-04-16", "source": "other"})
    got = _by_id(stories.link_all([copy, original]))
    assert got["copy"]["duplicate_of"] == "orig"
    assert got["orig"]["duplicate_of"] is None
    assert got["copy"]["story_id"] == got["orig"]["story_id"]
    # Streaming: the copy arrives after the original and finds it among the candidates.
    res = stories.link(copy, [{**stories.signature(original), "story_id": got["orig"]["story_id"]}])
    assert res["duplicate_of"] == "orig" and res["story_id"] == got["orig"]["story_id"]


def test_near_copy_with_a_changed_paragraph(texts: dict[str, str]) -> None:
    paras = texts["003"].split("\n\n")
    changed = max(range(len(paras)), key=lambda i: len(paras[i]) if i > 2 else 0)
    paras[changed] = "وقال محلل سياسي في بيروت إن الزيارة تعكس تنسيقا متزايدا بين البلدين في الملف السوري."
    near = "\n\n".join(paras)
    assert near != texts["003"]
    a = enrich({"id": "a", "text": texts["003"]})
    b = enrich({"id": "b", "text": near})
    got = _by_id(stories.link_all([b, a]))
    assert got["b"]["duplicate_of"] == "a" and got["a"]["duplicate_of"] is None


def test_unrelated_article_has_its_own_story(records: dict[str, dict[str, Any]]) -> None:
    unrelated = enrich({"id": "u", "text": (
        "أعلنت وزارة الزراعة المصرية عن زيادة إنتاج القمح هذا العام بنسبة 12 بالمئة.\n\n"
        "وقال المتحدث باسم الوزارة إن الأمطار الغزيرة ساعدت المزارعين في الدلتا على تحسين المحصول.\n\n"
        "وتوقعت الوزارة أن تنخفض واردات القمح خلال الموسم المقبل إلى 9 ملايين طن.")})
    got = _by_id(stories.link_all([*records.values(), unrelated]))
    assert got["u"]["story_id"] == stories.story_id_for("article:u")
    assert got["u"]["story_id"] not in {got[k]["story_id"] for k in records}
    assert got["u"]["duplicate_of"] is None and got["u"]["reuses"] == []


def test_article_without_claim_joins_the_story_it_reuses(records: dict[str, dict[str, Any]],
                                                         texts: dict[str, str]) -> None:
    # The background half of 000 alone, republished: no claim strong enough, but a reuse of 000.
    spans = records["000"]["body_spans"]
    tail = "\n\n".join(texts["000"][s:e] for s, e in spans[8:])
    part = enrich({"id": "zz-background", "text": tail, "published_at": "2015-12-20"})
    sig = stories.signature(part)
    assert sig["story_key"] is None
    full = enrich({"id": "000", "text": texts["000"], "published_at": "2015-12-16"})
    got = _by_id(stories.link_all([full, part, records["004"]]))
    assert got["zz-background"]["story_id"] == got["000"]["story_id"]
    assert [r["article"] for r in got["zz-background"]["reuses"]] == ["000"]
    assert got["000"]["reuses"] == [] and got["zz-background"]["duplicate_of"] is None
    # Without dates the excerpt, wholly covered, counts as the source; the story is shared all the same.
    undated = _by_id(stories.link_all([records["000"], {**part, "published_at": None}]))
    assert undated["zz-background"]["story_id"] == undated["000"]["story_id"]


def test_signature_features_are_language_independent(records: dict[str, dict[str, Any]]) -> None:
    fa, ar = stories.signature(records["000"]), stories.signature(records["001"])
    json.dumps(fa)  # stored as-is in Elasticsearch
    assert fa["story_key"] == ar["story_key"] == "claim:meet:per:qasem-soleimani+per:vladimir-putin@loc:moscow"
    last_fa, last_ar = set(fa["paragraphs"][-1]["features"]), set(ar["paragraphs"][-1]["features"])
    assert {"n:1300", "n:1500", "e:org:hezbollah"} <= last_fa & last_ar
    text = (SAMPLES / "000_ecccd35292984dac.txt").read_text("utf-8")
    for p in fa["paragraphs"]:
        assert text[p["start"] : p["end"]].strip()
    assert len(fa["bands"]) == 16 and len(fa["minhash"]) == 64
    assert stories.lookup_keys(fa)["claim_ids"] == fa["claim_ids"]


def test_numbers_in_every_script() -> None:
    assert stories.numbers_in("۱٬۳۰۰ و ١٥٠٠ و 2,000 و 7") == ["1300", "1500", "2000"]


def test_enrich_many_links_within_the_set(texts: dict[str, str]) -> None:
    msgs = [{"id": k, "text": t} for k, t in texts.items()]
    recs = list(enrich_many(msgs, link_stories=True))
    assert all(r["story_id"] for r in recs)
    assert len({r["story_id"] for r in recs if r["id"] != "004"}) == 1
    assert [r["article"] for r in next(r for r in recs if r["id"] == "001")["reuses"]] == ["000"]
    plain = list(enrich_many(msgs[:1]))
    assert plain[0]["story_id"] is None


def test_minhash_values_equal_datasketch() -> None:
    from datasketch import MinHash

    rng = random.Random(3)
    groups = [["".join(rng.choice("ابپچ ۱a") for _ in range(rng.randint(1, 9))) for _ in range(rng.randint(0, 40))]
              for _ in range(30)]
    got = stories._minhash_many(groups, 32)
    for g, values in zip(groups, got, strict=True):
        if not g:
            assert values is None
            continue
        m = MinHash(num_perm=32, seed=1, scheme="affine32")
        m.update_batch([s.encode("utf-8") for s in set(g)])
        assert values == [int(v) for v in m.hashvalues]


def test_pair_prefilter_keeps_every_scoring_pair(records: dict[str, dict[str, Any]]) -> None:
    sigs = {k: stories.signature(r) for k, r in records.items()}
    params = stories.DEFAULT
    checked = 0
    for a, b in itertools.permutations(sigs.values(), 2):
        pa, pb = a["paragraphs"], b["paragraphs"]
        xa, xb = stories._prepare(pa), stories._prepare(pb)
        same = a["language"] == b["language"]
        text_j = ((xa.hashes[:, None, :] == xb.hashes[None, :, :]).mean(axis=2)
                  * (xa.has_hash[:, None] & xb.has_hash[None, :])) if same else None
        weights = stories._feature_weights(pa, pb)
        every = [(i, j) for i in range(len(pa)) for j in range(len(pb))
                 if stories._pair_score(set(pa[i]["features"]), set(pb[j]["features"]), weights,
                                        text_j[i, j] if text_j is not None else 0.0, params) > 0]
        kept = set(stories._candidate_pairs(xa, xb, text_j, params))
        assert set(every) <= kept
        checked += len(every)
    assert checked > 0
