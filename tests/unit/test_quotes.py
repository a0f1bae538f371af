"""Unit tests for khabar.quotes: real sentences for each pattern, with hand-built entity lists."""

from __future__ import annotations

import re
import time

import pytest

from khabar.quotes import extract_quotes, quote_id


def ent(eid: str, etype: str, en: str, text: str, *forms: str) -> dict:
    """An entity with every occurrence of ``forms`` in ``text`` as a mention (longest form first)."""
    mentions: list[dict] = []
    for form in sorted(forms, key=len, reverse=True):
        for mt in re.finditer(re.escape(form), text):
            if not any(m["start"] < mt.end() and mt.start() < m["end"] for m in mentions):
                mentions.append({"start": mt.start(), "end": mt.end(), "text": form})
    return {"id": eid, "type": etype, "names": {"en": en}, "name": en, "mentions": mentions}


def check_offsets(text: str, quotes: list[dict]) -> None:
    for q in quotes:
        assert text[q["start"] : q["end"]] == q["text"]
        for key in ("speaker", "via"):
            if q[key] and q[key].get("start") is not None:
                assert text[q[key]["start"] : q[key]["end"]] == q[key]["text"]
        if q["cue_span"]:
            assert text[q["cue_span"][0] : q["cue_span"][1]] == q["cue"]


def direct(quotes: list[dict]) -> list[dict]:
    return [q for q in quotes if q["kind"] == "direct"]


def test_arabic_speaker_before_quote_with_outlet():
    text = 'قال مصدر أمني إيراني كبير لرويترز "سافر الجنرال سليماني إلى موسكو الليلة الماضية."'
    ents = [ent("org:reuters", "ORG", "Reuters", text, "رويترز")]
    qs = extract_quotes(text, "ar", ents)
    check_offsets(text, qs)
    (q,) = direct(qs)
    assert q["text"].startswith("سافر الجنرال سليماني")
    assert q["speaker"]["text"] == "مصدر أمني إيراني كبير"
    assert q["speaker"]["entity_id"] is None
    assert q["speaker"]["name"] == "senior Iranian security source"
    assert q["via"]["entity_id"] == "org:reuters"
    assert q["cue"] == "قال"
    assert q["stance"] == "assert"


def test_arabic_speaker_after_quote_and_agency_anaphora():
    text = (
        "ووفقا لرويترز، قال دبلوماسي غربي مقيم في موسكو أنه يعتقد أن سليماني سيجتمع مع بوتين.\n\n"
        "“سافر الجنرال سليماني إلى موسكو الليلة الماضية لمناقشة القضايا”، "
        "نقلت الوكالة عن مسؤول أمني ايراني كبير."
    )
    ents = [ent("org:reuters", "ORG", "Reuters", text, "رويترز")]
    q = next(q for q in direct(extract_quotes(text, "ar", ents)) if q["text"].startswith("سافر"))
    assert q["speaker"]["text"] == "مسؤول أمني ايراني كبير"
    assert q["via"]["entity_id"] == "org:reuters"  # "the agency" is the last outlet named


def test_arabic_quote_noun_and_title_coreference():
    text = (
        "نفى نائب وزير الخارجية الإيرانية حسين أمير عبد اللهيان وجود أية خلافات مع روسيا بخصوص سوريا.\n"
        "ونقلت وكالة أنباء الطلبة الإيرانية (إسنا) عن نائب وزير الخارجية الإيراني قوله \"إيران وروسيا تقدمان "
        "مساعداتهما للجيش السوري لمحاربة الإرهاب بجدية\"، وفق تعبيره، وأضاف \"نقيّم إيجابيا خطوات موسكو\"."
    )
    ents = [ent("per:hossein-amir-abdollahian", "PER", "Hossein Amir-Abdollahian", text,
                "حسين أمير عبد اللهيان")]
    qs = direct(extract_quotes(text, "ar", ents))
    check_offsets(text, qs)
    assert [q["text"][:12] for q in qs] == ["إيران وروسيا", "نقيّم إيجابي"]
    for q in qs:
        assert q["speaker"]["entity_id"] == "per:hossein-amir-abdollahian"
        assert q["via"]["entity_id"] == "org:iranian-students-news-agency"


def test_arabic_names_in_quote_marks_are_not_quotes():
    text = (
        "رئيس “قوة القدس” التابعة للحرس الثوري الإيراني، قاسم سليماني، زار موسكو.\n"
        "وكان موقع وكالة \"بلومبرج\" الأمريكية، نقل عن مسؤولين عسكريين، إن إيران بدأت في سحب قواتها.\n"
        "\"التعاون الخليجي\" يدعم وحدة واستقرار سوريا\n"
        "لكنها تقول أن لها “مستشارين” على الأرض لمساعدة النظام."
    )
    ents = [ent("org:quds-force", "ORG", "Quds Force", text, "قوة القدس")]
    qs = extract_quotes(text, "ar", ents)
    check_offsets(text, qs)
    assert direct(qs) == []
    assert not any(q["text"] in ("قوة القدس", "بلومبرج", "التعاون الخليجي", "مستشارين") for q in qs)


def test_arabic_indirect_with_participle_and_deny():
    text = ("ومع ذلك، نفى متحدث بإسم الكرملين يوم الجمعة هذه المحادثات، "
            "قائلا أن اللقاء مع سليماني لم يكن على جدول اعمال بوتين.")
    ents = [ent("org:kremlin", "ORG", "Kremlin", text, "الكرملين")]
    qs = extract_quotes(text, "ar", ents)
    check_offsets(text, qs)
    q = next(q for q in qs if q["text"].startswith("اللقاء مع سليماني"))
    assert q["kind"] == "indirect"
    assert q["speaker"]["text"] == "متحدث بإسم الكرملين"
    assert q["speaker"]["entity_id"] is None
    assert q["speaker"]["affiliation"] == "org:kremlin"
    denial = next(q for q in qs if q["cue"] == "نفى")
    assert denial["stance"] == "deny"


def test_arabic_possessive_cue_takes_clause_subject():
    text = "أعلنت وكالة فارس، أن بوتين ناقش آخر التطورات في سوريا مع سليماني، ووصفه بقوله: “صديقي، قاسم”."
    ents = [
        ent("org:fars-news-agency", "ORG", "Fars News Agency", text, "وكالة فارس"),
        ent("per:vladimir-putin", "PER", "Vladimir Putin", text, "بوتين"),
        ent("per:qasem-soleimani", "PER", "Qasem Soleimani", text, "سليماني"),
    ]
    (q,) = direct(extract_quotes(text, "ar", ents))
    assert q["text"] == "صديقي، قاسم"
    assert q["speaker"]["entity_id"] == "per:vladimir-putin"


def test_anonymous_source_leaves_the_outlet_as_speaker():
    text = (
        "لكن وكالة “فارس” شبه الرسمية الإيرانية، نقلت عن مصادر لم تعلن عنها، قائلة أن سليماني التقى مع بوتين "
        "“وكبار مسؤولي الجيش والأمن الروسي خلال زيارة استغرقت ثلاثة أيام”."
    )
    ents = [ent("org:fars-news-agency", "ORG", "Fars News Agency", text, "فارس")]
    q = next(q for q in direct(extract_quotes(text, "ar", ents)))
    assert q["text"].startswith("وكبار مسؤولي")
    assert q["speaker"]["entity_id"] == "org:fars-news-agency"


def test_persian_indirect_x_goft():
    text = "دمیتری پسکوف، سخنگوی کاخ ریاست جمهوری روسیه، گفت پوتین به پایگاه هوایی روسیه در دمشق رفته است."
    ents = [
        ent("per:dmitry-peskov", "PER", "Dmitry Peskov", text, "دمیتری پسکوف"),
        ent("per:vladimir-putin", "PER", "Vladimir Putin", text, "پوتین"),
    ]
    (q,) = extract_quotes(text, "fa", ents)
    check_offsets(text, [q])
    assert q["kind"] == "indirect"
    assert q["text"].startswith("پوتین به پایگاه هوایی")
    assert q["speaker"]["entity_id"] == "per:dmitry-peskov"
    assert q["cue"] == "گفت"


def test_persian_half_space_lost_cue():
    text = "واشینگتن میگوید این نیروها برای حفاظت از میادین نفتی در سوریه ماندهاند."
    ents = [ent("loc:washington", "LOC", "Washington", text, "واشینگتن")]
    (q,) = extract_quotes(text, "fa", ents)
    assert q["text"].startswith("این نیروها")
    assert q["speaker"]["entity_id"] == "loc:washington"


def test_persian_quote_before_naming_verb():
    text = "در مقابل سرگئی لاوروف، وزیر خارجه روسیه، کشتن سلیمانی را «نقض قوانین بین‌المللی» خوانده است."
    ents = [
        ent("per:sergei-lavrov", "PER", "Sergei Lavrov", text, "سرگئی لاوروف"),
        ent("per:qasem-soleimani", "PER", "Qasem Soleimani", text, "سلیمانی"),
    ]
    (q,) = direct(extract_quotes(text, "fa", ents))
    assert q["text"] == "نقض قوانین بین‌المللی"
    assert q["speaker"]["entity_id"] == "per:sergei-lavrov"


def test_persian_scare_quotes_and_titles_are_not_quotes():
    text = (
        "طبق گزارش ایران، ریاست جمهوری روسیه با ژنرال ایرانی که «دوست» نامیده شده، ملاقات کرده است.\n"
        "به گزارش روزنامه «مسکو تایمز»، آقای پوتین برای اولین بار به سوریه سفر کرده است.\n"
        "ایران اما گفته است که «مشاوران» ایران در محل با نیروهای رژیم همکاری می کنند.\n"
        "سپاه اشاره کرد که سلیمانی در معرض خطر از سوی دشمنانی "
        "نظیر «سازمان های جاسوسی اسرائیلی و آمریکایی» است."
    )
    qs = extract_quotes(text, "fa", [])
    assert direct(qs) == []


def test_persian_described_speaker_tied_to_kremlin_and_bare_no():
    text = (
        "یکی از سخنگویان ریاست جمهوری روسیه در پاسخ به خبرگزاری تاس در این خصوص که آیا چنین دیداری صورت "
        "گرفته یا نه، اظهار داشت «نه»."
    )
    ents = [ent("org:tass", "ORG", "TASS", text, "خبرگزاری تاس")]
    (q,) = direct(extract_quotes(text, "fa", ents))
    assert q["text"] == "نه"
    assert q["speaker"]["text"] == "یکی از سخنگویان ریاست جمهوری روسیه"
    assert q["speaker"]["entity_id"] is None
    assert q["speaker"]["affiliation"] == "org:kremlin"
    assert q["via"]["entity_id"] == "org:tass"
    assert q["stance"] == "deny"


def test_unclosed_quote_with_attribution_inside():
    text = (
        "طبق این گزارش، «سلیمانی به آنها قول داده بوده که خلبان روسی را به سلامت بازگرداند؛ و این قول را، "
        "به گفته افسر سوریه ای، در نهایت به جا آورده است.\n\n"
        "ایالات متحده گفته است ۲۰۰۰ نیروی ایرانی در حلب بوده اند."
    )
    q = direct(extract_quotes(text, "fa", []))[0]
    assert q["text"].startswith("سلیمانی به آنها قول")
    assert q["text"].endswith("به جا آورده است")  # stops at the paragraph end
    assert q["speaker"]["text"] == "افسر سوریه ای"


def test_quote_spanning_paragraphs():
    text = (
        "وزیر امور خارجه گفت: «ما با همه کشورهای منطقه گفتگو می کنیم و این روند ادامه دارد.\n\n"
        "«ما به دنبال صلح هستیم و هیچ کشوری را تهدید نمی کنیم.»\n\nخبرنگاران سپس سوالات دیگری پرسیدند."
    )
    (q,) = direct(extract_quotes(text, "fa", []))
    assert q["text"].startswith("ما با همه کشورهای منطقه")
    assert q["text"].endswith("تهدید نمی کنیم.") or q["text"].endswith("تهدید نمی کنیم")
    assert "\n\n«ما به دنبال صلح" in q["text"]
    assert q["speaker"]["text"] == "وزیر امور خارجه"


def test_nested_guillemets_inside_curly_quotes():
    text = "قال المتحدث باسم الحكومة: “نحن نرفض ما يسمى «صفقة القرن» رفضا كاملا ولن نقبل بها أبدا”."
    (q,) = direct(extract_quotes(text, "ar", []))
    assert q["text"].startswith("نحن نرفض ما يسمى «صفقة القرن»")
    assert q["text"].endswith("أبدا")
    assert q["speaker"]["text"] == "المتحدث باسم الحكومة"


def test_reversed_curly_quotes():
    text = "وقال الوزير ”سنواصل دعم الجيش في معركته ضد الإرهاب حتى النهاية“."
    (q,) = direct(extract_quotes(text, "ar", []))
    assert q["text"].startswith("سنواصل دعم الجيش")


def test_exclude_spans_and_deterministic_ids():
    text = 'قال مصدر أمني لرويترز "سافر الجنرال إلى موسكو الليلة الماضية".'
    a = extract_quotes(text, "ar", [])
    b = extract_quotes(text, "ar", [])
    assert a == b and a
    q = a[0]
    assert q["id"] == quote_id(q["start"], q["end"], q["text"])
    assert extract_quotes(text, "ar", [], exclude=[(0, len(text))]) == []


def test_empty_and_plain_text():
    assert extract_quotes("", "ar", []) == []
    assert extract_quotes("الطقس جميل اليوم في دمشق.", "ar", []) == []


@pytest.mark.parametrize(
    "text",
    [
        "«" * 10_000,
        '"' * 100_000,
        "“" * 50_000 + "”" * 50_000,
        "قال الوزير «" * 5_000,
        '"a" ' * 25_000,
        ("قال مصدر إن " + "«نص» " * 50 + "\n") * 200,
    ],
    ids=["guillemets", "ascii", "curly", "cue-open", "short-pairs", "many-lines"],
)
def test_pathological_input_is_fast(text: str):
    extract_quotes(text[:10], "ar", [])  # load data files outside the timing
    t = time.perf_counter()
    extract_quotes(text, "ar", [])
    assert time.perf_counter() - t < 1.0


# Fixes found on the DEV sample of real news (benchmarks/quality/quotes_sample.py --split dev).


def test_unknown_name_right_after_the_verb_is_the_speaker():
    text = ('وقالت برادي "ان يطلب منك ان تقتل وحشا اسهل من ان يطلب منك ان تقتل شخصا" '
            'واضافت "هذه الفاجعة نجمت عن مرض".')
    qs = direct(extract_quotes(text, "ar", []))
    assert [q["speaker"]["text"] for q in qs] == ["برادي", "برادي"]


def test_subject_before_a_present_verb_that_is_no_speaker_gives_no_quote():
    text = ("فبينما تقود إيران جهود نصرة الأسد فإنه لا أحد يعرف، "
            "والحقائق تقول لنا إن نهج القيادة من الخلف لم ينفع من قبل.")
    assert extract_quotes(text, "ar", []) == []


def test_pronoun_speaker_is_the_person_the_text_was_about():
    text = ("اما محمد که پزشک سوری در ترکیه است معتقد است دلایل دیگری وجود دارد.\n"
            "وی گفت: دلیل این مساله فقط، ناآگاهی و فریب خوردن با وعده‌های دلالان است.")
    ents = [{"id": "per:x-mhmd", "type": "PER", "name": "محمد",
             "mentions": [{"start": text.index("محمد"), "end": text.index("محمد") + 4}]}]
    q = extract_quotes(text, "fa", ents)[0]
    assert q["speaker"]["entity_id"] == "per:x-mhmd"


def test_place_inside_an_organisation_name_is_not_the_speaker():
    text = "شرکت ملی نفت لیبی اعلام کرد دو میدان نفتی بزرگ در جنوب غربی فعالیتشان را متوقف کردند."
    i = text.index("لیبی")
    ents = [{"id": "loc:libya", "type": "LOC", "name": "Libya", "mentions": [{"start": i, "end": i + 4}]}]
    q = extract_quotes(text, "fa", ents)[0]
    assert q["speaker"]["text"] == "شرکت ملی نفت لیبی" and q["speaker"]["entity_id"] is None


def test_addressee_outlet_is_via_not_part_of_the_speaker():
    text = ('وقال المسؤول الأمني لـ«الشرق الأوسط»، طالبًا عدم الإشارة إلى اسمه: «كان هناك فيتو أميركي على '
            'المشاركة في العمليات القتالية ضد تنظيم داعش».')
    q = direct(extract_quotes(text, "ar", []))[0]
    assert q["speaker"]["text"] == "المسؤول الأمني"
    assert q["via"]["entity_id"] == "org:asharq-al-awsat"


def test_direct_quote_runs_over_an_unmarked_paragraph():
    text = ("یک مقام آمریکایی گفت: «اکنون احساس اضطرار بیشتری برای حل مساله حریم هوایی وجود دارد.\n"
            "ما از اینکه پروازها از آسمان ایران باعث سرازیر شدن پول به این کشور "
            "می‌شود احساس ناخرسندی می‌کنیم.\n"
            "»وال‌استریت‌ژورنال نوشته، پرواز هواپیماها ادامه دارد.")
    q = direct(extract_quotes(text, "fa", []))[0]
    assert q["text"].endswith("احساس ناخرسندی می‌کنیم.") or q["text"].endswith("احساس ناخرسندی می‌کنیم")


def test_content_after_colon_runs_to_the_paragraph_end_and_stops_before_the_next_cue():
    text = ("رئیس اجرایی دولت افغانستان گفت: این روند بازشماری آرا باید متوقف شود. ما تلاش می‌کنیم فرآیند "
            "انتخابات را نجات دهیم. او در ادامه تصریح کرد: ما انتخابات آلوده به تقلب را نخواهیم پذیرفت.")
    qs = extract_quotes(text, "fa", [])
    assert qs[0]["text"].endswith("را نجات دهیم")
    assert qs[1]["text"].startswith("ما انتخابات آلوده")


def test_direct_quote_after_colon_is_reported_once():
    text = ("سخنگوی ریاست جمهوری الجزائر در بیانیه‌ای اعلام کرد: "
            "«تبون صبح روز سه شنبه یک تماس تلفنی از اردوغان دریافت کرد.»")
    qs = extract_quotes(text, "fa", [])
    assert [q["kind"] for q in qs] == ["direct"]


# --------------------------------------------------------------------------------------------
# Fast paths equal their plain definitions

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from khabar.quotes import _is_word_char, _scanner, _title_re, _title_spans  # noqa: E402

_TITLE_ALPHABET = st.sampled_from(list("نائبوزيرال _-.,\n«»1٢"))


@settings(max_examples=400, deadline=None)
@given(
    text=st.text(_TITLE_ALPHABET, max_size=60),
    stems=st.lists(st.text(st.sampled_from(list("نائبوزيرال")), max_size=3), min_size=1, max_size=3),
    cut=st.integers(0, 60),
)
def test_title_spans_equal_the_title_regex(text: str, stems: list[str], cut: int) -> None:
    key = tuple(stems)
    endpos = min(cut, len(text))
    assert list(_title_spans(text, key, endpos)) == [mt.span() for mt in _title_re(key).finditer(text, 0, endpos)]


@given(st.characters())
def test_is_word_char_is_backslash_w(ch: str) -> None:
    assert _is_word_char(ch) == bool(re.match(r"\w", ch))


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from(list("وفبلاالقالتأكدنفىگفتاعلامکردبه گزارش رويترز ,.\n")), max_size=80))
def test_scanner_finds_what_finditer_finds(text: str) -> None:
    # The prefix-letter filter of the scanner must not lose a match of any scanned regex.
    for langs in (("ar",), ("fa",), ("ar", "fa")):
        scanner = _scanner(langs)
        hits = scanner.scan(text)
        for name, (rx, _max_prefix, _chars) in zip(scanner._names, scanner._specs, strict=True):
            found, cands = hits[name]
            assert [mt.span() for mt in found] == [mt.span() for mt in rx.finditer(text)]
            assert all(mt.start() in cands for mt in rx.finditer(text))
