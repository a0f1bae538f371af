"""Title, byline and boilerplate on real scraped snippets."""

from __future__ import annotations

from pathlib import Path

from khabar.boilerplate import FurnitureLearner, analyse, from_html

SAMPLES = Path(__file__).parents[1] / "fixtures" / "samples"


def _removed(text: str, **kw: object) -> dict[str, str]:
    st = analyse(text, **kw)  # type: ignore[arg-type]
    for r in st.removed:
        assert text[r["start"] : r["end"]] == r["text"]
    return {r["text"]: r["reason"] for r in st.removed}


def test_title_with_site_suffix() -> None:
    text = (
        "طهران تنفي وجود خلافات مع موسكو بخصوص سوريا - It's Over 9000!\n\n"
        "طهران تنفي وجود خلافات مع موسكو بخصوص سوريا\n\n"
        "بلدي نيوز – (أيمن محمد)\n"
        "نفى نائب وزير الخارجية الإيرانية حسين أمير عبد اللهيان وجود أية خلافات مع روسيا بخصوص سوريا.\n"
    )
    st = analyse(text)
    assert st.title == "طهران تنفي وجود خلافات مع موسكو بخصوص سوريا"
    assert text[st.title_span[0] : st.title_span[1]] == st.title
    assert st.byline == "أيمن محمد"
    assert [r["reason"] for r in st.removed] == ["title repeated with site name"]
    assert st.body.startswith("نفى نائب وزير الخارجية")


def test_header_furniture_and_more_about() -> None:
    text = (
        "اسرائیل در جنگ؛ روز ۴۳۵\n\nجستجو\nاختصاصی\n\n"
        "پس از انتشار گزارش در ایران، کرملین دیدار پوتین و سلیمانی را تکذیب کرد\n\n"
        "کرملین دیدار هفته گذشته میان پرزیدنت ولادیمیر پوتین و سرلشکر قاسم سلیمانی در مسکو را تکذیب کرد.\n\n"
        "اطلاعات بیشتر در مورد"
    )
    st = analyse(text)
    assert st.title == "پس از انتشار گزارش در ایران، کرملین دیدار پوتین و سلیمانی را تکذیب کرد"
    assert {r["text"] for r in st.removed} == {
        "اسرائیل در جنگ؛ روز ۴۳۵", "جستجو", "اختصاصی", "اطلاعات بیشتر در مورد"
    }


def test_duplicated_caption() -> None:
    cap = "فرمانده نیروی قدس سپاه پاسداران ایران سردار سرلشکر قاسم سلیمانی - بی بی سی"
    text = (
        f"تیتر خبر درباره کرملین\n\nمتن اول خبر که طولانی است و ادامه دارد.\n\n{cap}\n{cap}\n\n"
        "متن دوم خبر."
    )
    removed = analyse(text).removed
    assert [r["reason"] for r in removed] == ["duplicated caption", "duplicated caption"]


def test_related_list_and_separator_at_end() -> None:
    text = (
        "خبر أول طويل عن سوريا وموسكو وطهران يتحدث عن الزيارة.\n\n"
        "وأضاف الموقع أن مسؤولين أمريكيين رصدوا انسحابات كبيرة.\n\n"
        "مقالات ذات صلة\n\n"
        "تعيين مرهف أبو قصرة وزيرا للدفاع في الحكومة السورية الجديدة\n\n"
        "\"التعاون الخليجي\" يدعم وحدة واستقرار سوريا\n\n//"
    )
    removed = _removed(text)
    assert len(removed) == 4
    assert set(removed.values()) <= {"related articles", "site furniture", "counter or separator"}


def test_credit_line_and_counter() -> None:
    text = "لم تكن هذه المرة الأولى.\n\nنفى الكرملين في ديسمبر أيضا.\n\nساهمت وكالة فرانس برس في هذا التقرير"
    assert _removed(text) == {"ساهمت وكالة فرانس برس في هذا التقرير": "credit line"}
    text2 = "وتلزم الدول الأعضاء في الأمم المتحدة بمنع دخول الأشخاص.\n\n1"
    assert _removed(text2) == {"1": "counter or separator"}


def test_kicker_after_dateline() -> None:
    text = (
        "سليماني يزور موسكو لبحث تعزيز التعاون العسكري مع طهران\n\nالجمعة 2016/04/15\n"
        "تحالف ايراني روسي لدعم الاسد\n\n"
        "موسكو - قالت ثلاثة مصادر الجمعة إن الجنرال قاسم سليماني توجه إلى موسكو لإجراء محادثات.\n"
    )
    st = analyse(text)
    assert st.title.startswith("سليماني يزور موسكو")
    assert st.dateline_span is not None
    assert [r["text"] for r in st.removed] == ["تحالف ايراني روسي لدعم الاسد"]


def test_no_title_when_first_line_is_a_sentence() -> None:
    text = (SAMPLES / "004_16651cc10d273b15.txt").read_text(encoding="utf-8")
    st = analyse(text)
    assert st.title is None and st.removed == []


def test_given_title_is_used() -> None:
    st = analyse("متن خبر بدون تیتر.\n\nادامه خبر.", title="تیتر خبر")
    assert st.title == "تیتر خبر" and st.title_span is None


def test_learner_removes_per_source_furniture_with_bounded_memory() -> None:
    learner = FurnitureLearner(min_docs=4, max_lines=50)
    for i in range(12):
        text = f"خبر شماره {i} درباره موضوعی تازه است.\n\nجملهٔ دیگر {i} در متن.\n\nعضویت در کانال تلگرام ما"
        st = analyse(text, source="site-a", learner=learner)
    assert any(r["reason"] == "repeated across documents of this source" for r in st.removed)
    # another source does not inherit site-a's furniture
    st_b = analyse(
        "خبر درباره موضوعی تازه است.\n\nعضویت در کانال تلگرام ما", source="site-b", learner=learner
    )
    assert st_b.removed == []
    assert len(learner) <= 2 * 50


def test_from_html() -> None:
    html = (
        "<html><head><title>t</title></head><body><nav>جستجو</nav><article><h1>عنوان الخبر</h1>"
        + "".join(
            f"<p>هذه فقرة رقم {i} من نص الخبر الطويل الذي يتحدث عن سوريا وموسكو وطهران.</p>" for i in range(6)
        )
        + "</article><footer>حقوق النشر</footer></body></html>"
    )
    text = from_html(html)
    assert "هذه فقرة رقم 3" in text


def test_line_match_form_is_match_key_of_line_text() -> None:
    # analyse() keys the furniture learner with each line's match form instead of match_key(line.text), and counts
    # words over the whole text at once; both rest on normalisation being local to the line.
    import random

    from khabar.boilerplate import _WORD_RE, _lines
    from khabar.normalize import match_key, normalize

    pieces = [*"ابپتچحدرژسعفکگلمنوهیيكىةۀھأإآٱؤئءـًٌٍَُِّْٰ،؛؟٫۰۱٢3aZ«»“”\"'\x00\x85\x0b\x0c\t\r\u00a0\u2028",
              "\u2029", "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\ufeff", "ﯼ", "ﻻ", "\U0001f600", "\u0610",
              " ", " ", "  ", "\n", "\n\n", "\r\n", " \n ", "میشود", "رئیسجمهوری", "پایگاههای", "کردهاند",
              "امیرعبداللهیان", "میدان", "نمی", "عبدالله", "ها ", "های", "اند"]
    rng = random.Random(3)
    for _ in range(1500):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 300)))
        for line in _lines(text, normalize(text)):
            assert match_key(line.text) == line.key, repr(text)
            assert line.words == len(_WORD_RE.findall(line.key)), repr(text)
