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
    assert E._after_triggers(doc, doc.token_starts, doc.token_ends) == expected


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
