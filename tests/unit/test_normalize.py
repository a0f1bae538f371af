"""Normalisation rules on real snippets, and the offset-map property."""

from __future__ import annotations

from itertools import pairwise

import pyarabic.araby as araby
from hypothesis import given, settings
from hypothesis import strategies as st

from khabar.normalize import match_key, match_tokens, normalize, quote_mark


def test_persian_typed_with_arabic_letters_matches_persian_letters() -> None:
    # Old Fars News types Persian with Arabic ي/ك.
    assert match_key("رئيس جمهوري امريكا") == match_key("رئیس جمهوری امریکا")
    assert match_key("کرملین") == match_key("كرملين")


def test_zwnj_and_missing_half_space_match_alike() -> None:
    forms = ["رئیسجمهوری", "رئیس\u200cجمهوری", "رئیس جمهوری", "رئيسجمهوري"]
    assert len({match_key(f) for f in forms}) == 1
    assert match_key("روز سهشنبه") == match_key("روز سه\u200cشنبه") == "روز سه شنبه"
    assert match_key("کردهاند") == match_key("کرده\u200cاند")
    assert match_key("پایگاههای") == match_key("پایگاه\u200cهای")
    assert match_key("میشود") == match_key("می\u200cشود") == "مي شود"
    # a noun that merely starts with می is not split
    assert match_key("میدان") == "ميدان"


def test_zwnj_kept_in_display() -> None:
    assert normalize("رئیس\u200cجمهوری").display == "رئیس\u200cجمهوری"


def test_digits_to_ascii() -> None:
    assert match_key("۱۷ دی ۱۳۹۸") == "17 دي 1398"
    assert match_key("الجمعة ٢٠١٦/٠٤/١٥") == "الجمعه 2016/04/15"
    assert normalize("۲۰۰۰ نیروی ایرانی").display == "۲۰۰۰ نیروی ایرانی"


def test_diacritics_and_tatweel_removed_like_pyarabic() -> None:
    text = "نقيّم إيجابيا خطوات موسكـــو وشكّل خطراً"
    stripped = araby.strip_tatweel(araby.strip_tashkeel(text))
    assert match_key(text) == match_key(stripped)
    assert "ّ" not in match_key(text) and "ـ" not in match_key(text)
    # display keeps diacritics: the text otherwise as written
    assert normalize(text).display == text


def test_alef_hamza_ta_marbuta_folding() -> None:
    assert match_key("إيران") == match_key("ايران") == "ايران"
    assert match_key("الأمم المتحدة") == "الامم المتحده"
    assert match_key("آیت الله") == match_key("ایت\u200cالله")
    assert match_key("مسؤول") == "مسوول"
    assert match_key("خامنئي") == "خامنيي"
    assert match_key("على") == match_key("علي")


def test_invisible_marks_removed_with_offsets() -> None:
    text = "\ufeff\u200fسليماني\u200e يزور\u00a0موسكو\r\n"
    norm = normalize(text)
    assert norm.display == "سليماني يزور موسكو"
    s, e = norm.to_source(0, 7, "display")
    assert text[s:e] == "سليماني"
    i = norm.display.index("موسكو")
    s, e = norm.to_source(i, i + 5, "display")
    assert text[s:e] == "موسكو"


def test_whitespace_and_line_breaks_tidied() -> None:
    text = "  عنوان  \r\n\r\n\r\n\r\nمتن   اول \t دوم  \n"
    assert normalize(text).display == "عنوان\n\nمتن اول دوم"


def test_presentation_forms_folded() -> None:
    assert normalize("ﻻ ﺇﻟﻪ").display == "لا إله"
    assert match_key("ﻻ ﺇﻟﻪ") == "لا اله"


def test_quote_marks_classified_and_unified() -> None:
    assert quote_mark("«") == ("double", "open")
    assert quote_mark("»") == ("double", "close")
    assert quote_mark("“")[0] == "double"
    assert quote_mark("ا") is None
    assert match_key("«دوست من، قاسم»") == match_key('"دوست من, قاسم"')


def test_match_tokens_spans_into_source() -> None:
    text = "ولادیمیر پوتین، رئیسجمهوری روسیه"
    toks = match_tokens(text)
    assert [t for t, _, _ in toks] == ["ولاديمير", "پوتين", "رييس", "جمهوري", "روسيه"]
    for _, s, e in toks:
        assert text[s:e].strip() == text[s:e] and text[s:e]
    assert text[toks[2][1] : toks[3][2]] == "رئیسجمهوری"


def test_match_span_maps_back_to_original_spelling() -> None:
    text = "قال مسؤول أمنيّ إيرانيّ كبير"
    norm = normalize(text)
    key = match_key("مسؤول أمني إيراني")
    i = norm.match.index(key)
    s, e = norm.to_source(i, i + len(key))
    assert text[s:e] == "مسؤول أمنيّ إيرانيّ"


_UNICODE = st.text(
    alphabet=st.one_of(
        st.characters(),
        st.sampled_from(list("ایکیيكةۀ\u200c\u200d\u200e\u200f\ufeff\r\n\t ـًٌّ۱٢ﻻﷲ«»“”")),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(_UNICODE)
def test_offsets_always_map_back_to_input(text: str) -> None:
    norm = normalize(text)
    n = len(text)
    assert len(norm.display_map) == len(norm.display) + 1 and norm.display_map[-1] == n
    assert len(norm.match_map) == len(norm.match) + 1 and norm.match_map[-1] == n
    assert list(norm.display_map) == sorted(norm.display_map)
    assert list(norm.match_map) == sorted(norm.match_map)
    for form, out in (("display", norm.display), ("match", norm.match)):
        for i in range(len(out) + 1):
            for j in (i, min(i + 1, len(out)), len(out)):
                s, e = norm.to_source(i, j, form)
                assert 0 <= s <= e <= n
    # each display character comes from its source character or its NFKC/line-break folding
    for i in range(len(norm.display)):
        s, e = norm.to_source(i, i + 1, "display")
        assert e > s
    assert match_key(text) == norm.match


def test_vectorised_path_equals_reference_path() -> None:
    # Long texts take the numpy path; the character-loop implementation is the reference for every field.
    import random

    from khabar.normalize import _normalize, _normalize_fast

    pieces = [*"ابپتچحدرژسعفکگلمنوهیيكىةۀھأإآٱؤئءـًٌٍَُِّْٰ،؛؟٫۰۱٢3aZ«»“”\"'‹›\x00\x85\t\r\u00a0\u2028",
              "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\ufeff", "\U0001f600", "ﻻ",
              " ", " ", "  ", "\n", "\n\n", "\r\n", " \n \n ", "میشود", "رئیسجمهوری", "پایگاههای",
              "کردهاند", "امیرعبداللهیان", "عبدالله", "میدان"]
    rng = random.Random(7)
    checked = 0
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 120)))
        fast = _normalize_fast(text)
        if fast is not None:
            checked += 1
            assert fast == _normalize(text), repr(text)
    assert checked > 1000


@settings(max_examples=200, deadline=None)
@given(st.lists(_UNICODE, min_size=2, max_size=5).map("\n".join).map(lambda s: s * 4))
def test_ordered_ends_and_span_batches_equal_the_plain_definition(text: str) -> None:
    # Long enough for the vectorised path, which marks ends that never decrease so a span ends where its last
    # character does; spans_to_source is to_source over many spans. Both must equal the maximum over the span.
    norm = normalize(text)
    for form, out, ends, ordered in (
        ("display", norm.display, norm.display_ends, norm.display_ends_ordered),
        ("match", norm.match, norm.match_ends, norm.match_ends_ordered),
    ):
        # Only the vectorised path sets the flag; where set, it must be true.
        assert not ordered or all(a <= b for a, b in pairwise(ends))
        spans = [(i, j) for i in range(0, len(out), 7) for j in (i + 1, min(i + 13, len(out)), len(out)) if j > i]
        starts = norm.display_map if form == "display" else norm.match_map
        plain = [(starts[i], max(max(ends[i:j]), starts[i])) for i, j in spans]
        assert norm.spans_to_source(spans, form) == plain
        assert [norm.to_source(i, j, form) for i, j in spans] == plain
