"""Tests of the statistical NER (khabar.ner) and its training/scoring helpers (khabar.ner_train)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from khabar import ner, ner_train

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
NER_DATA = SHARED / "data" / "ner"


def _mentions(text: str, language: str) -> list[tuple[str, str]]:
    return [(text[s:e], t) for s, e, t, _ in ner.tag_spans(text, language)]


def _has(mentions: list[tuple[str, str]], needle: str, typ: str) -> bool:
    return any(needle in m and t == typ for m, t in mentions)


# ------------------------------------------------------------------ real sentences, unseen names


def test_arabic_unseen_person_and_place_in_news_frame() -> None:
    # Invented surname (not in any corpus): the model must generalise from context and clusters.
    text = "وقال وزير الخارجية زكريا الدغيمشاني في مؤتمر صحفي عقده في الرياض إن المفاوضات مستمرة."
    m = _mentions(text, "ar")
    assert _has(m, "الدغيمشاني", "PER"), m
    assert _has(m, "الرياض", "LOC"), m


def test_arabic_organisation() -> None:
    text = "وأعلنت وزارة الدفاع الروسية أن الطائرات قصفت مواقع لتنظيم داعش قرب مدينة حمص."
    m = _mentions(text, "ar")
    assert any(t == "ORG" for _, t in m), m
    assert _has(m, "حمص", "LOC"), m


def test_persian_unseen_person_and_place_in_news_frame() -> None:
    text = "به گزارش خبرگزاری فارس، کامران نیک‌سرشتیان استاندار خوزستان امروز در اهواز گفت که طرح ادامه دارد."
    m = _mentions(text, "fa")
    assert _has(m, "نیک‌سرشتیان", "PER"), m
    assert _has(m, "اهواز", "LOC"), m


def test_persian_with_arabic_letters_is_folded() -> None:
    # Older Persian sites write ي/ك; the match form folds them so features still fire.
    text = "حسن روحاني رييس جمهور ايران روز دوشنبه به مسكو سفر كرد."
    m = _mentions(text, "fa")
    assert _has(m, "روحاني", "PER"), m


# ------------------------------------------------------------------ offsets and odd input


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("  \n\u200fقال الرئيس الفلسطيني محمود عباس (أبو مازن) في رام الله ، أمس.\n\nوزار بغداد", "ar"),
        ("علی\u200cاکبر ولایتی، مشاور رهبر انقلاب، در «تهران» گفت: آمریکا باید بداند.", "fa"),
        ("سُلَيْمَانِيُّ يزور مُوسكو", "ar"),
    ],
)
def test_offsets_point_into_input(text: str, language: str) -> None:
    spans = ner.tag_spans(text, language)
    assert spans
    for start, end, typ, conf in spans:
        assert 0 <= start < end <= len(text)
        mention = text[start:end]
        assert mention == mention.strip() and mention
        assert typ in {"PER", "ORG", "LOC", "MISC"}
        assert 0.0 <= conf <= 1.0
    starts = [s for s, *_ in spans]
    assert starts == sorted(starts)


def test_tokenize_offsets_and_words() -> None:
    text = "می\u200cگوید: سُلَيْمَانِيُّ، 3.5 درصد"
    toks = [text[s:e] for s, e in ner.tokenize(text)]
    assert toks == ["می\u200cگوید", ":", "سُلَيْمَانِيُّ", "،", "3.5", "درصد"]


@pytest.mark.parametrize("text", ["", " ", "\n\n\t", "😀😀", "...", "Hello World 2024", "ـــ", "\u200c"])
def test_odd_input_is_safe(text: str) -> None:
    for lang in ("ar", "fa"):
        spans = ner.tag_spans(text, lang)
        assert all(0 <= s < e <= len(text) for s, e, *_ in spans)


def test_unknown_language_gives_nothing() -> None:
    text = "قال الرئيس محمود عباس في رام الله"
    assert ner.tag_spans(text, "en") == []
    assert ner.tag_spans(text, "") == []
    assert ner.tag_tokens(["محمود", "عباس"], "xx") == ["O", "O"]
    assert ner.tag_spans(text, "AR") == ner.tag_spans(text, "ar")


def test_tag_tokens_bio() -> None:
    toks = ["قال", "الرئيس", "محمود", "عباس", "في", "رام", "الله"]
    tags = ner.tag_tokens(toks, "ar")
    assert len(tags) == len(toks)
    assert tags[2] == "B-PER" and tags[3] == "I-PER"
    assert ner.tag_tokens([], "ar") == []
    assert len(ner.tag_tokens(["", " ", "همه جانبه"], "fa")) == 3


def test_long_sentence_without_punctuation_is_decoded_in_pieces() -> None:
    text = " ".join(["وقال", "محمود", "عباس", "إن", "الوضع", "صعب"] * 40)
    spans = ner.tag_spans(text, "ar")
    assert sum(1 for s, e, t, _ in spans if text[s:e] == "محمود عباس" and t == "PER") >= 30


# ------------------------------------------------------------------ scorer and readers


def test_bio_to_spans_conlleval_rules() -> None:
    assert ner.bio_to_spans(["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-ORG"]) == [
        (0, 2, "PER"), (3, 5, "LOC"), (5, 6, "LOC"), (6, 7, "ORG")]


def test_score_exact_span_and_type() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-LOC", "O"]]
    sc = ner_train.score(gold, pred)
    assert sc["LOC"]["p"] == 50.0 and sc["LOC"]["r"] == 100.0
    assert sc["PER"]["f1"] == 0.0
    assert sc["micro"]["support"] == 3 and sc["micro"]["p"] == pytest.approx(100 / 3, abs=0.01)


def test_retokenize_propagates_tags() -> None:
    assert ner_train.retokenize([("(رويترز)", "B-ORG"), ("همه جانبه", "O")]) == [
        ("(", "B-ORG"), ("رويترز", "I-ORG"), (")", "I-ORG"), ("همه", "O"), ("جانبه", "O")]


# ------------------------------------------------------------------ shipped models


def test_models_are_shipped_small_and_match_current_folding() -> None:
    for lang in ner.LANGUAGES:
        assert ner.model_path(lang).stat().st_size < 15_000_000
        assert ner.cluster_path(lang).is_file()
        assert ner.lexicon_path(lang).is_file()
    scores = json.loads((ner.MODEL_DIR / "ner_scores.json").read_text(encoding="utf-8"))
    # Features are built on the match form: if khabar.normalize changes it, the models must be retrained.
    assert scores["fold_probe"] == {w: ner.token_key(w) for w in scores["fold_probe"]}


# Floors ~4 points under what the shipped models score on these slices (68.3 and 67.2 micro F1).
FLOORS = {"ar": ("anercorp_tail10", 150, 64.0), "fa": ("peyma_dev", 250, 63.0)}


@pytest.mark.skipif(not NER_DATA.is_dir(), reason="NER corpora (../shared/data/ner) not present")
@pytest.mark.parametrize("language", sorted(FLOORS))
def test_heldout_slice_floor(language: str) -> None:
    part, n, floor = FLOORS[language]
    _, held = ner_train._corpora(NER_DATA, language)
    sents = held[part][:n]
    model = ner._model(language)
    assert model is not None
    pred = model.tag([[w for w, _ in s] for s in sents])
    f1 = ner_train.score([[t for _, t in s] for s in sents], pred)["micro"]["f1"]
    assert f1 >= floor, f"{language} {part}[:{n}] micro F1 {f1} < {floor}"


def test_feature_cache_reset_between_documents_keeps_results(monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression: the per-token cache used to reset in the middle of a document once full, leaving rows
    # looked up earlier in that document stale (IndexError after ~11,700 real articles).
    texts = [
        "قال وزير الخارجية الروسي سيرغي لافروف في موسكو إن المحادثات مع طهران كانت مثمرة.",
        "سافر الجنرال قاسم سليماني إلى موسكو الأسبوع الماضي للقاء الرئيس فلاديمير بوتين.",
        "وزیر امور خارجه ایران محمد جواد ظریف روز دوشنبه در تهران با همتای روسی خود دیدار کرد.",
    ]
    langs = ["ar", "ar", "fa"]
    expected = [ner.tag_spans(t, lang) for t, lang in zip(texts, langs, strict=True)]
    monkeypatch.setattr(ner, "_CACHE_MAX", 12)  # smaller than one document: evicts on every document
    for lang in ("ar", "fa"):
        model = ner._model(lang)
        assert model is not None
        model._reset_cache()
    for _ in range(3):
        got = [ner.tag_spans(t, lang) for t, lang in zip(texts, langs, strict=True)]
        assert got == expected
    # Eviction keeps the most recently used forms: the last Arabic document's forms stay cached.
    model = ner._model("ar")
    assert model is not None
    last = {texts[1][s:e] for s, e in ner.tokenize(texts[1])}
    assert len(model.rows) <= 12 // 2 + len(last)
    assert sum(t in model.rows for t in last) >= 6
    for lang in ("ar", "fa"):
        ner._model(lang)._reset_cache()  # leave no tiny-cache state behind for other tests


def test_compiled_decoder_matches_numpy_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    # The C decoder (khabar/_crf.c, built by setup.py) must give the numpy decoder's labels and
    # confidences; CI builds it, so a missing build is a failure here, not a silent slowdown.
    from khabar import _crf

    samples = Path(__file__).resolve().parents[1] / "fixtures" / "samples"
    from khabar.language import detect_language

    docs = []
    for path in sorted(samples.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        docs.append((text, detect_language(text)[0]))
    docs.append(("قال " + "الوزير محمد بن سلمان " * 40 + ".", "ar"))  # one sentence cut into pieces
    assert len(docs) >= 6
    assert ner._cdecode is _crf.decode
    assert ner._cemissions is _crf.emissions
    compiled = [ner.tag_spans(t, lang) for t, lang in docs]
    monkeypatch.setattr(ner, "_cdecode", None)
    monkeypatch.setattr(ner, "_ctokenize", None)
    monkeypatch.setattr(ner, "_cemissions", None)
    numpy_ = [ner.tag_spans(t, lang) for t, lang in docs]
    assert compiled == numpy_
    assert sum(map(len, compiled)) > 50


_TOKEN_CHARS = st.sampled_from([*"ab_1٢۳.,:/٫٬ ـ\u064b\u200c\u200d\n\t!؟…x١2\u0670يی",
                                "\u00a0", "\u2009", "²", "Ⅻ", "𝟙", "\U0001F600", "Ä"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_TOKEN_CHARS, max_size=40).map("".join))
def test_compiled_tokenizer_matches_regex_tokenizer(text: str) -> None:
    from khabar import _crf

    tokens, starts, ends = _crf.tokenize(text)
    spans = ner.tokenize(text)
    assert list(zip(starts, ends, strict=True)) == spans
    assert tokens == [text[s:e] for s, e in spans]


def test_lexicon_features_depend_on_the_form_only() -> None:
    # The shipped tables: a head word and a clitic-stemmed title get their flags, ordinary words none.
    own, prev1, next1, *_ = ner._features("وزارة", "ar")
    assert "g=OT" in own and "+1g=OT" in next1 and "-1g=OT" in prev1
    assert "gs=T" in ner._features("والرئيس", "ar")[0]
    assert "g=OT" in ner._features("سازمان", "fa")[0]


def test_build_lexicon_skips_frequent_words_and_reads_context(tmp_path: Path) -> None:
    # A fake cluster table ranks "في" as the most frequent word: no name-position flag for it.
    (tmp_path / "ner-clusters-ar.tsv").write_text("في\t1\t1\n", encoding="utf-8")
    news = ["قال السيد زبرجدان إن الوفد وصل.", "التقى السيد زبرجدان بالوفد في الرياض."] * 3
    ner_train.build_lexicon("ar", tmp_path, common=1, texts=news)
    rows = dict(line.split("\t", 1)[1].split("\t") for line in
                ner.lexicon_path("ar", tmp_path).read_text(encoding="utf-8").splitlines()
                if line.startswith("w\t"))
    assert "في" not in rows or not any(f[0] in "BILU" for f in rows["في"].strip().split(","))
    assert "xT++" in rows["زبرجدان"].strip().split(",")
    assert "ULOC" in rows["الرياض"].strip().split(",")


def _rows_by_definition(model: ner.CRFModel, token: str) -> list[list[float]]:
    """A form's five table rows as the plain sum of its :func:`ner._features` weights."""
    import numpy as np

    out = []
    for group in ner._features(token, model.language)[:5]:
        row = np.zeros(len(model.labels))
        for f in group:
            i = model._fid.get(f)
            if i:
                row += model._w[i]
        out.append(row.tolist())
    return out


_FORM_CHARS = st.sampled_from([*"ابتثجحخدذرزسشصضطظعغفقكلمنهويىةءأإآئؤ", *"پچژگکیۀ", "\u200c", *"0123٤۵",
                               *"AbZ", "ال", "وال", "های", "ترین", "می\u200c"])


def _assert_rows_match(model: ner.CRFModel, tokens: list[str]) -> None:
    import numpy as np

    model._add_rows(tokens)
    for token in tokens:
        got = model._tables[:, model.rows[token]]
        assert np.allclose(got, _rows_by_definition(model, token), rtol=0, atol=1e-9), token


def test_cached_form_blocks_equal_the_feature_definition() -> None:
    # A new form's rows are summed from cached blocks (cluster, prefix, suffix, ... parts); they must
    # equal the weights of the feature strings the model was trained on.
    samples = Path(__file__).resolve().parents[1] / "fixtures" / "samples"
    for lang in ("ar", "fa"):
        model = ner._model(lang)
        assert model is not None
        model._reset_cache()
        tokens = []
        for path in sorted(samples.glob("*.txt")):
            tokens += [t for t in ner._tokens(path.read_text(encoding="utf-8"))[0] if t not in tokens]
        assert len(tokens) > 500
        _assert_rows_match(model, tokens)
        # Parts come back from the block caches for other forms: still equal.
        _assert_rows_match(model, ["و" + t for t in tokens[:300]] + [t + "ها" for t in tokens[:300]])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_FORM_CHARS, min_size=1, max_size=8).map("".join), min_size=1, max_size=5),
       st.sampled_from(["ar", "fa"]))
def test_form_blocks_match_the_definition_on_any_form(tokens: list[str], lang: str) -> None:
    model = ner._model(lang)
    assert model is not None
    _assert_rows_match(model, [t for t in tokens if t.strip()] or ["x"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*"ab ١2.!?؟…,\n", "3.5", "...", "x.y", " . "]), max_size=40).map("".join))
def test_sentence_ends_found_in_the_text_equal_the_token_test(text: str) -> None:
    tokens, starts, _ = ner._tokens(text)
    got = ner._sentences(text, tokens, starts)
    # Definition: a sentence ends after a token that is a sentence-end character, or at a line break.
    ends = {i + 1 for i, t in enumerate(tokens) if t in ner._SENT_END}
    ends |= {sum(s < p for s in starts) for p, c in enumerate(text) if c == "\n"}
    ends.add(len(tokens))
    expected, start = [], 0
    for e in sorted(ends):
        if e > start:
            expected.append((start, e))
            start = e
    assert got == expected


def test_compiled_emissions_equal_numpy_emissions_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from khabar import _crf

    samples = Path(__file__).resolve().parents[1] / "fixtures" / "samples"
    assert ner._cemissions is _crf.emissions
    for path in sorted(samples.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        tokens, starts, _ = ner._tokens(text)
        bounds = ner._sentences(text, tokens, starts)
        for lang in ("ar", "fa"):
            model = ner._model(lang)
            assert model is not None
            em_c, punct_c = model.emissions(tokens, bounds)
            with monkeypatch.context() as m:
                m.setattr(ner, "_cemissions", None)
                em_np, punct_np = model.emissions(tokens, bounds)
            assert np.array_equal(em_c, em_np) and np.array_equal(punct_c, punct_np)
            assert np.abs(em_c).sum() > 0
