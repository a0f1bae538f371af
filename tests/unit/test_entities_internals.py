"""The fast paths of entity linking agree with the plain definitions they replace."""

from __future__ import annotations

import bisect

from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz import fuzz, process

from khabar import entities as E
from khabar.normalize import normalize

# Letters, digits, every gap character, other punctuation, a letter whose lower case is longer (İ).
_ALPHABET = st.sampled_from(list("ابتجحدرسعلمنهوي پکی 019aZ_\n\t\r\"'«»“”„‘’‹›()[]ـ,.-:\u00a0\u2009\u200cİ"))
_TEXT = st.text(_ALPHABET, min_size=1, max_size=600)
_WORDS = st.lists(st.sampled_from(["محمد", "علي", "الرئيس", "قال", "وزير", "حسن", "ايران", "«", ")", "\n"]),
                  min_size=1, max_size=300).map(" ".join)


def _plain_map(m: str) -> list[int]:
    """Index in the match form of each working-string character, built character by character."""
    idx: list[int] = []
    pos = 0
    for g in E._GAP_FIX_RE.finditer(m):
        a, b = g.span()
        idx.extend(range(pos, a))
        idx.append(a)
        pos = b
    idx.extend(range(pos, len(m)))
    return idx


@settings(max_examples=300, deadline=None)
@given(st.one_of(_TEXT, _WORDS))
def test_working_string_and_maps(text: str) -> None:
    norm = normalize(text)
    m = norm.match
    doc = E._Doc(text, norm)
    assert E._fixed_gaps(m) == [g.span() for g in E._GAP_FIX_RE.finditer(m)]
    assert doc.w == E._GAP_FIX_RE.sub(" ", m).lower()
    idx = _plain_map(m)
    assert [doc.idx(i) for i in range(len(idx))] == idx
    src = norm.match_map.__getitem__
    for a in range(len(text) + 2):
        s = bisect.bisect_left(idx, a, key=src)
        e = bisect.bisect_left(idx, a + 3, key=src)
        assert doc.from_source(a, a + 3) == (s, max(e, s))
    assert doc.alnum_flags == bytes(ch.isalnum() for ch in doc.w) + b"\x00"
    tokens = [(t.start(), t.end()) for t in E._TOKEN_RE.finditer(doc.w)]
    assert list(zip(doc.starts, doc.ends, strict=True)) == tokens
    trig = E._trigger_words()
    expected = [i + 1 for i, (s, e) in enumerate(tokens) if doc.w[s:e] in trig]
    assert E._after_triggers(doc) == expected


_SURNAME_LIKE = st.text(st.sampled_from(list("ابتثجحخدرزسشصطعغفقكلمنهوي")), min_size=5, max_size=14)


@settings(max_examples=300, deadline=None)
@given(_SURNAME_LIKE, st.sampled_from(["ar", "fa"]))
def test_surname_prefilter_keeps_every_match(token: str, lang: str) -> None:
    choices = E._surname_choices(lang, len(token))
    reachable = E._reachable_surnames(token, lang)
    assert set(reachable) <= set(choices)
    # Whatever the full scan finds is among the surnames kept, so extractOne answers the same.
    kept = set(reachable)
    assert all(c in kept for c in choices if fuzz.ratio(token, c) >= E._FUZZ_GLOBAL)
    full = process.extractOne(token, choices, scorer=fuzz.ratio, score_cutoff=E._FUZZ_GLOBAL)
    fast = process.extractOne(token, reachable, scorer=fuzz.ratio, score_cutoff=E._FUZZ_GLOBAL) \
        if reachable else None
    # (choice, score) agree; the index is into the list searched.
    assert (full is None) == (fast is None)
    assert full is None or fast is None or full[:2] == fast[:2]


def test_surname_prefilter_on_misspelt_surnames() -> None:
    for lang in ("ar", "fa"):
        for c in E._index(lang).surname_choices[::25]:
            for token in (c, c[:-1] + "ز", c[1:], c + "ي"):
                if len(token) < E._FUZZ_MIN_LEN + 1:
                    continue
                choices = E._surname_choices(lang, len(token))
                best = process.extractOne(token, choices, scorer=fuzz.ratio, score_cutoff=E._FUZZ_GLOBAL)
                if best is not None:
                    assert best[0] in E._reachable_surnames(token, lang)


def _plain_hits(w: str, lang: str, index: E._Index) -> list[tuple[int, int, str]]:
    """Boundary rules of the gazetteer scan, walking the letters one by one (longest hit first)."""
    ents = E.gz.entities()
    cands = []
    for end, key in index.automaton.iter(w):
        e = end + 1
        s = start = e - len(key)
        left = s > 0 and w[s - 1].isalnum()
        right = e < len(w) and w[e].isalnum()
        if left:
            ts = s
            while ts > 0 and w[ts - 1].isalnum() and s - ts <= E._MAX_PREFIX:
                ts -= 1
            if lang != "ar" or right or (ts > 0 and w[ts - 1].isalnum()) or w[ts:s] not in E._AR_PREFIXES:
                continue
            start = s - 2 if w[ts:s].endswith("ال") else s
        elif right:
            te = e
            while te < len(w) and w[te].isalnum() and te - e <= E._MAX_SUFFIX:
                te += 1
            suf = w[e:te]
            not_loc = any(ents[x.entity_id].type != "LOC" for x in index.keys[key])
            if lang == "ar" or (te < len(w) and w[te].isalnum()) or not (
                    suf in E._FA_SUFFIXES_ANY or (suf in E._FA_SUFFIXES_NOT_LOC and not_loc)):
                continue
        cands.append((start, e, key))
    cands.sort(key=lambda h: (h[0] - h[1], h[0]))
    taken: set[int] = set()
    out = []
    for start, e, key in cands:
        if taken.isdisjoint(range(start, e)):
            taken.update(range(start, e))
            out.append((start, e, key))
    return sorted(out)


_NAMES = st.lists(st.sampled_from(["ايران", "طهران", "وبطهران", "للسعودية", "ایرانی", "ایرانها", "تهرانی",
                                   "روسیه", "الروسية", "بوتين", "فلاديمير بوتين", "سليماني", "قاسم",
                                   "ابوظبي", "x", "ال", "و", "«", "\n"]),
                  min_size=1, max_size=60).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(st.one_of(_NAMES, _TEXT), st.sampled_from(["ar", "fa", "any"]))
def test_gazetteer_boundaries(text: str, lang: str) -> None:
    doc = E._Doc(text, normalize(text))
    index = E._index(lang)
    got = [(h.start, h.end, h.key) for h in E._gazetteer_hits(doc, lang, index)]
    assert sorted(got) == _plain_hits(doc.w, lang, index)
