"""Date extraction on real snippets."""

from __future__ import annotations

from datetime import date

from khabar.dates import extract_dates, parse_date_value


def test_numeric_with_weekday() -> None:
    text = "سليماني يزور موسكو\n\nالجمعة 2016/04/15\nتحالف ايراني روسي لدعم الاسد"
    r = extract_dates(text, language="ar")
    assert r["published_at"] == "2016-04-15"
    o = r["published_at_original"]
    assert o["calendar"] == "gregorian" and text[o["start"] : o["end"]] == "الجمعة 2016/04/15" == o["text"]


def test_persian_weekday_and_month_without_year_uses_latest_year_and_weekday() -> None:
    text = (
        "ولادیمیر پوتین، رئیسجمهوری روسیه، روز سهشنبه ۱۷ دی در سفری غیرمنتظره راهی سوریه شد.\n"
        "آقای پوتین برای اولین بار بعد از سال ۲۰۱۷ میلادی به سوریه سفر کرده."
    )
    r = extract_dates(text, language="fa")
    assert r["published_at"] == "2020-01-07"
    assert r["published_at_original"]["calendar"] == "jalali"
    assert r["published_at_original"]["text"] == "روز سهشنبه ۱۷ دی"


def test_message_date_is_the_context() -> None:
    r = extract_dates("روز سه‌شنبه ۱۷ دی پوتین به دمشق رفت", language="fa", context_date=date(2019, 1, 9))
    assert r["published_at"] == "2019-01-07"


def test_jalali_with_year_and_persian_digits() -> None:
    r = extract_dates("تهران - ۱۷ دی ۱۳۹۸ خبرگزاری", language="fa")
    assert r["dates"][0]["date"] == "2020-01-07" and r["dates"][0]["calendar"] == "jalali"


def test_levantine_and_egyptian_month_names() -> None:
    assert extract_dates("دمشق في 15 نيسان 2016", language="ar")["dates"][0]["date"] == "2016-04-15"
    assert extract_dates("القاهرة 3 تشرين الأول 2015", language="ar")["dates"][0]["date"] == "2015-10-03"
    assert extract_dates("في 15 نيسان/أبريل 2016", language="ar")["dates"][0]["date"] == "2016-04-15"
    assert extract_dates("القاهرة ٢٠ أغسطس ٢٠١٥", language="ar")["dates"][0]["date"] == "2015-08-20"


def test_hijri() -> None:
    d = extract_dates("الرياض 5 رمضان 1437 هـ", language="ar")["dates"][0]
    assert d["calendar"] == "hijri" and d["date"] == "2016-06-10"


def test_body_dates_take_year_from_publication_date() -> None:
    text = "الجمعة 2016/04/15\n" + "كلام " * 120 + "\nبدأت روسيا في 30 سبتمبر الماضي وفي 13 مارس الماضي."
    r = extract_dates(text, language="ar")
    assert r["published_at"] == "2016-04-15"
    assert [d["date"] for d in r["dates"][1:]] == ["2015-09-30", "2016-03-13"]


def test_no_date_no_guess() -> None:
    r = extract_dates("نفى متحدث بإسم الكرملين يوم الجمعة هذه المحادثات", language="ar")
    assert r == {"published_at": None, "published_at_original": None, "dates": []}
    # "روز ۴۳۵" is a day counter, not a date
    assert extract_dates("اسرائیل در جنگ؛ روز ۴۳۵", language="fa")["dates"] == []


def test_parse_date_value() -> None:
    assert parse_date_value("2020-01-07 15:32:00") == date(2020, 1, 7)
    assert parse_date_value("1384/10/22") == date(2006, 1, 12)
    assert parse_date_value("garbage") is None


def test_candidate_starts_find_what_the_scan_finds() -> None:
    # extract_dates tries its patterns only at candidate digits; that must find exactly what finditer finds.
    import random

    from khabar.dates import _YEAR_RE, _finditer, _lexicon, _starts

    lex = _lexicon()
    pieces = [*"0123456789٣۴١ /.-,()a_بيوم \n", " ابريل ", " دي ", " رمضان ", "2016", "1398", "1437", " هـ",
              "من شهر ", "سال ", "الجمعة ", "12/05/2016", "1395/02/12", "كلمة " * 12, *list(lex.months)[:20]]
    rng = random.Random(8)
    for _ in range(2000):
        s = "".join(rng.choice(pieces) for _ in range(rng.randint(20, 120)))
        starts = _starts(s)
        if starts is None:
            continue
        for pattern, cands in ((lex.numeric_re, starts.dates), (lex.named_re, starts.dates), (_YEAR_RE, starts.years)):
            assert [m.span() for m in _finditer(pattern, s, cands)] == [m.span() for m in pattern.finditer(s)]
