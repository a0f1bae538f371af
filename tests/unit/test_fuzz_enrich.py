"""Fuzzing ``khabar.enrich.enrich``: arbitrary and adversarial text never raises, offsets stay valid,
and each document finishes within a time budget enforced by the pipeline's own mechanism.

The budget is ``khabar.timebudget.call_with_alarm`` (what the ingest pipeline uses on the main
thread), set generously: a document that blows it is a catastrophic slowdown, not a slow machine.
The maximum time seen is printed, not asserted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from khabar.enrich import enrich
from khabar.timebudget import BudgetExceeded, call_with_alarm

BUDGET_S = 20.0
_TIMES: list[float] = []

QUOTE_MARKS = "\"'«»“”„‟‘’‚‛‹›「」『』"
RTL_MARKS = "\u200f\u200e\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c\u200c\u200d"
EMOJI = "😀🙏🏽👨‍👩‍👧‍👦🇮🇷🇸🇦🔥💬✊🏿"
PUNCT = "!?.,;:،؛؟…—–-()[]{}<>/\\|@#$%^&*_+=~`·•«»"
WORDS = ["قال", "گفت", "نفى", "تکذیب کرد", "الرئيس", "سليماني", "طهران", "مسکو", "«", "»", ":", "\n", " ",
         "أن", "إن", "که", "اعلام کرد", "وزير الخارجية", "رويترز", "به گزارش", "ایرنا"]


def _spans(article: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for b in article.get("boilerplate") or []:
        yield "boilerplate", b
    for e in article.get("entities") or []:
        for m in e.get("mentions") or []:
            yield f"mention of {e.get('id')}", m
    for q in article.get("quotes") or []:
        yield "quote", q
        for part in ("speaker", "via"):
            if isinstance(q.get(part), Mapping) and q[part].get("start") is not None:
                yield f"quote {part}", q[part]
    for d in article.get("dates") or []:
        if isinstance(d, Mapping) and "start" in d:
            yield "date", d


def _check(text: str) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        article = call_with_alarm(BUDGET_S, enrich, {"id": "fuzz", "text": text})
    except BudgetExceeded:
        pytest.fail(f"enrichment of a {len(text)}-character document ran past {BUDGET_S} s: {text[:80]!r}")
    _TIMES.append(time.perf_counter() - started)
    assert article["id"] == "fuzz"
    for what, span in _spans(article):
        start, end = span["start"], span["end"]
        assert isinstance(start, int) and isinstance(end, int), (what, span)
        assert 0 <= start <= end <= len(text), (what, span, len(text))
        if "text" in span and isinstance(span["text"], str) and what != "quote via":
            assert text[start:end] == span["text"], (what, span)
    return article


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    call_with_alarm(120, enrich, {"id": "warm-up", "text": "قال الرئيس إن الاجتماع عقد في طهران."})
    yield
    if _TIMES:
        print(f"\nfuzzed {len(_TIMES)} documents: max {max(_TIMES) * 1000:.0f} ms, "
              f"mean {sum(_TIMES) / len(_TIMES) * 1000:.1f} ms per document (budget {BUDGET_S:g} s)")


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=2000))
def test_arbitrary_unicode(text: str) -> None:
    _check(text)


@FUZZ
@given(st.lists(st.sampled_from(WORDS + list(QUOTE_MARKS) + list(RTL_MARKS) + list(EMOJI) + list(PUNCT)),
                max_size=400).map("".join))
def test_news_words_mixed_with_marks(text: str) -> None:
    _check(text)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(QUOTE_MARKS + ":"), st.integers(min_value=1, max_value=20_000),
       st.sampled_from(["", "قال ", "x"]))
def test_long_runs_of_quote_marks(mark: str, n: int, glue: str) -> None:
    _check((mark + glue) * n)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["", "قال الرئيس ", "گفت ", "\n"]), st.integers(min_value=100, max_value=10_000),
       st.booleans())
def test_deeply_nested_guillemets(inner: str, depth: int, closed: bool) -> None:
    _check("قال المتحدث: " + ("«" + inner) * depth + ("»" * depth if closed else ""))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=RTL_MARKS + EMOJI + PUNCT + " \n\t", min_size=1, max_size=5000))
def test_only_punctuation_emoji_and_direction_marks(text: str) -> None:
    article = _check(text)
    assert article["entities"] == [] or all(e.get("mentions") for e in article["entities"])


def test_fixed_adversarial_inputs() -> None:
    cases = {
        "10,000 nested «": "«" * 10_000 + "قال" + "»" * 10_000,
        "10,000 nested « with cue": "قال الرئيس: " + "«قال " * 10_000,
        "50,000 straight quotes": '"' * 50_000,
        "alternating quotes": "«»“”" * 12_500,
        "colons and cues": ("قال: " * 10_000),
        "RTL marks": "\u200f\u202b\u202e" * 10_000,
        "emoji": "🙏🏽" * 10_000,
        "punctuation": "!؟،؛..." * 10_000,
        "one 100k-character word": "ا" * 100_000,
        "100k newlines": "\n" * 100_000,
        "lone combining marks": "\u064b\u064c\u064d\u0651" * 5_000,
    }
    for name, text in cases.items():
        started = time.perf_counter()
        _check(text)
        print(f"  {name:<28} {len(text):>7} chars  {(time.perf_counter() - started) * 1000:7.0f} ms")
